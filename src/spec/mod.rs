//! Sweep specs: a TOML file (`sweeps/*.toml`) → a checked `SweepSpec` holding every trial.
//!
//! ```toml
//! name = "ad-compliance"        # results go to results/<name>/
//! [model]  path = "models/paligemma-3b-pt-224"
//! [data]   path = "dataset/data.jsonl"
//! [train]  steps = 256          # fixed for every trial (see params.rs for all keys)
//! [sweep]  seeds = [1, 2]       # every list is an axis; trials = their cartesian product
//!          valid = [10]
//!          learning_rate = [0.03, 0.003]
//! ```
//! `sweeps/example.toml` documents every key. Unknown keys and wrong types are errors naming the
//! file, line and key; paths are relative to the spec file's folder. The whole cartesian product
//! is expanded and checked here, before anything runs; `fits` checks the answers, prompts and
//! peak memory against the model and the machine.

mod check;
mod error;
mod expand;
mod fits;
mod pack;
pub mod params;
pub mod partition;
mod sampled;
mod search;
mod select;
pub mod validation;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::data::digest::dataset_sha256;
use crate::data::split::Stratify;
use crate::data::{
    Answers, DataOptions, ExifOrientation, FramePolicy, ImageOptions, PathPolicy, Preprocessing, Resize,
};
use crate::fsutil::input::{kind_of, read_regular_text};
use crate::model::hub_env::HubAccess;
use crate::model::ModelSource;

pub use check::{check_spec, SpecCheck, SpecWarning, MIN_RANKABLE_VALID};
pub use error::SpecError;
pub use expand::{Axis, ConfigId, ContentDigests, Trial, TrialId};
pub use fits::{check_fit, FitCheck, MemoryCheck};
pub use pack::{PackSetting, AUTO_PACK, MAX_PACK};
pub use params::{HeldOut, TrialParams};
pub use search::{SearchSpec, Strategy};
pub use select::{FinalModel, SelectMetric, SelectSpec};
pub use validation::{FoldIndex, Validation};

use error::Locator;

