//! The `[sweep]` axes → every trial's `TrialParams` and its `TrialId`.
//!
//! Each trial is resolved by laying its axis values over `[train]` (and `seed`, `valid`, `prompt`
//! beside it) in the parsed document and deserializing the result, so a wrong type in an axis
//! value is reported at that value's line, exactly like one in `[train]`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::error::{Locator, SpecError};
use super::params::TrialParams;
use super::validation::{FoldIndex, Scheme, Validation, ValidationIdentity};
use super::{as_table, DataSpec, ModelSpec};
use crate::data::{Normalize, Resize};
use crate::model::ModelSource;

/// Above this many trials the spec is more likely a mistake than a plan.
pub const MAX_TRIALS: usize = 100_000;

/// Hex digits of the SHA-256 kept in a trial id (48 bits: collisions need ~16 million trials).
const ID_HEX_DIGITS: usize = 12;

/// Axes that sit beside `train` in `TrialParams`: (key in `[sweep]`, field).
const TOP_AXES: [(&str, &str); 3] = [("seeds", "seed"), ("valid", "valid"), ("prompt", "prompt")];

/// Axes every spec must have.
const REQUIRED_AXES: [&str; 1] = ["seeds"];

/// A trial's identity: a short hash of its inputs and parameters, never its position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialId(String);

impl TrialId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A trial folder's name, if it looks like an id.
    pub fn parse(text: &str) -> Option<TrialId> {
        let ok = text.len() == ID_HEX_DIGITS && text.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| TrialId(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the dataset and the model files held when the spec was loaded (`data::digest`): part of
/// every trial's identity, so editing a label, an image or the weights in place never reuses
/// trials finished on the old bytes. A results folder keeps a record of it (its spec copy's
/// paths no longer resolve).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDigests {
    /// The dataset's: its JSONL and every image it names. `None`: not read (`parse_spec`, or a
    /// results folder made before gacha hashed its inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// The model files' (`ModelSource::content_sha256`); `None` for a hub snapshot, whose commit
    /// is in the identity, and a built-in model, whose name and seed are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

/// The sweep-wide inputs: part of every trial's identity, so pointing a spec at another dataset
/// or model, or changing their files, never reuses trials finished on the old ones.
#[derive(Serialize)]
pub(super) struct Inputs<'a> {
    pub model: &'a ModelSpec,
    /// The commit of a hub id's snapshot, so a changed snapshot is a different trial; absent for
    /// other models, whose ids are what they were before hub ids were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha: Option<&'a str>,
    /// Absent when not read, so ids of specs parsed from text alone are as they were.
    #[serde(flatten)]
    pub digests: &'a ContentDigests,
    pub data: &'a DataSpec,
    /// The test draw and the fold partition; absent (so ids of holdout sweeps without test
    /// images are what they were before `[validation]` existed) when there is neither.
    #[serde(skip_serializing_if = "ValidationIdentity::is_empty")]
    pub validation: ValidationIdentity,
    /// The resize and normalisation the model is fed; absent when they are big_vision's recipe
    /// (bilinear, [−1, 1]: what every spec got before gacha read image-processor settings), so
    /// those ids are what they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Recipe>,
}

/// The part of the preprocessing that changes the pixels of a model of a given size.
#[derive(Serialize)]
pub(super) struct Recipe {
    pub resize: Resize,
    #[serde(flatten)]
    pub normalize: Normalize,
}

impl<'a> Inputs<'a> {
    pub fn new(
        model: &'a ModelSpec,
        source: &'a ModelSource,
        digests: &'a ContentDigests,
        data: &'a DataSpec,
        validation: ValidationIdentity,
        preprocessing: Option<Recipe>,
    ) -> Inputs<'a> {
        let model_sha = match source {
            ModelSource::Hub(snapshot) => Some(snapshot.sha.as_str()),
            _ => None,
        };
        Inputs { model, model_sha, digests, data, validation, preprocessing }
    }
}

/// A config's identity: a short hash of its trials' inputs and parameters less the seed and the
/// fold (`TrialParams::config_params`). Trials of one config differ only in seed and fold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigId(String);

impl ConfigId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A made-up id for hand-built records in tests.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> ConfigId {
        ConfigId(id.to_string())
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One run of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub id: TrialId,
    pub params: TrialParams,
    /// The axis values that make this trial, for logs: `seed=1 valid=10 learning_rate=0.03`.
    pub label: String,
    /// The config this trial is a pull of.
    pub config: ConfigId,
    /// The axis values of the config (the label without seed and fold): `valid=10
    /// learning_rate=0.03`, or `(one config)` when only seeds vary.
    pub config_label: String,
}

