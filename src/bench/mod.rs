//! `gacha bench`: time training steps and a scoring pass of a named PaliGemma config with random
//! weights, on a fixed batch of the shape, and report ms per step, examples/s, peak memory
//! and achieved TFLOP/s ([`flops`] says how FLOPs are counted).
//!
//! A train step is what `gacha train` does per step: for each of `grad_accum` micro-batches the
//! frozen vision tower and projector, the decoder forward and loss, backward, and the gradients
//! added to a [`GradAccumulator`]; then one plain-SGD update through [`Optimizer`]. The scoring
//! pass is the forward of `gacha score`: image features, decoder, yes/no logits and losses copied
//! to the host. The same batch is used every step: timings only, the loss is logged as a sanity
//! check.

pub mod flops;
pub mod memory;
mod table;

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::Label;
use crate::device::DeviceSpec;
use crate::model::{self, LoadedModel, ModelSource, PromptBatch, PromptItem, Trainable};
use crate::train::optim::{GradAccumulator, Optimizer};
use flops::{example_flops, Counted};
pub use table::render;

/// The prompt length: 14 tokens of the built-in tokenizer (checked when the batch is made).
pub const PROMPT: &str = "is this image appropriate based on federal food drug and cosmetic act rules ?";
pub const PROMPT_TOKENS: usize = 14;

/// Learning rate of the SGD updates (small: the weights should stay sane over many steps).
const LR: f64 = 1e-3;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A named config ([`crate::model::config::NAMED_CONFIGS`]).
    pub config: String,
    /// One report row per entry, measured in this order.
    pub trainables: Vec<Trainable>,
    /// Timed train steps and scoring passes (medians reported).
    pub steps: usize,
    /// Untimed steps and passes before the timed ones.
    pub warmup: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Seed of the random weights, the LoRA A matrices and the batch.
    pub seed: u64,
    pub device: DeviceSpec,
    /// Dtype of the frozen weights (trainables are f32).
    pub dtype: DType,
}

/// Medians over the timed steps of each part of a train step, in ms (summed over micro-batches).
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

/// One trainable set's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    pub trainable: String,
    pub trainable_params: usize,
    pub ms_per_step: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_all: Vec<f64>,
    pub examples_per_s: f64,
    pub phases: Phases,
    pub score_ms_per_batch: f64,
    pub score_examples_per_s: f64,
    /// Peak over this row's steps and scoring passes (see `peak_mem_kind`), MiB.
    pub peak_mem_mib: Option<f64>,
    pub peak_mem_kind: String,
    pub train_gflop_per_step: f64,
    pub score_gflop_per_batch: f64,
    pub train_tflops: f64,
    pub score_tflops: f64,
    pub loss_first: f32,
    pub loss_last: f32,
}

/// The whole benchmark: the setting, then one row per trainable set.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub tool: &'static str,
    pub config: String,
    pub device: String,
    pub dtype: String,
    /// Threads of the rayon pool (matmuls and gacha's fused ops).
    pub threads: usize,
    /// The thread settings found in the environment (`RAYON_NUM_THREADS`, `CANDLE_NUM_THREADS`:
    /// candle's own pool for its element-wise ops), e.g. `RAYON_NUM_THREADS=2`; empty if none.
    pub thread_env: String,
    pub batch: usize,
    pub grad_accum: usize,
    /// Decoder rows per example (image tokens + text).
    pub seq_len: usize,
    pub params: usize,
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
    pub build_s: f64,
    pub rows: Vec<RowReport>,
}

/// A fixed batch: pixels `[B, 3, S, S]` uniform in [-1, 1] and the tokenized prompts, answers
/// alternating yes, no, yes, …
struct Batch {
    pixels: Tensor,
    prompts: PromptBatch,
}

