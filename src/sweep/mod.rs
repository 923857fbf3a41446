//! The sweep driver: for each trial of a spec, check (finished already?), run (with reseeds),
//! record (the trial folder, outcome last) and export (leaderboard, configs, `best/`, `keep`), so
//! that a sweep killed at any moment resumes where it stopped. `layout.rs` describes the results
//! folder.
//!
//! The model is behind `TrialRunner`: `ModelRunner` trains PaliGemma, `ScriptedRunner` stands in
//! for it in tests.

pub mod best;
pub mod configs;
pub mod damaged;
pub mod export;
pub mod failure;
pub mod final_model;
pub mod layout;
pub mod lock;
pub mod model_runner;
pub mod partition;
pub mod progress;
pub mod rank;
pub mod record;
pub mod runner;
pub mod scripted;
pub mod stop;
pub mod trial;

use std::path::Path;

use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::spec::{SelectMetric, SweepSpec};
use best::Prune;
use export::{export, write_report, Exporter};
use failure::{reruns, Rerun};
use final_model::FinalEnd;
use layout::{ResultsDir, PREPROCESSING_FILE, SPEC_FILE};
use lock::LockedResults;
use progress::{Counts, Progress};
use rank::{rank, winner};
use record::{FinalRecord, Status, TrialOutcome, TrialRecord};
use runner::TrialRunner;
use stop::StopFlag;
use trial::{run_trial, TrialContext, TrialEnd};

pub use record::{LossLine, Stage2Ran};
pub use runner::{Control, RunEnd, StepObserver, TrialJob, TrialRun};

/// How a sweep run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEnd {
    /// Every trial of the spec is finished.
    Complete,
    /// Stopped on request; the same command resumes.
    Interrupted,
}

/// How a sweep run treats what earlier runs left.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Which failed trials to run again.
    pub rerun: Rerun,
    /// Whether `keep` may remove weights an earlier spec kept.
    pub prune: Prune,
}

/// What a sweep run did, for the final summary.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub end: SweepEnd,
    pub trials: usize,
    /// Trials finished by an earlier run and skipped.
    pub skipped: usize,
    /// Failed trials that the next run retries (failures of the environment).
    pub to_retry: usize,
    /// Trials finished by this run, by status.
    pub ran: Counts,
    /// All finished trials, by status.
    pub finished: Counts,
    /// The winner and its select metric, if any trial can win.
    pub best: Option<TrialRecord>,
    /// The final model in `best/`, once every trial has finished.
    pub final_model: Option<FinalRecord>,
    /// The winning config, if any can win.
    pub winning_config: Option<configs::ConfigSummary>,
}

