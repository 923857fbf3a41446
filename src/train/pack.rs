//! The training loop, for one trial or K trials packed into one pass over the frozen model.
//!
//! Packed trials share everything frozen: their micro-batches are stacked along the batch axis
//! (trial k's rows are the k-th block), so every frozen matmul, norm and attention runs once for
//! all of them, while each trained layer applies each trial's own weights or adapter to its block
//! (`LoraLinear`, one batched matmul). Each trial keeps its own examples, seed and batch order,
//! learning rate and schedule, optimizer state, loss guard and log; one backward pass over the sum
//! of the trials' losses gives each trial exactly its own gradient, since no trial's loss depends
//! on another's weights or rows. A trial that diverges, finishes or is stopped leaves the pack at
//! that step and the others go on, so a trial's run does not depend on what it was packed with.
//!
//! Members must agree on what shapes the pass: the trainable set, `batch_size`, `grad_accum` and,
//! for K > 1, one prompt for every example (trials that ask each example's own prefix run alone).

use std::time::Instant;

use anyhow::{bail, ensure, Context};
use candle_core::Tensor;

use super::batches::BatchSampler;
use super::optim::{GradAccumulator, OptimizerState};
use super::schedule::learning_rate;
use super::{Control, StepLog, TrainConfig, TrainExample, TrainOutcome};
use crate::model::{LoadedModel, PromptItem, TrainableParams};

/// One trial of a pack: its trainable tensors (`PaliGemma::fresh_trainable`), its examples and
/// its settings.
#[derive(Clone, Copy)]
pub struct PackMember<'a> {
    pub params: &'a TrainableParams,
    pub examples: &'a [TrainExample],
    pub cfg: &'a TrainConfig,
}

/// A member's state between steps.
struct Running {
    sampler: BatchSampler,
    optimizer: OptimizerState,
    final_loss: f64,
    outcome: Option<TrainOutcome>,
}

