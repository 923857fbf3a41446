//! `gacha bench`: time training steps and a scoring pass on a named config with random weights, the
//! same work as `tools/bench_reference.py` does in PyTorch, and print the same table.
//!
//! The batch: `batch_size` random images (seeded) with a 14-token prompt and alternating answers.
//! A train step is what the reference times: for each of `grad_accum` micro-batches the frozen vision
//! tower and projector forward, the decoder forward and backward; then one plain-SGD update. (`gacha
//! train` itself computes image features once per image, so its steps skip the vision tower.) The
//! scoring pass is the forward of the same batch. Times are medians of `steps` timed repetitions
//! after `warmup` untimed ones, each ended by a device synchronisation; the parts of a step
//! (vision, decoder forward, backward, update) are timed with a synchronisation after each.
//! Peak memory: see [`memory`] (reset before each row, so on CPU it includes building the model).

pub mod flops;
pub mod memory;
pub mod pack;

use std::time::Instant;

use anyhow::ensure;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Label;
use crate::model::{
    load, LoadedModel, LoraConfig, LoraTarget, ModelSource, PromptBatch, PromptItem, Trainable,
};
use crate::train::optim::{GradAccumulator, Optimizer};
use crate::train::TrainableKind;
use flops::{flops_per_example, StepKind, PROMPT_TOKENS};

/// 14 tokens with the built-in tokenizer (the demo prompt without its "?").
const PROMPT: &str = "Is this image appropriate based on Federal Food, Drug, and Cosmetic Act";
/// Learning rate of the timed SGD steps (the reference's default).
const LEARNING_RATE: f64 = 1e-3;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A named config (`small`, `paligemma-3b-224`, `tiny`, `paligemma2-small`, `paligemma2-3b-224`).
    pub config: String,
    pub trainables: Vec<TrainableKind>,
    /// LoRA rank and alpha (adapters on the decoder's q/k/v/o; issue 3: 8 and 16).
    pub lora_rank: usize,
    pub lora_alpha: f64,
    /// Seed of the weights, the LoRA A matrices and the batch.
    pub seed: u64,
    pub steps: usize,
    pub warmup: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Written in the rows (`cpu`, `cuda:0`).
    pub device_name: String,
    pub frozen_dtype: DType,
}

/// One line of the table (one trainable set); field names follow `tools/bench_reference.py --json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub tool: &'static str,
    pub config: String,
    pub device_name: String,
    pub dtype: String,
    pub threads: usize,
    /// The thread settings found in the environment (`RAYON_NUM_THREADS`, `CANDLE_NUM_THREADS`),
    /// e.g. `RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=1`; empty if none.
    pub thread_env: String,
    pub trainable: String,
    pub batch: usize,
    pub grad_accum: usize,
    pub seq_len: usize,
    pub trainable_params: usize,
    pub steps: usize,
    pub warmup: usize,
    pub build_s: f64,
    pub ms_per_step: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_all: Vec<f64>,
    /// Medians of the parts of a step (summed over its micro-batches).
    pub phases: Phases,
    pub score_ms_per_batch: f64,
    pub score_examples_per_s: f64,
    pub peak_mem_mib: Option<f64>,
    pub peak_mem_kind: &'static str,
    pub train_gflop_per_step: f64,
    pub score_gflop_per_batch: f64,
    pub train_tflops: f64,
    pub score_tflops: f64,
    pub loss_first: f64,
    pub loss_last: f64,
}

/// Medians over the timed steps of each part of a train step, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    /// Vision tower and projector.
    pub vision_ms: f64,
    /// Decoder forward and loss.
    pub forward_ms: f64,
    pub backward_ms: f64,
    /// Gradient accumulation and the SGD update.
    pub optimizer_ms: f64,
}

