//! `gacha bench`: time training steps and a scoring pass on a named config with random weights, the
//! same work as `tools/bench_reference.py` does in PyTorch, and print the same table.
//!
//! The batch: `batch_size` random images (seeded) with a 14-token prompt and alternating answers.
//! A train step is what the reference times: for each of `grad_accum` micro-batches the frozen vision
//! tower and projector forward, the decoder forward and backward; then one plain-SGD update. (`gacha
//! train` itself computes image features once per image, so its steps skip the vision tower.) The
//! scoring pass is the forward of the same batch. Times are medians of `steps` timed repetitions
//! after `warmup` untimed ones, each ended by a device synchronisation.
//! Peak memory: on CPU the process's peak resident set (`VmHWM`, reset before each row through
//! `/proc/self/clear_refs`, so it includes building the model); on CUDA it is not measured.

pub mod flops;

use std::time::Instant;

use anyhow::{ensure, Context};
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
/// LoRA of the benchmark (issue 3): rank 8, alpha 16 on the decoder's q/k/v/o.
const LORA_RANK: usize = 8;
const LORA_ALPHA: f64 = 16.0;
/// Learning rate of the timed SGD steps (the reference's default).
const LEARNING_RATE: f64 = 1e-3;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A named config (`small`, `paligemma-3b-224`, `tiny`).
    pub config: String,
    pub trainables: Vec<TrainableKind>,
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
    pub trainable: String,
    pub batch: usize,
    pub grad_accum: usize,
    pub seq_len: usize,
    pub trainable_params: usize,
    pub steps: usize,
    pub warmup: usize,
    pub build_s: f64,
    pub ms_per_step: f64,
    pub ms_per_step_all: Vec<f64>,
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

/// Benchmark each trainable set of `opts` on `device`, one row each.
pub fn run(opts: &BenchOptions, device: &Device) -> anyhow::Result<Vec<BenchRow>> {
    ensure!(
        opts.steps > 0 && opts.batch_size > 0 && opts.grad_accum > 0,
        "steps, batch size and grad accum must be ≥ 1"
    );
    opts.trainables.iter().map(|&kind| bench_one(opts, kind, device)).collect()
}

fn bench_one(opts: &BenchOptions, kind: TrainableKind, device: &Device) -> anyhow::Result<BenchRow> {
    let on_cpu = device.is_cpu();
    if on_cpu {
        reset_peak_rss()?;
    }
    let started = Instant::now();
    let source = ModelSource::Builtin { name: opts.config.clone(), seed: 0 };
    let mut loaded = load(&source, device, opts.frozen_dtype)?;
    let (trainable, step_kind) = match kind {
        TrainableKind::Attention => (Trainable::Attention, StepKind::Attention),
        TrainableKind::Lora => (
            Trainable::Lora(LoraConfig {
                rank: LORA_RANK,
                alpha: LORA_ALPHA,
                targets: LoraTarget::ATTENTION.to_vec(),
            }),
            StepKind::LoraAttention { rank: LORA_RANK },
        ),
    };
    let params = loaded.model.set_trainable(&trainable, 0)?;
    let (pixels, batch) = random_batch(&loaded, opts.batch_size, device)?;
    device.synchronize()?;
    let build_s = started.elapsed().as_secs_f64();

    let mut optimizer = Optimizer::Sgd.build(&params.named)?;
    let mut losses = Vec::new();
    let mut train_step = || -> anyhow::Result<()> {
        let mut grads = GradAccumulator::new(&params.named);
        for _ in 0..opts.grad_accum {
            let features = loaded.model.image_features(&pixels)?;
            let loss = loaded.model.score(&features, &batch)?.mean_loss()?;
            losses.push(f64::from(loss.to_scalar::<f32>()?));
            grads.add(loss.backward()?)?;
        }
        optimizer.step(LEARNING_RATE, &grads.mean()?.grads)?;
        Ok(device.synchronize()?)
    };
    let train_ms = timed_ms(&mut train_step, opts.steps, opts.warmup)?;
    let mut score = || -> anyhow::Result<()> {
        let features = loaded.model.image_features(&pixels)?;
        loaded.model.score(&features, &batch)?.p_yes()?;
        Ok(())
    };
    let score_ms = timed_ms(&mut score, opts.steps, opts.warmup)?;
    let peak_mem_mib = if on_cpu { Some(peak_rss_bytes()? as f64 / (1u64 << 20) as f64) } else { None };

    let (train_flop, score_flop) = flops_per_example(&loaded.config, step_kind);
    let train_flop = train_flop * (opts.batch_size * opts.grad_accum) as f64;
    let score_flop = score_flop * opts.batch_size as f64;
    let ms_per_step = median(&train_ms);
    let score_ms_per_batch = median(&score_ms);
    Ok(BenchRow {
        tool: "gacha bench",
        config: opts.config.clone(),
        device_name: opts.device_name.clone(),
        dtype: format!("{:?}", opts.frozen_dtype).to_lowercase(),
        threads: if on_cpu { candle_core::utils::get_num_threads() } else { 0 },
        trainable: format!("{kind:?}").to_lowercase(),
        batch: opts.batch_size,
        grad_accum: opts.grad_accum,
        seq_len: loaded.model.num_image_tokens() + 1 + PROMPT_TOKENS + 3,
        trainable_params: params.num_params(),
        steps: opts.steps,
        warmup: opts.warmup,
        build_s,
        ms_per_step,
        ms_per_step_all: train_ms,
        score_ms_per_batch,
        score_examples_per_s: opts.batch_size as f64 / (score_ms_per_batch / 1e3),
        peak_mem_mib,
        peak_mem_kind: if on_cpu { "process peak RSS (VmHWM)" } else { "not measured on cuda" },
        train_gflop_per_step: train_flop / 1e9,
        score_gflop_per_batch: score_flop / 1e9,
        train_tflops: train_flop / (ms_per_step / 1e3) / 1e12,
        score_tflops: score_flop / (score_ms_per_batch / 1e3) / 1e12,
        loss_first: losses[0],
        loss_last: losses[losses.len() - 1],
    })
}