/// Run every unfinished trial of `spec` on `dataset`, writing into `results`.
pub fn run_sweep(
    spec: &SweepSpec,
    dataset: &Dataset,
    results: &Path,
    runner: &mut dyn TrialRunner,
    stop: &StopFlag,
    options: SweepOptions,
    exporter: &dyn Exporter,
) -> anyhow::Result<SweepSummary> {
    let rerun = options.rerun;
    let locked = LockedResults::open(results)?;
    write_atomic(&locked.dir.path(SPEC_FILE), spec.text.as_bytes())?;
    if let Some(own) = &spec.model_preprocessing {
        write_atomic(&locked.dir.path(PREPROCESSING_FILE), &serde_json::to_vec_pretty(own)?)?;
    }
    note_unlisted_trials(&locked.dir, spec)?;
    damaged::set_aside_damaged(&locked, spec)?;
    let mut records = export(&locked.dir, spec, options.prune, exporter)?;
    let settled = records.iter().filter(|r| !reruns(&r.outcome, rerun)).count();
    let progress = Progress::new(spec.trials.len(), settled);
    progress.say(&format!(
        "{} trials ({settled} finished earlier{}) → {}",
        spec.trials.len(),
        match records.len() - settled {
            0 => String::new(),
            n => format!(", {n} failed to retry"),
        },
        results.display()
    ));
    let labels: Vec<_> = dataset.examples.iter().map(|e| e.label).collect();
    let partition = partition::Partition::new(&labels, &spec.validation, spec.data.stratify())?;
    let ctx =
        TrialContext { spec, dataset, partition: &partition, results: &locked, progress: &progress, stop };
    let (mut ran, mut end) = (Counts::default(), SweepEnd::Complete);
    for (n, trial) in spec.trials.iter().enumerate() {
        if records.iter().any(|r| r.id() == &trial.id && !reruns(&r.outcome, rerun)) {
            continue;
        }
        if stop.is_requested() {
            end = SweepEnd::Interrupted;
            break;
        }
        progress.trial_started(n + 1, trial);
        let TrialEnd::Recorded(outcome) = run_trial(&ctx, trial, locked.dir.trial(&trial.id), runner)? else {
            end = SweepEnd::Interrupted;
            break;
        };
        ran.add(outcome.status);
        progress.trial_finished(&outcome, &result_line(&outcome, spec.select.metric), &ran);
        records = export(&locked.dir, spec, options.prune, exporter)?;
    }
    let ranked = rank(&records, spec.select.metric);
    let best = winner(&ranked, spec.select.metric).cloned();
    let mut final_record = None;
    let summaries = configs::summarize_configs(&records, spec);
    let winning = configs::winning_config(&summaries).cloned();
    if let (SweepEnd::Complete, Some(top), Some(winning)) = (end, &best, &winning) {
        match final_model::make_final(&ctx, &records, top, &winning.id, runner)? {
            FinalEnd::Made(record) => final_record = Some(record),
            FinalEnd::None(why) => {
                crate::warn!("no final model: {why}; best/ holds the best trial");
            }
            FinalEnd::Stopped => end = SweepEnd::Interrupted,
        }
    }
    progress.finish();
    if let Some(line) = runner.summary() {
        crate::info!("{line}");
    }
    write_report(&locked.dir, spec, &records, exporter)?;
    if best.is_none() && !records.is_empty() {
        crate::warn!("no finished trial has a defined {}; best/ is empty", spec.select.metric);
    }
    let mut finished = Counts::default();
    records.iter().for_each(|r| finished.add(r.outcome.status));
    let skipped = records.len() - (ran.done + ran.diverged + ran.failed);
    let to_retry = records.iter().filter(|r| reruns(&r.outcome, Rerun::EnvironmentFailures)).count();
    Ok(SweepSummary {
        end,
        trials: spec.trials.len(),
        skipped,
        to_retry,
        ran,
        finished,
        best,
        final_model: final_record,
        winning_config: winning,
    })
}

/// `valid.precision 0.9000` or why there is none; warns when a done trial cannot win.
fn result_line(outcome: &TrialOutcome, select: SelectMetric) -> String {
    let value = outcome.after.and_then(|a| a.get(select.split).value(select.metric));
    match (outcome.status, value) {
        (Status::Done, Some(v)) => format!("{select} {v:.4}"),
        (Status::Done, None) => {
            crate::warn!(
                "trial {}: {select} is undefined (a zero denominator, e.g. no image predicted positive); \
                 it cannot become best",
                outcome.id
            );
            format!("{select} undefined")
        }
        (Status::Diverged, _) => format!("every attempt diverged ({} reseeds)", outcome.reseeds),
        (Status::Failed, _) => outcome.error.clone().unwrap_or_default(),
    }
}

/// Say when the folder holds trials of an earlier version of the spec (kept, not ranked).
fn note_unlisted_trials(dir: &ResultsDir, spec: &SweepSpec) -> anyhow::Result<()> {
    let unlisted = dir.unlisted_trials(spec)?;
    if !unlisted.is_empty() {
        crate::info!(
            "{} trial folder(s) in {} are not in this spec (an earlier version?); kept, not ranked",
            unlisted.len(),
            dir.root.display()
        );
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_records;