/// Benchmark each trainable set of `opts` on `device`, one row each.
pub fn run(opts: &BenchOptions, device: &Device) -> anyhow::Result<Vec<BenchRow>> {
    ensure!(
        opts.steps > 0 && opts.batch_size > 0 && opts.grad_accum > 0,
        "steps, batch size and grad accum must be ≥ 1"
    );
    opts.trainables.iter().map(|&kind| bench_one(opts, kind, device)).collect()
}

fn bench_one(opts: &BenchOptions, kind: TrainableKind, device: &Device) -> anyhow::Result<BenchRow> {
    memory::reset(device)?;
    let started = Instant::now();
    let source = ModelSource::Builtin { name: opts.config.clone(), seed: opts.seed };
    let mut loaded = load(&source, device, opts.frozen_dtype)?;
    let (trainable, step_kind) = match kind {
        TrainableKind::Attention => (Trainable::Attention, StepKind::Attention),
        TrainableKind::Lora => (
            Trainable::Lora(LoraConfig {
                rank: opts.lora_rank,
                alpha: opts.lora_alpha,
                targets: LoraTarget::ATTENTION.to_vec(),
            }),
            StepKind::LoraAttention { rank: opts.lora_rank },
        ),
    };
    let params = loaded.model.set_trainable(&trainable, opts.seed)?;
    let (pixels, batch) = random_batch(&loaded, opts.batch_size, opts.seed, device)?;
    device.synchronize()?;
    let build_s = started.elapsed().as_secs_f64();

    let mut optimizer = Optimizer::Sgd.build(&params.named)?;
    let mut losses = Vec::new();
    let mut phases = Vec::new();
    let mut train_step = || -> anyhow::Result<()> {
        // vision, forward, backward, update: ms of this step.
        let mut parts = [0.0; 4];
        let mut grads = GradAccumulator::new(&params.named);
        for _ in 0..opts.grad_accum {
            let features = part_ms(&mut parts[0], device, || Ok(loaded.model.image_features(&pixels)?))?;
            let loss =
                part_ms(&mut parts[1], device, || Ok(loaded.model.score(&features, &batch)?.mean_loss()?))?;
            let step_grads = part_ms(&mut parts[2], device, || Ok(loss.backward()?))?;
            losses.push(f64::from(loss.to_scalar::<f32>()?));
            part_ms(&mut parts[3], device, || grads.add(&step_grads))?;
        }
        part_ms(&mut parts[3], device, || optimizer.step(LEARNING_RATE, &grads.mean()?.grads))?;
        phases.push(parts);
        Ok(device.synchronize()?)
    };
    let train_ms = timed_ms(&mut train_step, opts.steps, opts.warmup)?;
    let mut score = || -> anyhow::Result<()> {
        let features = loaded.model.image_features(&pixels)?;
        loaded.model.score(&features, &batch)?.p_yes()?;
        Ok(())
    };
    let score_ms = timed_ms(&mut score, opts.steps, opts.warmup)?;
    let peak = memory::peak(device)?;

    let (train_flop, score_flop) = flops_per_example(&loaded.config, step_kind);
    let train_flop = train_flop * (opts.batch_size * opts.grad_accum) as f64;
    let score_flop = score_flop * opts.batch_size as f64;
    let ms_per_step = median(&train_ms);
    let score_ms_per_batch = median(&score_ms);
    let timed_phases = &phases[opts.warmup..];
    let phase = |i: usize| median(&timed_phases.iter().map(|p| p[i]).collect::<Vec<_>>());
    Ok(BenchRow {
        tool: "gacha bench",
        config: opts.config.clone(),
        device_name: opts.device_name.clone(),
        dtype: opts.frozen_dtype.as_str().to_string(),
        threads: if device.is_cpu() { candle_core::utils::get_num_threads() } else { 0 },
        thread_env: thread_env(),
        trainable: format!("{kind:?}").to_lowercase(),
        batch: opts.batch_size,
        grad_accum: opts.grad_accum,
        seq_len: loaded.model.num_image_tokens() + 1 + PROMPT_TOKENS + 3,
        trainable_params: params.num_params(),
        steps: opts.steps,
        warmup: opts.warmup,
        build_s,
        ms_per_step,
        ms_per_step_min: train_ms.iter().copied().fold(f64::INFINITY, f64::min),
        ms_per_step_all: train_ms,
        phases: Phases {
            vision_ms: phase(0),
            forward_ms: phase(1),
            backward_ms: phase(2),
            optimizer_ms: phase(3),
        },
        score_ms_per_batch,
        score_examples_per_s: opts.batch_size as f64 / (score_ms_per_batch / 1e3),
        peak_mem_mib: peak.bytes.map(|b| b as f64 / (1u64 << 20) as f64),
        peak_mem_kind: peak.how,
        train_gflop_per_step: train_flop / 1e9,
        score_gflop_per_batch: score_flop / 1e9,
        train_tflops: train_flop / (ms_per_step / 1e3) / 1e12,
        score_tflops: score_flop / (score_ms_per_batch / 1e3) / 1e12,
        loss_first: losses[0],
        loss_last: losses[losses.len() - 1],
    })
}

