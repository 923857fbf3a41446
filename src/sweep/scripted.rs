//! `ScriptedRunner`: a stand-in for the model (`gacha sweep --debug-scripted-runner`) whose every
//! result is a fixed function of the trial's parameters and seed, so driver tests run in
//! milliseconds and can predict what they get. The script:
//!
//! - Before training it answers "no" to every image (precision undefined, recall 0), unless the
//!   prompt says `base=0.7`: then each image right with that probability (a hash of the prompt
//!   and the image), which is what screening prompts sees.
//! - A prompt containing `FAIL` makes the attempt fail halfway (an error, like running out of
//!   memory).
//! - `learning_rate ≥ 1` diverges on every attempt, and `0.5 ≤ learning_rate < 1` on attempts
//!   with an odd seed: the loss quadruples each step and is NaN at step 3 (or the last step).
//! - Otherwise the loss at step t is `0.7 / (1 + 20·lr·t)` plus a seeded wiggle below 0.01, and
//!   after training each image is answered right with probability 0.9 (lr < 0.05) or 0.75, or
//!   the probability a prompt sets with `accuracy=0.83` (so simulations can give configs known
//!   qualities); a second stage that runs adds 0.05. Which images are wrong is a hash of the
//!   seed, the rate, the prompt and the image's index: a uniform draw u, the answer right when
//!   u < accuracy. The logit difference z = logit(yes) − logit(no) has the answer's sign and the
//!   size 0.25 + 4·|accuracy − u| (draws far from the cut are confident ones); the logits are
//!   ±z/2.
//! - A prompt containing `binormal=d` (d in [0, 10]) scores instead from a known binormal model,
//!   for simulations of the operating point (issue 30): z = ±d (the sign of the label) plus
//!   1.5·a_i plus 1.0·e_pi, where a_i ~ N(0, 1) is the image's latent (a hash of the prompt and the image:
//!   shared by every pull of the config, so that seeds agree on hard images) and e_pi ~ N(0, 1)
//!   the pull's own noise (a hash of the seed, the rate, the prompt and the image). The answer is
//!   z > 0; `accuracy=` and stage 2 do not change it. A soup's z on a fresh image is then
//!   normal with mean ±d and variance 1.5² + 1/m for m members.
//! - Every step sleeps `step_delay`, so a test can kill or interrupt a trial midway.
//! - The weights are `weights_dir/scripted.json`: the trial id and the model(s) it holds (seed,
//!   rate, prompt, accuracy, binormal separation). A soup holds every member's models; its z is
//!   the mean of theirs (averaging weights roughly averages logits), its answer z > 0.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::runner::{is_recorded_step, Control, StepObserver, TrialJob, TrialRun, TrialRunner};
use crate::data::Label;
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::{Confusion, SplitConfusions};
use crate::fsutil::write_atomic;
use crate::results::record::{LossLine, Stage2Ran};
use crate::train::{StepLog, TrainConfig, TrainOutcome};

/// The word in a prompt that makes the scripted runner fail.
pub const FAIL_WORD: &str = "FAIL";
/// `accuracy=0.83` in a prompt sets the trained model's accuracy.
pub const ACCURACY_WORD: &str = "accuracy=";
/// `base=0.7` in a prompt sets the untrained model's accuracy when prompts are screened.
pub const BASE_WORD: &str = "base=";
/// `binormal=2` in a prompt scores images from the binormal model (module doc).
pub const BINORMAL_WORD: &str = "binormal=";
/// The binormal model's spread of image latents and of a pull's own noise.
pub const BINORMAL_IMAGE_SD: f64 = 1.5;
pub const BINORMAL_PULL_SD: f64 = 1.0;
/// The largest binormal separation a prompt may set.
const MAX_SEPARATION: f64 = 10.0;
/// The scripted weights file.
const WEIGHTS_FILE: &str = "scripted.json";

/// One scripted model: what its answers are a function of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ScriptedModel {
    seed: u64,
    learning_rate: f64,
    prompt_hash: u64,
    accuracy: f64,
    /// The binormal model's class separation d, when the prompt sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    binormal: Option<f64>,
}

/// `scripted.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScriptedWeights {
    id: String,
    models: Vec<ScriptedModel>,
}

/// Learning rates from which every attempt diverges, and from which odd seeds diverge.
const ALWAYS_DIVERGES: f64 = 1.0;
const ODD_SEEDS_DIVERGE: f64 = 0.5;
/// The step at which a diverging attempt's loss is NaN.
const DIVERGE_STEP: usize = 3;
/// Below this rate the trained model is right 90% of the time, else 75%.
const GOOD_RATE: f64 = 0.05;

