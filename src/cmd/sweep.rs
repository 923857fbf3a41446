//! `gacha sweep SPEC`: check everything (spec, dataset, split sizes, results lock) before the
//! first step, run the sweep, print the leaderboard and where things are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::SweepArgs;
use crate::data::jsonl::load_dataset;
use crate::data::Dataset;
use crate::device::DeviceSpec;
use crate::report::table::leaderboard_table;
use crate::spec::{check_spec, load_spec, SweepSpec};
use crate::sweep::best::Prune;
use crate::sweep::failure::{classify, Rerun};
use crate::sweep::layout::ResultsDir;
use crate::sweep::model_runner::ModelRunner;
use crate::sweep::rank::rank;
use crate::sweep::record::FailureKind;
use crate::sweep::runner::TrialRunner;
use crate::sweep::scripted::ScriptedRunner;
use crate::sweep::stop::StopFlag;
use crate::sweep::{run_sweep, SweepEnd, SweepOptions};
use crate::Outcome;

pub fn run(args: &SweepArgs) -> anyhow::Result<Outcome> {
    let spec = load_spec(&args.spec)?;
    let dataset = load_dataset(&spec.data_path(), &spec.data.options())?;
    let check = check_spec(&spec, dataset.examples.len())?;
    for warning in &check.warnings {
        crate::warn!("{warning}");
    }
    let results = args.results.clone().unwrap_or_else(|| Path::new("results").join(&spec.name));
    let mut runner = runner_for(args, &spec, &dataset)?;
    let stop = StopFlag::on_stop_signals()?;
    let options = SweepOptions {
        rerun: if args.retry_failed { Rerun::AllFailures } else { Rerun::EnvironmentFailures },
        prune: if args.prune { Prune::EarlierPicksToo } else { Prune::SpareEarlierPicks },
    };
    let summary =
        run_sweep(&spec, &dataset, &results, runner.as_mut(), &stop, options, &crate::report::Report)
            .map_err(|err| with_environment_hint(err, args))?;

    print!("{}", leaderboard(&results, &spec)?);
    let finished = summary.finished.done + summary.finished.diverged + summary.finished.failed;
    println!(
        "{finished} of {} trials finished ({} done, {} diverged, {} failed); this run: {} trials, {} skipped",
        summary.trials,
        summary.finished.done,
        summary.finished.diverged,
        summary.finished.failed,
        summary.ran.done + summary.ran.diverged + summary.ran.failed,
        summary.skipped,
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
                    results.join("trials").join(best.id().as_str()).display()
                )
            }
            _ => println!(
                "best: {} ({} {value}) → {}",
                best.id(),
                spec.select.metric,
                results.join("best").display()
            ),
        }
    }
    if let Some(record) = &summary.final_model {
        for line in crate::sweep::final_model::describe(
            record,
            spec.select.metric.metric,
            &results.join("best"),
            summary.winning_config.as_ref(),
        ) {
            println!("{line}");
        }
    }
    println!("leaderboard: {}", results.join("leaderboard.csv").display());
    println!("report: {}", results.join("report.html").display());
    Ok(match summary.end {
        SweepEnd::Interrupted => {
            crate::warn!("interrupted; to resume, run the same command again: {}", resume_command(args));
            Outcome::Interrupted
        }
        SweepEnd::Complete if summary.finished.failed > 0 => Outcome::FinishedWithFailures,
        SweepEnd::Complete => Outcome::Success,
    })
}

/// The model behind the sweep: loaded, with every image's features computed, before any trial.
fn runner_for<'a>(
    args: &SweepArgs,
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
fn with_environment_hint(err: anyhow::Error, args: &SweepArgs) -> anyhow::Error {
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
fn resume_command(args: &SweepArgs) -> String {
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
