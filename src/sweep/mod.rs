//! The sweep driver: for each trial of a spec, check (finished already?), claim (no other worker
//! runs it: `claim.rs`), run (with reseeds), record (the trial folder, outcome last) and export
//! (leaderboard, configs, `best/`, `keep`), so that a sweep killed at any moment resumes where it
//! stopped and any number of workers share one results folder. `layout.rs` describes the folder.
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
pub mod progress;
pub mod runner;
pub mod scripted;
pub mod stop;
pub mod trial;

use std::path::Path;
use std::time::SystemTime;

use crate::data::Dataset;
use crate::fsutil::write_atomic;
use crate::spec::{SelectMetric, SweepSpec, TrialId};
use crate::results::damaged;
use crate::results::judge;
use best::Prune;
use crate::results::claim::{self, ClaimAttempt};
use crate::results::failure::{reruns, Rerun};
use final_model::FinalEnd;
use crate::results::folder::ResultsFolder;
use crate::results::layout::{OutcomeFile, ResultsDir, DIGESTS_FILE, PREPROCESSING_FILE, SPEC_FILE};
use ledger::Ledger;
use progress::{Counts, Progress};
use crate::results::rank::{rank, winner};
use crate::results::record::{utc_timestamp, FinalRecord, Status, TrialOutcome, TrialRecord};
use runner::TrialRunner;
use stop::StopFlag;
use trial::{run_trials, TrialContext, TrialEnd};

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
    let folder = ResultsFolder::open(results)?;
    let mut this_run =
        Settled { rerun: options.rerun, since: utc_timestamp(SystemTime::now()), ran: Default::default() };
    write_atomic(&folder.dir.path(SPEC_FILE), spec.text.as_bytes())?;
    if let Some(own) = &spec.model_preprocessing {
        write_atomic(&folder.dir.path(PREPROCESSING_FILE), &serde_json::to_vec_pretty(own)?)?;
    }
    write_atomic(&folder.dir.path(DIGESTS_FILE), &serde_json::to_vec_pretty(&spec.digests)?)?;
    note_unlisted_trials(&folder.dir, spec)?;
    let mut ledger = {
        let _lock = folder.claims.export_lock()?;
        damaged::set_aside_damaged(&folder, spec)?;
        Ledger::rebuild(&folder.dir, spec, options.prune)?
    };
    let records = ledger.records();
    let settled = records.iter().filter(|r| this_run.holds(&r.outcome)).count();
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
        TrialContext { spec, dataset, partition: &partition, results: &folder, progress: &progress, stop };
    let mine: Vec<usize> = match options.part {
        Part::One(index) => vec![index],
        Part::All | Part::Share => (0..spec.trials.len()).collect(),
    };
    let (mut ran, mut end, mut said_waiting) = (Counts::default(), SweepEnd::Complete, false);
    loop {
        let mut elsewhere = Vec::new();
        let mut taken = vec![false; spec.trials.len()];
        for (at, &n) in mine.iter().enumerate() {
            if taken[n] {
                continue;
            }
            if stop.is_requested() {
                end = SweepEnd::Interrupted;
                break;
            }
            // This trial, and up to pack − 1 more of its pack key further on.
            let key = runner::pack_key(&spec.trials[n].params);
            let candidates: Vec<usize> = std::iter::once(n)
                .chain(
                    mine[at + 1..]
                        .iter()
                        .copied()
                        .filter(|_| options.pack > 1 && key.is_some())
                        .filter(|&m| runner::pack_key(&spec.trials[m].params) == key),
                )
                .collect();
            let mut claims = Vec::new();
            for m in candidates {
                if claims.len() == options.pack.max(1) {
                    break;
                }
                if taken[m] {
                    continue;
                }
                let trial = &spec.trials[m];
                let paths = folder.dir.trial(&trial.id);
                if this_run.holds_file(&paths.read_outcome_file()?) {
                    taken[m] = true;
                    continue;
                }
                let claim = match folder.claims.try_claim(trial.id.as_str())? {
                    ClaimAttempt::Claimed(claim) => claim,
                    ClaimAttempt::Held(state) => {
                        taken[m] = true;
                        elsewhere.push((m, state));
                        continue;
                    }
                };
                taken[m] = true;
                // Finished by a worker that released the claim between the two looks.
                if this_run.holds_file(&paths.read_outcome_file()?) {
                    continue;
                }
                claims.push((m, claim));
            }
            if claims.is_empty() {
                continue;
            }
            runner.prepare()?;
            let pack: Vec<trial::PackedTrial> = claims
                .iter()
                .map(|(m, claim)| {
                    let trial = &spec.trials[*m];
                    progress.trial_started(m + 1, trial);
                    trial::PackedTrial { trial, paths: folder.dir.trial(&trial.id), claim: Some(claim) }
                })
                .collect();
            let ends = run_trials(&ctx, pack, runner)?;
            for ((m, claim), trial_end) in claims.into_iter().zip(ends) {
                let trial = &spec.trials[m];
                let outcome = match trial_end {
                    TrialEnd::Recorded(outcome) => outcome,
                    TrialEnd::Stopped => {
                        end = SweepEnd::Interrupted;
                        continue;
                    }
                    TrialEnd::ClaimLost => {
                        crate::warn!(
                            "trial {}: another worker took it over (this one went {:.0} s without a \
                             heartbeat); nothing recorded here",
                            trial.id,
                            claim::stale_after().as_secs_f64()
                        );
                        continue;
                    }
                };
                drop(claim);
                this_run.ran.insert(trial.id.clone());
                ran.add(outcome.status);
                progress.trial_finished(&outcome, &result_line(&outcome, spec.select.metric), &ran);
                let _lock = folder.claims.export_lock()?;
                ledger.add(TrialRecord::new(trial, *outcome))?;
            }
            if end == SweepEnd::Interrupted {
                break;
            }
        }
        if end == SweepEnd::Interrupted || elsewhere.is_empty() {
            break;
        }
        if options.part != Part::All {
            progress.say(&held_elsewhere(spec, &elsewhere));
            end = SweepEnd::LeftToOthers;
            break;
        }
        if !said_waiting {
            progress.say(&format!("waiting for {} trial(s) that other workers run", elsewhere.len()));
            said_waiting = true;
        }
        std::thread::sleep(claim::heartbeat_every().min(std::time::Duration::from_secs(5)));
    }
    let _lock = folder.claims.export_lock()?;
    ledger.rewrite()?;
    let records = ledger.records();
    let finished_ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id().as_str()).collect();
    folder.claims.clear_stale(|id| finished_ids.contains(id))?;
    let unfinished = records.len() < spec.trials.len();
    if end == SweepEnd::Complete && unfinished {
        end = SweepEnd::LeftToOthers;
    }
    let ranked = rank(records, spec.select.metric);
    let best = winner(&ranked, spec.select.metric).cloned();
    let mut final_record = None;
    let summaries = judge::summarize_configs(records, spec);
    let winning = judge::winning_config(&summaries).cloned();
    if let (SweepEnd::Complete, Some(top), Some(winning)) = (end, &best, &winning) {
        match final_model::make_final(&ctx, records, top, &winning.id, runner)? {
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

/// `trial 3 (ID) is running in HOST:PID`, or for several, their numbers.
fn held_elsewhere(spec: &SweepSpec, held: &[(usize, claim::ClaimState)]) -> String {
    match held {
        [(n, state)] => {
            let worker = state.info.as_ref().map_or("another worker", |i| i.worker.as_str());
            format!("trial {} ({}) is running in {worker}", n + 1, spec.trials[*n].id)
        }
        _ => {
            let numbers: Vec<String> = held.iter().map(|(n, _)| (n + 1).to_string()).collect();
            format!("{} trials are running in other workers: {}", held.len(), numbers.join(", "))
        }
    }
}

/// Which finished trials this run leaves as they are: all but the failures it reruns, and of
/// those only the ones that failed before it started (a failure of this run, or of a worker
/// beside it since, is not rerun by it).
struct Settled {
    rerun: Rerun,
    /// When this run started (`utc_timestamp`: whole seconds).
    since: String,
    /// The trials this run ran.
    ran: std::collections::HashSet<TrialId>,
}

impl Settled {
    fn holds(&self, outcome: &TrialOutcome) -> bool {
        !reruns(outcome, self.rerun) || outcome.finished_at > self.since || self.ran.contains(&outcome.id)
    }

    fn holds_file(&self, file: &OutcomeFile) -> bool {
        matches!(file, OutcomeFile::Finished(outcome) if self.holds(outcome))
    }
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
            "{} trial folder(s) in {} are not in this spec (an earlier version of it, its data or its \
             model?); kept, not ranked",
            unlisted.len(),
            dir.root.display()
        );
    }
    Ok(())
}


