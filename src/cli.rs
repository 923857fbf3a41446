//! Command-line arguments: clap structs, one per subcommand, plus the option groups they share.
//!
//! Values here are checked for shape only (a number is a number); `cmd::*` turns them into the
//! typed options the library works with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::{ExifOrientation, FramePolicy, Resize};
use crate::device::DeviceSpec;
use crate::logging::Verbosity;
use crate::machine::cpu_workers::WorkerSetting;
use crate::model::ModelSource;
use crate::train::config::defaults;
use crate::train::{TrainConfig, TrainableKind};

/// Fine-tune PaliGemma into a yes/no image classifier, many times over, and keep the best run.
///
/// A sweep spec (TOML) lists seeds, splits, learning rates and prompts; `gacha sweep` trains one
/// model per combination, aborts and reseeds runs whose loss explodes, scores every run before and
/// after training, writes a CSV leaderboard and keeps the best checkpoint. Killed at any moment,
/// the same command resumes where it stopped.
#[derive(Debug, Parser)]
#[command(name = "gacha", version, about, long_about)]
pub struct Cli {
    /// Say more on stderr (per-step details).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Say nothing on stderr except warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a dataset (.jsonl) or a sweep spec (.toml) and summarise it; lists every problem.
    Check(CheckArgs),
    /// Shuffle a dataset with a seed and write train.jsonl and valid.jsonl.
    Split(SplitArgs),
    /// Write the demo dataset (96 synthetic web-ad images and data.jsonl) from a seed.
    DemoData(DemoDataArgs),
    /// Run every trial of a sweep spec, then write the leaderboard, best/ and report.html.
    /// Killed or interrupted, the same command resumes: finished trials are skipped.
    Sweep(SweepArgs),
    /// Run one trial of a sweep spec by its index (a Slurm array task, a Kubernetes indexed
    /// job); once every trial is finished, the one that finished last makes the final model.
    Trial(TrialArgs),
    /// Write (and with --submit, submit) a Slurm job array over the trials not yet finished.
    Slurm(SlurmArgs),
    /// What a results folder holds: trials finished, running (worker, heartbeat), stale, waiting.
    Status(StatusArgs),
    /// Show a results folder's leaderboard (--configs: its configs); with a second folder, what
    /// changed per trial.
    Leaderboard(LeaderboardArgs),
    /// Write DIR/report.html (leaderboard, loss curves, the best trial's metrics).
    Report(ReportArgs),
    /// Score every image of a dataset; write a CSV: image,label,p_yes,logit_yes,logit_no,loss.
    Score(ScoreArgs),
    /// Score datasets and print tp/tn/fp/fn, accuracy, precision, recall and F-measure for each.
    Eval(EvalArgs),
    /// Fine-tune on a dataset (attention weights or LoRA) and save what was trained.
    Train(TrainArgs),
    /// Write a model with its adapter merged in as a Hugging Face checkpoint folder (--format
    /// npz: a big_vision .npz).
    Export(ExportArgs),
    /// Time training steps and scoring on a named config with random weights; print a table.
    Bench(BenchArgs),
}

