//! Does a sweep fit its model and this machine? Checked by `gacha check` and by the sweep before
//! its first trial, each refusal naming the spec's (or the dataset's) file, line and field:
//! - the answer words: each must be one token the tokenizer knows (`data.answers`);
//! - every prompt (the `prompt` axis, else each example's `prefix`) must fit the model's
//!   positions ([`PaliGemmaConfig::max_prompt_tokens`]); words the tokenizer does not know are a
//!   warning (they become its unknown token);
//! - the estimated peak memory of the hungriest trial ([`MemoryModel::estimate`]) must fit the memory
//!   available ([`MemoryCheck`]), else `batch_size` is named at its line.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context;

use super::{PackSetting, AUTO_PACK};
use super::{SpecError, SweepSpec, Trial};
use crate::data::error::{DataError, DatasetProblems};
use crate::data::Dataset;
use crate::eval::score::DEFAULT_BATCH_SIZE;
use crate::machine::MemoryLimit;
use crate::model::tokenizer::UNKNOWN_TOKEN;
use crate::model::{PaliGemmaConfig, PromptTokenizer};
use crate::train::memory::{MemoryEstimate, MemoryModel, Sequence};

/// Most unknown words quoted in one warning.
const MAX_QUOTED: usize = 5;

/// What the estimated peak memory is compared against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCheck {
    /// Refuse a sweep whose estimate is above this.
    Against(MemoryLimit),
    /// Estimate, but do not refuse; why, shown as it is (`not checked: --no-memory-check`).
    Skipped(String),
}

/// Where a prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PromptSource {
    /// A value of the spec's `prompt` axis, with its line.
    Spec { line: usize },
    /// The `prefix` of a dataset line.
    Prefix { line: usize },
}

impl fmt::Display for PromptSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptSource::Spec { line } => write!(f, "sweep.prompt, line {line}"),
            PromptSource::Prefix { line } => write!(f, "prefix of dataset line {line}"),
        }
    }
}

/// What [`check_fit`] found.
#[derive(Debug, Clone)]
pub struct FitCheck {
    /// The answer words and their token ids.
    answers: [(String, u32); 2],
    /// The longest prompt in tokens, and where it is.
    longest_prompt: (usize, PromptSource),
    max_prompt_tokens: usize,
    /// The hungriest trial's estimate, its label, batch and sequence.
    peak: MemoryEstimate,
    peak_trial: String,
    peak_batch: usize,
    peak_seq: Sequence,
    memory: MemoryCheck,
    /// Trials per pack (`[sweep] pack`, "auto" resolved by the memory check).
    pub pack: usize,
    pack_setting: PackSetting,
    /// Prompts with words the tokenizer does not know.
    pub warnings: Vec<String>,
}

impl FitCheck {
    /// How many copies of the hungriest trial's estimated peak fit the memory checked against;
    /// `None` where memory is not checked.
    pub fn copies_that_fit(&self) -> Option<u64> {
        match &self.memory {
            MemoryCheck::Against(limit) => Some(limit.bytes / self.peak.total().max(1)),
            MemoryCheck::Skipped(_) => None,
        }
    }
}

impl fmt::Display for FitCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [(positive, p), (negative, n)] = &self.answers;
        writeln!(f, "answers: {positive:?} (token {p}), {negative:?} (token {n}): one known token each")?;
        let (tokens, source) = &self.longest_prompt;
        writeln!(
            f,
            "prompts: the longest is {tokens} tokens ({source}); the model takes at most {}",
            self.max_prompt_tokens
        )?;
        writeln!(
            f,
            "memory: peak {} for {} (batch {} × {} tokens)",
            self.peak,
            self.peak_trial,
            self.peak_batch,
            self.peak_seq.tokens()
        )?;
        match &self.memory {
            MemoryCheck::Against(limit) => writeln!(f, "  fits: {limit} available")?,
            MemoryCheck::Skipped(why) => writeln!(f, "  {why}")?,
        }
        match (self.pack_setting, self.pack) {
            (PackSetting::Trials(1), _) => Ok(()),
            (PackSetting::Trials(k), _) => writeln!(f, "pack: {k} trials trained in each pass"),
            (PackSetting::Auto, k) => writeln!(
                f,
                "pack: {k} trials trained in each pass (\"auto\": the most, up to {AUTO_PACK}, that fit{})",
                match self.memory {
                    MemoryCheck::Skipped(_) => "; memory not checked, so one",
                    MemoryCheck::Against(_) => "",
                }
            ),
        }
    }
}

