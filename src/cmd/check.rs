//! `gacha check PATH`: validate a dataset (every line, every image, every frame of an animation)
//! or a sweep spec (the spec, its dataset with every image, its model's config) and print a
//! summary, or list every problem and fail. Which checker runs is chosen by the file extension.
//!
//! Images are decoded more strictly than training does: a JPEG with entropy-coding errors, which
//! training decodes past, is a problem unless `--lenient`, which counts such files instead.
//! `--save-inputs DIR` also writes each image as decoded (see `save_inputs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context};

use crate::cli::CheckArgs;
use crate::cmd::Outcome;
use crate::data::digest;
use crate::data::error::{DataError, DatasetProblems};
use crate::data::image::ImageFormatKind;
use crate::data::jsonl::{decode_each, load_dataset, read_dataset};
use crate::data::{
    CodingCheck, DataOptions, Dataset, Example, ExifOrientation, ImageOptions, Label, Preprocessing,
};
use crate::device::DeviceSpec;
use crate::machine::cpu_workers::{plan, Room, WorkerSetting};
use crate::model::ModelSource;
use crate::spec::partition::Partition;
use crate::spec::{check_fit, check_spec, load_spec, SweepSpec};

use super::save_inputs::InputsDir;

/// Images of a dataset are decoded and resized to this size during a check: PaliGemma's input
/// size, so the whole preprocessing path runs as it will in training. A spec's dataset is checked
/// at its model's size.
const CHECK_IMAGE_SIZE: usize = 224;

/// Most files listed by name on one line of the summary (animations, damaged JPEGs).
const MAX_LISTED: usize = 10;

/// What `gacha check` does with a JPEG that only a lenient decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodingErrors {
    /// A problem, like any broken image.
    Refuse,
    /// Counted and listed in the summary (`--lenient`): training accepts these files.
    Count,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let kind = args.path.extension().and_then(|ext| ext.to_str());
    if !matches!(kind, Some("jsonl" | "toml")) {
        bail!("{}: expected a dataset (.jsonl) or a sweep spec (.toml)", args.path.display());
    }
    let save = args.save_inputs.as_deref().map(InputsDir::open).transpose()?;
    let check = Check { coding: coding_errors(args), save: save.as_ref() };
    if kind == Some("toml") {
        return check_sweep_spec(args, check);
    }
    let opts = super::data_options(&args.options)?;
    let prep = Preprocessing::big_vision(CHECK_IMAGE_SIZE).with_resize(opts.images.resize);
    let (_, summary) = check_dataset(&args.path, &opts, check, &prep)?;
    print!("{summary}");
    Ok(Outcome::Success)
}

/// How the images of a dataset are checked.
#[derive(Clone, Copy)]
struct Check<'a> {
    coding: CodingErrors,
    /// `--save-inputs`: where each image's decoded input is written.
    save: Option<&'a InputsDir>,
}

fn coding_errors(args: &CheckArgs) -> CodingErrors {
    if args.lenient {
        CodingErrors::Count
    } else {
        CodingErrors::Refuse
    }
}

/// A spec, its model's config, then its dataset at the model's image size: the trial count and
/// axes, how many images each `valid` holds out, the answers, prompts and peak memory against the
/// model and the machine (`spec::check_fit`, for `--device`), and warnings about sweeps that would
/// rank poorly.
fn check_sweep_spec(args: &CheckArgs, check: Check) -> anyhow::Result<Outcome> {
    let spec = load_spec(&args.path)?;
    if args.trials {
        return list_spec_trials(&spec);
    }
    let source = &spec.model_source;
    let config = source.config().with_context(|| format!("{}: [model] path", spec.file.display()))?;
    let vision = &config.vision_config;
    let text = &config.text_config;
    let model = format!(
        "model {source}: config ok (image {}, patch {}: {} image tokens; decoder {} wide × {} layers)\n",
        vision.image_size,
        vision.patch_size,
        config.num_image_tokens(),
        text.hidden_size,
        text.num_hidden_layers
    );
    let resolved = format!("model resolved to: {}\n", source.describe());
    let digests = digests_line(&spec);
    let own = source.preprocessing().with_context(|| format!("{}: [model] path", spec.file.display()))?;
    let options = spec.data.options();
    let prep = own.own.with_resize(options.images.resize);
    let preprocessing = match options.images.resize {
        Some(resize) if resize != own.own.resize => format!(
            "preprocessing: {prep} (resize from [data] resize; the model's own is {}, from {})\n",
            own.own.resize, own.origin
        ),
        _ => format!("preprocessing: {prep} (from {})\n", own.origin),
    };
    let (dataset, data) = check_dataset(&spec.data_path(), &options, check, &prep)?;
    let checked = check_spec(&spec, dataset.examples.len())?;
    let memory = super::memory_check(args.no_memory_check, args.device)?;
    let fit = check_fit(&spec, &dataset, args.device.frozen_dtype().size_in_bytes() as u64, memory)?;
    print!("{checked}{resolved}{model}{preprocessing}{data}{digests}{fit}");
    if let Some(line) = target_line(&spec, &dataset)? {
        println!("{line}");
    }
    let mut at_once = 1;
    if args.device == DeviceSpec::Cpu {
        let room = Room::here(fit.copies_that_fit(), checked.trials);
        let plan = plan(WorkerSetting::Auto, room);
        let threads = plan.threads.or(room.user_threads).unwrap_or(1);
        println!(
            "workers: gacha sweep runs {} trial(s) at once, {threads} thread(s) each ({}; --workers N to choose)",
            plan.workers, plan.why
        );
        at_once = plan.workers;
    }
    let results = args.results.clone().unwrap_or_else(|| Path::new("results").join(&spec.name));
    print!("{}", super::plan::plan(&spec, &dataset, &results, at_once)?);
    for warning in checked.warnings.iter().map(ToString::to_string).chain(fit.warnings) {
        crate::logging::warn!("{warning}");
    }
    Ok(Outcome::Success)
}