/// Run `f`, wait for the device, add the elapsed ms to `total`.
fn part_ms<T>(total: &mut f64, device: &Device, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let t0 = Instant::now();
    let out = f()?;
    device.synchronize()?;
    *total += t0.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// `NAME=value` of the thread-count variables that are set, space-separated.
fn thread_env() -> String {
    let set: Vec<String> = ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"]
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| format!("{name}={value}")))
        .collect();
    set.join(" ")
}

/// Seeded pixels in [-1, 1] `[B, 3, S, S]` and a batch of [`PROMPT`] with alternating answers.
fn random_batch(
    loaded: &LoadedModel,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(Tensor, PromptBatch)> {
    let prompt_tokens = loaded.tokenizer.encode_prompt(PROMPT)?.len();
    ensure!(
        prompt_tokens == PROMPT_TOKENS,
        "the benchmark prompt is {prompt_tokens} tokens, not {PROMPT_TOKENS}"
    );
    let size = loaded.config.vision_config.image_size;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..batch_size * 3 * size * size).map(|_| rng.random_range(-1.0..1.0)).collect();
    let pixels = Tensor::from_vec(values, (batch_size, 3, size, size), device)?;
    let items: Vec<PromptItem> =
        (0..batch_size).map(|i| PromptItem { prompt: PROMPT, answer: answer_of(i) }).collect();
    Ok((pixels, loaded.tokenizer.batch(&items)?))
}

/// The answer of the bench batch's example `i`: yes, no, yes, …
fn answer_of(i: usize) -> Label {
    if i.is_multiple_of(2) {
        Label::Positive
    } else {
        Label::Negative
    }
}

