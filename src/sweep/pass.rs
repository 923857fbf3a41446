//! One worker's trials, claimed, run and recorded: passes over them in order, each claiming the
//! next pack (a trial and up to `pack − 1` more of its pack key that no other worker holds),
//! running it and adding its records to the ledger, until none is left that no live worker
//! holds; with [`Part::All`] it then waits for those other workers run.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::ledger::Ledger;
use super::progress::Counts;
use super::runner::{pack_key, TrialRunner};
use super::trial::{run_trials, PackedTrial, TrialContext, TrialEnd};
use super::{Part, SweepEnd};
use crate::results::claim::{self, Claim, ClaimAttempt, ClaimState};
use crate::results::failure::{reruns, Rerun};
use crate::results::layout::OutcomeFile;
use crate::results::record::{utc_timestamp, Status, TrialOutcome, TrialRecord};
use crate::spec::{SelectMetric, SweepSpec, TrialId};

/// Which finished trials this run leaves as they are: all but the failures it reruns, and of
/// those only the ones that failed before it started (a failure of this run, or of a worker
/// beside it since, is not rerun by it).
pub struct Settled {
    rerun: Rerun,
    /// When this run started (`utc_timestamp`: whole seconds).
    since: String,
    /// The trials this run ran.
    ran: HashSet<TrialId>,
}

impl Settled {
    /// For a run starting now.
    pub fn new(rerun: Rerun) -> Settled {
        Settled { rerun, since: utc_timestamp(SystemTime::now()), ran: HashSet::new() }
    }

    pub fn holds(&self, outcome: &TrialOutcome) -> bool {
        !reruns(outcome, self.rerun) || outcome.finished_at > self.since || self.ran.contains(&outcome.id)
    }

    fn holds_file(&self, file: &OutcomeFile) -> bool {
        matches!(file, OutcomeFile::Finished(outcome) if self.holds(outcome))
    }
}

/// A worker going through its trials.
pub struct Worker<'a, 'r> {
    pub ctx: &'a TrialContext<'a>,
    pub ledger: Ledger<'a>,
    pub this_run: Settled,
    pub runner: &'r mut dyn TrialRunner,
    /// Trials trained together in one pack (1: one at a time).
    pub pack: usize,
    /// Trials this worker finished, by status.
    pub ran: Counts,
}

/// How one pass over the trials ended.
enum PassEnd {
    /// Every trial is finished or was run by this pass.
    Through,
    /// These trials (index, claim) are held by other live workers.
    HeldElsewhere(Vec<(usize, ClaimState)>),
    Interrupted,
}

impl Worker<'_, '_> {
    /// Run the trials of `part` until none is left to this worker (see the module doc).
    pub fn work_through(&mut self, part: Part) -> anyhow::Result<SweepEnd> {
        let spec = self.ctx.spec;
        let mine: Vec<usize> = match part {
            Part::One(index) => vec![index],
            Part::All | Part::Share => (0..spec.trials.len()).collect(),
        };
        let mut said_waiting = false;
        loop {
            let elsewhere = match self.pass(&mine)? {
                PassEnd::Through => return Ok(SweepEnd::Complete),
                PassEnd::Interrupted => return Ok(SweepEnd::Interrupted),
                PassEnd::HeldElsewhere(elsewhere) => elsewhere,
            };
            if part != Part::All {
                let running = self.still_unfinished(elsewhere)?;
                if !running.is_empty() {
                    self.ctx.progress.say(&held_elsewhere(spec, &running));
                }
                return Ok(SweepEnd::LeftToOthers);
            }
            if !said_waiting {
                self.ctx
                    .progress
                    .say(&format!("waiting for {} trial(s) that other workers run", elsewhere.len()));
                said_waiting = true;
            }
            std::thread::sleep(claim::heartbeat_every().min(Duration::from_secs(5)));
        }
    }

    /// Of the trials `held` elsewhere during a pass, those still unfinished now (a pass takes
    /// as long as its trials: the others may have finished meanwhile).
    fn still_unfinished(&self, held: Vec<(usize, ClaimState)>) -> anyhow::Result<Vec<(usize, ClaimState)>> {
        let mut running = Vec::new();
        for (m, state) in held {
            let paths = self.ctx.results.dir.trial(&self.ctx.spec.trials[m].id);
            if !matches!(paths.read_outcome_file()?, OutcomeFile::Finished(_)) {
                running.push((m, state));
            }
        }
        Ok(running)
    }

