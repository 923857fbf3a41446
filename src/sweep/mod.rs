//! The sweep driver, in three steps: prepare the results folder, work through the trials (for
//! each: finished already? claim it so no other worker runs it, run it with its reseeds, record
//! it, export the leaderboard, configs, `best/` and `keep`: `pass.rs`), then wrap up (the final
//! model once every trial is finished). A sweep killed at any moment resumes where it stopped,
//! and any number of workers share one results folder (`results::claim`, `results::layout`).
//!
//! The model is behind `TrialRunner`: `ModelRunner` trains PaliGemma, `ScriptedRunner` stands in
//! for it in tests.

pub mod final_model;
pub mod lazy_runner;
pub mod ledger;
pub mod model_runner;
mod pass;
pub mod progress;
pub mod runner;
pub mod schedule;
pub mod screen;
pub mod scripted;
pub mod stop;
pub mod trial;

use std::collections::HashSet;
use std::path::Path;

use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::results::best::Prune;
use crate::results::budget::{Budget, Deadline, Spent};
use crate::results::damaged;
use crate::results::failure::Settled;
use crate::results::failure::{reruns, Rerun};
use crate::results::folder::ResultsFolder;
use crate::results::judge;
use crate::results::layout::{ResultsDir, DIGESTS_FILE, PREPROCESSING_FILE, SPEC_FILE};
use crate::results::race::{RaceBoard, RaceFile, Standings};
use crate::results::rank::{rank, winner};
use crate::results::record::{FinalRecord, TrialRecord};
use crate::spec::partition::Partition;
use crate::spec::{ConfigId, Strategy, SweepSpec, Trial};
use final_model::FinalEnd;
use ledger::Ledger;
use pass::Worker;
use progress::{Counts, Progress};
use runner::TrialRunner;
use schedule::Schedule;
use stop::StopFlag;
use trial::TrialContext;

pub use crate::results::record::{LossLine, Stage2Ran};
pub use runner::{Control, StepObserver, TrialJob, TrialRun};

/// How a sweep run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepEnd {
    /// Every trial it runs is finished: a grid's every trial, a race's decided.
    Complete,
    /// Stopped on request; the same command resumes.
    Interrupted,
    /// This worker's part is done; other workers run the trials left.
    LeftToOthers,
    /// Its budget allows no more pulls (`budget.rs`); a larger one goes on.
    Spent(Spent),
}

/// How a sweep run treats what earlier runs left, and what it may spend.
#[derive(Debug, Clone)]
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
    /// Start no pull that cannot end before it (`--until`, `--for`).
    pub deadline: Option<Deadline>,
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
    /// A race's state at the end of the run.
    pub race: Option<RaceFile>,
}

/// Run the unfinished trials of `spec` (those of `options.part`) on `dataset`, writing into
/// `results` beside any other workers, then make the final model once every trial is finished
/// (a race: decided) or the budget is spent.
pub fn run_sweep(
    spec: &SweepSpec,
    dataset: &Dataset,
    results: &Path,
    runner: &mut dyn TrialRunner,
    stop: &StopFlag,
    options: SweepOptions,
) -> anyhow::Result<SweepSummary> {
    let folder = ResultsFolder::open_to_run(results, spec, stop.shared())?;
    write_inputs(&folder, spec)?;
    let labels: Vec<_> = dataset.examples.iter().map(|e| e.label).collect();
    let partition = Partition::new(&labels, &spec.validation, spec.data.stratify())?;
    let screen = screen::screen_prompts(spec, dataset, &folder, &partition, runner)?;
    let enters = |t: &Trial| match (&screen, &t.params.prompt) {
        (Some(screen), Some(prompt)) => screen.enters(prompt),
        _ => true,
    };
    let budget = Budget::new(spec.search.max_pulls, options.deadline.clone());
    let board = (spec.search.strategy == Strategy::Race).then(|| {
        let images = dataset.examples.iter().map(|e| (e.image.as_str(), e.label)).collect();
        RaceBoard::new(spec, &partition, images, enters)
    });
    let standings = Standings {
        race: board.as_ref().map(|b| (b, b.keys_in_play(budget.is_set()))),
        screened_out: screened_out(spec, &enters),
    };
    let ledger = prepare(&folder, spec, options.prune, standings)?;
    let this_run = Settled::new(options.rerun);
    let schedule = match &board {
        Some(board) => Schedule::Race { board },
        None => Schedule::grid(spec, |n| enters(&spec.trials[n])),
    };
    let progress =
        start_progress(&ledger, &this_run, &schedule, &budget, results, options.finished_before_workers);
    let ctx =
        TrialContext { spec, dataset, partition: &partition, results: &folder, progress: &progress, stop };
    let ran = Counts::default();
    let mut worker =
        Worker { ctx: &ctx, ledger, this_run, runner, pack: options.pack, ran, budget, schedule };
    let end = worker.work_through(options.part)?;
    wrap_up(&ctx, worker, end)
}