/// The config label when no axis but the seeds varies.
pub const ONLY_CONFIG: &str = "(one config)";

/// One `[sweep]` axis, for summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The key in `[sweep]`.
    pub key: String,
    /// The field it sets (`seed`, `valid`, `prompt` or `train.<key>`).
    pub field: String,
    pub len: usize,
    pub line: usize,
}

impl Axis {
    /// The name in labels and column headers: `learning_rate`, `valid`, `prompt`.
    pub fn name(&self) -> &str {
        axis_name(&self.field)
    }

    /// Whether this is the seeds axis (the one axis that is not part of a config).
    pub fn is_seeds(&self) -> bool {
        self.field == "seed"
    }
}

/// An axis in the parsed document.
struct DocAxis<'a, 'i> {
    key: &'a Spanned<DeString<'i>>,
    /// `Some(field)` for the axes beside `train`, `None` for a `train` field.
    top: Option<&'static str>,
    values: &'a [Spanned<DeValue<'i>>],
}

impl DocAxis<'_, '_> {
    fn field(&self) -> String {
        self.top.map_or_else(|| format!("train.{}", self.key.get_ref()), str::to_string)
    }
}

/// Expand the trial tables (`train`, `abort`, `stage2`, `sweep`) into axes and trials.
pub(super) fn expand(
    at: &Locator,
    tables: &DeTable<'_>,
    inputs: &Inputs,
    validation: &Validation,
) -> Result<(Vec<Axis>, Vec<Trial>), SpecError> {
    let train = match tables.get("train") {
        Some(value) => as_table(value).ok_or_else(|| at.at_span(value.span(), "expected a [train] table"))?,
        None => &DeTable::new(),
    };
    let axes = doc_axes(at, tables, train, validation.scheme)?;
    if !train.contains_key("learning_rate") && !axes.iter().any(|a| a.key.get_ref() == "learning_rate") {
        let span = tables.get("train").map_or(0..0, Spanned::span);
        return Err(at.at(span, "train.learning_rate", "missing: give it in [train] or as a [sweep] axis"));
    }
    let folds = validation.folds();
    let count = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len())).unwrap_or(usize::MAX);
    let total = count.saturating_mul(folds.len().max(1));
    if total > MAX_TRIALS {
        let span = tables.get("sweep").map_or(0..0, Spanned::span);
        return Err(at.at(
            span,
            "sweep",
            format!("{total} trials (the limit is {MAX_TRIALS}); fewer axis values or folds?"),
        ));
    }

    let mut resolved = Vec::with_capacity(count);
    for n in 0..count {
        resolved.push(resolve(at, tables, train, &axes, &pick(&axes, n))?);
    }
    let mut trials: Vec<Trial> = Vec::with_capacity(total);
    let mut seen: HashMap<TrialId, usize> = HashMap::new();
    for params in with_folds(resolved, &folds, &axes) {
        let id = trial_id(inputs, &params);
        let label = label(&axes, &params);
        let config = config_id(inputs, &params);
        let config_label = config_label(&axes, &params);
        if let Some(&other) = seen.get(&id) {
            let span = tables.get("sweep").map_or(0..0, Spanned::span);
            let message = format!(
                "trials {{{}}} and {{{label}}} are the same trial; remove the repeated axis value",
                trials[other].label
            );
            return Err(at.at(span, "sweep", message));
        }
        seen.insert(id.clone(), trials.len());
        trials.push(Trial { id, params, label, config, config_label });
    }
    let summary = axes
        .iter()
        .map(|a| Axis {
            key: a.key.get_ref().to_string(),
            field: a.field(),
            len: a.values.len(),
            line: at.line(a.key.span().start),
        })
        .collect();
    Ok((summary, trials))
}

