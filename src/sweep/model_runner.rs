//! The real `TrialRunner`: PaliGemma trained with `train::pack` and judged with `eval::score`.
//!
//! Per sweep: the model is loaded once, and every image's features are computed once (the vision
//! tower and projector are frozen; `features::cache` caches the projector output of each frame).
//! The untrained model's predictions are computed once per prompt, since every attempt starts
//! from the same base. Per pack of attempts (one attempt, or several of different trials that
//! share a `pack_key`): a copy of the base model gets each attempt's fresh trainable parameters
//! (`fresh_trainable` with the attempt's seed); they are trained as one pack (stage 1, then stage
//! 2 for those where `params.stage2` applies), and each is scored on train and valid and saved
//! with `adapter::save` (PEFT layout for LoRA). The copy shares the frozen weights with the base
//! and is dropped when the pack ends, so nothing trained leaks into the next one.
//!
//! With frames `all`, each frame of a training image is one training example, and an image is
//! scored by its worst frame (`eval::score`).
//!
//! `ModelRunner::answers` scores a saved weights folder (a trial's, or a soup of several) the same
//! way, from the same cached features.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::runner::{is_recorded_step, StepObserver, TrialJob, TrialRun, TrialRunner};
use crate::adapter::{self, Provenance};
use crate::data::split::SplitIndices;
use crate::data::{Dataset, ImageOptions, Label};
use crate::device::DeviceSpec;
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::score::{score_cached, ScoreOptions, DEFAULT_BATCH_SIZE};
use crate::eval::{Confusion, SplitConfusions};
use crate::features::cache::FeatureCache;
use crate::model::{LoadedModel, ModelSource, TrainableParams};
use crate::results::record::{LossLine, Stage2Ran};
use crate::spec::SweepSpec;
use crate::train::{train_pack, PackMember, StepLog, TrainConfig, TrainExample, TrainOutcome};
use anyhow::Context;

/// Frames per forward pass when computing features and scoring (training uses the trial's
/// `batch_size`).
const SCORE_BATCH_SIZE: usize = DEFAULT_BATCH_SIZE;

pub struct ModelRunner<'a> {
    /// The untrained model; attempts train copies of it.
    base: LoadedModel,
    dataset: &'a Dataset,
    images: ImageOptions,
    /// `[model] path`, for the adapters' provenance.
    model_path: String,
    features: FeatureCache,
    /// The untrained model's answer to each example of the dataset, by prompt.
    base_answers: HashMap<Option<String>, Vec<Label>>,
}

