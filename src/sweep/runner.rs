//! What the driver asks of a model: run one attempt of one trial. The real implementation trains
//! PaliGemma; `ScriptedRunner` is a deterministic stand-in for tests (like hyperfine's mock
//! executor).
//!
//! An attempt: score the base model on train and valid → train stage 1 → if `params.stage2`
//! applies to the train counts after stage 1, train stage 2 → score train and valid again → save
//! the trained weights into `weights_dir`. After each step the runner asks the observer whether
//! to stop (Ctrl-C); after each logged step (every `log_every` steps and the last of a stage) it
//! reports the loss and applies the divergence guard (`params.abort`); a NaN or infinite loss
//! ends the attempt at any step, and that step is reported too.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::split::SplitIndices;
use crate::data::Label;
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::SplitConfusions;
use crate::results::record::{LossLine, Stage2Ran};
use crate::spec::{TrialId, TrialParams};
/// The observer's answer after a step; `Stop` (the user pressed Ctrl-C) makes the runner return
/// `TrainOutcome::Stopped` at once.
pub use crate::train::Control;
use crate::train::{TrainConfig, TrainOutcome};

/// One attempt of one trial.
#[derive(Debug, Clone)]
pub struct TrialJob<'a> {
    pub id: &'a TrialId,
    /// Everything resolved: train fields, prompt (`None`: each example's prefix), stage 2, abort.
    pub params: &'a TrialParams,
    /// Stage 1's training settings for this attempt (`TrialParams::train_config`): the spec's
    /// `[train]` with the attempt's seed (LoRA init, batch order: `params.seed`, then
    /// `reseed(params.seed, attempt)`; the split does not change between attempts) and `[abort]`'s
    /// divergence threshold.
    pub train: TrainConfig,
    /// 0 for the first attempt, k for the k-th reseed.
    pub attempt: u32,
    /// Example indices (into the dataset) to train on and to validate on.
    pub split: &'a SplitIndices,
    /// An empty folder for the trained weights (PEFT layout for LoRA).
    pub weights_dir: &'a Path,
}

/// Whether step `step` of stage `stage` (run with `cfg`) goes into the loss log: the trainer's
/// logged steps, and step 1 of stage 1, so that every loss curve starts at the untrained model's
/// loss. The step that trips the divergence guard is recorded too.
pub fn is_recorded_step(cfg: &TrainConfig, stage: u8, step: usize) -> bool {
    cfg.is_log_step(step) || (stage == 1 && step == 1)
}

/// The driver's side of an attempt: progress display and the stop request.
pub trait StepObserver {
    /// Called after every optimizer step.
    fn after_step(&mut self) -> Control;
    /// Called for every recorded step ([`is_recorded_step`]), and for the step that tripped
    /// the divergence guard.
    fn logged(&mut self, line: &LossLine);
}

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRun {
    /// The untrained model's counts.
    pub before: SplitConfusions,
    /// The trained model's counts; `Some` exactly when `end` is finished.
    pub after: Option<SplitConfusions>,
    /// The trained model's logits (and so its answer) for each validation example, in
    /// `split.valid` order; filled exactly when `end` is finished.
    pub valid_answers: Vec<AnswerLogits>,
    /// Every recorded step, stage 1 then stage 2.
    pub losses: Vec<LossLine>,
    /// How the last stage run ended: finished (then the model was scored and saved), diverged
    /// (the guard tripped: a logged loss above `abort.loss_above`, or NaN or infinite) or
    /// stopped on request (nothing is kept).
    pub end: TrainOutcome,
    /// The stage `end` belongs to: 1, or 2 when stage 2 ran.
    pub stage: u8,
    pub stage2: Stage2Ran,
    /// Seconds spent in training steps (the rest of the attempt is scoring, loading, saving).
    pub training_secs: f64,
}

/// Runs attempts of trials. Errors (out of memory, unreadable image) fail the trial, not the
/// sweep.
pub trait TrialRunner {
    /// Get ready to run (load the model): an error here stops the sweep instead of failing a
    /// trial. The driver calls it once it holds a trial's claim; nothing to do by default.
    fn prepare(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(&mut self, job: &TrialJob, observer: &mut dyn StepObserver) -> anyhow::Result<TrialRun>;

    /// Run several attempts (of different trials) at once, `observers[i]` watching `jobs[i]`:
    /// one result per job, in order, or an error that fails them all. The driver gives only jobs
    /// of one [`pack_key`]. One after the other by default; the real runner trains them as one
    /// pack (`train::pack`), with the same results.
    fn run_pack(
        &mut self,
        jobs: &[TrialJob],
        observers: &mut [&mut dyn StepObserver],
    ) -> anyhow::Result<Vec<anyhow::Result<TrialRun>>> {
        Ok(jobs.iter().zip(observers).map(|(job, observer)| self.run(job, *observer)).collect())
    }

    /// The logits (and so the answers) of the trained weights in `weights` (a trial's `weights/`
    /// or a soup) for the dataset's examples `indices`, asked `prompt` (`None`: each example's
    /// prefix), in order.
    fn answers(
        &mut self,
        weights: &Path,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<AnswerLogits>>;

    /// The untrained model's answers to the dataset's examples `indices`, asked `prompt`: what
    /// screening prompts (`[search] screen_prompts`) looks at.
    fn untrained_answers(&mut self, prompt: &Option<String>, indices: &[usize])
        -> anyhow::Result<Vec<Label>>;

    /// Average the trained weights in the folders `members` (all of one config) into the empty
    /// folder `out`: a model soup.
    fn soup(&mut self, members: &[PathBuf], out: &Path) -> anyhow::Result<()>;

    /// A line for the end of the sweep about the work shared by its trials (the real runner:
    /// how often the vision tower ran); none by default.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// What trials must share to be trained in one pack: the trainable set, the batch shape and the
/// prompt (`None` for trials that ask each example's own prefix: they run alone).
pub fn pack_key(params: &TrialParams) -> Option<String> {
    let train = &params.train;
    let prompt = params.prompt.as_ref()?;
    Some(format!("{:?} {} {} {prompt:?}", train.trainable_set(), train.batch_size, train.grad_accum))
}

/// The training seed of attempt `attempt` of a trial seeded `seed`: the seed itself first, then
/// the first 8 bytes (little-endian) of SHA-256("gacha reseed {seed} {attempt}").
pub fn reseed(seed: u64, attempt: u32) -> u64 {
    if attempt == 0 {
        return seed;
    }
    let digest = Sha256::digest(format!("gacha reseed {seed} {attempt}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseed_keeps_the_first_attempt_and_derives_the_rest() {
        assert_eq!(reseed(7, 0), 7);
        // `printf 'gacha reseed 7 1' | sha256sum` → e7f1f808ba1d6012…; those 8 bytes read
        // little-endian (Python: int.from_bytes(digest[:8], "little")).
        assert_eq!(reseed(7, 1), 1_324_090_975_298_580_967);
        assert_ne!(reseed(7, 1), reseed(7, 2));
        assert_ne!(reseed(7, 1), reseed(8, 1));
    }
}