impl Batch {
    fn new(loaded: &LoadedModel, size: usize, seed: u64, device: &Device) -> anyhow::Result<Batch> {
        let prompt_len = loaded.tokenizer.encode_prompt(PROMPT)?.len();
        if prompt_len != PROMPT_TOKENS {
            anyhow::bail!("the benchmark prompt encodes to {prompt_len} tokens, expected {PROMPT_TOKENS}");
        }
        let items: Vec<PromptItem> = (0..size)
            .map(|i| PromptItem {
                prompt: PROMPT,
                answer: if i % 2 == 0 { Label::Positive } else { Label::Negative },
            })
            .collect();
        let s = loaded.config.vision_config.image_size;
        let channels = loaded.config.vision_config.num_channels;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..size * channels * s * s).map(|_| rng.random_range(-1.0..1.0)).collect();
        Ok(Batch {
            pixels: Tensor::from_vec(values, (size, channels, s, s), device)?,
            prompts: loaded.tokenizer.batch(&items)?,
        })
    }
}

/// Run the benchmark.
pub fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    if options.steps == 0 || options.batch_size == 0 || options.grad_accum == 0 {
        anyhow::bail!("--steps, --batch-size and --grad-accum must be at least 1");
    }
    let device = options.device.open()?;
    let source = ModelSource::Builtin { name: options.config.clone(), seed: options.seed };
    crate::info!(
        "bench: building {source} on {} ({} frozen weights)",
        options.device,
        dtype_name(options.dtype)
    );
    let start = Instant::now();
    let mut loaded = model::load(&source, &device, options.dtype)?;
    let batch = Batch::new(&loaded, options.batch_size, options.seed, &device)?;
    device.synchronize()?;
    let build_s = start.elapsed().as_secs_f64();
    let params = flops::parameters(&loaded.config);
    let text_len = batch.prompts.input_ids(&Device::Cpu)?.dim(1)?;

    let mut rows = Vec::new();
    for trainable in &options.trainables {
        crate::info!(
            "bench: {} ({} steps after {} warm-up)",
            trainable_name(trainable),
            options.steps,
            options.warmup
        );
        rows.push(bench_trainable(&mut loaded, &batch, trainable, text_len, options, &device)?);
    }
    Ok(BenchReport {
        tool: "gacha bench",
        config: options.config.clone(),
        device: options.device.to_string(),
        dtype: dtype_name(options.dtype).to_string(),
        threads: rayon::current_num_threads(),
        thread_env: thread_env(),
        batch: options.batch_size,
        grad_accum: options.grad_accum,
        seq_len: loaded.config.num_image_tokens() + text_len,
        params,
        steps: options.steps,
        warmup: options.warmup,
        seed: options.seed,
        build_s,
        rows,
    })
}

/// `NAME=value` of the thread-count variables that are set, space-separated.
fn thread_env() -> String {
    let set: Vec<String> = ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"]
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| format!("{name}={value}")))
        .collect();
    set.join(" ")
}

/// The trainable set's name as on the command line (`lora`, `attention`).
pub fn trainable_name(trainable: &Trainable) -> &'static str {
    match trainable {
        Trainable::Attention => "attention",
        Trainable::Lora(_) => "lora",
    }
}

/// `f32`, `bf16`, `f16`.
pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// Wall time of a closure, ms, after the device has finished its work.
fn timed<T>(device: &Device, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let start = Instant::now();
    let out = f()?;
    device.synchronize()?;
    Ok((out, start.elapsed().as_secs_f64() * 1e3))
}

/// Times of one train step: total and its parts, ms; and the mean loss of its micro-batches.
struct StepTimes {
    total: f64,
    phases: [f64; 4],
    loss: f32,
}

fn train_step(
    loaded: &LoadedModel,
    batch: &Batch,
    named: &[(String, candle_core::Var)],
    optimizer: &mut crate::train::optim::OptimizerState,
    grad_accum: usize,
    device: &Device,
) -> anyhow::Result<StepTimes> {
    let start = Instant::now();
    let mut phases = [0.0; 4];
    let mut loss_sum = 0.0;
    let mut accumulator = GradAccumulator::new(named);
    for _ in 0..grad_accum {
        let (features, ms) = timed(device, || Ok(loaded.model.image_features(&batch.pixels)?))?;
        phases[0] += ms;
        let (loss, ms) = timed(device, || Ok(loaded.model.score(&features, &batch.prompts)?.mean_loss()?))?;
        phases[1] += ms;
        let (grads, ms) = timed(device, || Ok(loss.backward()?))?;
        phases[2] += ms;
        loss_sum += loss.to_scalar::<f32>()?;
        let ((), ms) = timed(device, || accumulator.add(grads))?;
        phases[3] += ms;
    }
    let ((), ms) = timed(device, || optimizer.step(LR, &accumulator.mean()?.grads))?;
    phases[3] += ms;
    device.synchronize()?;
    let total = start.elapsed().as_secs_f64() * 1e3;
    Ok(StepTimes { total, phases, loss: loss_sum / grad_accum as f32 })
}