impl<'a> ModelRunner<'a> {
    /// Load the spec's model on `device` and compute the features of every image of `dataset`.
    pub fn new(
        spec: &SweepSpec,
        dataset: &'a Dataset,
        device: DeviceSpec,
    ) -> anyhow::Result<ModelRunner<'a>> {
        let source = &spec.model_source;
        let opened = device.open()?;
        let mut base = crate::model::load(source, &opened, device.frozen_dtype())
            .with_context(|| format!("loading the model {source}"))?;
        base.tokenizer = base.tokenizer.with_answers(&spec.data.options().answers)?;
        let threads = match device {
            DeviceSpec::Cpu => format!(", {} thread(s)", candle_core::utils::get_num_threads()),
            DeviceSpec::Cuda(_) => String::new(),
        };
        crate::logging::info!(
            "model {source} on {device}{threads} (frozen weights {:?}): {} image tokens of width {}",
            device.frozen_dtype(),
            base.model.num_image_tokens(),
            base.config.text_config.hidden_size
        );
        let images = spec.data.options().images;
        let mut features = FeatureCache::default();
        let started = Instant::now();
        features.fill(&base, &opened, dataset, images, SCORE_BATCH_SIZE)?;
        crate::logging::info!(
            "image features of {} images ({} frames, {images}) computed once in {:.1} s",
            dataset.examples.len(),
            features.vision_frames(),
            started.elapsed().as_secs_f64()
        );
        // A hub id with its commit (`owner/name@sha`), a path as resolved.
        let model_path = match source {
            ModelSource::Builtin { .. } => spec.model.path.clone(),
            other => other.to_string(),
        };
        Ok(ModelRunner { base, dataset, images, model_path, features, base_answers: HashMap::new() })
    }

    fn score_options(&self, prompt: &Option<String>) -> ScoreOptions {
        ScoreOptions { prompt: prompt.clone(), images: self.images, batch_size: SCORE_BATCH_SIZE }
    }

    /// Logits of `loaded` for the examples `indices`, in that order.
    fn logits_of(
        &self,
        loaded: &LoadedModel,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<AnswerLogits>> {
        let rows = score_cached(loaded, &self.features, self.dataset, indices, &self.score_options(prompt))?;
        Ok(rows.iter().map(AnswerLogits::of_row).collect())
    }

    /// Answers of `loaded` to the examples `indices`, in that order.
    fn answers_of(
        &self,
        loaded: &LoadedModel,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        Ok(self.logits_of(loaded, prompt, indices)?.iter().map(AnswerLogits::answer).collect())
    }

    /// Counts of `loaded` on the train and valid parts of `split`, and its valid logits.
    fn confusions(
        &self,
        loaded: &LoadedModel,
        prompt: &Option<String>,
        split: &SplitIndices,
    ) -> anyhow::Result<(SplitConfusions, Vec<AnswerLogits>)> {
        let count = |indices: &[usize], answers: &[Label]| {
            Confusion::from_pairs(
                indices.iter().zip(answers).map(|(&i, &a)| (self.dataset.examples[i].label, a)),
            )
        };
        let train = self.answers_of(loaded, prompt, &split.train)?;
        let valid = self.logits_of(loaded, prompt, &split.valid)?;
        let valid_answers: Vec<Label> = valid.iter().map(AnswerLogits::answer).collect();
        let scores = SplitConfusions {
            train: count(&split.train, &train),
            valid: count(&split.valid, &valid_answers),
        };
        Ok((scores, valid))
    }

    /// The untrained model's counts, from its answers (computed on first use of a prompt).
    fn base_confusions(
        &mut self,
        prompt: &Option<String>,
        split: &SplitIndices,
    ) -> anyhow::Result<SplitConfusions> {
        if !self.base_answers.contains_key(prompt) {
            let all: Vec<usize> = (0..self.dataset.examples.len()).collect();
            let answers = self.answers_of(&self.base, prompt, &all)?;
            self.base_answers.insert(prompt.clone(), answers);
        }
        let answers = &self.base_answers[prompt];
        let count = |indices: &[usize]| {
            Confusion::from_pairs(indices.iter().map(|&i| (self.dataset.examples[i].label, answers[i])))
        };
        Ok(SplitConfusions { train: count(&split.train), valid: count(&split.valid) })
    }

    /// One training example per kept frame of each training image.
    fn train_examples(&self, job: &TrialJob) -> anyhow::Result<Vec<TrainExample>> {
        let mut examples = Vec::new();
        for &i in &job.split.train {
            let example = &self.dataset.examples[i];
            let prompt = job.params.prompt.clone().unwrap_or_else(|| example.prefix.clone());
            for features in self.features.frames(example, self.images)? {
                examples.push(TrainExample {
                    features: features.clone(),
                    prompt: prompt.clone(),
                    answer: example.label,
                });
            }
        }
        Ok(examples)
    }
}

