//! Command-line arguments: clap structs, one per subcommand, plus the option groups they share.
//!
//! Values here are checked for shape only (a number is a number); `cmd::*` turns them into the
//! typed options the library works with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::Verbosity;

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
}

/// How dataset lines are read: answer words, which one is positive, GIF frames, path policy.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The two answer words, positive class first: an example's "suffix" must be one of them.
    /// Precision and recall are computed for the first (positive) word.
    #[arg(long, value_delimiter = ',', default_values = ["yes", "no"])]
    pub answers: Vec<String>,
    /// Which frames of an animated GIF to use: first, last, middle or all (one example per
    /// frame when training; when scoring, the image gets the lowest positive-answer
    /// probability of its frames, i.e. it is judged by its worst frame).
    #[arg(long, value_enum, default_value_t = GifFramesArg::All)]
    pub gif_frames: GifFramesArg,
    /// Allow image paths that are absolute or leave the dataset folder (refused by default).
    #[arg(long)]
    pub allow_outside_paths: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GifFramesArg {
    First,
    Last,
    Middle,
    All,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A dataset (.jsonl) or a sweep spec (.toml).
    pub path: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
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
