//! Training: every setting on one screen (`TrainConfig`), and the loop (`train`), which reads top
//! to bottom: learning rate, forward/backward over the micro-batches, divergence check, update, log.
//!
//! Image features are computed by the caller, once per image frame: the vision tower and projector
//! are frozen, so they are the same at every step.

pub mod batches;
pub mod guard;
pub mod optim;
pub mod schedule;

use std::time::Instant;

use anyhow::{ensure, Context};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::data::Label;
use crate::model::{LoadedModel, LoraConfig, LoraTarget, PromptItem, Trainable, TrainableParams};
use batches::BatchSampler;
use guard::{DivergenceGuard, DEFAULT_LOSS_ABOVE};
use optim::{GradAccumulator, Optimizer};
use schedule::{default_warmup_steps, learning_rate, Schedule};

/// Which weights train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrainableKind {
    /// The language model's q/k/v/o projection weights (the big_vision demo's recipe).
    #[default]
    Attention,
    /// LoRA adapters (`lora_rank`, `lora_alpha`, `lora_targets`); the base stays frozen.
    Lora,
}

/// Every training setting, with the big_vision demo's recipe as the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    // What trains.
    /// `attention` (q/k/v/o weights of the language model) or `lora`.
    pub trainable: TrainableKind,
    /// LoRA rank r (lora only).
    pub lora_rank: usize,
    /// LoRA alpha: the update B·A is scaled by alpha / r (lora only).
    pub lora_alpha: f64,
    /// Projections of every decoder layer that get an adapter (lora only).
    #[serde(with = "target_names")]
    pub lora_targets: Vec<LoraTarget>,

    // Optimizer and learning rate.
    /// `sgd` (plain, the demo's) or `adamw`.
    pub optimizer: Optimizer,
    /// Base learning rate (the demo's 0.03 is for SGD on the attention weights).
    pub learning_rate: f64,
    /// `cosine` (warmup, then down to 0 at step `steps + 1`) or `constant` (warmup, then flat).
    pub schedule: Schedule,
    /// Linear warmup length; `None`: 10% of `steps + 1`, rounded half to even (the demo: 6 of 65).
    pub warmup_steps: Option<usize>,

    // Length and batches.
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per micro-batch (one forward/backward).
    pub batch_size: usize,
    /// Micro-batches per step; their gradients are averaged (effective batch = batch_size × grad_accum).
    pub grad_accum: usize,
    /// Seeds the batch order and the LoRA A initialisation.
    pub seed: u64,

    // Logging and safety.
    /// Log a line every this many steps (and at the last step).
    pub log_every: usize,
    /// Stop the run as diverged when a logged step's loss after warmup is above this, or any
    /// step's is NaN/∞.
    pub loss_above: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            trainable: TrainableKind::Attention,
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_targets: LoraTarget::ATTENTION.to_vec(),
            optimizer: Optimizer::Sgd,
            learning_rate: 0.03,
            schedule: Schedule::Cosine,
            warmup_steps: None,
            steps: 64,
            batch_size: 8,
            grad_accum: 1,
            seed: 0,
            log_every: 1,
            loss_above: DEFAULT_LOSS_ABOVE,
        }
    }
}

impl TrainConfig {
    /// The trainable set to give `PaliGemma::set_trainable`.
    pub fn trainable(&self) -> Trainable {
        match self.trainable {
            TrainableKind::Attention => Trainable::Attention,
            TrainableKind::Lora => Trainable::Lora(LoraConfig {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                targets: self.lora_targets.clone(),
            }),
        }
    }

    /// The schedule's horizon: one past the last step, as the demo (64 steps, horizon 65).
    pub fn horizon(&self) -> usize {
        self.steps + 1
    }

    pub fn warmup_steps(&self) -> usize {
        self.warmup_steps.unwrap_or_else(|| default_warmup_steps(self.horizon()))
    }

    /// Whether step `step` gets a log line (and a look from the divergence guard's threshold).
    pub fn is_log_step(&self, step: usize) -> bool {
        step == self.steps || step.is_multiple_of(self.log_every.max(1))
    }

    /// Reject settings that cannot run, naming the setting.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.steps > 0, "steps must be at least 1");
        ensure!(self.batch_size > 0, "batch_size must be at least 1");
        ensure!(self.grad_accum > 0, "grad_accum must be at least 1");
        ensure!(self.learning_rate.is_finite() && self.learning_rate >= 0.0, "learning_rate must be ≥ 0");
        ensure!(self.loss_above > 0.0, "loss_above must be positive");
        if self.trainable == TrainableKind::Lora {
            ensure!(self.lora_rank > 0, "lora_rank must be at least 1");
            ensure!(!self.lora_targets.is_empty(), "lora_targets must name at least one projection");
        }
        Ok(())
    }
}