/// Check the answers, the prompts and the peak memory of `spec`'s trials over `dataset`, with
/// frozen weights of `frozen_bytes` bytes each.
pub fn check_fit(
    spec: &SweepSpec,
    dataset: &Dataset,
    frozen_bytes: u64,
    memory: MemoryCheck,
) -> anyhow::Result<FitCheck> {
    let in_model = || format!("{}: [model] path", spec.file.display());
    let config = spec.model_source.config().with_context(in_model)?;
    let tokenizer = spec.model_source.tokenizer().with_context(in_model)?;
    let tokenizer = tokenizer
        .with_answers(&spec.data.options().answers)
        .map_err(|err| spec.error_at(&["data", "answers"], err.to_string()))?;
    let ids = tokenizer.ids();
    let [positive, negative] = spec.data.answers.clone();
    let mut warnings = Vec::new();
    let prompts = spec_prompts(spec, &tokenizer, &config, &mut warnings)?;
    let prefixes = if spec.trials.iter().any(|t| t.params.prompt.is_none()) {
        Some(longest_prefix(dataset, &tokenizer, &config, &mut warnings)?)
    } else {
        None
    };
    let prompt_tokens = |trial: &Trial| match &trial.params.prompt {
        Some(prompt) => prompts[prompt].0,
        None => prefixes.as_ref().map_or(0, |(tokens, _)| *tokens),
    };
    let model = MemoryModel {
        config: &config,
        examples: dataset.examples.len(),
        frozen_bytes,
        score_batch: DEFAULT_BATCH_SIZE,
    };
    let (one, peak_seq, hungriest) = hungriest_trial(spec, &model, prompt_tokens)?;
    let pack = match (spec.pack, &memory) {
        (PackSetting::Trials(k), _) => k,
        (PackSetting::Auto, MemoryCheck::Against(limit)) => {
            (1..=AUTO_PACK).rev().find(|&k| one.packed(k).total() <= limit.bytes).unwrap_or(1)
        }
        (PackSetting::Auto, MemoryCheck::Skipped(_)) => 1,
    };
    let peak = one.packed(pack);
    if let MemoryCheck::Against(limit) = &memory {
        if peak.total() > limit.bytes {
            return Err(too_much_memory(spec, hungriest, &peak, peak_seq, limit, pack).into());
        }
    }
    let longest_spec = prompts.values().max_by_key(|(tokens, _)| *tokens).cloned();
    let longest_prompt = longest_spec
        .into_iter()
        .chain(prefixes)
        .max_by_key(|(tokens, _)| *tokens)
        .unwrap_or((0, PromptSource::Prefix { line: 1 }));
    Ok(FitCheck {
        answers: [(positive, ids.positive), (negative, ids.negative)],
        longest_prompt,
        max_prompt_tokens: config.max_prompt_tokens(),
        peak,
        peak_trial: format!("trial {} ({})", hungriest.id, shortened(&hungriest.label)),
        peak_batch: hungriest.params.train.batch_size,
        peak_seq,
        memory,
        pack,
        pack_setting: spec.pack,
        warnings,
    })
}

/// The trial with the largest estimated peak, its estimate and sequence, given each trial's
/// longest prompt in tokens.
fn hungriest_trial<'s>(
    spec: &'s SweepSpec,
    model: &MemoryModel,
    prompt_tokens: impl Fn(&Trial) -> usize,
) -> anyhow::Result<(MemoryEstimate, Sequence, &'s Trial)> {
    let image_tokens = model.config.num_image_tokens();
    spec.trials
        .iter()
        .map(|trial| {
            let seq = Sequence { image_tokens, prompt_tokens: prompt_tokens(trial) };
            (model.estimate(&trial.params.train, seq), seq, trial)
        })
        .max_by_key(|(estimate, _, _)| estimate.total())
        .context("the spec has no trials")
}

/// The token count and line of each distinct `prompt` value; an over-long one is an error.
fn spec_prompts(
    spec: &SweepSpec,
    tokenizer: &PromptTokenizer,
    config: &PaliGemmaConfig,
    warnings: &mut Vec<String>,
) -> anyhow::Result<BTreeMap<String, (usize, PromptSource)>> {
    let mut prompts = BTreeMap::new();
    for prompt in spec.trials.iter().filter_map(|t| t.params.prompt.as_ref()) {
        if prompts.contains_key(prompt) {
            continue;
        }
        let line = spec.line_of_string(&["sweep", "prompt"], prompt);
        let error = |message: String| SpecError::At {
            file: spec.file.clone(),
            line,
            field: "sweep.prompt".into(),
            message,
        };
        let found = tokenizer.inspect_prompt(prompt).map_err(|err| error(err.to_string()))?;
        if found.tokens > config.max_prompt_tokens() {
            return Err(error(too_long(found.tokens, config)).into());
        }
        if !found.unknown.is_empty() {
            warnings.push(format!(
                "{}: line {line}: sweep.prompt: {}",
                spec.file.display(),
                unknown_words(&found.unknown)
            ));
        }
        prompts.insert(prompt.clone(), (found.tokens, PromptSource::Spec { line }));
    }
    Ok(prompts)
}