/// How dataset lines are read: answer words, which one is positive, frames of animations,
/// EXIF orientation, path policy.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The two answer words, positive class first: an example's "suffix" must be one of them.
    /// Precision and recall are computed for the first (positive) word.
    #[arg(long, value_delimiter = ',', default_values = ["yes", "no"])]
    pub answers: Vec<String>,
    /// Which frames of an animated image (GIF, PNG, WebP) to use: first, last, middle or all
    /// (one example per frame when training; when scoring, the image gets the lowest
    /// positive-answer probability of its frames, i.e. it is judged by its worst frame).
    #[arg(long, visible_alias = "gif-frames", value_enum, default_value_t = FramePolicy::All)]
    pub frames: FramePolicy,
    /// Turn images as their EXIF orientation tag says before resizing (apply, as transformers
    /// does), or use the pixels as stored (ignore).
    #[arg(long, value_enum, default_value_t = ExifOrientation::Apply)]
    pub exif_orientation: ExifOrientation,
    /// The resize filter: bilinear (antialiased triangle, big_vision's recipe) or bicubic (PIL's,
    /// as transformers' SigLIP processor). Default: the model's own (a checkpoint folder's
    /// preprocessor_config.json or processor_config.json; bilinear for .npz and built-in models).
    #[arg(long, value_enum)]
    pub resize: Option<Resize>,
    /// Allow image paths that are absolute or leave the dataset folder (refused by default).
    #[arg(long)]
    pub allow_outside_paths: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A dataset (.jsonl) or a sweep spec (.toml; its [data] table sets the answers, frames,
    /// EXIF orientation and resize, and the dataset flags below are not used).
    pub path: PathBuf,
    /// Accept JPEGs with entropy-coding errors that training decodes past (filling in from the
    /// damage on), counting them in the summary, instead of listing them as problems.
    #[arg(long)]
    pub lenient: bool,
    /// With a spec: list its trials, each with the index `gacha trial --index` takes (from 0,
    /// in the order the sweep runs them), instead of checking the model and the images.
    #[arg(long)]
    pub trials: bool,
    /// See what the model sees: write each image's first model frame as decoded, before the
    /// resize (EXIF orientation applied, an animation's frame composited, alpha kept), as a
    /// lossless PNG DIR/<line>-<stem>.decoded.png (<line>: its line in the dataset). DIR must be
    /// new or empty.
    #[arg(long, value_name = "DIR", conflicts_with = "trials")]
    pub save_inputs: Option<PathBuf>,
    /// With a spec: the device the sweep will run on, for its memory estimate (cpu: frozen
    /// weights in f32, checked against the host's memory; cuda: in bf16, checked against the
    /// GPU's free memory).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Do not refuse a spec whose estimated peak memory (shown by `gacha check`) is above the
    /// memory available: the estimate may be wrong. Available on CPU: MemAvailable in
    /// /proc/meminfo or the cgroup's limit, whichever is less, or $GACHA_MEMORY_LIMIT_BYTES when
    /// set; on a GPU: its free memory per nvidia-smi less 1 GiB for the CUDA context, or
    /// $GACHA_GPU_MEMORY_LIMIT_BYTES when set.
    #[arg(long)]
    pub no_memory_check: bool,
    /// A spec's results folder, for the plan's durations (the trials finished there) [default:
    /// results/<name> in the current folder].
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    #[command(flatten)]
    pub options: DataArgs,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The dataset to split (.jsonl).
    pub data: PathBuf,
    /// Validation size: a count (10) or a fraction of the dataset (0.1, rounded to nearest,
    /// halves up: 96 × 0.1 → 10).
    #[arg(long)]
    pub valid: String,
    /// Seed of the shuffle; the same seed gives the same split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the answer proportions equal in train and valid.
    #[arg(long)]
    pub stratify: bool,
    /// Folder for train.jsonl and valid.jsonl (image paths are rewritten to still resolve).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub options: DataArgs,
}

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Folder for data.jsonl and images/ (files of the same names are replaced).
    #[arg(long, default_value = "sweeps/demo")]
    pub out: PathBuf,
    /// Seed of the generator; the committed sweeps/demo was made with the default.
    #[arg(long, default_value_t = crate::demo::DEFAULT_SEED)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Claim and run trials until none is left that no live worker holds, then exit, without
    /// waiting for the trials other workers run (the last worker to finish makes the final
    /// model). Start as many as you like, on any hosts that share the results folder.
    #[arg(long, conflicts_with = "devices")]
    pub worker: bool,
    /// Run one worker per device, e.g. cuda:0,cuda:1 (cpu,cpu gives two CPU workers); each
    /// loads the model and computes the image features once. Replaces --device.
    #[arg(long, value_name = "LIST", value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<DeviceSpec>,
    /// CPU sweeps: worker processes run side by side, each taking the next unclaimed trial with
    /// cores / N threads. `auto`: one per core, as many as the memory check says fit (one when
    /// memory is not checked); with RAYON_NUM_THREADS set, cores / that many. A small model's
    /// step gains little from a second thread, a second trial at once nearly doubles the pace.
    /// `1`: this process alone, with every core
    #[arg(long, value_name = "N|auto", default_value = "auto", conflicts_with_all = ["worker", "devices"])]
    pub workers: WorkerSetting,
}

