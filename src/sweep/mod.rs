//! The sweep driver, in three steps: prepare the results folder, work through the trials (for
//! each: finished already? claim it so no other worker runs it, run it with its reseeds, record
//! it, export the leaderboard, configs, `best/` and `keep`: `pass.rs`), then wrap up (the final
//! model once every trial is finished). A sweep killed at any moment resumes where it stopped,
//! and any number of workers share one results folder (`results::claim`, `results::layout`).
//!
//! The model is behind `TrialRunner`: `ModelRunner` trains PaliGemma, `ScriptedRunner` stands in
//! for it in tests.

pub mod best;
pub mod export;
pub mod final_model;
pub mod lazy_runner;
pub mod ledger;
pub mod model_runner;
pub mod partition;
mod pass;
pub mod progress;
pub mod runner;
pub mod scripted;
pub mod stop;
pub mod trial;

use std::collections::HashSet;
use std::path::Path;

use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::results::damaged;
use crate::results::failure::{reruns, Rerun};
use crate::results::folder::ResultsFolder;
use crate::results::judge;
use crate::results::layout::{ResultsDir, DIGESTS_FILE, PREPROCESSING_FILE, SPEC_FILE};
use crate::results::rank::{rank, winner};
use crate::results::record::{FinalRecord, TrialRecord};
use crate::spec::SweepSpec;
use best::Prune;
use final_model::FinalEnd;
use ledger::Ledger;
use partition::Partition;
use pass::{Settled, Worker};
use progress::{Counts, Progress};
use runner::TrialRunner;
use stop::StopFlag;
use trial::TrialContext;

pub use crate::results::record::{LossLine, Stage2Ran};
pub use runner::{Control, StepObserver, TrialJob, TrialRun};

/// How a sweep run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEnd {
    /// Every trial of the spec is finished.
    Complete,
    /// Stopped on request; the same command resumes.
    Interrupted,
    /// This worker's part is done; other workers run the trials left.
    LeftToOthers,
}

/// How a sweep run treats what earlier runs left.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Which failed trials to run again.
    pub rerun: Rerun,
    /// Whether `keep` may remove weights an earlier spec kept.
    pub prune: Prune,
    /// Which trials this worker runs, and whether it waits for the others.
    pub part: Part,
    /// Trials trained together in one pack (`train::pack`; 1: one at a time).
    pub pack: usize,
    /// Trials finished before this command started, when worker processes of this command ran
    /// the rest before this run (which then finishes what is left): the first line counts them.
    pub finished_before_workers: Option<usize>,
}

/// A worker's part in a sweep that any number of workers share (`claim.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Run every trial no live worker holds, then wait for those others run (taking over any
    /// whose worker dies), then make the final model: `gacha sweep`.
    All,
    /// Run every trial no live worker holds, and leave: `gacha sweep --worker`.
    Share,
    /// Run this trial (its index in `spec.trials`) only: `gacha trial --index N`.
    One(usize),
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
    pub winning_config: Option<judge::ConfigSummary>,
}

/// Run the unfinished trials of `spec` (those of `options.part`) on `dataset`, writing into
/// `results` beside any other workers, then make the final model once every trial is finished.
pub fn run_sweep(
    spec: &SweepSpec,
    dataset: &Dataset,
    results: &Path,
    runner: &mut dyn TrialRunner,
    stop: &StopFlag,
    options: SweepOptions,
) -> anyhow::Result<SweepSummary> {
    let folder = ResultsFolder::open_to_run(results, spec, stop.shared())?;
    let ledger = prepare(&folder, spec, options.prune)?;
    let this_run = Settled::new(options.rerun);
    let progress = start_progress(spec, &ledger, &this_run, results, options.finished_before_workers);
    let labels: Vec<_> = dataset.examples.iter().map(|e| e.label).collect();
    let partition = Partition::new(&labels, &spec.validation, spec.data.stratify())?;
    let ctx =
        TrialContext { spec, dataset, partition: &partition, results: &folder, progress: &progress, stop };
    let mut worker =
        Worker { ctx: &ctx, ledger, this_run, runner, pack: options.pack, ran: Counts::default() };
    let end = worker.work_through(options.part)?;
    wrap_up(&ctx, worker, end)
}