/// The longest `prefix` of the dataset in tokens and its line; every over-long one is a problem.
fn longest_prefix(
    dataset: &Dataset,
    tokenizer: &PromptTokenizer,
    config: &PaliGemmaConfig,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(usize, PromptSource)> {
    let mut longest = (0, PromptSource::Prefix { line: 1 });
    let mut problems = Vec::new();
    let mut unknown: Vec<(usize, Vec<String>)> = Vec::new();
    let mut seen: BTreeMap<&str, crate::model::PromptTokens> = BTreeMap::new();
    for example in &dataset.examples {
        let line = example.line;
        let problem = |message: String| DataError::Line { file: dataset.path.clone(), line, message };
        let found = match seen.get(example.prefix.as_str()) {
            Some(found) => found.clone(),
            None => match tokenizer.inspect_prompt(&example.prefix) {
                Ok(found) => seen.entry(&example.prefix).or_insert(found).clone(),
                Err(err) => {
                    problems.push(problem(format!("prefix: {err}")));
                    continue;
                }
            },
        };
        if found.tokens > config.max_prompt_tokens() {
            problems.push(problem(format!("prefix: {}", too_long(found.tokens, config))));
        }
        if found.tokens > longest.0 {
            longest = (found.tokens, PromptSource::Prefix { line });
        }
        if !found.unknown.is_empty() {
            unknown.push((line, found.unknown));
        }
    }
    if !problems.is_empty() {
        return Err(DatasetProblems { path: dataset.path.clone(), problems }.into());
    }
    if let Some((line, words)) = unknown.first() {
        let more = match unknown.len() {
            1 => String::new(),
            n => format!(" ({} more lines have unknown words)", n - 1),
        };
        warnings.push(format!("{}:{line}: prefix: {}{more}", dataset.path.display(), unknown_words(words)));
    }
    Ok(longest)
}

/// Most characters of a trial's label quoted in a message (a prompt may be very long).
const MAX_LABEL_CHARS: usize = 100;

fn shortened(label: &str) -> String {
    match label.char_indices().nth(MAX_LABEL_CHARS) {
        Some((end, _)) => format!("{}…", &label[..end]),
        None => label.to_string(),
    }
}

fn too_long(tokens: usize, config: &PaliGemmaConfig) -> String {
    format!(
        "{tokens} tokens, more than the {} this model takes ({} positions − {} image tokens − <bos>, \"\\n\" \
         and the answer); shorten it",
        config.max_prompt_tokens(),
        config.max_prompt_tokens() + config.num_image_tokens() + 3,
        config.num_image_tokens()
    )
}

fn unknown_words(words: &[String]) -> String {
    let mut quoted: Vec<String> = words.iter().take(MAX_QUOTED).map(|w| format!("{w:?}")).collect();
    if words.len() > MAX_QUOTED {
        quoted.push(format!("and {} more", words.len() - MAX_QUOTED));
    }
    format!(
        "{} word(s) not in the tokenizer's vocabulary, each read as {UNKNOWN_TOKEN}: {}",
        words.len(),
        quoted.join(", ")
    )
}

/// The refusal: the estimate, the limit, and `batch_size` at its line (the axis, else `[train]`).
fn too_much_memory(
    spec: &SweepSpec,
    trial: &Trial,
    peak: &MemoryEstimate,
    seq: Sequence,
    limit: &MemoryLimit,
    pack: usize,
) -> SpecError {
    let axis = spec.axes.iter().any(|a| a.field == "train.batch_size");
    let path: &[&str] = match (pack, axis) {
        (2.., _) => &["sweep", "pack"],
        (_, true) => &["sweep", "batch_size"],
        (_, false) => &["train", "batch_size"],
    };
    let packed = match pack {
        1 => String::new(),
        k => format!(" in a pack of {k} trials"),
    };
    let batch = trial.params.train.batch_size;
    let message = format!(
        "trial {} ({}) would need {peak} at its peak{packed}, with batch {batch} × {} tokens ({} image, {} of \
         prompt, 3 more), but {} is available: lower {} (or shorten the prompt); \
         --no-memory-check runs it anyway",
        trial.id,
        shortened(&trial.label),
        seq.tokens(),
        seq.image_tokens,
        seq.prompt_tokens,
        limit,
        if pack > 1 { "pack or batch_size" } else { "batch_size" },
    );
    spec.error_at(path, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_are_cut_at_a_character_boundary() {
        assert_eq!(shortened("seed=1 lr=0.1"), "seed=1 lr=0.1");
        let long = "é".repeat(MAX_LABEL_CHARS + 5);
        assert_eq!(shortened(&long), format!("{}…", "é".repeat(MAX_LABEL_CHARS)));
    }
}
