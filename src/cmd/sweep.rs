//! `gacha sweep SPEC` and `gacha trial SPEC --index N`: check everything (spec, dataset, split
//! sizes, answers, prompts and peak memory, the results folder) before the first step, run this worker's part of the sweep (the
//! model is loaded once a trial is claimed), print the leaderboard and where things are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{RunArgs, SweepArgs};
use crate::data::jsonl::load_dataset;
use crate::data::Dataset;
use crate::device::DeviceSpec;
use crate::report::table::leaderboard_table;
use crate::spec::{check_fit, check_spec, load_spec, FitCheck, SpecCheck, SweepSpec};
use crate::sweep::best::Prune;
use crate::sweep::failure::{classify, Rerun};
use crate::sweep::layout::{self, ResultsDir};
use crate::sweep::model_runner::ModelRunner;
use crate::sweep::rank::rank;
use crate::sweep::record::FailureKind;
use crate::sweep::runner::TrialRunner;
use crate::sweep::scripted::ScriptedRunner;
use crate::sweep::stop::StopFlag;
use crate::sweep::lazy_runner::LazyRunner;
use crate::sweep::{run_sweep, Part, SweepEnd, SweepOptions};
use crate::Outcome;

/// `gacha sweep` in this process (`workers.rs` decides when it is not).
pub fn run(args: &SweepArgs) -> anyhow::Result<Outcome> {
    let stop = StopFlag::on_stop_signals()?;
    run_part(&args.run, if args.worker { Part::Share } else { Part::All }, &stop, None)
}

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

/// Run `part` of the spec's trials in this process, then print the leaderboard and the summary.
/// `workers_after`: the trials finished before workers ran the rest (`workers.rs`), so the
/// summary counts theirs as this run's.
pub fn run_part(args: &RunArgs, part: Part, stop: &StopFlag, workers_after: Option<usize>) -> anyhow::Result<Outcome> {
    let Checked { spec, dataset, check, fit } = checked(args)?;
    for line in fit.to_string().lines() {
        crate::info!("{line}");
    }
    for warning in check.warnings.iter().map(ToString::to_string).chain(fit.warnings) {
        crate::warn!("{warning}");
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
    };
    let summary = run_sweep(&spec, &dataset, &results, &mut runner, stop, options, &crate::report::Report)
        .map_err(|err| with_environment_hint(err, args))?;

    print!("{}", leaderboard(&results, &spec)?);
    let finished = summary.finished.done + summary.finished.diverged + summary.finished.failed;
    let (ran, skipped) = match workers_after {
        Some(earlier) => (finished.saturating_sub(earlier), earlier.min(finished)),
        None => (summary.ran.done + summary.ran.diverged + summary.ran.failed, summary.skipped),
    };
    println!(
        "{finished} of {} trials finished ({} done, {} diverged, {} failed); this run: {ran} trials, {skipped} skipped",
        summary.trials, summary.finished.done, summary.finished.diverged, summary.finished.failed,
    );
    if summary.to_retry > 0 {
        println!(
            "{} failed trial(s) failed for lack of space, memory or I/O: the same command retries them",
            summary.to_retry
        );
    }
    if summary.finished.failed > summary.to_retry {
        println!(
            "{} failed trial(s) would fail again as they are (see their error); --retry-failed reruns them",
            summary.finished.failed - summary.to_retry
        );
    }
    if let Some(best) = &summary.best {
        let value =
            crate::sweep::rank::metric_after(best, spec.select.metric.split, spec.select.metric.metric);
        let value = crate::eval::metrics::format_metric(value);
        match &summary.final_model {
            Some(record) if record.final_model != crate::spec::FinalModel::BestTrial => {
                println!(
                    "best trial: {} ({} {value}) in {}",
                    best.id(),
                    spec.select.metric,
                    results.join(layout::TRIALS_DIR).join(best.id().as_str()).display()
                )
            }
            _ => println!(
                "best: {} ({} {value}) → {}",
                best.id(),
                spec.select.metric,
                results.join(layout::BEST_DIR).display()
            ),
        }
    }
    if let Some(record) = &summary.final_model {
        for line in crate::sweep::final_model::describe(
            record,
            spec.select.metric.metric,
            &results.join(layout::BEST_DIR),
            summary.winning_config.as_ref(),
        ) {
            println!("{line}");
        }
    }
    println!("leaderboard: {}", results.join(layout::LEADERBOARD_FILE).display());
    println!("report: {}", results.join(layout::REPORT_FILE).display());
    Ok(match summary.end {
        SweepEnd::Interrupted => {
            crate::warn!("interrupted; to resume, run the same command again: {}", resume_command(args));
            Outcome::Interrupted
        }
        SweepEnd::LeftToOthers => {
            println!("the trials left are running in other workers; `gacha status {}` shows them", results.display());
            Outcome::Success
        }
        SweepEnd::Complete if summary.finished.failed > 0 => Outcome::FinishedWithFailures,
        SweepEnd::Complete => Outcome::Success,
    })
}

/// Which failed trials a run reruns: `--retry-failed` all, else those of the environment.
pub fn rerun_of(args: &RunArgs) -> Rerun {
    if args.retry_failed { Rerun::AllFailures } else { Rerun::EnvironmentFailures }
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

fn leaderboard(results: &Path, spec: &SweepSpec) -> anyhow::Result<String> {
    let records = ResultsDir::new(results).read_records(spec)?;
    Ok(leaderboard_table(&rank(&records, spec.select.metric), spec.select.metric))
}

/// A sweep that stopped for lack of space, memory or I/O says how to go on.
fn with_environment_hint(err: anyhow::Error, args: &RunArgs) -> anyhow::Error {
    match classify(&err) {
        FailureKind::Environment => err.context(format!(
            "the sweep stopped for lack of space, memory or I/O; finished trials are kept: free some \
             and run the same command again ({})",
            resume_command(args)
        )),
        FailureKind::Input => err,
    }
}

/// `gacha sweep SPEC [--results DIR]`, as this run was started.
fn resume_command(args: &RunArgs) -> String {
    let mut words: Vec<PathBuf> = vec!["gacha sweep".into(), args.spec.clone()];
    if let Some(results) = &args.results {
        words.extend(["--results".into(), results.clone()]);
    }
    if args.retry_failed {
        words.push("--retry-failed".into());
    }
    if args.prune {
        words.push("--prune".into());
    }
    if args.device != DeviceSpec::Cpu {
        words.extend(["--device".into(), args.device.to_string().into()]);
    }
    words.iter().map(|w| w.display().to_string()).collect::<Vec<_>>().join(" ")
}
