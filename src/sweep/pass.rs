//! One worker's trials, claimed, run and recorded. A grid's worker passes over its trials in
//! order; a race's asks the race for its next pulls after every pack (`schedule.rs`). Either way
//! it claims the next pack (a trial and up to `pack − 1` more of its pack key that no other
//! worker holds), runs it and adds its records to the ledger, until none is left that no live
//! worker holds, or the budget is spent (`budget.rs`); with [`Part::All`] it then waits for the
//! trials other workers run.

use std::time::{Duration, Instant, SystemTime};

use super::ledger::Ledger;
use super::progress::Counts;
use super::runner::{pack_key, TrialRunner};
use super::schedule::Schedule;
use super::trial::{run_trials, PackedTrial, TrialContext, TrialEnd};
use super::{Part, SweepEnd};
use crate::results::budget::{Budget, Spent};
use crate::results::claim::{self, Claim, ClaimAttempt, ClaimState};
use crate::results::failure::Settled;
use crate::results::layout::OutcomeFile;
use crate::results::record::{TrialOutcome, TrialRecord};

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
    pub budget: Budget,
    pub schedule: Schedule<'a>,
}

/// How one pass over the trials ended.
enum PassEnd {
    /// Every trial is finished or was run by this pass.
    Through,
    /// These trials (index, claim) are held by other live workers.
    HeldElsewhere(Vec<(usize, ClaimState)>),
    Interrupted,
    /// The budget allows no more pulls.
    Spent(Spent),
}

impl Worker<'_, '_> {
    /// Run the trials of `part` until none is left to this worker (see the module doc).
    pub fn work_through(&mut self, part: Part) -> anyhow::Result<SweepEnd> {
        let spec = self.ctx.spec;
        let mut said_waiting = false;
        loop {
            let end = match (part, &self.schedule) {
                (Part::One(index), _) => self.pass(&[index])?,
                (_, Schedule::Grid { trials, .. }) => {
                    let trials = trials.clone();
                    self.pass(&trials)?
                }
                (_, Schedule::Race { .. }) => self.race()?,
            };
            let (elsewhere, spent) = match end {
                PassEnd::Through => return Ok(SweepEnd::Complete),
                PassEnd::Interrupted => return Ok(SweepEnd::Interrupted),
                PassEnd::HeldElsewhere(elsewhere) => (elsewhere, None),
                PassEnd::Spent(spent) => (self.running_elsewhere()?, Some(spent)),
            };
            // A race's next pulls come when the pulls others run finish: `--worker` waits for
            // them too, where a grid's leaves them to their workers.
            let waits =
                part == Part::All || (part == Part::Share && matches!(self.schedule, Schedule::Race { .. }));
            if elsewhere.is_empty() || !waits {
                let running = self.still_unfinished(elsewhere)?;
                if !running.is_empty() {
                    self.ctx.progress.say(&claim::held_elsewhere(spec, &running));
                }
                return Ok(match spent {
                    Some(spent) => SweepEnd::Spent(spent),
                    None => SweepEnd::LeftToOthers,
                });
            }
            if !said_waiting {
                self.ctx
                    .progress
                    .say(&format!("waiting for {} trial(s) that other workers run", elsewhere.len()));
                said_waiting = true;
            }
            std::thread::sleep(claim::heartbeat_every().min(Duration::from_secs(5)));
            if let Some(spent) = spent {
                if self.running_elsewhere()?.is_empty() {
                    return Ok(SweepEnd::Spent(spent));
                }
            }
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
            let claims = match self.claim_pack(&mine[at..], &mut taken, &mut elsewhere)? {
                Ok(claims) => claims,
                Err(spent) => return Ok(PassEnd::Spent(spent)),
            };
            if !claims.is_empty() && self.run_pack(claims)? == SweepEnd::Interrupted {
                return Ok(PassEnd::Interrupted);
            }
        }
        Ok(if elsewhere.is_empty() { PassEnd::Through } else { PassEnd::HeldElsewhere(elsewhere) })
    }