/// What every command that runs trials of a spec takes: `gacha sweep` and `gacha trial`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The sweep spec (.toml); see sweeps/example.toml for every key.
    pub spec: PathBuf,
    /// Results folder [default: results/<name> in the current folder, <name> from the spec].
    /// Any number of gacha processes may write into one folder at once: each claims a trial
    /// before running it (see docs/cluster.md).
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Where the model runs: cpu, cuda or cuda:N (a CUDA device needs a build with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Also rerun the trials that failed for a reason that would repeat (a bad input); failures
    /// of the environment (no space, I/O, out of memory) are retried on every run anyway. Only
    /// failures from before this run started are rerun.
    #[arg(long)]
    pub retry_failed: bool,
    /// Let `[select] keep` remove weights that the keep of an earlier spec of this results
    /// folder kept (by default they are spared, and listed).
    #[arg(long)]
    pub prune: bool,
    /// Do not refuse a spec whose estimated peak memory (shown by `gacha check`) is above the
    /// memory available: the estimate may be wrong. Available on CPU: MemAvailable in
    /// /proc/meminfo or the cgroup's limit, whichever is less, or $GACHA_MEMORY_LIMIT_BYTES when
    /// set; on a GPU: its free memory per nvidia-smi less 1 GiB for the CUDA context, or
    /// $GACHA_GPU_MEMORY_LIMIT_BYTES when set.
    #[arg(long)]
    pub no_memory_check: bool,
    /// Start no pull that cannot end before this local time of day, `HH:MM` (tomorrow when it
    /// has passed today), leaving time for the final model; the final model and every file are
    /// then made of the pulls finished, and say the sweep stopped on its budget. The same command
    /// with a later time goes on where it stopped. `@SECONDS`: a Unix time (what workers get).
    #[arg(long, value_name = "HH:MM", conflicts_with = "for_")]
    pub until: Option<String>,
    /// As --until, a duration from now: `8h`, `90m`, `1h30m`, `45s`.
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Testing aid: train nothing; a scripted stand-in for the model gives results that are a
    /// fixed function of each trial's parameters (see src/sweep/scripted.rs).
    #[arg(long, hide = true)]
    pub debug_scripted_runner: bool,
    /// Testing aid: how long each scripted step sleeps, in milliseconds.
    #[arg(long, hide = true, default_value_t = 2, value_name = "MS")]
    pub debug_step_ms: u64,
}

#[derive(Debug, Args)]
pub struct TrialArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Which trial: its index in the spec's expanded grid, counted from 0 in the order
    /// `gacha check SPEC --trials` lists [default: $SLURM_ARRAY_TASK_ID, else
    /// $JOB_COMPLETION_INDEX (a Kubernetes indexed job)].
    #[arg(long, value_name = "N")]
    pub index: Option<usize>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A results folder (results/<name>).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Where to write the sbatch script [default: DIR/slurm/array-<time>.sbatch in the
    /// results folder].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// #SBATCH --partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// #SBATCH --gres, e.g. gpu:1.
    #[arg(long)]
    pub gres: Option<String>,
    /// #SBATCH --time, e.g. 2:00:00 (per trial).
    #[arg(long)]
    pub time: Option<String>,
    /// Run at most K array tasks at once (--array=…%K).
    #[arg(long, value_name = "K")]
    pub max_parallel: Option<usize>,
    /// A race, or a spec that screens prompts, runs as N worker tasks, each taking the sweep's
    /// next pulls (`gacha sweep --worker`) until none is left; the last one makes the final
    /// model [default: --max-parallel, else 4]. A grid runs one task per unfinished trial.
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,
    /// #SBATCH --account.
    #[arg(long)]
    pub account: Option<String>,
    /// Another #SBATCH line, written as given (repeatable), e.g. --sbatch "--mem=32G".
    #[arg(long = "sbatch", value_name = "OPTION")]
    pub extra: Vec<String>,
    /// Run sbatch on the script and print the job id.
    #[arg(long)]
    pub submit: bool,
    /// The gacha binary the tasks run [default: this one].
    #[arg(long, value_name = "PATH")]
    pub gacha: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// A results folder (results/<name>).
    pub dir: PathBuf,
    /// Another results folder: show what changed from DIR to this one, per trial id.
    pub other: Option<PathBuf>,
    /// Show the configs, each judged over all its pulls, instead of the trials.
    ///
    /// A config is a trial's parameters less its seed and fold. Its pulls' validation answers
    /// are pooled (out of fold in k-fold, every seed's hold-out in holdout); a diverged pull
    /// counts each of its validation images as a wrong answer, a failed one is left out. Configs
    /// are ranked by the lower end of the Wilson 95% interval of the select metric on the pooled
    /// validation counts (f1, which has no interval: its value), then the value, pooled f1 and
    /// the mean final loss; a config without a done pull ranks last.
    ///
    /// Columns: rank; config (its id); the axes with more than one value; pulls (finished),
    /// diverged, failed; the select metric, METRIC_low and METRIC_high (its interval); f1;
    /// vs_best: best, worse (a mid-p McNemar test on the images both configs answered, paired
    /// by image, seed and repeat, a diverged pull's images answered wrong, gives p < 0.05 and
    /// the best was right more often),
    /// indistinguishable (not shown worse) or untested (no image in common); p_vs_best, that
    /// p-value; mean_final_loss of the done pulls. DIR/configs.csv has every column.
    #[arg(long, conflicts_with = "other")]
    pub configs: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results folder (results/<name>).
    pub dir: PathBuf,
}