impl TrialRunner for ModelRunner<'_> {
    fn run(&mut self, job: &TrialJob, observer: &mut dyn StepObserver) -> anyhow::Result<TrialRun> {
        self.run_pack(std::slice::from_ref(job), &mut [observer])?.remove(0)
    }

    /// The jobs' trials trained as one pack (`train::pack`), each stage for the trials still in
    /// it; scored and saved one by one.
    fn run_pack(
        &mut self,
        jobs: &[TrialJob],
        observers: &mut [&mut dyn StepObserver],
    ) -> anyhow::Result<Vec<anyhow::Result<TrialRun>>> {
        let mut loaded = self.base.clone();
        let mut members = Vec::with_capacity(jobs.len());
        for job in jobs {
            let before = self.base_confusions(&job.params.prompt, job.split)?;
            let cfg = job.train.clone();
            let params = loaded.model.fresh_trainable(&cfg.trainable_set(), cfg.seed)?;
            if job.attempt == 0 {
                crate::logging::debug!(
                    "trial {}: {} trainable parameters in {} tensors; config {}",
                    job.id,
                    params.num_params(),
                    params.named.len(),
                    serde_json::to_string(&cfg)?
                );
            }
            let examples = self.train_examples(job)?;
            members.push(Member { before, cfg, params, examples, losses: Vec::new(), training_secs: 0.0 });
        }

        let all: Vec<usize> = (0..jobs.len()).collect();
        let stage1: Vec<TrainConfig> = members.iter().map(|m| m.cfg.clone()).collect();
        let mut ends = train_stage(&mut loaded, &mut members, &all, &stage1, 1, jobs, observers)?;
        let mut stages = vec![1u8; jobs.len()];
        let mut stage2 = vec![Stage2Ran::NotConfigured; jobs.len()];
        let (mut second, mut second_cfgs) = (Vec::new(), Vec::new());
        for (i, job) in jobs.iter().enumerate() {
            if let (true, Some(config)) = (ends[i].is_finished(), &job.params.stage2) {
                stage2[i] = Stage2Ran::Skipped;
                loaded.model.hold(&[&members[i].params])?;
                let train = self.confusions(&loaded, &job.params.prompt, job.split)?.0.train;
                if config.applies(train.fp + train.fn_) {
                    second.push(i);
                    second_cfgs.push(config.train_config(&members[i].cfg));
                    (stages[i], stage2[i]) = (2, Stage2Ran::Ran);
                }
            }
        }
        if !second.is_empty() {
            let second_ends =
                train_stage(&mut loaded, &mut members, &second, &second_cfgs, 2, jobs, observers)?;
            for (&i, end) in second.iter().zip(second_ends) {
                ends[i] = end;
            }
        }

        let mut runs = Vec::with_capacity(jobs.len());
        for (i, (job, member)) in jobs.iter().zip(members).enumerate() {
            let mut finish = || -> anyhow::Result<(Option<SplitConfusions>, Vec<AnswerLogits>)> {
                if !ends[i].is_finished() {
                    return Ok((None, Vec::new()));
                }
                let prompt = &job.params.prompt;
                loaded.model.hold(&[&member.params])?;
                let (after, valid_answers) = self.confusions(&loaded, prompt, job.split)?;
                let preprocessing = self.base.preprocessing.own.with_resize(self.images.resize);
                let provenance =
                    Provenance::new(&self.model_path, prompt.as_deref(), &member.cfg, preprocessing);
                adapter::save(job.weights_dir, &member.params.kind, &member.params, &provenance)?;
                Ok((Some(after), valid_answers))
            };
            runs.push(finish().map(|(after, valid_answers)| TrialRun {
                before: member.before,
                after,
                valid_answers,
                losses: member.losses,
                end: ends[i],
                stage: stages[i],
                stage2: stage2[i],
                training_secs: member.training_secs,
            }));
        }
        Ok(runs)
    }

    /// The adapter in `weights` loaded into a copy of the untrained model, scored from the
    /// cached image features; an index past the dataset is an error.
    fn answers(
        &mut self,
        weights: &Path,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<AnswerLogits>> {
        let examples = self.dataset.examples.len();
        if let Some(i) = indices.iter().find(|&&i| i >= examples) {
            anyhow::bail!("example index {i} is out of range: the dataset has {examples} examples");
        }
        let mut loaded = self.base.clone();
        adapter::load(weights, &mut loaded).with_context(|| format!("{}: cannot load", weights.display()))?;
        self.logits_of(&loaded, prompt, indices)
    }

    fn untrained_answers(
        &mut self,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        self.answers_of(&self.base, prompt, indices)
    }

    fn soup(&mut self, members: &[PathBuf], out: &Path) -> anyhow::Result<()> {
        adapter::soup::soup(members, out).map(|_| ())
    }

    fn summary(&self) -> Option<String> {
        Some(format!(
            "vision tower: {} frames in {} forward passes for the whole sweep (features cached)",
            self.features.vision_frames(),
            self.features.vision_passes()
        ))
    }
}

/// One job of a pack while it trains: its settings, tensors, examples and record so far.
struct Member {
    before: SplitConfusions,
    /// Stage 1's settings.
    cfg: TrainConfig,
    params: TrainableParams,
    examples: Vec<TrainExample>,
    losses: Vec<LossLine>,
    /// Its share of the pack's training time (the pack's time over its trials).
    training_secs: f64,
}

/// Train stage `stage` of the members `which` (with `cfgs`, in order) as one pack, recording
/// their steps and asking each one's observer after each of its steps.
fn train_stage(
    loaded: &mut LoadedModel,
    members: &mut [Member],
    which: &[usize],
    cfgs: &[TrainConfig],
    stage: u8,
    jobs: &[TrialJob],
    observers: &mut [&mut dyn StepObserver],
) -> anyhow::Result<Vec<TrainOutcome>> {
    let started = Instant::now();
    let pack: Vec<PackMember> = which
        .iter()
        .zip(cfgs)
        .map(|(&i, cfg)| PackMember { params: &members[i].params, examples: &members[i].examples, cfg })
        .collect();
    let mut lines: Vec<Vec<LossLine>> = vec![Vec::new(); which.len()];
    let mut record = |k: usize, log: &StepLog, observers: &mut [&mut dyn StepObserver]| {
        let line = LossLine { attempt: jobs[which[k]].attempt, stage, log: *log };
        observers[which[k]].logged(&line);
        lines[k].push(line);
    };
    let outcomes = train_pack(loaded, &pack, &mut |k, log| {
        if is_recorded_step(&cfgs[k], stage, log.step) {
            record(k, log, observers);
        }
        observers[which[k]].after_step()
    })
    .with_context(|| format!("stage {stage}"))?;
    for (k, outcome) in outcomes.iter().enumerate() {
        if let TrainOutcome::Diverged(log) = outcome {
            record(k, log, observers);
        }
    }
    let share = started.elapsed().as_secs_f64() / which.len() as f64;
    for (k, &i) in which.iter().enumerate() {
        members[i].losses.append(&mut lines[k]);
        members[i].training_secs += share;
    }
    Ok(outcomes)
}