/// A parsed, fully expanded sweep spec.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The spec file as named on the command line (used in messages).
    pub file: PathBuf,
    /// The file's text, copied byte for byte into the results folder.
    pub text: String,
    /// Names the results folder (`results/<name>/`).
    pub name: String,
    /// `[model]` as written.
    pub model: ModelSpec,
    /// `[model]` parsed once: relative paths resolved against the spec's folder, a hub id to its
    /// snapshot in the local cache.
    pub model_source: ModelSource,
    pub data: DataSpec,
    pub select: SelectSpec,
    /// `[validation]`, checked: the scheme, its folds and the test images.
    pub validation: Validation,
    /// The axes in expansion order (seeds vary slowest, so a sweep stopped early has tried every
    /// other setting at least once).
    pub axes: Vec<Axis>,
    /// Every trial, in run order.
    pub trials: Vec<Trial>,
    /// The model's own preprocessing, when resolved: `load_spec` reads the model's files,
    /// `parse_spec_with` is given it. `None`: big_vision's recipe is assumed (trial ids as before).
    pub model_preprocessing: Option<Preprocessing>,
    /// What the dataset's and model's files held: `load_spec` hashes them, `parse_spec_with` is
    /// given the digests. Part of every trial id.
    pub digests: ContentDigests,
    /// `[sweep] pack`: trials trained together (not part of any id).
    pub pack: PackSetting,
    /// `[search]`: grid or race, the budget, prompt screening.
    pub search: SearchSpec,
    /// The sampled axes (`sampled.rs`): each key and the values drawn for it.
    pub drawn: Vec<(String, Vec<String>)>,
    /// A race's extra seeds (`[search] extra_seeds`), appended to `seeds`: their trials come
    /// after the grid's in `trials` and run only for the survivors, while budget is left.
    pub extra_seeds: Vec<u64>,
}

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A Hugging Face checkpoint folder, a big_vision `.npz`, a hub id `owner/name[@revision]`
    /// in the local cache, or a built-in model named `builtin:<name>`.
    pub path: String,
    /// The tokenizer.json of a big_vision `.npz` when it is not beside it. Absent from the trial
    /// identity when not given, so ids of existing sweeps do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The dataset, one JSON object per line (image paths relative to this file's folder).
    pub path: String,
    /// Which frames of an animated image to use: first, last, middle or all. Written `frames`
    /// or, as before animated PNG and WebP were read, `gif_frames`; serialised under the old
    /// name so trial ids (a hash of the serialised inputs) stay as they were.
    #[serde(default, rename = "gif_frames", alias = "frames")]
    pub frames: FramePolicy,
    /// The two answer words, positive first: precision and recall are about the first.
    #[serde(default = "default_answers", deserialize_with = "two_answers")]
    pub answers: [String; 2],
    /// Keep the answer proportions equal in train and valid.
    #[serde(default)]
    pub stratify: bool,
    /// `apply` (the default) or `ignore` the EXIF orientation tag. Left out of the serialised
    /// inputs when `apply`, so specs written before the key existed keep their trial ids.
    #[serde(default, skip_serializing_if = "ExifOrientation::is_apply")]
    pub exif_orientation: ExifOrientation,
    /// `bilinear` or `bicubic`; absent: the model's own. Never serialised here: the trial
    /// identity holds the preprocessing it resolves to (`expand::Inputs::preprocessing`).
    #[serde(default, skip_serializing)]
    pub resize: Option<Resize>,
    /// Read image paths that leave the dataset's folder (`..`, absolute, or a symbolic link out
    /// of it), as `--allow-outside-paths` does for `gacha check DATA.jsonl`: what `gacha split
    /// --out DIR` writes. Not in the trial identity: it changes which lines are refused, never
    /// what a trial reads.
    #[serde(default, skip_serializing)]
    pub allow_outside_paths: bool,
}

/// Exactly two words: a third would otherwise be dropped without a word.
fn two_answers<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<[String; 2], D::Error> {
    let words = Vec::<String>::deserialize(deserializer)?;
    <[String; 2]>::try_from(words).map_err(|words| {
        serde::de::Error::custom(format!(
            "takes exactly two answer words, positive first (e.g. [\"yes\", \"no\"]); got {}: {words:?}",
            words.len()
        ))
    })
}

fn default_answers() -> [String; 2] {
    let answers = Answers::default();
    [answers.positive, answers.negative]
}

impl DataSpec {
    pub fn options(&self) -> DataOptions {
        let [positive, negative] = self.answers.clone();
        DataOptions {
            answers: Answers { positive, negative },
            images: ImageOptions {
                frames: self.frames,
                orientation: self.exif_orientation,
                resize: self.resize,
                ..Default::default()
            },
            paths: if self.allow_outside_paths {
                PathPolicy::AllowOutside
            } else {
                PathPolicy::InsideDatasetOnly
            },
        }
    }

    pub fn stratify(&self) -> Stratify {
        if self.stratify {
            Stratify::ByLabel
        } else {
            Stratify::No
        }
    }
}

impl SweepSpec {
    /// The folder the spec's relative paths start from.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }

    /// The dataset file, resolved against the spec's folder.
    pub fn data_path(&self) -> PathBuf {
        self.dir().join(&self.data.path)
    }

    /// An error at the spec's key `path` (its line when present).
    fn error_at(&self, path: &[&str], message: String) -> SpecError {
        match DeTable::parse(&self.text) {
            Ok(doc) => {
                let at = Locator::new(&self.file, &self.text, &doc);
                at.at(at.span_of(path).unwrap_or(0..0), path.join("."), message)
            }
            Err(err) => Locator::lines_only(&self.file, &self.text).toml(&err),
        }
    }