    /// One pass over `mine`, in order: claim the next pack, run it, record it.
    fn pass(&mut self, mine: &[usize]) -> anyhow::Result<PassEnd> {
        let mut elsewhere = Vec::new();
        let mut taken = vec![false; self.ctx.spec.trials.len()];
        for at in 0..mine.len() {
            if taken[mine[at]] {
                continue;
            }
            if self.ctx.stop.is_requested() {
                return Ok(PassEnd::Interrupted);
            }
            let claims = self.claim_pack(&mine[at..], &mut taken, &mut elsewhere)?;
            if !claims.is_empty() && self.run_pack(claims)? == SweepEnd::Interrupted {
                return Ok(PassEnd::Interrupted);
            }
        }
        Ok(if elsewhere.is_empty() { PassEnd::Through } else { PassEnd::HeldElsewhere(elsewhere) })
    }

    /// Claims on the first trial of `next` and up to `pack − 1` more of its pack key further on,
    /// skipping those finished (for this run) or held elsewhere; each looked at is `taken`.
    fn claim_pack(
        &self,
        next: &[usize],
        taken: &mut [bool],
        elsewhere: &mut Vec<(usize, ClaimState)>,
    ) -> anyhow::Result<Vec<(usize, Claim)>> {
        let (spec, folder) = (self.ctx.spec, self.ctx.results);
        let key = pack_key(&spec.trials[next[0]].params);
        let packs = self.pack > 1 && key.is_some();
        let candidates = std::iter::once(next[0])
            .chain(next[1..].iter().copied().filter(|&m| packs && pack_key(&spec.trials[m].params) == key));
        let mut claims = Vec::new();
        for m in candidates {
            if claims.len() == self.pack.max(1) {
                break;
            }
            if taken[m] {
                continue;
            }
            taken[m] = true;
            let paths = folder.dir.trial(&spec.trials[m].id);
            if self.this_run.holds_file(&paths.read_outcome_file()?) {
                continue;
            }
            match folder.claims.try_claim(spec.trials[m].id.as_str())? {
                ClaimAttempt::Claimed(claim) => {
                    // Finished by a worker that released the claim between the two looks.
                    if !self.this_run.holds_file(&paths.read_outcome_file()?) {
                        claims.push((m, claim));
                    }
                }
                ClaimAttempt::Held(state) => elsewhere.push((m, state)),
            }
        }
        Ok(claims)
    }

    /// Run the claimed trials as one pack and record each that finished; `Interrupted` when a
    /// stop request ended any of them.
    fn run_pack(&mut self, claims: Vec<(usize, Claim)>) -> anyhow::Result<SweepEnd> {
        let (ctx, spec) = (self.ctx, self.ctx.spec);
        self.runner.prepare()?;
        let pack: Vec<PackedTrial> = claims
            .iter()
            .map(|(m, claim)| {
                let trial = &spec.trials[*m];
                ctx.progress.trial_started(m + 1, trial);
                PackedTrial { trial, paths: ctx.results.dir.trial(&trial.id), claim: Some(claim) }
            })
            .collect();
        let ends = run_trials(ctx, pack, self.runner)?;
        let mut end = SweepEnd::Complete;
        for ((m, claim), trial_end) in claims.into_iter().zip(ends) {
            let trial = &spec.trials[m];
            let outcome = match trial_end {
                TrialEnd::Recorded(outcome) => outcome,
                TrialEnd::Stopped => {
                    end = SweepEnd::Interrupted;
                    continue;
                }
                TrialEnd::ClaimLost => {
                    crate::logging::warn!("trial {}: {}; nothing recorded here", trial.id, claim.why_lost());
                    continue;
                }
            };
            drop(claim);
            self.this_run.ran.insert(trial.id.clone());
            self.ran.add(outcome.status);
            ctx.progress.trial_finished(&outcome, &result_line(&outcome, spec.select.metric), &self.ran);
            let _lock = ctx.results.claims.export_lock()?;
            self.ledger.add(TrialRecord::new(trial, *outcome))?;
        }
        Ok(end)
    }
}

/// `trial 3 (ID) is running in HOST:PID`, or for several, their numbers.
fn held_elsewhere(spec: &SweepSpec, held: &[(usize, ClaimState)]) -> String {
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

/// `valid.precision 0.9000` or why there is none; warns when a done trial cannot win.
fn result_line(outcome: &TrialOutcome, select: SelectMetric) -> String {
    let value = outcome.after.and_then(|a| a.get(select.split).value(select.metric));
    match (outcome.status, value) {
        (Status::Done, Some(v)) => format!("{select} {v:.4}"),
        (Status::Done, None) => {
            crate::logging::warn!(
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