pub struct ScriptedRunner {
    /// The dataset's labels, by example index.
    labels: Vec<Label>,
    step_delay: Duration,
}

impl ScriptedRunner {
    pub fn new(labels: Vec<Label>, step_delay: Duration) -> ScriptedRunner {
        ScriptedRunner { labels, step_delay }
    }

    /// Counts of a model that answers `answer(i)` for example `i`.
    fn confusions(&self, job: &TrialJob, answer: impl Fn(usize) -> Label) -> SplitConfusions {
        let count =
            |indices: &[usize]| Confusion::from_pairs(indices.iter().map(|&i| (self.labels[i], answer(i))));
        SplitConfusions { train: count(&job.split.train), valid: count(&job.split.valid) }
    }

    /// The model an attempt trains to `accuracy`.
    fn model(job: &TrialJob, accuracy: f64) -> anyhow::Result<ScriptedModel> {
        let prompt = job.params.prompt.as_deref().unwrap_or("");
        let binormal = word_value(prompt, BINORMAL_WORD, MAX_SEPARATION)?;
        let (seed, learning_rate) = (job.train.seed, job.train.learning_rate);
        Ok(ScriptedModel { seed, learning_rate, prompt_hash: prompt_hash(prompt), accuracy, binormal })
    }

    /// `model`'s logit difference z for example `i` (module doc).
    fn logit_diff(&self, model: &ScriptedModel, i: usize) -> f64 {
        let sign = match self.labels[i] {
            Label::Positive => 1.0,
            Label::Negative => -1.0,
        };
        let pull = [model.seed, model.learning_rate.to_bits(), model.prompt_hash, i as u64];
        match model.binormal {
            Some(d) => {
                let image = normal(&[model.prompt_hash, i as u64]);
                sign * d + BINORMAL_IMAGE_SD * image + BINORMAL_PULL_SD * normal(&pull)
            }
            None => {
                let draw = unit(&pull);
                let right = if draw < model.accuracy { 1.0 } else { -1.0 };
                sign * right * (0.25 + 4.0 * (model.accuracy - draw).abs())
            }
        }
    }

    /// The logits of the models in `models` (one, or a soup's) for example `i`: their mean z.
    fn logits(&self, models: &[ScriptedModel], i: usize) -> AnswerLogits {
        let z = models.iter().map(|m| self.logit_diff(m, i)).sum::<f64>() / models.len() as f64;
        AnswerLogits::from_logits(z / 2.0, -z / 2.0)
    }

    /// `model`'s answer to example `i`.
    fn answer(&self, model: &ScriptedModel, i: usize) -> Label {
        self.logits(std::slice::from_ref(model), i).answer()
    }

    /// The trained model's counts.
    fn trained(&self, job: &TrialJob, accuracy: f64) -> anyhow::Result<SplitConfusions> {
        let model = Self::model(job, accuracy)?;
        Ok(self.confusions(job, |i| self.answer(&model, i)))
    }

    /// Run the steps of stage `stage` (set by `cfg`); `loss(t)` is the loss at step t.
    fn stage(
        &self,
        job: &TrialJob,
        (stage, cfg): (u8, &TrainConfig),
        loss: impl Fn(usize) -> f64,
        observer: &mut dyn StepObserver,
        losses: &mut Vec<LossLine>,
    ) -> anyhow::Result<TrainOutcome> {
        let steps = cfg.steps;
        let mut final_loss = f64::NAN;
        let prompt = job.params.prompt.as_deref().unwrap_or("");
        for step in 1..=steps {
            std::thread::sleep(self.step_delay);
            if prompt.contains(FAIL_WORD) && step == steps.div_ceil(2) {
                anyhow::bail!("scripted failure at step {step}: the prompt contains {FAIL_WORD}");
            }
            let loss = loss(step);
            let log =
                StepLog { step, steps, learning_rate: cfg.learning_rate, loss, grad_norm: 0.0, ms: 0.0 };
            if is_recorded_step(cfg, stage, step) || loss.is_nan() {
                let line = LossLine { attempt: job.attempt, stage, log };
                observer.logged(&line);
                losses.push(line);
            }
            if loss.is_nan() {
                return Ok(TrainOutcome::Diverged(log));
            }
            final_loss = loss;
            if observer.after_step() == Control::Stop {
                return Ok(TrainOutcome::Stopped { step });
            }
        }
        Ok(TrainOutcome::Finished { final_loss })
    }
}

