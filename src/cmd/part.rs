//! One process's part of a sweep, for `gacha sweep`, its workers and `gacha trial`: check
//! everything (spec, dataset, split sizes, answers, prompts and peak memory, the results folder)
//! before the first step, run the part (the model is loaded once a trial is claimed), write
//! `report.html`, print the leaderboard and the summary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command_line::resume_command;
use super::Outcome;
use crate::cli::RunArgs;
use crate::data::jsonl::load_dataset;
use crate::data::Dataset;
use crate::report::summary::{sweep_summary, ThisRun};
use crate::report::table::leaderboard_table;
use crate::report::write_report;
use crate::results::best::Prune;
use crate::results::claim::Claims;
use crate::results::failure::{classify, environment_cause, Rerun};
use crate::results::layout::ResultsDir;
use crate::results::lock_wait::StoppedWaiting;
use crate::results::rank::rank;
use crate::results::record::FailureKind;
use crate::spec::{check_fit, check_spec, load_spec, FitCheck, SpecCheck, SweepSpec};
use crate::sweep::lazy_runner::LazyRunner;
use crate::sweep::model_runner::ModelRunner;
use crate::sweep::runner::TrialRunner;
use crate::sweep::scripted::ScriptedRunner;
use crate::sweep::stop::StopFlag;
use crate::sweep::{run_sweep, Part, SweepEnd, SweepOptions};

/// A spec with its dataset, checked against the model and the machine.
pub struct Checked {
    pub spec: SweepSpec,
    pub dataset: Dataset,
    pub check: SpecCheck,
    pub fit: FitCheck,
}

/// Load and check everything a run of `args` needs before its first step.
pub fn checked(args: &RunArgs) -> anyhow::Result<Checked> {
    let spec = load_spec(&args.spec)?;
    let dataset = load_dataset(&spec.data_path(), &spec.data.options())?;
    let check = check_spec(&spec, dataset.examples.len())?;
    let memory = super::memory_check(args.no_memory_check, args.device)?;
    let fit = check_fit(&spec, &dataset, args.device.frozen_dtype().size_in_bytes() as u64, memory)?;
    Ok(Checked { spec, dataset, check, fit })
}

/// Run `part` of the spec's trials in this process, then write the report and print the
/// leaderboard and the summary (`this_run`: whose trials the summary counts as this run's).
pub fn run_part(args: &RunArgs, part: Part, stop: &StopFlag, this_run: ThisRun) -> anyhow::Result<Outcome> {
    let Checked { spec, dataset, check, fit } = checked(args)?;
    for line in fit.to_string().lines() {
        crate::logging::info!("{line}");
    }
    for warning in check.warnings.iter().map(ToString::to_string).chain(fit.warnings) {
        crate::logging::warn!("{warning}");
    }
    if let Part::One(index) = part {
        anyhow::ensure!(
            index < spec.trials.len(),
            "trial index {index} is out of range: {} has {} trials (0–{})",
            spec.file.display(),
            spec.trials.len(),
            spec.trials.len() - 1
        );
    }
    let results = results_dir(args, &spec);
    let mut runner = LazyRunner::new(|| runner_for(args, &spec, &dataset));
    let options = SweepOptions {
        rerun: rerun_of(args),
        prune: if args.prune { Prune::EarlierPicksToo } else { Prune::SpareEarlierPicks },
        part,
        pack: fit.pack,
        finished_before_workers: match this_run {
            ThisRun::WorkersAfter(earlier) => Some(earlier),
            ThisRun::Alone => None,
        },
        deadline: super::deadline::deadline(args, std::time::SystemTime::now())?,
    };
    let summary = match run_sweep(&spec, &dataset, &results, &mut runner, stop, options) {
        Ok(summary) => summary,
        Err(err) if err.downcast_ref::<StoppedWaiting>().is_some() => return Ok(interrupted(&err, args)),
        Err(err) => return Err(with_environment_hint(err, args, &results)),
    };
    let ranked_table = match report_and_leaderboard(&results, &spec, stop) {
        Err(err) if err.downcast_ref::<StoppedWaiting>().is_some() => return Ok(interrupted(&err, args)),
        table => table?,
    };
    super::stdout::print(&format!("{ranked_table}{}", sweep_summary(&summary, &spec, &results, this_run)))?;
    Ok(match summary.end {
        SweepEnd::Interrupted => {
            crate::logging::warn!(
                "interrupted; to resume, run the same command again: {}",
                resume_command(args)
            );
            Outcome::Interrupted
        }
        SweepEnd::LeftToOthers => Outcome::Success,
        SweepEnd::Complete | SweepEnd::Spent(_) if summary.finished.failed > 0 => {
            Outcome::FinishedWithFailures
        }
        SweepEnd::Complete | SweepEnd::Spent(_) => Outcome::Success,
    })
}