/// With `[select] min_precision`: how many images answered yes the target needs, against the
/// images a config's pulls answer out of fold (those of the first config; every config holds out
/// the same ones) and how many of them are labelled yes.
fn target_line(spec: &SweepSpec, dataset: &Dataset) -> anyhow::Result<Option<String>> {
    let (Some(target), Some(first)) = (spec.select.target(), spec.trials.first()) else {
        return Ok(None);
    };
    let labels: Vec<Label> = dataset.examples.iter().map(|e| e.label).collect();
    let partition = Partition::new(&labels, &spec.validation, spec.data.stratify())?;
    let mut judged = BTreeSet::new();
    for trial in spec.trials.iter().filter(|t| t.config == first.config) {
        judged.extend(partition.split(&trial.params)?.valid);
    }
    let positives = judged.iter().filter(|&&i| labels[i] == Label::Positive).count();
    let feasibility = target.feasibility(judged.len() as u64, positives as u64);
    Ok(Some(format!("target: {feasibility}")))
}

/// What the trial ids hold of the inputs' contents: the dataset's digest and the model's (or
/// what stands for it).
fn digests_line(spec: &SweepSpec) -> String {
    let short = |digest: &Option<String>| digest.as_deref().map_or("(not read)", digest::short).to_string();
    let model = match (&spec.digests.model_sha256, &spec.model_source) {
        (Some(_), _) => format!("model files sha256 {}", short(&spec.digests.model_sha256)),
        (None, ModelSource::Hub(snapshot)) => format!("model snapshot {}", snapshot.sha),
        (None, _) => "model by its name and seed".to_string(),
    };
    format!(
        "trial ids hold: dataset sha256 {} (the JSONL and every image it names), {model}\n",
        short(&spec.digests.data_sha256)
    )
}

/// `--trials`: the spec's summary and its trials with their indices; the dataset's lines are
/// read (the split sizes need their number), its images and the model are not checked.
fn list_spec_trials(spec: &SweepSpec) -> anyhow::Result<Outcome> {
    let dataset = load_dataset(&spec.data_path(), &spec.data.options())?;
    let check = check_spec(spec, dataset.examples.len())?;
    print!("{check}");
    println!("trials (index for `gacha trial --index`, id, parameters):");
    for (index, trial) in spec.trials.iter().enumerate() {
        println!("  {index:>4}  {}  {}", trial.id, trial.label);
    }
    Ok(Outcome::Success)
}

/// What the summary needs from one decoded image (the pixels are dropped at once).
struct ImageInfo {
    format: ImageFormatKind,
    width: u32,
    height: u32,
    frame_count: usize,
    frames_kept: usize,
    /// The EXIF orientation tag (1: upright or none).
    exif_orientation: u8,
    /// What the strict JPEG decoder refused (`--lenient` only; otherwise it is a problem).
    coding_error: Option<String>,
}