/// The `[sweep]` axes in expansion order: `seeds`, `valid`, `prompt`, then train fields in key
/// order; each a non-empty list.
fn doc_axes<'a, 'i>(
    at: &Locator,
    tables: &'a DeTable<'i>,
    train: &DeTable<'i>,
    scheme: Scheme,
) -> Result<Vec<DocAxis<'a, 'i>>, SpecError> {
    let Some(sweep_value) = tables.get("sweep") else {
        return Err(at.at(
            0..0,
            "sweep",
            "missing [sweep] table (it needs at least seeds = [...], and valid = [...] for holdout)",
        ));
    };
    let sweep =
        as_table(sweep_value).ok_or_else(|| at.at_span(sweep_value.span(), "expected a [sweep] table"))?;
    for required in REQUIRED_AXES {
        if !sweep.contains_key(required) {
            let message = format!("missing axis `{required}` (for example {required} = [1])");
            return Err(at.at(sweep_value.span(), "sweep", message));
        }
    }
    match (scheme, sweep.get_key_value("valid")) {
        (Scheme::Holdout, None) => {
            let message = "missing axis `valid` (for example valid = [30]), or choose k-fold under \
                           [validation] (scheme = \"kfold\")";
            return Err(at.at(sweep_value.span(), "sweep", message));
        }
        (Scheme::Kfold | Scheme::RepeatedKfold, Some((key, _))) => {
            let message = format!(
                "with validation.scheme = \"{}\" every image is validated once per repeat; remove the \
                 valid axis (it sets the holdout size)",
                scheme.name()
            );
            return Err(at.at(key.span(), "sweep.valid", message));
        }
        _ => {}
    }
    let mut axes = Vec::with_capacity(sweep.len());
    for (key, value) in sweep.iter() {
        let name = key.get_ref().as_ref();
        let field = format!("sweep.{name}");
        let DeValue::Array(values) = value.get_ref() else {
            return Err(at.at(
                value.span(),
                field,
                format!("expected a list of values (an axis), e.g. {name} = [...]"),
            ));
        };
        if values.is_empty() {
            return Err(at.at(value.span(), field, "empty axis: give at least one value"));
        }
        if name == "seed" {
            return Err(at.at(key.span(), field, "unknown axis; the seeds axis is called `seeds`"));
        }
        let top = TOP_AXES.iter().find(|(axis, _)| *axis == name).map(|&(_, field)| field);
        if top.is_none() && train.contains_key(name) {
            let message = "also set in [train]; give it in one place (a fixed value or an axis)";
            return Err(at.at(key.span(), field, message));
        }
        axes.push(DocAxis { key, top, values });
    }
    let rank = |a: &DocAxis| {
        TOP_AXES.iter().position(|(axis, _)| *axis == a.key.get_ref()).unwrap_or(TOP_AXES.len())
    };
    axes.sort_by_key(rank);
    Ok(axes)
}

/// The value index of each axis in the `n`th trial; the last axis varies fastest.
fn pick(axes: &[DocAxis], mut n: usize) -> Vec<usize> {
    let mut choice = vec![0; axes.len()];
    for (slot, axis) in choice.iter_mut().zip(axes).rev() {
        *slot = n % axis.values.len();
        n /= axis.values.len();
    }
    choice
}

/// Lay the chosen axis values over the trial tables and deserialize them.
fn resolve(
    at: &Locator,
    tables: &DeTable<'_>,
    train: &DeTable<'_>,
    axes: &[DocAxis],
    choice: &[usize],
) -> Result<TrialParams, SpecError> {
    let mut root = DeTable::new();
    let mut train = train.clone();
    for (axis, &i) in axes.iter().zip(choice) {
        let value = axis.values[i].clone();
        match axis.top {
            Some(field) => root.insert(Spanned::new(axis.key.span(), Cow::Borrowed(field)), value),
            None => train.insert(axis.key.clone(), value),
        };
    }
    let train_span = tables.get("train").map_or(0..0, Spanned::span);
    root.insert(
        Spanned::new(train_span.clone(), Cow::Borrowed("train")),
        Spanned::new(train_span, DeValue::Table(train)),
    );
    for key in ["abort", "stage2"] {
        if let Some((k, v)) = tables.get_key_value(key) {
            root.insert(k.clone(), v.clone());
        }
    }
    let params = TrialParams::deserialize(toml::de::Deserializer::from(Spanned::new(0..0, root)))
        .map_err(|err| at.toml(&err))?;
    params.validate().map_err(|invalid| {
        let field_key = invalid.field.rsplit('.').next().unwrap_or(&invalid.field);
        let axis = axes.iter().position(|a| {
            a.top.is_none() && a.key.get_ref() == field_key && invalid.field.starts_with("train.")
        });
        match axis {
            Some(i) => at.at(
                axes[i].key.span(),
                format!("sweep.{field_key}"),
                format!("{} ({})", invalid.message, label_at_fault(axes, &params, i, choice)),
            ),
            None => {
                let path: Vec<&str> = invalid.field.split('.').collect();
                at.at(at.span_of(&path).unwrap_or(0..0), invalid.field, invalid.message)
            }
        }
    })?;
    Ok(params)
}