/// A run stopped by a signal while it waited for a lock: said, with how to resume.
fn interrupted(err: &anyhow::Error, args: &RunArgs) -> Outcome {
    crate::logging::warn!("{err}; to resume, run the same command again: {}", resume_command(args));
    Outcome::Interrupted
}

/// Write `report.html` from every finished trial (under the export lock, so that the last
/// worker to write it has read every other worker's trials) and return the leaderboard table.
fn report_and_leaderboard(results: &Path, spec: &SweepSpec, stop: &StopFlag) -> anyhow::Result<String> {
    let _lock = Claims::open(results)?.stopping_on(stop.shared()).export_lock()?;
    let dir = ResultsDir::new(results);
    let records = dir.read_records(spec)?;
    write_report(&dir, spec, &records)?;
    Ok(leaderboard_table(&rank(&records, spec.select.metric), spec.select.metric))
}

/// Which failed trials a run reruns: `--retry-failed` all, else those of the environment.
pub fn rerun_of(args: &RunArgs) -> Rerun {
    if args.retry_failed {
        Rerun::AllFailures
    } else {
        Rerun::EnvironmentFailures
    }
}

/// `--results`, or results/<name> in the current folder.
pub fn results_dir(args: &RunArgs, spec: &SweepSpec) -> PathBuf {
    args.results.clone().unwrap_or_else(|| Path::new("results").join(&spec.name))
}

/// The model behind the sweep: loaded, with every image's features computed, when the first
/// trial is claimed.
fn runner_for<'a>(
    args: &RunArgs,
    spec: &SweepSpec,
    dataset: &'a Dataset,
) -> anyhow::Result<Box<dyn TrialRunner + 'a>> {
    if args.debug_scripted_runner {
        let labels = dataset.examples.iter().map(|e| e.label).collect();
        return Ok(Box::new(ScriptedRunner::new(labels, Duration::from_millis(args.debug_step_ms))));
    }
    Ok(Box::new(ModelRunner::new(spec, dataset, args.device)?))
}

/// A sweep that stopped for lack of space, memory or I/O says which and how to go on; one whose
/// results folder was removed while it ran says that.
fn with_environment_hint(err: anyhow::Error, args: &RunArgs, results: &Path) -> anyhow::Error {
    let not_found = |cause: &(dyn std::error::Error + 'static)| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    };
    if err.chain().any(not_found) {
        if let Err(removed) = ResultsDir::new(results).check_still_there() {
            return err.context(removed.to_string());
        }
    }
    match classify(&err) {
        FailureKind::Environment => {
            let cause = environment_cause(&err);
            let fix = match cause {
                "no space left" => "free some space",
                "out of memory" => "free some memory",
                "a read-only file system" => "make the results folder writable (or pass --results elsewhere)",
                _ => "check the storage",
            };
            err.context(format!(
                "the sweep stopped: {cause}; finished trials are kept: {fix} and run the same command again ({})",
                resume_command(args)
            ))
        }
        FailureKind::Input => err,
    }
}