    /// A race: after every pack, ask the race for its next pulls and claim from their front.
    fn race(&mut self) -> anyhow::Result<PassEnd> {
        loop {
            if self.ctx.stop.is_requested() {
                return Ok(PassEnd::Interrupted);
            }
            let settled = |o: &TrialOutcome| self.this_run.holds(o);
            let next = self.schedule.next(self.ledger.records(), &settled, self.budget.is_set())?;
            if next.is_empty() {
                return Ok(PassEnd::Through);
            }
            let (mut taken, mut elsewhere) = (vec![false; self.ctx.spec.trials.len()], Vec::new());
            let mut claims = Vec::new();
            for at in 0..next.len() {
                if taken[next[at]] {
                    continue;
                }
                claims = match self.claim_pack(&next[at..], &mut taken, &mut elsewhere)? {
                    Ok(claims) => claims,
                    Err(spent) => return Ok(PassEnd::Spent(spent)),
                };
                if !claims.is_empty() {
                    break;
                }
            }
            if claims.is_empty() {
                if elsewhere.len() < next.len() {
                    // Some of the next pulls were finished by other workers: read them and look again.
                    let _lock = self.ctx.results.claims.export_lock()?;
                    self.ledger.rewrite()?;
                    continue;
                }
                return Ok(PassEnd::HeldElsewhere(elsewhere));
            }
            if self.run_pack(claims)? == SweepEnd::Interrupted {
                return Ok(PassEnd::Interrupted);
            }
        }
    }

    /// The trials of this sweep other live workers hold.
    fn running_elsewhere(&self) -> anyhow::Result<Vec<(usize, ClaimState)>> {
        let spec = self.ctx.spec;
        let mut held = Vec::new();
        for (name, state) in self.ctx.results.claims.all()? {
            if state.is_stale(claim::stale_after()) {
                continue;
            }
            if let Some(n) = spec.trials.iter().position(|t| t.id.as_str() == name) {
                held.push((n, state));
            }
        }
        Ok(held)
    }

    /// Claims on the first trial of `next` and up to `pack − 1` more of its pack key further on,
    /// skipping those finished (for this run) or held elsewhere; each looked at is `taken`.
    /// `Err(spent)` when the budget allows no pull at all.
    fn claim_pack(
        &self,
        next: &[usize],
        taken: &mut [bool],
        elsewhere: &mut Vec<(usize, ClaimState)>,
    ) -> anyhow::Result<Result<Vec<(usize, Claim)>, Spent>> {
        let (spec, folder) = (self.ctx.spec, self.ctx.results);
        let room = match self.pulls_left()? {
            Some(0) => return Ok(Err(Spent::Pulls(self.budget.max_pulls.unwrap_or(0)))),
            Some(left) => left.min(self.pack.max(1)),
            None => self.pack.max(1),
        };
        let key = pack_key(&spec.trials[next[0]].params);
        let packs = room > 1 && key.is_some();
        let candidates = std::iter::once(next[0])
            .chain(next[1..].iter().copied().filter(|&m| packs && pack_key(&spec.trials[m].params) == key));
        let mut claims = Vec::new();
        for m in candidates {
            if claims.len() == room {
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
        if !claims.is_empty() {
            if let Err(spent) =
                self.budget.may_start(claims.len(), self.ledger.records(), spec, SystemTime::now())
            {
                return Ok(Err(spent));
            }
        }
        Ok(Ok(claims))
    }

    /// Pulls the budget still allows: `max_pulls` less those finished (on disk) and those other
    /// workers hold; `None` without a cap.
    fn pulls_left(&self) -> anyhow::Result<Option<usize>> {
        if self.budget.max_pulls.is_none() {
            return Ok(None);
        }
        let dir = &self.ctx.results.dir;
        let mut finished = 0;
        for trial in &self.ctx.spec.trials {
            finished +=
                usize::from(matches!(dir.trial(&trial.id).read_outcome_file()?, OutcomeFile::Finished(_)));
        }
        Ok(self.budget.pulls_left(finished, self.running_elsewhere()?.len()))
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
        let started = Instant::now();
        let trials = pack.len();
        let ends = run_trials(ctx, pack, self.runner)?;
        self.budget.measured(trials, started.elapsed().as_secs_f64());
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
            self.this_run.ran(trial.id.clone());
            self.ran.add(outcome.status);
            let result = outcome.result_line(spec.select.metric);
            ctx.progress.trial_finished(&outcome, &result, &self.ran, spec.select.metric);
            let _lock = ctx.results.claims.export_lock()?;
            self.ledger.add(TrialRecord::new(trial, *outcome))?;
        }
        Ok(end)
    }
}