impl TrialRunner for ScriptedRunner {
    fn run(&mut self, job: &TrialJob, observer: &mut dyn StepObserver) -> anyhow::Result<TrialRun> {
        let train = &job.train;
        let lr = train.learning_rate;
        let before = self.confusions(job, |_| Label::Negative);
        let diverges = lr >= ALWAYS_DIVERGES || (lr >= ODD_SEEDS_DIVERGE && job.train.seed % 2 == 1);
        let mut losses = Vec::new();
        let started = Instant::now();
        let stage1_loss = |t: usize| {
            if diverges {
                if t >= DIVERGE_STEP.min(train.steps) {
                    f64::NAN
                } else {
                    0.7 * 4f64.powi(t as i32)
                }
            } else {
                0.7 / (1.0 + 20.0 * lr * t as f64) + 0.01 * unit(&[job.train.seed, t as u64])
            }
        };
        let (mut end, mut stage) = (self.stage(job, (1, train), stage1_loss, observer, &mut losses)?, 1);
        let mut accuracy = word_value(job.params.prompt.as_deref().unwrap_or(""), ACCURACY_WORD, 1.0)?
            .unwrap_or(if lr < GOOD_RATE { 0.9 } else { 0.75 });
        let mut stage2 = Stage2Ran::NotConfigured;
        if let (true, Some(second)) = (end.is_finished(), &job.params.stage2) {
            stage2 = Stage2Ran::Skipped;
            let counts = self.trained(job, accuracy)?.train;
            if second.applies(counts.fp + counts.fn_) {
                let from = stage1_loss(train.steps);
                let stage2_loss = |t: usize| from * (0.5 + 0.5 / (1.0 + t as f64));
                end =
                    self.stage(job, (2, &second.train_config(train)), stage2_loss, observer, &mut losses)?;
                stage = 2;
                accuracy += 0.05;
                stage2 = Stage2Ran::Ran;
            }
        }
        let training_secs = started.elapsed().as_secs_f64();
        let after = end.is_finished().then(|| self.trained(job, accuracy)).transpose()?;
        let model = Self::model(job, accuracy)?;
        let valid_answers = match after {
            Some(_) => job.split.valid.iter().map(|&i| self.logits(&[model], i)).collect(),
            None => Vec::new(),
        };
        if after.is_some() {
            let weights = ScriptedWeights { id: job.id.to_string(), models: vec![model] };
            write_atomic(&job.weights_dir.join(WEIGHTS_FILE), &serde_json::to_vec(&weights)?)?;
        }
        Ok(TrialRun { before, after, valid_answers, losses, end, stage, stage2, training_secs })
    }