/// Each holdout trial as it is; in k-fold, each trial once per fold, in the order seed, repeat,
/// fold, then the other axes (so a sweep stopped early has every config on the same folds).
fn with_folds(resolved: Vec<TrialParams>, folds: &[FoldIndex], axes: &[DocAxis]) -> Vec<TrialParams> {
    if folds.is_empty() {
        return resolved;
    }
    let seeds = axes.iter().find(|a| a.top == Some("seed")).map_or(1, |a| a.values.len());
    let per_seed = resolved.len() / seeds;
    let mut out = Vec::with_capacity(resolved.len() * folds.len());
    for chunk in resolved.chunks(per_seed) {
        for &fold in folds {
            out.extend(chunk.iter().map(|p| TrialParams { fold: Some(fold), ..p.clone() }));
        }
    }
    out
}

/// SHA-256 of the canonical JSON of the inputs and parameters, first `ID_HEX_DIGITS` hex digits.
fn identity_hash(inputs: &Inputs, params: &TrialParams) -> String {
    #[derive(Serialize)]
    struct Identity<'a> {
        inputs: &'a Inputs<'a>,
        params: &'a TrialParams,
    }
    let json = serde_json::to_string(&Identity { inputs, params })
        .expect("trial parameters are plain numbers, strings and lists");
    let digest = Sha256::digest(json.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..ID_HEX_DIGITS].to_string()
}

pub(super) fn trial_id(inputs: &Inputs, params: &TrialParams) -> TrialId {
    TrialId(identity_hash(inputs, params))
}

fn config_id(inputs: &Inputs, params: &TrialParams) -> ConfigId {
    ConfigId(identity_hash(inputs, &params.config_params()))
}

/// `valid=10 learning_rate=0.03`: the trial's label without the seed (and fold).
fn config_label(axes: &[DocAxis], params: &TrialParams) -> String {
    let others: Vec<&DocAxis> = axes.iter().filter(|a| a.top != Some("seed")).collect();
    if others.is_empty() {
        return ONLY_CONFIG.to_string();
    }
    axis_values(others.into_iter(), params)
}

/// `seed=1 valid=10 learning_rate=0.03`: each axis's field and this trial's value of it; a
/// k-fold trial's fold after its seed (`seed=1 fold=2/5`, `repeat=2` when there are repeats).
fn label(axes: &[DocAxis], params: &TrialParams) -> String {
    let Some(fold) = params.fold else { return axis_values(axes.iter(), params) };
    let (seed, rest): (Vec<&DocAxis>, Vec<&DocAxis>) = axes.iter().partition(|a| a.top == Some("seed"));
    let mut parts = vec![axis_values(seed.into_iter(), params)];
    if fold.repeat > 1 {
        parts.push(format!("repeat={}", fold.repeat));
    }
    parts.push(format!("fold={}/{}", fold.fold, fold.folds));
    if !rest.is_empty() {
        parts.push(axis_values(rest.into_iter(), params));
    }
    parts.join(" ")
}

/// The label of a trial whose axis `fault` holds an invalid value: as [`label`], but that
/// value as the spec wrote it (JSON, which labels are made from, has no `inf` or `nan`).
fn label_at_fault(axes: &[DocAxis], params: &TrialParams, fault: usize, choice: &[usize]) -> String {
    let name = axis_name(&axes[fault].field()).to_string();
    match axes[fault].values[choice[fault]].get_ref() {
        DeValue::Float(f) if !f.as_str().parse::<f64>().is_ok_and(f64::is_finite) => {
            label(axes, params).replace(&format!("{name}=null"), &format!("{name}={f}"))
        }
        _ => label(axes, params),
    }
}

fn axis_values<'a, 'b: 'a, 'i: 'b>(
    axes: impl Iterator<Item = &'a DocAxis<'b, 'i>>,
    params: &TrialParams,
) -> String {
    axes.map(|axis| {
        let field = axis.field();
        format!("{}={}", axis_name(&field), params.field_value(&field))
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// An axis as labels and tables name it: its field without `train.`.
fn axis_name(field: &str) -> &str {
    field.trim_start_matches("train.")
}