    /// The line of the string `value` at the key `path`: its element where the key holds a list
    /// (a `[sweep]` axis); line 1 when the file lacks the key.
    fn line_of_string(&self, path: &[&str], value: &str) -> usize {
        let Ok(doc) = DeTable::parse(&self.text) else { return 1 };
        let at = Locator::new(&self.file, &self.text, &doc);
        at.span_of_string(path, value).map_or(1, |span| at.line(span.start))
    }

    /// What the model is fed: its own preprocessing with `[data] resize` applied (`None` when
    /// the model's was not resolved).
    pub fn preprocessing(&self) -> Option<Preprocessing> {
        self.model_preprocessing.map(|own| own.with_resize(self.data.resize))
    }

    pub fn trial(&self, id: &TrialId) -> Option<&Trial> {
        self.trials.iter().find(|t| &t.id == id)
    }

    /// The seeds of refit runs: `select.refit_seeds`, else the `seeds` axis.
    pub fn refit_seeds(&self) -> Vec<u64> {
        if let Some(seeds) = &self.select.refit_seeds {
            return seeds.clone();
        }
        let mut seeds: Vec<u64> = Vec::new();
        for trial in &self.trials {
            if !seeds.contains(&trial.params.seed) {
                seeds.push(trial.params.seed);
            }
        }
        seeds
    }

    /// The refit runs of the config of `trial`: trained on every non-test image, one per refit
    /// seed. Their ids hash like a trial's, so a resumed sweep finds them.
    pub fn refit_trials(&self, trial: &Trial) -> Vec<Trial> {
        let inputs = expand::Inputs::new(
            &self.model,
            &self.model_source,
            &self.digests,
            &self.data,
            self.validation.identity(),
            recipe_identity(self.model_preprocessing.as_ref(), &self.data),
        );
        self.refit_seeds()
            .into_iter()
            .map(|seed| {
                let params = trial.params.refit(seed);
                Trial {
                    id: expand::trial_id(&inputs, &params),
                    label: format!("refit seed={seed} {}", trial.config_label),
                    config: trial.config.clone(),
                    config_label: trial.config_label.clone(),
                    params,
                }
            })
            .collect()
    }
}

/// The top-level keys other than the trial tables (those are read by `expand`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecHead {
    name: String,
    model: ModelSpec,
    data: DataSpec,
    #[serde(default)]
    select: SelectSpec,
    #[serde(default)]
    validation: validation::ValidationSpec,
}

/// Tables whose values make up each trial's parameters.
const TRIAL_TABLES: [&str; 4] = ["train", "abort", "stage2", "sweep"];

/// Largest spec file read, in bytes (a spec is a few KiB; this refuses a device or a runaway file).
const MAX_SPEC_BYTES: u64 = 16 << 20;

/// Read and check a spec file, including that its data file and model folder exist, resolve the
/// model's own preprocessing (part of the trial ids where it is not big_vision's) and hash the
/// dataset and model files (part of every trial id). Every command that runs or lists a spec's
/// trials loads it here, so they agree on the ids.
pub fn load_spec(file: &Path) -> Result<SweepSpec, SpecError> {
    let text = read_regular_text(file, MAX_SPEC_BYTES)
        .map_err(|source| SpecError::Read { file: file.to_path_buf(), source })?;
    let spec = parse_spec(&text, file)?;
    check_inputs_exist(&spec)?;
    let own = spec
        .model_source
        .preprocessing()
        .map_err(|err| spec.error_at(&["model", "path"], format!("{err:#}")))?;
    let digests = read_digests(&spec)?;
    parse_spec_with(&text, file, Some(own.own), digests, HubAccess::Download)
}

/// Parse and expand a spec's text, assuming big_vision's preprocessing and no content digests;
/// `file` is used for messages and relative paths only.
pub fn parse_spec(text: &str, file: &Path) -> Result<SweepSpec, SpecError> {
    parse_spec_with(text, file, None, ContentDigests::default(), HubAccess::Download)
}