    fn answers(
        &mut self,
        weights: &Path,
        _prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<AnswerLogits>> {
        let weights = read_weights(weights)?;
        Ok(indices.iter().map(|&i| self.logits(&weights.models, i)).collect())
    }

    fn untrained_answers(
        &mut self,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        let prompt = prompt.as_deref().unwrap_or("");
        let accuracy = word_value(prompt, BASE_WORD, 1.0)?.unwrap_or(0.0);
        let prompt_hash = prompt_hash(prompt);
        let model = ScriptedModel { seed: 0, learning_rate: 0.0, prompt_hash, accuracy, binormal: None };
        Ok(indices
            .iter()
            .map(|&i| if accuracy > 0.0 { self.answer(&model, i) } else { Label::Negative })
            .collect())
    }

    fn soup(&mut self, members: &[PathBuf], out: &Path) -> anyhow::Result<()> {
        let mut soup = ScriptedWeights { id: "soup".into(), models: Vec::new() };
        for member in members {
            soup.models.extend(read_weights(member)?.models);
        }
        std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
        write_atomic(&out.join(WEIGHTS_FILE), &serde_json::to_vec(&soup)?)
    }
}

fn read_weights(dir: &Path) -> anyhow::Result<ScriptedWeights> {
    let path = dir.join(WEIGHTS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not scripted weights", path.display()))
}

/// The first 8 bytes (little-endian) of the prompt's SHA-256.
fn prompt_hash(prompt: &str) -> u64 {
    u64::from_le_bytes(Sha256::digest(prompt.as_bytes())[..8].try_into().expect("8 bytes"))
}

/// The number after `word` in `prompt` (`accuracy=0.83`), if the word is there; it must be in
/// [0, max].
fn word_value(prompt: &str, word: &str, max: f64) -> anyhow::Result<Option<f64>> {
    let Some(at) = prompt.find(word).map(|at| &prompt[at + word.len()..]) else {
        return Ok(None);
    };
    let number: String = at.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let value: f64 = number.parse().with_context(|| format!("{word}{number}: not a number"))?;
    anyhow::ensure!((0.0..=max).contains(&value), "{word}{value}: not in [0, {max}]");
    Ok(Some(value))
}

/// A standard normal draw from a hash of `parts` (Box–Muller on two uniform draws).
pub fn normal(parts: &[u64]) -> f64 {
    let mut more = parts.to_vec();
    more.push(u64::MAX);
    let u1 = 1.0 - unit(parts); // in (0, 1]: its logarithm is finite
    let u2 = unit(&more);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A number in [0, 1) from a hash (splitmix64) of `parts`.
fn unit(parts: &[u64]) -> f64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for &part in parts {
        state = state.wrapping_add(part).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        state = z ^ (z >> 31);
    }
    (state >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_mean_0_and_variance_1() {
        // 20000 draws: the mean's standard error is 1/√20000 = 0.0071, the variance's about
        // √(2/20000) = 0.01; the bounds are more than four of each.
        let draws: Vec<f64> = (0..20_000u64).map(|i| normal(&[7, i])).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        // Φ(1) = 0.8413: the share below 1 within four standard errors (0.0026 each).
        let below = draws.iter().filter(|&&x| x < 1.0).count() as f64 / draws.len() as f64;
        assert!((below - 0.8413).abs() < 0.011, "P(X < 1) = {below}");
    }

    fn model(accuracy: f64, binormal: Option<f64>) -> ScriptedModel {
        ScriptedModel { seed: 3, learning_rate: 0.01, prompt_hash: 11, accuracy, binormal }
    }

    #[test]
    fn logits_carry_the_answer_and_a_soup_averages_them() {
        let labels: Vec<Label> =
            (0..200).map(|i| if i % 3 == 0 { Label::Negative } else { Label::Positive }).collect();
        let runner = ScriptedRunner::new(labels.clone(), Duration::ZERO);
        let m = model(0.8, None);
        let right = (0..200).filter(|&i| runner.answer(&m, i) == labels[i]).count();
        // Right with probability 0.8: 160 expected, standard deviation √(200·0.8·0.2) = 5.7.
        assert!((135..=185).contains(&right), "{right} right of 200");
        for i in 0..200 {
            let draw = unit(&[m.seed, m.learning_rate.to_bits(), m.prompt_hash, i as u64]);
            let z = runner.logits(&[m], i).logit_diff();
            // |z| = 0.25 + 4·|0.8 − u|, with the sign of the answer.
            assert!((z.abs() - (0.25 + 4.0 * (0.8 - draw).abs())).abs() < 1e-12);
            assert_eq!(z > 0.0, runner.answer(&m, i) == Label::Positive);
        }
        let (a, b) = (model(0.8, Some(2.0)), ScriptedModel { seed: 4, ..model(0.8, Some(2.0)) });
        for i in 0..20 {
            let soup = runner.logits(&[a, b], i).logit_diff();
            let mean = (runner.logit_diff(&a, i) + runner.logit_diff(&b, i)) / 2.0;
            assert!((soup - mean).abs() < 1e-12);
        }
    }

    #[test]
    fn binormal_scores_have_the_stated_means_and_spread() {
        // Pulls of one config (seeds 1..=40) on 400 images: the mean z of yes images is about
        // +2 and of no images −2; the variance of z is 1.5² + 1 = 3.25; the correlation of two
        // pulls' z on an image (the shared latent) 2.25 / 3.25 = 0.69.
        let labels: Vec<Label> =
            (0..400).map(|i| if i % 2 == 0 { Label::Positive } else { Label::Negative }).collect();
        let runner = ScriptedRunner::new(labels, Duration::ZERO);
        let pulls: Vec<ScriptedModel> =
            (1..=40).map(|seed| ScriptedModel { seed, ..model(0.5, Some(2.0)) }).collect();
        let z = |p: usize, i: usize| runner.logit_diff(&pulls[p], i);
        let centered: Vec<Vec<f64>> = (0..40)
            .map(|p| (0..400).map(|i| z(p, i) - if i % 2 == 0 { 2.0 } else { -2.0 }).collect())
            .collect();
        let all: Vec<f64> = centered.iter().flatten().copied().collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|x| x * x).sum::<f64>() / all.len() as f64;
        // The image latents dominate the error of the mean: sd 1.5/√400 = 0.075.
        assert!(mean.abs() < 0.3, "mean {mean}");
        assert!((var - 3.25).abs() < 0.8, "variance {var}");
        let cov = (0..400).map(|i| centered[0][i] * centered[1][i]).sum::<f64>() / 400.0;
        assert!((cov - 2.25).abs() < 0.8, "covariance of two pulls {cov}");
    }
}