/// Milliseconds of each of `steps` runs of `f`, after `warmup` untimed ones.
fn timed_ms(
    f: &mut dyn FnMut() -> anyhow::Result<()>,
    steps: usize,
    warmup: usize,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    (0..steps)
        .map(|_| {
            let t0 = Instant::now();
            f()?;
            Ok(t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The table: the columns of `tools/bench_reference.py`, one line per row, then one line of notes.
pub fn table(rows: &[BenchRow]) -> String {
    let headers = [
        "config",
        "device",
        "dtype",
        "thr",
        "trainable",
        "batch",
        "accum",
        "seq",
        "ms/step",
        "min",
        "vis/fwd/bwd/opt ms",
        "score ex/s",
        "peak MiB",
        "train TFLOP/s",
        "score TFLOP/s",
    ];
    let g = |v: f64| format!("{}", Sig4(v));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.config.clone(),
                r.device_name.clone(),
                r.dtype.clone(),
                r.threads.to_string(),
                r.trainable.clone(),
                r.batch.to_string(),
                r.grad_accum.to_string(),
                r.seq_len.to_string(),
                g(r.ms_per_step),
                g(r.ms_per_step_min),
                {
                    let p = &r.phases;
                    format!(
                        "{:.0}/{:.0}/{:.0}/{:.0}",
                        p.vision_ms, p.forward_ms, p.backward_ms, p.optimizer_ms
                    )
                },
                g(r.score_examples_per_s),
                r.peak_mem_mib.map_or_else(|| "n/a".to_string(), g),
                g(r.train_tflops),
                g(r.score_tflops),
            ]
        })
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| cells.iter().map(|c| c[i].len()).fold(h.len(), usize::max))
        .collect();
    let line = |items: Vec<&str>| {
        items.iter().zip(&widths).map(|(s, w)| format!("{s:>w$}")).collect::<Vec<_>>().join("  ") + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in &cells {
        out += &line(row.iter().map(String::as_str).collect());
    }
    for r in rows {
        out += &format!(
            "{}: trainable {}; loss {:.4} -> {:.4}; train {} GFLOP/step, score {} GFLOP/batch; peak = {}; \
             median of {} after {} warm-up; {}\n",
            r.trainable,
            r.trainable_params,
            r.loss_first,
            r.loss_last,
            Sig4(r.train_gflop_per_step),
            Sig4(r.score_gflop_per_batch),
            r.peak_mem_kind,
            r.steps,
            r.warmup,
            match r.thread_env.as_str() {
                "" => "no RAYON_NUM_THREADS/CANDLE_NUM_THREADS set",
                env => env,
            }
        );
    }
    out
}

/// A number with 4 significant digits, as Python's `{:.4g}` (no exponent below 1e9).
struct Sig4(f64);

impl std::fmt::Display for Sig4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() {
            return write!(f, "{v}");
        }
        let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
        let text = format!("{v:.digits$}");
        let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_significant_digits_like_python() {
        let show = |v: f64| Sig4(v).to_string();
        assert_eq!(show(1234.567), "1235");
        assert_eq!(show(12.3456), "12.35");
        assert_eq!(show(0.012345), "0.01235");
        assert_eq!(show(2.5), "2.5");
        assert_eq!(show(100.0), "100");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn tiny_bench_runs_both_trainable_sets() {
        let opts = BenchOptions {
            config: "tiny".into(),
            trainables: vec![TrainableKind::Lora, TrainableKind::Attention],
            lora_rank: 8,
            lora_alpha: 16.0,
            seed: 0,
            steps: 2,
            warmup: 0,
            batch_size: 2,
            grad_accum: 2,
            device_name: "cpu".into(),
            frozen_dtype: DType::F32,
        };
        let rows = run(&opts, &Device::Cpu).unwrap();
        assert_eq!(rows.len(), 2);
        // tiny: 64 image tokens (56 px, patch 7) + <bos> + 14 + "\n", answer, <eos>; LoRA r 8 on q/k/v/o of 2 layers:
        // 2·8·((64 + 96) + (96 + 64) + (64 + 24) + (64 + 24)) = 7,936 (q: 4 heads × 24 = 96 wide).
        assert_eq!((rows[0].seq_len, rows[0].trainable_params), (82, 7_936));
        assert!(rows.iter().all(|r| r.ms_per_step_all.len() == 2 && r.loss_first.is_finite()));
        // The parts of a step add up to at most the step (the step also reads the loss).
        for r in &rows {
            let p = &r.phases;
            let parts = p.vision_ms + p.forward_ms + p.backward_ms + p.optimizer_ms;
            assert!(
                parts > 0.0 && parts <= r.ms_per_step_all.iter().copied().fold(0.0, f64::max) * 1.01,
                "{r:?}"
            );
        }
        assert!(rows.iter().all(|r| r.peak_mem_mib.is_some_and(|m| m > 0.0)));
        let text = table(&rows);
        assert!(text.starts_with("config  device  dtype  thr  trainable"), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
    }
}