/// The configs `enters` leaves out, in spec order.
fn screened_out(spec: &SweepSpec, enters: &dyn Fn(&Trial) -> bool) -> Vec<ConfigId> {
    let mut out: Vec<ConfigId> = Vec::new();
    for trial in spec.trials.iter().filter(|t| !enters(t)) {
        if !out.contains(&trial.config) {
            out.push(trial.config.clone());
        }
    }
    out
}

/// The spec, digests and preprocessing written beside the trials.
fn write_inputs(folder: &ResultsFolder, spec: &SweepSpec) -> anyhow::Result<()> {
    write_atomic(&folder.dir.path(SPEC_FILE), spec.text.as_bytes())?;
    if let Some(own) = &spec.model_preprocessing {
        write_atomic(&folder.dir.path(PREPROCESSING_FILE), &serde_json::to_vec_pretty(own)?)?;
    }
    write_atomic(&folder.dir.path(DIGESTS_FILE), &serde_json::to_vec_pretty(&spec.digests)?)?;
    note_unlisted_trials(&folder.dir, spec)
}

/// Before the first trial: damaged trial folders set aside, every export rebuilt from the trial
/// folders.
fn prepare<'a>(
    folder: &'a ResultsFolder,
    spec: &'a SweepSpec,
    prune: Prune,
    standings: Standings<'a>,
) -> anyhow::Result<Ledger<'a>> {
    let _lock = folder.claims.export_lock()?;
    damaged::set_aside_damaged(folder, spec)?;
    Ledger::rebuild(&folder.dir, spec, prune, standings)
}

/// The progress display, with a first line on what is finished already. A race's bar counts
/// the grid's pulls (most races use fewer); with a budget, the survivors may go on over the
/// extra seeds' keys, up to `max_pulls`. `before_workers`: how many of
/// those were finished before this command's workers ran.
fn start_progress(
    ledger: &Ledger,
    this_run: &Settled,
    schedule: &Schedule,
    budget: &Budget,
    results: &Path,
    before_workers: Option<usize>,
) -> Progress {
    let records = ledger.records();
    let settled = records.iter().filter(|r| this_run.holds(&r.outcome)).count();
    let (total, what) = match schedule {
        Schedule::Grid { trials, .. } => (trials.len(), "trials".to_string()),
        Schedule::Race { board } => {
            let configs = board.configs().len();
            let grid = configs * board.grid_keys();
            let extra = board.keys_in_play(budget.is_set()) - board.grid_keys();
            let confirm = match extra {
                0 => String::new(),
                extra => format!(", then the survivors over {extra} more while the budget lasts"),
            };
            let total = budget.max_pulls.map_or(grid, |max| max.min(configs * (board.grid_keys() + extra)));
            (
                total,
                format!(
                    "pulls at most: a race of {configs} configs over {} keys{confirm}",
                    board.grid_keys()
                ),
            )
        }
    };
    let progress = Progress::new(total, settled.min(total));
    let finished = match before_workers {
        Some(before) => {
            format!("{before} finished earlier, {} by this command's workers", settled.saturating_sub(before))
        }
        None => format!("{settled} finished earlier"),
    };
    progress.say(&format!(
        "{total} {what} ({finished}{}) → {}",
        match records.len() - settled {
            0 => String::new(),
            n => format!(", {n} failed to retry"),
        },
        results.display()
    ));
    progress
}

/// After this worker's trials: every export rebuilt from the trial folders, stale claims
/// cleared, and once the sweep is complete (or its budget spent, no other worker running), the
/// final model; then the summary.
fn wrap_up(ctx: &TrialContext, worker: Worker, mut end: SweepEnd) -> anyhow::Result<SweepSummary> {
    let Worker { mut ledger, runner, ran, schedule, budget, this_run, .. } = worker;
    let (spec, folder) = (ctx.spec, ctx.results);
    let _lock = folder.claims.export_lock()?;
    ledger.rewrite()?;
    let records = ledger.records();
    let finished_ids: HashSet<&str> = records.iter().map(|r| r.id().as_str()).collect();
    folder.claims.clear_stale(|id| finished_ids.contains(id))?;
    let left = schedule.next(records, &|o| this_run.holds(o), budget.is_set())?;
    if end == SweepEnd::Complete && !left.is_empty() {
        end = SweepEnd::LeftToOthers;
    }
    let (standings, race) = ledger.standings()?;
    let ranked = rank(records, spec.select.metric);
    let best = winner(&ranked, spec.select.metric).cloned();
    let mut final_record = None;
    let summaries = judge::summarize_configs(records, spec, &standings);
    let winning = judge::winning_config(&summaries).cloned();
    let finishing = matches!(end, SweepEnd::Complete | SweepEnd::Spent(_));
    if let (true, Some(top), Some(winning)) = (finishing, &best, &winning) {
        match final_model::make_final(ctx, records, top, winning, runner, spent_note(&end))? {
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
        race,
    })
}

/// What `best/final.json` says of a sweep that stopped on its budget.
fn spent_note(end: &SweepEnd) -> Option<String> {
    match end {
        SweepEnd::Spent(spent) => Some(spent.to_string()),
        _ => None,
    }
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
