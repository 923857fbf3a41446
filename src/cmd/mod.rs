//! The command layer: [`run`] dispatches a parsed command line to one file per subcommand, which
//! turns its arguments into typed options, calls the library and prints; [`Outcome`] is how a
//! command ended, with every exit code of the binary.

pub mod bench;
pub mod check;
pub mod command_line;
pub mod deadline;
pub mod demo_data;
pub mod eval;
pub mod export;
pub mod leaderboard;
pub mod part;
mod plan;
pub mod report;
mod save_inputs;
pub mod score;
pub mod setup;
pub mod slurm;
pub mod split;
pub mod status;
pub mod stdout;
pub mod stop_signals;
pub mod sweep;
mod sweep_view;
pub mod train;
pub mod trial;
mod worker_screen;
pub mod workers;

use std::process::ExitCode;

use crate::cli::{Cli, Command, DataArgs};
use crate::data::{Answers, DataOptions, ImageOptions, PathPolicy};
use crate::device::DeviceSpec;
use crate::machine::gpu::GpuMemory;
use crate::spec::MemoryCheck;

/// How a command ended, and the exit code that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done: 0.
    Success,
    /// The command ran to the end but some of its work failed (failed trials, a `gacha train`
    /// run that diverged): 1.
    FinishedWithFailures,
    /// An error: bad input, or the command could not start or go on: 2.
    Error,
    /// Stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP after the current step; the same command
    /// resumes: 130 (128 + SIGINT, as shells report Ctrl-C), whichever signal it was.
    Interrupted,
}

impl Outcome {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::FinishedWithFailures => 1,
            Outcome::Error => 2,
            Outcome::Interrupted => 130,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Split(args) => split::run(&args),
        Command::DemoData(args) => demo_data::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Trial(args) => trial::run(&args),
        Command::Slurm(args) => slurm::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Leaderboard(args) => leaderboard::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Score(args) => score::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// The typed dataset options from `--answers`, `--frames`, `--exif-orientation`, `--resize` and
/// `--allow-outside-paths`.
pub fn data_options(args: &DataArgs) -> anyhow::Result<DataOptions> {
    let [positive, negative] = args.answers.as_slice() else {
        anyhow::bail!("--answers takes two words, positive first (e.g. --answers yes,no)");
    };
    if positive == negative {
        anyhow::bail!("--answers: the two answer words must differ (got {positive:?} twice)");
    }
    Ok(DataOptions {
        answers: Answers { positive: positive.clone(), negative: negative.clone() },
        images: ImageOptions {
            frames: args.frames,
            orientation: args.exif_orientation,
            resize: args.resize,
            ..Default::default()
        },
        paths: if args.allow_outside_paths {
            PathPolicy::AllowOutside
        } else {
            PathPolicy::InsideDatasetOnly
        },
    })
}

/// What a spec's estimated peak memory is checked against on `device` (`--no-memory-check`: nothing).
pub fn memory_check(no_memory_check: bool, device: DeviceSpec) -> anyhow::Result<MemoryCheck> {
    if no_memory_check {
        return Ok(MemoryCheck::Skipped("not checked: --no-memory-check".into()));
    }
    if let DeviceSpec::Cuda(ordinal) = device {
        return Ok(match crate::machine::gpu::available_gpu_memory(ordinal).map_err(anyhow::Error::msg)? {
            GpuMemory::Free(limit) => MemoryCheck::Against(limit),
            GpuMemory::Unknown(why) => MemoryCheck::Skipped(format!("not checked on GPU ({device}): {why}")),
        });
    }
    Ok(match crate::machine::available_memory().map_err(anyhow::Error::msg)? {
        Some(limit) => MemoryCheck::Against(limit),
        None => {
            MemoryCheck::Skipped("not checked: the available memory cannot be read on this system".into())
        }
    })
}
