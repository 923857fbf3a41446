//! gacha: fine-tune PaliGemma into a yes/no image classifier and sweep it.
//!
//! Modules, one concept each: `spec` (sweep TOML → trials), `data` (JSONL datasets, images,
//! splits), `model` (SigLIP + projector + Gemma, LoRA, loading), `train` (the loop), `eval`
//! (scoring and metrics), `sweep` (the driver), `report` (CSV/HTML output, atomic writes),
//! `demo` (the bundled demo dataset's generator), `bench` (timing training and scoring). `cmd`
//! holds one small file per subcommand that turns parsed options into calls to those.

pub mod adapter;
pub mod bench;
pub mod cli;
pub mod cmd;
pub mod data;
pub mod demo;
pub mod device;
pub mod eval;
pub mod fsutil;
pub mod logging;
pub mod machine;
pub mod model;
pub mod report;
pub mod spec;
pub mod sweep;
pub mod train;

use std::process::ExitCode;

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Success,
    /// The command ran to the end but some of its work failed (e.g. failed trials).
    FinishedWithFailures,
    /// Stopped early by Ctrl-C; rerunning the command resumes.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::FinishedWithFailures => ExitCode::from(1),
            Outcome::Interrupted => ExitCode::from(sweep::stop::EXIT_INTERRUPTED),
        }
    }
}

/// Run one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    use cli::Command;
    match cli.command {
        Command::Check(args) => cmd::check::run(&args),
        Command::Split(args) => cmd::split::run(&args),
        Command::DemoData(args) => cmd::demo_data::run(&args),
        Command::Sweep(args) => cmd::workers::run_sweep(&args),
        Command::Trial(args) => cmd::trial::run(&args),
        Command::Slurm(args) => cmd::slurm::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Leaderboard(args) => cmd::leaderboard::run(&args),
        Command::Report(args) => cmd::report::run(&args),
        Command::Score(args) => cmd::score::run(&args),
        Command::Eval(args) => cmd::eval::run(&args),
        Command::Train(args) => cmd::train::run(&args),
        Command::Export(args) => cmd::export::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
    }
}