/// Before the first trial: the spec, digests and preprocessing written beside the trials,
/// damaged trial folders set aside, every export rebuilt from the trial folders.
fn prepare<'a>(folder: &'a ResultsFolder, spec: &'a SweepSpec, prune: Prune) -> anyhow::Result<Ledger<'a>> {
    write_atomic(&folder.dir.path(SPEC_FILE), spec.text.as_bytes())?;
    if let Some(own) = &spec.model_preprocessing {
        write_atomic(&folder.dir.path(PREPROCESSING_FILE), &serde_json::to_vec_pretty(own)?)?;
    }
    write_atomic(&folder.dir.path(DIGESTS_FILE), &serde_json::to_vec_pretty(&spec.digests)?)?;
    note_unlisted_trials(&folder.dir, spec)?;
    let _lock = folder.claims.export_lock()?;
    damaged::set_aside_damaged(folder, spec)?;
    Ledger::rebuild(&folder.dir, spec, prune)
}

/// The progress display, with a first line on what is finished already (`before_workers`: how
/// many of those were finished before this command's workers ran).
fn start_progress(
    spec: &SweepSpec,
    ledger: &Ledger,
    this_run: &Settled,
    results: &Path,
    before_workers: Option<usize>,
) -> Progress {
    let records = ledger.records();
    let settled = records.iter().filter(|r| this_run.holds(&r.outcome)).count();
    let progress = Progress::new(spec.trials.len(), settled);
    let finished = match before_workers {
        Some(before) => {
            format!("{before} finished earlier, {} by this command's workers", settled.saturating_sub(before))
        }
        None => format!("{settled} finished earlier"),
    };
    progress.say(&format!(
        "{} trials ({finished}{}) → {}",
        spec.trials.len(),
        match records.len() - settled {
            0 => String::new(),
            n => format!(", {n} failed to retry"),
        },
        results.display()
    ));
    progress
}

/// After this worker's trials: every export rebuilt from the trial folders, stale claims
/// cleared, and once every trial is finished, the final model; then the summary.
fn wrap_up(ctx: &TrialContext, worker: Worker, mut end: SweepEnd) -> anyhow::Result<SweepSummary> {
    let Worker { mut ledger, runner, ran, .. } = worker;
    let (spec, folder) = (ctx.spec, ctx.results);
    let _lock = folder.claims.export_lock()?;
    ledger.rewrite()?;
    let records = ledger.records();
    let finished_ids: HashSet<&str> = records.iter().map(|r| r.id().as_str()).collect();
    folder.claims.clear_stale(|id| finished_ids.contains(id))?;
    if end == SweepEnd::Complete && records.len() < spec.trials.len() {
        end = SweepEnd::LeftToOthers;
    }
    let ranked = rank(records, spec.select.metric);
    let best = winner(&ranked, spec.select.metric).cloned();
    let mut final_record = None;
    let summaries = judge::summarize_configs(records, spec);
    let winning = judge::winning_config(&summaries).cloned();
    if let (SweepEnd::Complete, Some(top), Some(winning)) = (end, &best, &winning) {
        match final_model::make_final(ctx, records, top, &winning.id, runner)? {
            FinalEnd::Made(record) => final_record = Some(record),
            FinalEnd::None(why) => crate::logging::warn!("no final model: {why}; best/ holds the best trial"),
            FinalEnd::Stopped => end = SweepEnd::Interrupted,
        }
    }
    ctx.progress.finish();
    if let Some(line) = runner.summary() {
        crate::logging::info!("{line}");
    }
    if best.is_none() && !records.is_empty() {
        crate::logging::warn!("no finished trial has a defined {}; best/ is empty", spec.select.metric);
    }
    let mut finished = Counts::default();
    records.iter().for_each(|r| finished.add(r.outcome.status));
    Ok(SweepSummary {
        end,
        trials: spec.trials.len(),
        skipped: records.len() - (ran.done + ran.diverged + ran.failed),
        to_retry: records.iter().filter(|r| reruns(&r.outcome, Rerun::EnvironmentFailures)).count(),
        ran,
        finished,
        best,
        final_model: final_record,
        winning_config: winning,
    })
}

/// Say when the folder holds trials of an earlier version of the spec (kept, not ranked).
fn note_unlisted_trials(dir: &ResultsDir, spec: &SweepSpec) -> anyhow::Result<()> {
    let unlisted = dir.unlisted_trials(spec)?;
    if !unlisted.is_empty() {
        crate::logging::info!(
            "{} trial folder(s) in {} are not in this spec (an earlier version of it, its data or its \
             model?); kept, not ranked",
            unlisted.len(),
            dir.root.display()
        );
    }
    Ok(())
}
