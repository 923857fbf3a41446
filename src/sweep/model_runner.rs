//! The real `TrialRunner`: PaliGemma trained with `train::train` and judged with `eval::score`.
//!
//! Per sweep: the model is loaded once, and every image's features are computed once (the vision
//! tower and projector are frozen; `eval::features` caches the projector output of each frame).
//! The untrained model's predictions are computed once per prompt, since every attempt starts
//! from the same base. Per attempt: a copy of the base model gets fresh trainable parameters
//! (`set_trainable` with the attempt's seed), is trained (stage 1, then stage 2 when
//! `params.stage2` applies), scored on train and valid, and saved with `adapter::save` (PEFT
//! layout for LoRA). The copy shares the frozen weights with the base and is dropped when the
//! attempt ends, so nothing trained leaks into the next attempt.
//!
//! With frames `all`, each frame of a training image is one training example, and an image is
//! scored by its worst frame (`eval::score`).
//!
//! `ModelRunner::answers` scores a saved weights folder (a trial's, or a soup of several) the same
//! way, from the same cached features.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::record::{LossLine, Stage2Ran};
use super::runner::{is_recorded_step, StepObserver, TrialJob, TrialRun, TrialRunner};
use crate::adapter::{self, Provenance};
use crate::data::split::SplitIndices;
use crate::data::{Dataset, ImageOptions, Label};
use crate::device::DeviceSpec;
use crate::eval::features::FeatureCache;
use crate::eval::result::{predict, DEFAULT_THRESHOLD};
use crate::eval::score::{score_cached, ScoreOptions, DEFAULT_BATCH_SIZE};
use crate::eval::{Confusion, SplitConfusions};
use crate::model::{LoadedModel, ModelSource, TrainableParams};
use crate::spec::SweepSpec;
use crate::train::{train, StepLog, TrainConfig, TrainExample, TrainOutcome};
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
        crate::info!(
            "model {source} on {device} (frozen weights {:?}): {} image tokens of width {}",
            device.frozen_dtype(),
            base.model.num_image_tokens(),
            base.config.text_config.hidden_size
        );
        let images = spec.data.options().images;
        let mut features = FeatureCache::default();
        let started = Instant::now();
        features.fill(&base, &opened, dataset, images, SCORE_BATCH_SIZE)?;
        crate::info!(
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

    /// Answers of `loaded` to the examples `indices`, in that order.
    fn answers_of(
        &self,
        loaded: &LoadedModel,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        let rows = score_cached(loaded, &self.features, self.dataset, indices, &self.score_options(prompt))?;
        Ok(rows.iter().map(|r| predict(r.p_yes, DEFAULT_THRESHOLD)).collect())
    }

    /// Counts of `loaded` on the train and valid parts of `split`, and its valid answers.
    fn confusions(
        &self,
        loaded: &LoadedModel,
        prompt: &Option<String>,
        split: &SplitIndices,
    ) -> anyhow::Result<(SplitConfusions, Vec<Label>)> {
        let count = |indices: &[usize], answers: &[Label]| {
            Confusion::from_pairs(
                indices.iter().zip(answers).map(|(&i, &a)| (self.dataset.examples[i].label, a)),
            )
        };
        let train = self.answers_of(loaded, prompt, &split.train)?;
        let valid = self.answers_of(loaded, prompt, &split.valid)?;
        let scores =
            SplitConfusions { train: count(&split.train, &train), valid: count(&split.valid, &valid) };
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
        let prompt = &job.params.prompt;
        let before = self.base_confusions(prompt, job.split)?;
        let mut loaded = self.base.clone();
        let cfg = job.params.train_config(job.seed);
        let trainable = cfg.trainable_set();
        let params = loaded.model.set_trainable(&trainable, job.seed)?;
        if job.attempt == 0 {
            crate::debug!(
                "trial {}: {} trainable parameters in {} tensors; config {}",
                job.id,
                params.num_params(),
                params.named.len(),
                serde_json::to_string(&cfg)?
            );
        }
        let mut attempt = Attempt {
            loaded: &loaded,
            params: &params,
            examples: self.train_examples(job)?,
            attempt: job.attempt,
            losses: Vec::new(),
            training_secs: 0.0,
        };

        let (mut end, mut stage) = (attempt.stage(1, &cfg, observer)?, 1);
        let mut stage2 = Stage2Ran::NotConfigured;
        if let (true, Some(second)) = (end.is_finished(), &job.params.stage2) {
            stage2 = Stage2Ran::Skipped;
            if second.applies(&self.confusions(&loaded, prompt, job.split)?.0.train) {
                (end, stage) = (attempt.stage(2, &second.train_config(&cfg), observer)?, 2);
                stage2 = Stage2Ran::Ran;
            }
        }
        let (losses, training_secs) = (attempt.losses, attempt.training_secs);

        let (after, valid_answers) = match end {
            TrainOutcome::Finished { .. } => {
                let (after, valid_answers) = self.confusions(&loaded, prompt, job.split)?;
                let preprocessing = self.base.preprocessing.own.with_resize(self.images.resize);
                let provenance = Provenance::new(&self.model_path, prompt.as_deref(), &cfg, preprocessing);
                adapter::save(job.weights_dir, &trainable, &params, &provenance)?;
                (Some(after), valid_answers)
            }
            TrainOutcome::Diverged(_) | TrainOutcome::Stopped { .. } => (None, Vec::new()),
        };
        Ok(TrialRun { before, after, valid_answers, losses, end, stage, stage2, training_secs })
    }

    /// The adapter in `weights` loaded into a copy of the untrained model, scored from the
    /// cached image features; an index past the dataset is an error.
    fn answers(
        &mut self,
        weights: &Path,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        let examples = self.dataset.examples.len();
        if let Some(i) = indices.iter().find(|&&i| i >= examples) {
            anyhow::bail!("example index {i} is out of range: the dataset has {examples} examples");
        }
        let mut loaded = self.base.clone();
        adapter::load(weights, &mut loaded).with_context(|| format!("{}: cannot load", weights.display()))?;
        self.answers_of(&loaded, prompt, indices)
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

/// One attempt's training state across its stages.
struct Attempt<'m> {
    loaded: &'m LoadedModel,
    params: &'m TrainableParams,
    examples: Vec<TrainExample>,
    attempt: u32,
    losses: Vec<LossLine>,
    training_secs: f64,
}

impl Attempt<'_> {
    /// Train one stage, recording its steps and asking the observer after each step.
    fn stage(
        &mut self,
        stage: u8,
        cfg: &TrainConfig,
        observer: &mut dyn StepObserver,
    ) -> anyhow::Result<TrainOutcome> {
        let started = Instant::now();
        let (attempt, losses) = (self.attempt, &mut self.losses);
        let mut record = |log: &StepLog, observer: &mut dyn StepObserver| {
            let line = LossLine { attempt, stage, log: *log };
            observer.logged(&line);
            losses.push(line);
        };
        let outcome = train(self.loaded, self.params, &self.examples, cfg, &mut |log| {
            if is_recorded_step(cfg, stage, log.step) {
                record(log, observer);
            }
            observer.after_step()
        })
        .with_context(|| format!("stage {stage}"))?;
        self.training_secs += started.elapsed().as_secs_f64();
        if let TrainOutcome::Diverged(log) = &outcome {
            record(log, observer);
        }
        Ok(outcome)
    }
}