/// One training example: the image features of one frame `[N, D]` and the text around it.
#[derive(Debug, Clone)]
pub struct TrainExample {
    pub features: Tensor,
    pub prompt: String,
    pub answer: Label,
}

/// What the loop reports after each step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLog {
    /// 1-based.
    pub step: usize,
    pub total: usize,
    pub lr: f64,
    /// Mean loss over the step's micro-batches (before the update).
    pub loss: f64,
    /// Global L2 norm of the mean gradient.
    pub grad_norm: f64,
    /// Wall time of the step.
    pub ms: f64,
}

impl StepLog {
    /// The users' format: `step: 32/256   lr: 0.02995   loss: 0.3417`.
    pub fn line(&self) -> String {
        format!("step: {}/{}   lr: {:.5}   loss: {:.4}", self.step, self.total, self.lr, self.loss)
    }
}

/// The observer's answer after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop after this step (Ctrl-C); the weights keep this step's update.
    Stop,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainOutcome {
    /// All steps ran; `final_loss` is the last step's loss.
    Finished { final_loss: f64 },
    /// The guard tripped at `step`; that step's update was not applied.
    Diverged { step: usize, loss: f64 },
    /// The observer stopped the run after `step`.
    Stopped { step: usize },
}

/// Train `params` (from `model.set_trainable(&cfg.trainable(), cfg.seed)`) on `examples`.
pub fn train(
    loaded: &LoadedModel,
    params: &TrainableParams,
    examples: &[TrainExample],
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&StepLog) -> Control,
) -> anyhow::Result<TrainOutcome> {
    cfg.check()?;
    ensure!(!examples.is_empty(), "no training examples");
    let mut sampler = BatchSampler::new(examples.len(), cfg.seed);
    let mut optimizer = cfg.optimizer.build(&params.named)?;
    let guard = DivergenceGuard { loss_above: cfg.loss_above };
    let warmup_steps = cfg.warmup_steps();
    let mut final_loss = f64::NAN;
    for step in 1..=cfg.steps {
        let started = Instant::now();
        // The learning rate of this step.
        let lr = learning_rate(cfg.schedule, cfg.learning_rate, step, cfg.horizon(), warmup_steps);

        // Forward and backward over the micro-batches, summing gradients.
        let mut grads = GradAccumulator::new(&params.named);
        let mut loss_sum = 0.0;
        for _ in 0..cfg.grad_accum {
            let batch = sampler.next_batch(cfg.batch_size);
            let loss = batch_loss(loaded, examples, &batch).with_context(|| format!("step {step}"))?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            grads.add(loss.backward()?)?;
        }
        let loss = loss_sum / cfg.grad_accum as f64;

        // A diverged loss ends the run before its update is applied: NaN or ∞ at any step (its
        // update would poison the weights), a loss above the threshold at a logged step after
        // warmup (during warmup the loss is still the base model's, which may start above it).
        if !loss.is_finite() || (cfg.is_log_step(step) && step > warmup_steps) {
            if let Err(diverged) = guard.check(step, loss) {
                return Ok(TrainOutcome::Diverged { step: diverged.step, loss: diverged.loss });
            }
        }

        // The update.
        let mean = grads.mean()?;
        optimizer.step(lr, &mean.grads)?;
        final_loss = loss;

        // Report; the observer may stop the run here.
        let log = StepLog {
            step,
            total: cfg.steps,
            lr,
            loss,
            grad_norm: mean.norm,
            ms: started.elapsed().as_secs_f64() * 1e3,
        };
        if observer(&log) == Control::Stop {
            return Ok(TrainOutcome::Stopped { step });
        }
    }
    Ok(TrainOutcome::Finished { final_loss })
}

/// Mean loss (a differentiable scalar) of the examples at `indices`.
fn batch_loss(loaded: &LoadedModel, examples: &[TrainExample], indices: &[usize]) -> anyhow::Result<Tensor> {
    let chosen: Vec<&TrainExample> = indices.iter().map(|&i| &examples[i]).collect();
    let features: Vec<&Tensor> = chosen.iter().map(|e| &e.features).collect();
    let features = Tensor::stack(&features, 0)?;
    let items: Vec<PromptItem> =
        chosen.iter().map(|e| PromptItem { prompt: &e.prompt, answer: e.answer }).collect();
    let batch = loaded.tokenizer.batch(&items)?;
    Ok(loaded.model.score(&features, &batch)?.mean_loss()?)
}