/// Train every member of the pack in `loaded` (which is made to hold the members still running;
/// whatever it held before is dropped). The observer sees `(member index, log)` for every step
/// that was applied (not a diverged one, which is that member's outcome); its `Stop` ends that
/// member's run after the step. Outcomes are in member order.
pub fn train_pack(
    loaded: &mut LoadedModel,
    members: &[PackMember],
    observer: &mut dyn FnMut(usize, &StepLog) -> Control,
) -> anyhow::Result<Vec<TrainOutcome>> {
    let shape = check_pack(members)?;
    let mut running = members
        .iter()
        .map(|m| {
            Ok(Running {
                sampler: BatchSampler::new(m.examples.len(), m.cfg.seed),
                optimizer: m.cfg.optimizer.optimizer().build(&m.params.named)?,
                final_loss: f64::NAN,
                outcome: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let longest = members.iter().map(|m| m.cfg.steps).max().unwrap_or(0);
    let mut held: Vec<usize> = Vec::new();
    for step in 1..=longest {
        let active: Vec<usize> = (0..members.len()).filter(|&i| running[i].outcome.is_none()).collect();
        if active.is_empty() {
            break;
        }
        if active != held {
            let params: Vec<&TrainableParams> = active.iter().map(|&i| members[i].params).collect();
            loaded.model.hold(&params)?;
            held = active.clone();
        }
        let started = Instant::now();

        // Forward and backward over the micro-batches, summing each member's gradients.
        let mut grads: Vec<GradAccumulator> =
            active.iter().map(|&i| GradAccumulator::new(&members[i].params.named)).collect();
        let mut loss_sums = vec![0.0; active.len()];
        for _ in 0..shape.grad_accum {
            let batches: Vec<Vec<usize>> =
                active.iter().map(|&i| running[i].sampler.next_batch(shape.batch_size)).collect();
            let chosen: Vec<&TrainExample> = active
                .iter()
                .zip(&batches)
                .flat_map(|(&i, batch)| batch.iter().map(move |&e| &members[i].examples[e]))
                .collect();
            let losses =
                block_losses(loaded, &chosen, active.len()).with_context(|| format!("step {step}"))?;
            let total = match losses.as_slice() {
                [one] => one.clone(),
                many => Tensor::stack(many, 0)?.sum(0)?,
            };
            let store = total.backward()?;
            for ((loss, sum), acc) in losses.iter().zip(&mut loss_sums).zip(&mut grads) {
                *sum += f64::from(loss.to_scalar::<f32>()?);
                acc.add(&store)?;
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;

        // Each member's update, guard and log.
        for ((&i, acc), loss_sum) in active.iter().zip(grads).zip(loss_sums) {
            let (cfg, state) = (members[i].cfg, &mut running[i]);
            let lr = learning_rate(cfg.schedule, cfg.learning_rate, step, cfg.horizon(), cfg.warmup_steps);
            let loss = loss_sum / shape.grad_accum as f64;
            let mean = acc.mean()?;
            let log = StepLog { step, steps: cfg.steps, learning_rate: lr, loss, grad_norm: mean.norm, ms };

            // A diverged loss ends the run before its update is applied: NaN or ∞ at any step (its
            // update would poison the weights), a loss above the threshold at a logged step after
            // warmup (during warmup the loss is still the base model's, which may start above it).
            let checked = !loss.is_finite() || (cfg.is_log_step(step) && step > cfg.warmup_steps);
            if checked && cfg.guard.check(step, loss).is_err() {
                state.outcome = Some(TrainOutcome::Diverged(log));
                continue;
            }
            state.optimizer.step(lr, &mean.grads)?;
            state.final_loss = loss;
            if observer(i, &log) == Control::Stop {
                state.outcome = Some(TrainOutcome::Stopped { step });
            } else if step == cfg.steps {
                state.outcome = Some(TrainOutcome::Finished { final_loss: state.final_loss });
            }
        }
    }
    Ok(running
        .into_iter()
        .map(|r| r.outcome.expect("every member ends by its last step (steps ≥ 1 was validated)"))
        .collect())
}

/// What every member of a pack shares.
struct PackShape {
    batch_size: usize,
    grad_accum: usize,
}

fn check_pack(members: &[PackMember]) -> anyhow::Result<PackShape> {
    let Some(first) = members.first() else { bail!("no trials to train") };
    for (i, m) in members.iter().enumerate() {
        let which = |what: &str| match members.len() {
            1 => what.to_string(),
            _ => format!("packed trial {}: {what}", i + 1),
        };
        m.cfg.validate().map_err(|invalid| {
            anyhow::anyhow!("{}", which(&format!("{}: {}", invalid.field, invalid.message)))
        })?;
        ensure!(!m.examples.is_empty(), "{}", which("no training examples"));
        ensure!(
            (m.cfg.batch_size, m.cfg.grad_accum) == (first.cfg.batch_size, first.cfg.grad_accum),
            "{}",
            which(&format!(
                "batch_size {} and grad_accum {} differ from the first trial's {} and {}",
                m.cfg.batch_size, m.cfg.grad_accum, first.cfg.batch_size, first.cfg.grad_accum
            ))
        );
    }
    if members.len() > 1 {
        let prompt = &first.examples[0].prompt;
        ensure!(
            members.iter().flat_map(|m| m.examples).all(|e| &e.prompt == prompt),
            "packed trials need one prompt for all their examples"
        );
    }
    Ok(PackShape { batch_size: first.cfg.batch_size, grad_accum: first.cfg.grad_accum })
}

/// The mean loss (a differentiable scalar) of each of the `blocks` equal blocks of `chosen`.
fn block_losses(
    loaded: &LoadedModel,
    chosen: &[&TrainExample],
    blocks: usize,
) -> anyhow::Result<Vec<Tensor>> {
    let features: Vec<&Tensor> = chosen.iter().map(|e| &e.features).collect();
    let features = Tensor::stack(&features, 0)?;
    let items: Vec<PromptItem> =
        chosen.iter().map(|e| PromptItem { prompt: &e.prompt, answer: e.answer }).collect();
    let batch = loaded.tokenizer.batch(&items)?;
    let loss = loaded.model.score(&features, &batch)?.loss;
    let size = chosen.len() / blocks;
    (0..blocks).map(|b| Ok(loss.narrow(0, b * size, size)?.mean(0)?)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::guard::DivergenceGuard;
    use super::super::optim::OptimizerKind;
    use super::super::tests::{examples, tiny};
    use super::super::{train, TrainableKind};
    use super::*;

    /// A trial's run: every applied step's log, the outcome and the trained values.
    #[derive(Debug)]
    struct Run {
        logs: Vec<StepLog>,
        outcome: TrainOutcome,
        values: Vec<Vec<f32>>,
    }

    fn values(params: &TrainableParams) -> Vec<Vec<f32>> {
        params.named.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
    }

    /// Each config alone, on its own examples (`n` of them), with `train`.
    fn unpacked(configs: &[(TrainConfig, usize)]) -> Vec<Run> {
        configs
            .iter()
            .map(|(cfg, n)| {
                let mut loaded = tiny();
                let params = loaded.model.set_trainable(&cfg.trainable_set(), cfg.seed).unwrap();
                let examples = examples(&loaded, *n);
                let mut logs = Vec::new();
                let outcome = train(&loaded, &params, &examples, cfg, &mut |log| {
                    logs.push(*log);
                    Control::Continue
                })
                .unwrap();
                Run { logs, outcome, values: values(&params) }
            })
            .collect()
    }

    /// All configs in one pack; `stop_at`: (member, step) whose observer says stop.
    fn packed(configs: &[(TrainConfig, usize)], stop_at: Option<(usize, usize)>) -> Vec<Run> {
        let mut loaded = tiny();
        let params: Vec<TrainableParams> = configs
            .iter()
            .map(|(cfg, _)| loaded.model.fresh_trainable(&cfg.trainable_set(), cfg.seed).unwrap())
            .collect();
        let data: Vec<Vec<TrainExample>> = configs.iter().map(|(_, n)| examples(&loaded, *n)).collect();
        let members: Vec<PackMember> = configs
            .iter()
            .zip(&params)
            .zip(&data)
            .map(|(((cfg, _), params), examples)| PackMember { params, examples, cfg })
            .collect();
        let mut logs = vec![Vec::new(); configs.len()];
        let outcomes = train_pack(&mut loaded, &members, &mut |i, log| {
            logs[i].push(*log);
            match stop_at == Some((i, log.step)) {
                true => Control::Stop,
                false => Control::Continue,
            }
        })
        .unwrap();
        outcomes
            .into_iter()
            .zip(logs)
            .zip(&params)
            .map(|((outcome, logs), params)| Run { logs, outcome, values: values(params) })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-12)
    }

    /// The packed run of each trial equals its unpacked run within 1e-5 relative.
    fn assert_same(packed: &[Run], alone: &[Run]) {
        assert_eq!(packed.len(), alone.len());
        for (i, (p, a)) in packed.iter().zip(alone).enumerate() {
            assert_eq!(p.logs.len(), a.logs.len(), "trial {i}: {:?} vs {:?}", p.outcome, a.outcome);
            for (lp, la) in p.logs.iter().zip(&a.logs) {
                assert_eq!((lp.step, lp.steps, lp.learning_rate), (la.step, la.steps, la.learning_rate));
                assert!(
                    close(lp.loss, la.loss),
                    "trial {i} step {}: loss {} vs {}",
                    lp.step,
                    lp.loss,
                    la.loss
                );
                assert!(close(lp.grad_norm, la.grad_norm), "trial {i} step {}: grad norm", lp.step);
            }
            match (&p.outcome, &a.outcome) {
                (TrainOutcome::Finished { final_loss: x }, TrainOutcome::Finished { final_loss: y }) => {
                    assert!(close(*x, *y), "trial {i}: final loss {x} vs {y}")
                }
                (TrainOutcome::Diverged(x), TrainOutcome::Diverged(y)) => {
                    assert_eq!(x.step, y.step, "trial {i}");
                    assert!(close(x.loss, y.loss), "trial {i}: diverged loss {} vs {}", x.loss, y.loss);
                }
                (x, y) => assert_eq!(x, y, "trial {i}"),
            }
            for (vp, va) in p.values.iter().flatten().zip(a.values.iter().flatten()) {
                assert!((vp - va).abs() <= 1e-5 * va.abs().max(1e-3), "trial {i}: weight {vp} vs {va}");
            }
        }
    }

    fn trial(trainable: TrainableKind, lr: f64, seed: u64, steps: usize) -> TrainConfig {
        TrainConfig {
            trainable,
            lora_rank: 2,
            optimizer: OptimizerKind::AdamW,
            steps,
            batch_size: 3,
            log_every: 1,
            seed,
            ..TrainConfig::new(lr)
        }
    }

    #[test]
    fn packed_attention_trials_equal_their_unpacked_runs() {
        // Different rates, seeds, example sets and lengths: the 4-step trial leaves the pack early.
        let configs = [
            (trial(TrainableKind::Attention, 0.01, 1, 6), 5),
            (trial(TrainableKind::Attention, 0.03, 2, 4), 7),
            (TrainConfig { optimizer: OptimizerKind::Sgd, ..trial(TrainableKind::Attention, 0.3, 3, 6) }, 4),
        ];
        let packed = packed(&configs, None);
        assert_same(&packed, &unpacked(&configs));
        // The trials really differ (a pack that ran one trial three times would fail here too).
        assert!(packed[0].logs[1].loss != packed[1].logs[1].loss);
    }

    #[test]
    fn packed_lora_trials_with_accumulation_equal_their_unpacked_runs() {
        let lora = |lr, seed| TrainConfig { grad_accum: 2, ..trial(TrainableKind::Lora, lr, seed, 4) };
        let configs = [(lora(0.01, 4), 6), (lora(0.05, 5), 6), (lora(0.02, 6), 9), (lora(0.1, 7), 5)];
        assert_same(&packed(&configs, None), &unpacked(&configs));
    }

    #[test]
    fn a_diverged_or_stopped_trial_leaves_without_disturbing_the_others() {
        // Trial 1's guard trips at step 2 (every loss is above 1e-3; step 1 is warmup).
        let diverging = TrainConfig {
            guard: DivergenceGuard { loss_above: 1e-3 },
            warmup_steps: 1,
            ..trial(TrainableKind::Attention, 0.03, 8, 5)
        };
        let configs = [
            (trial(TrainableKind::Attention, 0.01, 1, 5), 5),
            (diverging, 6),
            (trial(TrainableKind::Attention, 0.02, 3, 5), 4),
        ];
        let packed_runs = packed(&configs, Some((2, 3)));
        assert!(matches!(packed_runs[1].outcome, TrainOutcome::Diverged(StepLog { step: 2, .. })));
        assert_eq!(packed_runs[2].outcome, TrainOutcome::Stopped { step: 3 });
        let alone = unpacked(&configs);
        assert_same(&packed_runs[..2], &alone[..2]);
        // The stopped trial equals its unpacked run up to the stop.
        assert_eq!(packed_runs[2].logs.len(), 3);
        for (p, a) in packed_runs[2].logs.iter().zip(&alone[2].logs) {
            assert!(close(p.loss, a.loss), "{} vs {}", p.loss, a.loss);
        }
    }

    #[test]
    fn trials_of_different_shapes_or_prompts_are_not_packed() {
        let mut loaded = tiny();
        let a = trial(TrainableKind::Attention, 0.01, 1, 2);
        let b = TrainConfig { batch_size: 4, ..a.clone() };
        let pa = loaded.model.fresh_trainable(&a.trainable_set(), 1).unwrap();
        let pb = loaded.model.fresh_trainable(&b.trainable_set(), 2).unwrap();
        let data = examples(&loaded, 4);
        let mut other_prompt = examples(&loaded, 4);
        other_prompt[0].prompt = "another prompt".into();
        let member = |params, examples, cfg| PackMember { params, examples, cfg };
        let err = train_pack(&mut loaded, &[member(&pa, &data, &a), member(&pb, &data, &b)], &mut |_, _| {
            Control::Continue
        })
        .unwrap_err();
        assert!(err.to_string().contains("packed trial 2: batch_size 4"), "{err}");
        let err = train_pack(
            &mut loaded,
            &[member(&pa, &data, &a), member(&pb, &other_prompt, &a)],
            &mut |_, _| Control::Continue,
        )
        .unwrap_err();
        assert!(err.to_string().contains("one prompt"), "{err}");
        let lora = trial(TrainableKind::Lora, 0.01, 1, 2);
        let pl = loaded.model.fresh_trainable(&lora.trainable_set(), 1).unwrap();
        let err =
            train_pack(&mut loaded, &[member(&pa, &data, &a), member(&pl, &data, &lora)], &mut |_, _| {
                Control::Continue
            })
            .unwrap_err();
        assert!(err.to_string().contains("same tensors"), "{err}");
    }
}
