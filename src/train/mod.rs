//! Training: every setting on one screen (`TrainConfig`), and the loop (`train`, one trial; its
//! body `pack::train_pack` trains K trials in one pass), which reads top to bottom:
//! forward/backward over the micro-batches, then per trial learning rate, divergence check,
//! update, log.
//!
//! Image features are computed by the caller, once per image frame: the vision tower and projector
//! are frozen, so they are the same at every step.

pub mod batches;
pub mod config;
pub mod guard;
pub mod memory;
pub mod optim;
pub mod pack;
pub mod schedule;
pub mod stage2;
pub mod step_log;

use candle_core::Tensor;

use crate::data::Label;
use crate::model::{LoadedModel, TrainableParams};

pub use config::{TrainConfig, TrainableKind};
pub use pack::{train_pack, PackMember};
pub use step_log::StepLog;

/// One training example: the image features of one frame `[N, D]` and the text around it.
#[derive(Debug, Clone)]
pub struct TrainExample {
    pub features: Tensor,
    pub prompt: String,
    pub answer: Label,
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
    /// The guard tripped at this step; its update was not applied.
    Diverged(StepLog),
    /// The observer stopped the run after `step`.
    Stopped { step: usize },
}

impl TrainOutcome {
    /// Whether all steps ran.
    pub fn is_finished(&self) -> bool {
        matches!(self, TrainOutcome::Finished { .. })
    }
}

/// Train `params` (from `model.set_trainable(&cfg.trainable_set(), cfg.seed)`) on `examples`.
/// The observer sees every step that was applied (not the diverged one, which is returned).
pub fn train(
    loaded: &LoadedModel,
    params: &TrainableParams,
    examples: &[TrainExample],
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&StepLog) -> Control,
) -> anyhow::Result<TrainOutcome> {
    let mut model = loaded.clone();
    let member = PackMember { params, examples, cfg };
    let mut outcomes = train_pack(&mut model, &[member], &mut |_, log| observer(log))?;
    Ok(outcomes.remove(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{DType, Device};

    use super::schedule::learning_rate;
    use super::schedule::Schedule;
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
        let params = loaded.model.set_trainable(&cfg.trainable_set(), cfg.seed).unwrap();
        let examples = examples(&loaded, n);
        let mut logs = Vec::new();
        let outcome = train(&loaded, &params, &examples, cfg, &mut |log| {
            logs.push(*log);
            Control::Continue
        })
        .unwrap();
        (outcome, logs, values(&params))
    }

    fn guard(loss_above: f64) -> guard::DivergenceGuard {
        guard::DivergenceGuard { loss_above }
    }

    /// SGD on the attention weights, every step logged.
    fn sgd(steps: usize, batch_size: usize) -> TrainConfig {
        TrainConfig {
            trainable: TrainableKind::Attention,
            steps,
            batch_size,
            log_every: 1,
            ..TrainConfig::new(0.5)
        }
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
        let cfg = TrainConfig { learning_rate: 0.03, warmup_steps: 2, ..sgd(4, 2) };
        let (_, logs, _) = run(&cfg, 3);
        let lrs: Vec<f64> = logs.iter().map(|l| l.learning_rate).collect();
        let want: Vec<f64> = (1..=4).map(|s| learning_rate(Schedule::Cosine, 0.03, s, 5, 2)).collect();
        assert_eq!(lrs, want);
        assert_eq!((logs[3].step, logs[3].steps), (4, 4));
    }

    #[test]
    fn a_seed_gives_the_same_run_twice() {
        let cfg = TrainConfig {
            trainable: TrainableKind::Lora,
            lora_rank: 2,
            optimizer: optim::OptimizerKind::AdamW,
            learning_rate: 0.01,
            steps: 3,
            batch_size: 2,
            seed: 5,
            ..TrainConfig::new(0.01)
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
        let cfg = TrainConfig { guard: guard(1e-3), ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable_set(), 0).unwrap();
        let before = values(&params);
        let examples = examples(&loaded, 2);
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |_| Control::Continue).unwrap();
        assert!(
            matches!(outcome, TrainOutcome::Diverged(log) if log.step == 1 && log.loss > 1e-3),
            "{outcome:?}"
        );
        assert_eq!(values(&params), before);
    }

    #[test]
    fn the_threshold_is_checked_at_logged_steps_only() {
        // Every loss is above 1e-3, but steps 1 and 2 are not logged with log_every = 3.
        let cfg = TrainConfig { guard: guard(1e-3), log_every: 3, ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable_set(), 0).unwrap();
        let examples = examples(&loaded, 2);
        let mut seen = Vec::new();
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |log| {
            seen.push(log.step);
            Control::Continue
        })
        .unwrap();
        assert!(matches!(outcome, TrainOutcome::Diverged(StepLog { step: 3, .. })), "{outcome:?}");
        assert_eq!(seen, [1, 2]);
        assert!((1..=5).map(|s| cfg.is_log_step(s)).eq([false, false, true, false, true]));
    }

    #[test]
    fn the_threshold_waits_for_the_end_of_warmup() {
        // Every loss is above 1e-3 and every step is logged, but steps 1 and 2 are warmup.
        let cfg = TrainConfig { guard: guard(1e-3), warmup_steps: 2, ..sgd(5, 2) };
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&cfg.trainable_set(), 0).unwrap();
        let examples = examples(&loaded, 2);
        let outcome = train(&loaded, &params, &examples, &cfg, &mut |_| Control::Continue).unwrap();
        assert!(matches!(outcome, TrainOutcome::Diverged(StepLog { step: 3, .. })), "{outcome:?}");
    }

    #[test]
    fn the_observer_stops_the_run_after_a_step() {
        let mut loaded = tiny();
        let cfg = sgd(10, 2);
        let params = loaded.model.set_trainable(&cfg.trainable_set(), 0).unwrap();
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
}