/// Which model, which adapter, where it runs: shared by score, eval and train.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A checkpoint folder (config.json, model.safetensors, tokenizer.json), a big_vision
    /// checkpoint FILE.npz (tokenizer.json beside it, or --tokenizer), a hub id OWNER/NAME[@REV]
    /// from the local Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else
    /// ~/.cache/huggingface/hub; REV a branch, tag or commit sha, default main), downloaded into
    /// it from HF_ENDPOINT when missing (a gated model needs HF_TOKEN; HF_HUB_OFFLINE=1: never),
    /// or builtin:NAME for a named config with random weights (builtin:tiny for tests). A path
    /// that exists wins; OWNER/NAME with one slash that names no file or folder is a hub id
    /// (write ./OWNER/NAME for a folder).
    #[arg(long)]
    pub model: ModelSource,
    /// The tokenizer.json of a big_vision .npz, when it is not beside it.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// An adapter folder written by `gacha train --out` or a PEFT LoRA adapter from Python.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Where the model runs and in which dtype its frozen weights live: shared by the model commands
/// and bench.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// cpu, cuda or cuda:N (a CUDA device needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// dtype of the frozen weights [default: f32 on cpu, bf16 on cuda]; trainables are f32.
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
}

impl RuntimeArgs {
    /// `--dtype`, else the device's default.
    pub fn frozen_dtype(&self) -> candle_core::DType {
        DTypeArg::or_default(self.dtype, self.device)
    }
}

/// `--dtype`: the dtype of frozen weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    F32,
    Bf16,
    F16,
}

impl DTypeArg {
    /// The chosen dtype, else the device's default ([`DeviceSpec::frozen_dtype`]).
    pub fn or_default(arg: Option<DTypeArg>, device: DeviceSpec) -> candle_core::DType {
        match arg {
            None => device.frozen_dtype(),
            Some(DTypeArg::F32) => candle_core::DType::F32,
            Some(DTypeArg::Bf16) => candle_core::DType::BF16,
            Some(DTypeArg::F16) => candle_core::DType::F16,
        }
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset to score (.jsonl).
    #[arg(long)]
    pub data: PathBuf,
    /// The prompt given with every image [default: each line's "prefix"].
    #[arg(long)]
    pub prompt: Option<String>,
    /// Where to write the CSV.
    #[arg(long)]
    pub out: PathBuf,
    /// Image frames per forward pass.
    #[arg(long, default_value_t = crate::eval::score::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    #[command(flatten)]
    pub data_options: DataArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt given with every image [default: each line's "prefix"].
    #[arg(long)]
    pub prompt: Option<String>,
    /// Predict the positive answer when p_yes is above this.
    #[arg(long, default_value_t = crate::eval::result::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Image frames per forward pass.
    #[arg(long, default_value_t = crate::eval::score::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Datasets to evaluate (.jsonl), each reported on its own.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub data_options: DataArgs,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The training set (.jsonl).
    #[arg(long)]
    pub data: PathBuf,
    /// The prompt given with every image [default: each line's "prefix"].
    #[arg(long)]
    pub prompt: Option<String>,
    /// The training settings, named and defaulted as a sweep spec's `[train]` keys. With
    /// --adapter, --trainable must be the adapter's kind, and a LoRA adapter's own rank, alpha and
    /// targets are used.
    #[command(flatten)]
    pub train: TrainConfig,
    /// Folder to save the adapter in.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data_options: DataArgs,
}

/// `gacha export`.
///
/// --dtype is the dtype written (hf only; default: each tensor's dtype in the base); the model
/// is always loaded and merged in f32.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// hf: a Hugging Face checkpoint folder (config, sharded safetensors with an index,
    /// tokenizer and processor files copied from the --model folder or hub snapshot) that
    /// transformers loads without PEFT. npz: a big_vision .npz with the keys, shapes and dtypes of
    /// the --model .npz. The decoder weights come from the model (attention weights, or LoRA
    /// merged), every other tensor is copied unchanged.
    #[arg(long, value_enum, default_value_t = ExportFormat::Hf)]
    pub format: ExportFormat,
    /// The folder (hf; it must not exist or be empty) or file (npz) to write.
    #[arg(long)]
    pub out: PathBuf,
    /// hf: the largest safetensors shard, in bytes or with a KB, MB or GB suffix (decimal, as
    /// transformers' max_shard_size).
    #[arg(long, default_value = "5GB", value_parser = parse_bytes)]
    pub max_shard_size: u64,
}

/// `--format` of `gacha export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Hf,
    Npz,
}