/// Check every line and image of a dataset, preprocessing images with `prep`: the dataset and
/// the summary, or every problem.
fn check_dataset(
    path: &Path,
    opts: &DataOptions,
    check: Check,
    prep: &Preprocessing,
) -> anyhow::Result<(Dataset, String)> {
    let size = prep.size;
    let (dataset, mut problems) = read_dataset(path, opts);
    crate::logging::info!("checking {} images at {size}×{size}", dataset.examples.len());
    let mut infos = Vec::with_capacity(dataset.examples.len());
    let images =
        ImageOptions { coding: CodingCheck::Strict, keep_input: check.save.is_some(), ..opts.images };
    let decoded = decode_each(&dataset, images, prep, |example, image| {
        if let (Some(save), Some(input)) = (check.save, &image.input) {
            save.save(example, input)?;
        }
        anyhow::Ok(ImageInfo {
            format: image.format,
            width: image.width,
            height: image.height,
            frame_count: image.frame_count,
            frames_kept: image.frames.len(),
            exif_orientation: image.exif_orientation,
            coding_error: image.coding_error,
        })
    });
    for (example, result) in dataset.examples.iter().zip(decoded) {
        let result = match result {
            Ok(saved) => Ok(saved?),
            Err(problem) => Err(problem),
        };
        match result {
            Ok(ImageInfo { coding_error: Some(error), .. }) if check.coding == CodingErrors::Refuse => {
                problems.push(DataError::Line {
                    file: path.to_path_buf(),
                    line: example.line,
                    message: format!(
                        "{}: JPEG coding error: {error} (training would decode it anyway, filling \
                         in from the damage on; check --lenient accepts such files)",
                        example.image_path.display()
                    ),
                });
            }
            Ok(info) => infos.push((example, info)),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|problem| problem.line());
        return Err(DatasetProblems { path: path.to_path_buf(), problems }.into());
    }
    let mut summary = summary(&dataset, &infos, opts, size);
    if let Some(save) = check.save {
        summary.push_str(&format!(
            "decoded inputs saved: {} PNGs in {}\n",
            infos.len(),
            save.path().display()
        ));
    }
    Ok((dataset, summary))
}

/// The report printed for a dataset without problems.
fn summary(dataset: &Dataset, infos: &[(&Example, ImageInfo)], opts: &DataOptions, size: usize) -> String {
    let mut lines = vec![format!("{}: ok", dataset.path.display())];
    let per_label = |label: Label| dataset.examples.iter().filter(|e| e.label == label).count();
    let (positive, negative) = (&opts.answers.positive, &opts.answers.negative);
    lines.push(format!(
        "examples: {} ({positive} {}, {negative} {}; positive answer: {positive})",
        dataset.examples.len(),
        per_label(Label::Positive),
        per_label(Label::Negative)
    ));

    let mut formats: BTreeMap<ImageFormatKind, usize> = BTreeMap::new();
    for (_, info) in infos {
        *formats.entry(info.format).or_default() += 1;
    }
    let formats: Vec<String> = formats.iter().map(|(format, n)| format!("{format} {n}")).collect();
    lines.push(format!("formats: {}", formats.join(", ")));

    let animated: Vec<String> = infos
        .iter()
        .filter(|(_, info)| info.frame_count > 1)
        .map(|(example, info)| format!("{}: {} frames", example.image, info.frame_count))
        .collect();
    lines.push(listed("animated images", &animated));
    let inputs: usize = infos.iter().map(|(_, info)| info.frames_kept).sum();
    lines.push(format!("model inputs: {inputs} ({})", opts.images));
    let turned = infos.iter().filter(|(_, info)| info.exif_orientation != 1).count();
    lines.push(match opts.images.orientation {
        ExifOrientation::Apply => format!("EXIF orientation: {turned} images rotated or flipped"),
        ExifOrientation::Ignore => {
            format!("EXIF orientation: ignored ({turned} images are tagged as rotated or flipped)")
        }
    });
    let damaged: Vec<String> = infos
        .iter()
        .filter_map(|(example, info)| Some(format!("{}: {}", example.image, info.coding_error.as_ref()?)))
        .collect();
    if !damaged.is_empty() {
        lines.push(listed("JPEG coding errors, decoded past as training does (--lenient)", &damaged));
    }

    let sizes: Vec<(u32, u32)> = infos.iter().map(|(_, info)| (info.width, info.height)).collect();
    let area = |&&(w, h): &&(u32, u32)| u64::from(w) * u64::from(h);
    if let (Some(small), Some(large)) = (sizes.iter().min_by_key(area), sizes.iter().max_by_key(area)) {
        let range = |values: Vec<u32>| {
            format!("{}–{}", values.iter().min().unwrap_or(&0), values.iter().max().unwrap_or(&0))
        };
        lines.push(format!(
            "image sizes: smallest {}×{}, largest {}×{} (widths {}, heights {}); \
             checked at {size}×{size}",
            small.0,
            small.1,
            large.0,
            large.1,
            range(sizes.iter().map(|s| s.0).collect()),
            range(sizes.iter().map(|s| s.1).collect()),
        ));
    }
    lines.join("\n") + "\n"
}

/// `what: N (first, second, …, and K more)`, naming at most `MAX_LISTED` of `items`.
fn listed(what: &str, items: &[String]) -> String {
    let mut line = format!("{what}: {}", items.len());
    if !items.is_empty() {
        let mut names = items.iter().take(MAX_LISTED).cloned().collect::<Vec<_>>().join(", ");
        if items.len() > MAX_LISTED {
            names.push_str(&format!(", and {} more", items.len() - MAX_LISTED));
        }
        line.push_str(&format!(" ({names})"));
    }
    line
}