/// `parse_spec`, with the model's own preprocessing (`SweepSpec::model_preprocessing`) and the
/// inputs' digests (`SweepSpec::digests`); a hub model downloaded only if `access` allows it.
pub fn parse_spec_with(
    text: &str,
    file: &Path,
    model_preprocessing: Option<Preprocessing>,
    digests: ContentDigests,
    access: HubAccess,
) -> Result<SweepSpec, SpecError> {
    let doc = DeTable::parse(text).map_err(|err| Locator::lines_only(file, text).toml(&err))?;
    let at = Locator::new(file, text, &doc);
    let search = search::read_search(doc.get_ref(), &at)?;
    let drawn = sampled::draw(text, doc.get_ref(), &at, &search)?;
    let mut spec = expand_spec(&drawn.text, file, model_preprocessing, digests, access)?;
    spec.text = text.to_string();
    spec.search = search;
    spec.drawn = drawn.axes;
    spec.extra_seeds = drawn.extra_seeds;
    Ok(spec)
}

/// Parse and expand a spec's text with its sampled axes written out (`sampled::draw`).
fn expand_spec(
    text: &str,
    file: &Path,
    model_preprocessing: Option<Preprocessing>,
    digests: ContentDigests,
    access: HubAccess,
) -> Result<SweepSpec, SpecError> {
    let doc = DeTable::parse(text).map_err(|err| Locator::lines_only(file, text).toml(&err))?;
    let at = Locator::new(file, text, &doc);
    let mut head = doc.get_ref().clone();
    head.remove("search");
    let mut trial_tables = DeTable::new();
    for key in TRIAL_TABLES {
        if let Some((k, v)) = head.remove_entry(key) {
            trial_tables.insert(k, v);
        }
    }
    let pack = pack::take_pack(&mut trial_tables, &at)?;
    let head = SpecHead::deserialize(toml::de::Deserializer::from(Spanned::new(doc.span(), head)))
        .map_err(|err| at.toml(&err))?;
    check_name(&head.name, &at)?;
    check_answers(&head.data.answers, &at)?;
    check_keep(&head.select, &at)?;
    head.select.checked_target().map_err(|(key, message)| {
        let span = at.span_of(&["select", key]).unwrap_or(0..0);
        at.at(span, format!("select.{key}"), message)
    })?;
    let validation = head.validation.check().map_err(|invalid| {
        let span = at.span_of(&["validation", invalid.key]).or_else(|| at.span_of(&["validation"]));
        at.at(span.unwrap_or(0..0), format!("validation.{}", invalid.key), invalid.message)
    })?;
    let model_source = parse_model(&head.model, file, &at, access)?;
    let identity = expand::Inputs::new(
        &head.model,
        &model_source,
        &digests,
        &head.data,
        validation.identity(),
        recipe_identity(model_preprocessing.as_ref(), &head.data),
    );
    let (axes, trials) = expand::expand(&at, &trial_tables, &identity, &validation)?;
    Ok(SweepSpec {
        file: file.to_path_buf(),
        text: text.to_string(),
        name: head.name,
        model: head.model,
        model_source,
        data: head.data,
        select: head.select,
        validation,
        axes,
        trials,
        model_preprocessing,
        digests,
        pack,
        search: SearchSpec::default(),
        drawn: Vec::new(),
        extra_seeds: Vec::new(),
    })
}

/// The digests of the spec's dataset and model files (`data::digest`).
fn read_digests(spec: &SweepSpec) -> Result<ContentDigests, SpecError> {
    let data = spec.data_path();
    let data_sha256 = dataset_sha256(&data, &spec.data.options())
        .map_err(|err| spec.error_at(&["data", "path"], format!("dataset file {}: {err}", data.display())))?;
    Ok(ContentDigests { data_sha256: Some(data_sha256), model_sha256: spec.model_source.content_sha256() })
}