/// `5GB`, `200MB`, `64KB` or a plain number of bytes (decimal units).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{text:?}: expected bytes, or a number with KB, MB or GB")),
    };
    let value: u64 =
        digits.parse().map_err(|_| format!("{text:?}: expected a whole number before the unit"))?;
    match value.checked_mul(scale) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(format!("{text:?}: expected a positive size")),
    }
}

/// `gacha bench`.
///
/// Builds a named config with random weights and a fixed batch of `--batch-size` examples (image
/// tokens, <bos>, a 14-token prompt, "\n", the answer, <eos>), then per trainable set runs
/// `--warmup` untimed and `--steps` timed train steps (vision tower and decoder forward, backward,
/// a plain-SGD update; `--grad-accum` micro-batches per step) and as many scoring passes (forward,
/// image features included). Prints one table: median and min ms per step and its parts (vision,
/// decoder forward, backward, update), scoring examples/s, peak memory, achieved TFLOP/s.
///
/// FLOPs are tools/bench_reference.py's count (multiply-add = 2, docs/design.md §11): forward =
/// vision (patch conv, 2 × matmul params per token, attention 4·N²·D per layer) + projector +
/// decoder (2 × matmul params per token, attention 4·T²·H·hd per layer) + head at 3 rows; a train
/// step = vision and projector forward only (frozen), decoder and head twice (forward and input
/// gradients), plus the trainables' weight gradients (2·T·params; LoRA: A and B).
///
/// Peak memory: on CPU the process's peak resident set (VmHWM, reset per row); on CUDA the
/// high-water mark of the memory pool candle allocates from (live tensors, like
/// torch.cuda.max_memory_allocated).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A named config: small (issue 3's CPU benchmark), paligemma-3b-224 (the real shapes), tiny;
    /// PaliGemma 2: paligemma2-small, paligemma2-3b-224.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Trainable sets to time, one table row each (LoRA on q,k,v,o).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lora,attention")]
    pub trainable: Vec<TrainableKind>,
    /// LoRA rank.
    #[arg(long, default_value_t = defaults::lora_rank())]
    pub lora_rank: usize,
    /// LoRA alpha (scale alpha / rank).
    #[arg(long, default_value_t = defaults::lora_alpha())]
    pub lora_alpha: f64,
    /// Seed of the weights, the LoRA A matrices and the batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timed train steps and scoring passes (medians reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps and passes before timing.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Passes per train step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// CPU threads (sets RAYON_NUM_THREADS) [default: candle's choice].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Instead of the standard rows: K trials trained together (`[sweep] pack`) for each K
    /// given (e.g. 1,4,8), on image features computed once; ms per step and trials per hour
    /// against K = 1.
    #[arg(long, value_delimiter = ',')]
    pub pack: Vec<usize>,
    /// Print one JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}