/// `lora_targets` as PEFT module names (`["q_proj", "v_proj"]`); `q` or `q_proj` read back.
mod target_names {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::model::LoraTarget;

    pub fn serialize<S: Serializer>(targets: &[LoraTarget], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(targets.iter().map(|t| t.module_name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LoraTarget>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|s| s.parse().map_err(D::Error::custom)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::{load, ModelSource};

    pub(crate) fn tiny() -> LoadedModel {
        load(&ModelSource::Builtin { name: "tiny".into(), seed: 7 }, &Device::Cpu, DType::F32).unwrap()
    }

    /// `n` examples with fixed pseudo-random features, alternating labels.
    pub(crate) fn examples(loaded: &LoadedModel, n: usize) -> Vec<TrainExample> {
        let tokens = loaded.model.num_image_tokens();
        let dim = loaded.config.text_config.hidden_size;
        (0..n)
            .map(|e| {
                let values: Vec<f32> =
                    (0..tokens * dim).map(|i| ((i * 7 + e * 13) as f32 * 0.37).sin()).collect();
                TrainExample {
                    features: Tensor::from_vec(values, (tokens, dim), &Device::Cpu).unwrap(),
                    prompt: "is this image appropriate".into(),
                    answer: if e % 2 == 0 { Label::Positive } else { Label::Negative },
                }
            })
            .collect()
    }

    fn values(params: &TrainableParams) -> Vec<Vec<f32>> {
        params.named.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
    }

    /// Train a fresh tiny model; returns every step's log and the trained values.
    fn run(cfg: &TrainConfig, n: usize) -> (TrainOutcome, Vec<StepLog>, Vec<Vec<f32>>) {
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable(), cfg.seed).unwrap();
        let examples = examples(&loaded, n);
        let mut logs = Vec::new();
        let outcome = train(&loaded, &params, &examples, cfg, &mut |log| {
            logs.push(log.clone());
            Control::Continue
        })
        .unwrap();
        (outcome, logs, values(&params))
    }

    fn sgd(steps: usize, batch_size: usize) -> TrainConfig {
        TrainConfig { steps, batch_size, learning_rate: 0.5, warmup_steps: Some(0), ..TrainConfig::default() }
    }

    #[test]
    fn sgd_on_the_attention_weights_lowers_the_loss() {
        let (outcome, logs, _) = run(&sgd(8, 4), 4);
        let first = logs[0].loss;
        let TrainOutcome::Finished { final_loss } = outcome else { panic!("{outcome:?}") };
        assert!(final_loss < 0.9 * first, "loss {first} → {final_loss}: {logs:?}");
        assert!(logs.iter().all(|l| l.grad_norm > 0.0));
    }

    #[test]
    fn logs_follow_the_schedule() {
        let cfg = TrainConfig { steps: 4, batch_size: 2, warmup_steps: Some(2), ..TrainConfig::default() };
        let (_, logs, _) = run(&cfg, 3);
        let lrs: Vec<f64> = logs.iter().map(|l| l.lr).collect();
        let want: Vec<f64> = (1..=4).map(|s| learning_rate(Schedule::Cosine, 0.03, s, 5, 2)).collect();
        assert_eq!(lrs, want);
        assert_eq!((logs[3].step, logs[3].total), (4, 4));
    }

    #[test]
    fn a_seed_gives_the_same_run_twice() {
        let cfg = TrainConfig {
            trainable: TrainableKind::Lora,
            lora_rank: 2,
            optimizer: Optimizer::AdamW(optim::AdamWParams::default()),
            learning_rate: 0.01,
            steps: 3,
            batch_size: 2,
            seed: 5,
            ..TrainConfig::default()
        };
        let (_, logs_a, values_a) = run(&cfg, 5);
        let (_, logs_b, values_b) = run(&cfg, 5);
        let losses = |logs: &[StepLog]| logs.iter().map(|l| l.loss).collect::<Vec<_>>();
        assert_eq!(losses(&logs_a), losses(&logs_b));
        assert_eq!(values_a, values_b);
        let (_, logs_c, _) = run(&TrainConfig { seed: 6, ..cfg }, 5);
        assert_ne!(losses(&logs_a), losses(&logs_c));
    }

    #[test]
    fn two_micro_batches_of_two_equal_one_batch_of_four() {
        let (_, big_logs, big) = run(&sgd(2, 4), 6);
        let (_, acc_logs, acc) = run(&TrainConfig { grad_accum: 2, ..sgd(2, 2) }, 6);
        for (b, a) in big_logs.iter().zip(&acc_logs) {
            assert!((b.loss - a.loss).abs() < 1e-5, "{} vs {}", b.loss, a.loss);
            assert!(
                (b.grad_norm - a.grad_norm).abs() < 1e-4 * b.grad_norm,
                "{} vs {}",
                b.grad_norm,
                a.grad_norm
            );
        }
        for (b, a) in big.iter().flatten().zip(acc.iter().flatten()) {
            assert!((b - a).abs() < 1e-5, "{b} vs {a}");
        }
    }

    #[test]
    fn a_diverged_step_is_reported_and_not_applied() {
        let cfg = TrainConfig { loss_above: 1e-3, ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable(), 0).unwrap();
        let before = values(&params);
        let examples = examples(&loaded, 2);
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |_| Control::Continue).unwrap();
        assert!(matches!(outcome, TrainOutcome::Diverged { step: 1, loss } if loss > 1e-3), "{outcome:?}");
        assert_eq!(values(&params), before);
    }

    #[test]
    fn the_threshold_is_checked_at_logged_steps_only() {
        // Every loss is above 1e-3, but steps 1 and 2 are not logged with log_every = 3.
        let cfg = TrainConfig { loss_above: 1e-3, log_every: 3, ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable(), 0).unwrap();
        let examples = examples(&loaded, 2);
        let mut seen = Vec::new();
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |log| {
            seen.push(log.step);
            Control::Continue
        })
        .unwrap();
        assert!(matches!(outcome, TrainOutcome::Diverged { step: 3, .. }), "{outcome:?}");
        assert_eq!(seen, [1, 2]);
        assert!((1..=5).map(|s| cfg.is_log_step(s)).eq([false, false, true, false, true]));
    }