/// `[model]` parsed, paths relative to the spec's folder; a hub id resolved in the local cache.
fn parse_model(
    model: &ModelSpec,
    file: &Path,
    at: &Locator,
    access: HubAccess,
) -> Result<ModelSource, SpecError> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let error = |key: &str, message: String| {
        at.at(at.span_of(&["model", key]).unwrap_or(0..0), format!("model.{key}"), message)
    };
    let source =
        ModelSource::parse_with(&model.path, dir, access).map_err(|message| error("path", message))?;
    match &model.tokenizer {
        None => Ok(source),
        Some(tokenizer) => {
            source.with_tokenizer(dir.join(tokenizer)).map_err(|message| error("tokenizer", message))
        }
    }
}

/// The trial identity's preprocessing: the model's own (big_vision's when not resolved) with
/// `[data] resize`, or `None` when that is big_vision's recipe.
fn recipe_identity(own: Option<&Preprocessing>, data: &DataSpec) -> Option<expand::Recipe> {
    let own = own.copied().unwrap_or(Preprocessing::big_vision(0));
    let fed = own.with_resize(data.resize);
    (!fed.is_big_vision()).then_some(expand::Recipe { resize: fed.resize, normalize: fed.normalize })
}

/// The name becomes a folder: one plain path component.
fn check_name(name: &str, at: &Locator) -> Result<(), SpecError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        let span = at.span_of(&["name"]).unwrap_or(0..0);
        Err(at.at(span, "name", format!("{name:?} is not a folder name (no slashes, not empty)")))
    }
}

/// Two different, non-empty answer words.
fn check_answers([positive, negative]: &[String; 2], at: &Locator) -> Result<(), SpecError> {
    if positive.is_empty() || negative.is_empty() || positive == negative {
        let span = at.span_of(&["data", "answers"]).unwrap_or(0..0);
        return Err(at.at(
            span,
            "data.answers",
            "needs two different words, positive first (e.g. [\"yes\", \"no\"])",
        ));
    }
    Ok(())
}

/// A soup averages the winning config's pulls, so `keep` must leave that config's weights.
fn check_keep(select: &SelectSpec, at: &Locator) -> Result<(), SpecError> {
    if select.keep == Some(0) && select.final_model == FinalModel::Soup {
        let span = at.span_of(&["select", "keep"]).unwrap_or(0..0);
        return Err(at.at(
            span,
            "select.keep",
            "keep = 0 would delete the weights the soup (final = \"soup\") averages: keep counts \
             configs, and keep = 1 keeps the pulls of the winning one",
        ));
    }
    Ok(())
}

/// The data file must be a file, and the model a known built-in name, a folder or an `.npz` file.
fn check_inputs_exist(spec: &SweepSpec) -> Result<(), SpecError> {
    let missing = |path: &[&str], what: &str, resolved: &Path| {
        let message =
            format!("{what} {} does not exist (paths are relative to the spec's folder)", resolved.display());
        spec.error_at(path, message)
    };
    let data = spec.data_path();
    match std::fs::metadata(&data) {
        Ok(meta) if meta.is_dir() => {
            let message = format!("dataset file {} is a folder; give the JSONL file in it", data.display());
            return Err(spec.error_at(&["data", "path"], message));
        }
        Ok(meta) if !meta.is_file() => {
            let message =
                format!("dataset file {} is {}, not a regular file", data.display(), kind_of(&meta));
            return Err(spec.error_at(&["data", "path"], message));
        }
        Ok(_) => {}
        Err(_) => return Err(missing(&["data", "path"], "dataset file", &data)),
    }
    match &spec.model_source {
        ModelSource::Checkpoint(model) if !model.is_dir() => {
            Err(missing(&["model", "path"], "model folder", model))
        }
        ModelSource::BigVision { npz, .. } if !npz.is_file() => {
            Err(missing(&["model", "path"], "big_vision checkpoint", npz))
        }
        _ => Ok(()),
    }
}

/// Is `value` a table? (Used where a key must hold a `[table]`.)
fn as_table<'a, 'i>(value: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(table) => Some(table),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