/// One scoring pass: image features, decoder, p_yes and losses on the host.
fn score_pass(loaded: &LoadedModel, batch: &Batch, device: &Device) -> anyhow::Result<f64> {
    let ((), ms) = timed(device, || {
        let features = loaded.model.image_features(&batch.pixels)?;
        let scores = loaded.model.score(&features, &batch.prompts)?;
        scores.p_yes()?;
        scores.loss.to_vec1::<f32>()?;
        Ok(())
    })?;
    Ok(ms)
}

fn bench_trainable(
    loaded: &mut LoadedModel,
    batch: &Batch,
    trainable: &Trainable,
    text_len: usize,
    options: &BenchOptions,
    device: &Device,
) -> anyhow::Result<RowReport> {
    let name = trainable_name(trainable);
    let params = loaded.model.set_trainable(trainable, options.seed)?;
    let mut optimizer = Optimizer::Sgd.build(&params.named)?;
    memory::reset(device)?;

    let mut steps = Vec::with_capacity(options.steps);
    for i in 0..options.warmup + options.steps {
        let step = train_step(loaded, batch, &params.named, &mut optimizer, options.grad_accum, device)
            .with_context(|| format!("{name} train step {}", i + 1))?;
        crate::debug!("bench: {name} step {}: {:.1} ms, loss {:.4}", i + 1, step.total, step.loss);
        if !step.loss.is_finite() {
            anyhow::bail!("{name} train step {}: the loss is {}", i + 1, step.loss);
        }
        if i >= options.warmup {
            steps.push(step);
        }
    }
    let mut scores = Vec::with_capacity(options.steps);
    for i in 0..options.warmup + options.steps {
        let ms =
            score_pass(loaded, batch, device).with_context(|| format!("{name} scoring pass {}", i + 1))?;
        if i >= options.warmup {
            scores.push(ms);
        }
    }
    let peak = memory::peak(device)?;

    let counted = match trainable {
        Trainable::Attention => Counted::Attention,
        Trainable::Lora(lora) => Counted::Lora(lora),
    };
    let per_example = example_flops(&loaded.config, text_len, counted);
    let examples = (options.batch_size * options.grad_accum) as f64;
    let train_flop = per_example.train() * examples;
    let score_flop = per_example.score() * options.batch_size as f64;
    let totals: Vec<f64> = steps.iter().map(|s| s.total).collect();
    let ms_per_step = median(&totals);
    let phase = |k: usize| median(&steps.iter().map(|s| s.phases[k]).collect::<Vec<_>>());
    let score_ms = median(&scores);
    Ok(RowReport {
        trainable: name.to_string(),
        trainable_params: params.num_params(),
        ms_per_step,
        ms_per_step_min: totals.iter().copied().fold(f64::INFINITY, f64::min),
        examples_per_s: examples / (ms_per_step / 1e3),
        phases: Phases {
            vision_ms: phase(0),
            forward_ms: phase(1),
            backward_ms: phase(2),
            optimizer_ms: phase(3),
        },
        score_ms_per_batch: score_ms,
        score_examples_per_s: options.batch_size as f64 / (score_ms / 1e3),
        peak_mem_mib: peak.bytes.map(|b| b as f64 / (1u64 << 20) as f64),
        peak_mem_kind: peak.how.to_string(),
        train_gflop_per_step: train_flop / 1e9,
        score_gflop_per_batch: score_flop / 1e9,
        train_tflops: train_flop / (ms_per_step / 1e3) / 1e12,
        score_tflops: score_flop / (score_ms / 1e3) / 1e12,
        loss_first: steps.first().map_or(f32::NAN, |s| s.loss),
        loss_last: steps.last().map_or(f32::NAN, |s| s.loss),
        ms_per_step_all: totals,
    })
}

/// Median (mean of the two middle values for an even count); NaN for no values.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