/// Seeded pixels in [-1, 1] `[B, 3, S, S]` and a batch of [`PROMPT`] with alternating answers.
fn random_batch(
    loaded: &LoadedModel,
    batch_size: usize,
    device: &Device,
) -> anyhow::Result<(Tensor, PromptBatch)> {
    let prompt_tokens = loaded.tokenizer.encode_prompt(PROMPT)?.len();
    ensure!(
        prompt_tokens == PROMPT_TOKENS,
        "the benchmark prompt is {prompt_tokens} tokens, not {PROMPT_TOKENS}"
    );
    let size = loaded.config.vision_config.image_size;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let values: Vec<f32> = (0..batch_size * 3 * size * size).map(|_| rng.random_range(-1.0..1.0)).collect();
    let pixels = Tensor::from_vec(values, (batch_size, 3, size, size), device)?;
    let items: Vec<PromptItem> = (0..batch_size)
        .map(|i| PromptItem {
            prompt: PROMPT,
            answer: if i % 2 == 0 { Label::Positive } else { Label::Negative },
        })
        .collect();
    Ok((pixels, loaded.tokenizer.batch(&items)?))
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

/// Reset the process's peak resident set size (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("resetting the peak RSS through /proc/self/clear_refs")
}

/// `VmHWM` of `/proc/self/status`, in bytes.
fn peak_rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("no VmHWM line in /proc/self/status")?;
    Ok(kib * 1024)
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
            "{}: trainable {}; loss {:.4} -> {:.4}; train {} GFLOP/step, score {} GFLOP/batch; peak = {}\n",
            r.trainable,
            r.trainable_params,
            r.loss_first,
            r.loss_last,
            Sig4(r.train_gflop_per_step),
            Sig4(r.score_gflop_per_batch),
            r.peak_mem_kind
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
            steps: 2,
            warmup: 0,
            batch_size: 2,
            grad_accum: 2,
            device_name: "cpu".into(),
            frozen_dtype: DType::F32,
        };
        let rows = run(&opts, &Device::Cpu).unwrap();
        assert_eq!(rows.len(), 2);
        // tiny: 16 image tokens + <bos> + 14 + "\n", answer, <eos>; LoRA r 8 on q/k/v/o of 2 layers:
        // 2·8·((64 + 96) + (96 + 64) + (64 + 24) + (64 + 24)) = 7,936 (q: 4 heads × 24 = 96 wide).
        assert_eq!((rows[0].seq_len, rows[0].trainable_params), (34, 7_936));
        assert!(rows.iter().all(|r| r.ms_per_step_all.len() == 2 && r.loss_first.is_finite()));
        assert!(rows.iter().all(|r| r.peak_mem_mib.is_some_and(|m| m > 0.0)));
        let text = table(&rows);
        assert!(text.starts_with("config  device  dtype  thr  trainable"), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
    }
}
