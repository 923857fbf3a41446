//! The `gacha` binary: parse the command line, run, print any error chain once, exit.
//!
//! Exit codes: 0 all good, 1 finished but some trials failed, 2 could not start (bad input).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    gacha::device::flush_subnormals_to_zero();
    let cli = gacha::cli::Cli::parse();
    gacha::logging::init(cli.verbosity());
    match gacha::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("gacha: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