    #[test]
    fn the_threshold_waits_for_the_end_of_warmup() {
        // Every loss is above 1e-3 and every step is logged, but steps 1 and 2 are warmup.
        let cfg = TrainConfig { loss_above: 1e-3, log_every: 1, warmup_steps: Some(2), ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable(), 0).unwrap();
        let examples = examples(&loaded, 2);
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |_| Control::Continue).unwrap();
        assert!(matches!(outcome, TrainOutcome::Diverged { step: 3, .. }), "{outcome:?}");
    }

    #[test]
    fn the_observer_stops_the_run_after_a_step() {
        let mut loaded = tiny();
        let cfg = sgd(10, 2);
        let params = loaded.model.set_trainable(&cfg.trainable(), 0).unwrap();
        let examples = examples(&loaded, 2);
        let mut seen = 0;
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |log| {
            seen = log.step;
            if log.step == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        assert_eq!((outcome, seen), (TrainOutcome::Stopped { step: 2 }, 2));
    }

    #[test]
    fn log_line_is_the_users_format() {
        let log = StepLog { step: 32, total: 256, lr: 0.029950, loss: 0.34171, grad_norm: 1.0, ms: 3.0 };
        assert_eq!(log.line(), "step: 32/256   lr: 0.02995   loss: 0.3417");
    }

    #[test]
    fn config_round_trips_through_toml_and_rejects_unknown_keys() {
        let cfg = TrainConfig {
            trainable: TrainableKind::Lora,
            lora_targets: vec![LoraTarget::Q, LoraTarget::Down],
            ..Default::default()
        };
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains(r#"lora_targets = ["q_proj", "down_proj"]"#), "{text}");
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), cfg);
        let partial: TrainConfig = toml::from_str("steps = 3\nlora_targets = [\"v\"]").unwrap();
        assert_eq!((partial.steps, partial.lora_targets, partial.batch_size), (3, vec![LoraTarget::V], 8));
        assert!(toml::from_str::<TrainConfig>("step = 3").unwrap_err().to_string().contains("step"));
    }

    #[test]
    fn default_warmup_is_the_demos() {
        assert_eq!(TrainConfig::default().warmup_steps(), 6);
        assert!(TrainConfig { steps: 0, ..Default::default() }.check().is_err());
    }
}
