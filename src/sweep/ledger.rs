//! The finished trials a worker knows, kept in memory between its trials, so that the
//! bookkeeping after a trial costs O(1) amortised however long the sweep (issue 11: rebuilding
//! everything from every trial folder after each trial made 1,000 scripted trials cost 25 s).
//!
//! After each of its trials, a worker (holding the export lock):
//! - adds the trial's record to those it knows and updates the winner (one comparison);
//! - makes `best/` hold the winner at once when it changed, so `best/` never lags. What `best/`
//!   holds is read first and counted in, so a worker never puts back a trial that another
//!   worker's better one replaced;
//! - rewrites `leaderboard.csv` and `configs.csv` (and applies `keep`) from every trial folder,
//!   other workers' trials included, only when the last rewrite ended at least
//!   max([`MIN_GAP`], [`GAP_FACTOR`] × the time it took) ago: rewriting then takes at most a
//!   fifth of the run, however many trials there are.
//!
//! So during a run the two CSVs lag behind the trial folders only when trials finish faster than
//! that (scripted runs; a trial that trains a model takes longer, and then they are rewritten
//! after every trial), and by at most about a second, or four rewrites' time in huge sweeps.
//! Every run begins and ends (complete, interrupted, or its part done) with the full rewrite
//! from the trial folders, so the files it leaves are exactly what a rebuild from them gives;
//! after a SIGKILL the next run's first rewrite catches up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::results::best::Prune;
use crate::results::exports::{follow_winner, write_exports};
use crate::results::layout::{OutcomeFile, ResultsDir, TrialPaths, BEST_DIR};
use crate::results::race::{RaceFile, Standing, Standings};
use crate::results::rank::{can_win, ranks_before};
use crate::results::record::TrialRecord;
use crate::spec::{ConfigId, SweepSpec, TrialId};

/// The shortest time between two rewrites of the leaderboard and `configs.csv`.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// How many times as long as the last rewrite took the next one waits after it.
pub const GAP_FACTOR: u32 = 4;

/// How long after a rewrite that took `took` the next one is due.
fn gap_after(took: Duration) -> Duration {
    MIN_GAP.max(took * GAP_FACTOR)
}

/// The finished trials of a sweep that this worker knows, and the files built from them.
pub struct Ledger<'a> {
    dir: &'a ResultsDir,
    spec: &'a SweepSpec,
    prune: Prune,
    /// How many times the exports were rewritten (the pacing is tested by it).
    rewrites: usize,
    /// A race's, and the configs screened out (`configs.csv`, `race.json`).
    standings: Standings<'a>,
    /// In spec order as of the last rewrite; trials recorded since are appended.
    records: Vec<TrialRecord>,
    /// Where each trial's record is in `records`.
    at: HashMap<TrialId, usize>,
    /// The record in `records` that ranks first of those that can win.
    winner: Option<usize>,
    /// When the next rewrite is due.
    next_rewrite: Instant,
}

impl<'a> Ledger<'a> {
    /// Read every trial folder of `spec` in `dir` and write every export from them.
    pub fn rebuild(
        dir: &'a ResultsDir,
        spec: &'a SweepSpec,
        prune: Prune,
        standings: Standings<'a>,
    ) -> anyhow::Result<Ledger<'a>> {
        let mut ledger = Ledger {
            dir,
            spec,
            prune,
            rewrites: 0,
            standings,
            records: Vec::new(),
            at: HashMap::new(),
            winner: None,
            next_rewrite: Instant::now(),
        };
        ledger.rewrite()?;
        Ok(ledger)
    }

    /// Every finished trial read at the last rewrite (in spec order), then those added since.
    pub fn records(&self) -> &[TrialRecord] {
        &self.records
    }

    /// Where every config stands, and the race, from the records read so far.
    pub fn standings(&self) -> anyhow::Result<(HashMap<ConfigId, Standing>, Option<RaceFile>)> {
        self.standings.judge(&self.records)
    }

    /// How many times the exports were rewritten so far.
    pub fn rewrites(&self) -> usize {
        self.rewrites
    }

    /// Read every trial folder again and rewrite every export (what [`Ledger::rebuild`] does).
    pub fn rewrite(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.records = self.dir.read_records(self.spec)?;
        self.at = self.records.iter().enumerate().map(|(i, r)| (r.id().clone(), i)).collect();
        self.winner = None;
        (0..self.records.len()).for_each(|i| self.consider(i));
        write_exports(self.dir, self.spec, &self.records, self.prune, &self.standings)?;
        self.rewrites += 1;
        let ended = Instant::now();
        self.next_rewrite = ended + gap_after(ended - started);
        Ok(())
    }

    /// Count in `record` (a trial this worker just finished), make `best/` follow the winner,
    /// and rewrite the CSVs when due (see the module doc).
    pub fn add(&mut self, record: TrialRecord) -> anyhow::Result<()> {
        self.insert(record);
        self.learn_best()?;
        let winner = self.winner.map(|i| &self.records[i]);
        follow_winner(self.dir, self.spec, winner)?;
        if Instant::now() >= self.next_rewrite {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Put `record` in (replacing an older record of its trial: a rerun) and update the winner.
    fn insert(&mut self, record: TrialRecord) {
        match self.at.get(record.id()) {
            Some(&i) => {
                self.records[i] = record;
                if self.winner == Some(i) {
                    // The winner was replaced (by a worse record, maybe): look at them all.
                    self.winner = None;
                    (0..self.records.len()).for_each(|j| self.consider(j));
                } else {
                    self.consider(i);
                }
            }
            None => {
                self.at.insert(record.id().clone(), self.records.len());
                self.records.push(record);
                self.consider(self.records.len() - 1);
            }
        }
    }

    /// Make record `i` the winner if it can win and ranks before the winner.
    fn consider(&mut self, i: usize) {
        let select = self.spec.select.metric;
        let candidate = &self.records[i];
        let wins = can_win(candidate, select)
            && self.winner.is_none_or(|w| ranks_before(candidate, &self.records[w], select));
        if wins {
            self.winner = Some(i);
        }
    }

    /// Count in the trial that `best/` holds, if this worker has not read that record (another
    /// worker finished it since the last rewrite), from its trial folder.
    fn learn_best(&mut self) -> anyhow::Result<()> {
        let best = TrialPaths { dir: self.dir.path(BEST_DIR) };
        let OutcomeFile::Finished(held) = best.read_outcome_file()? else { return Ok(()) };
        if self.at.get(&held.id).is_some_and(|&i| self.records[i].outcome == *held) {
            return Ok(());
        }
        let Some(trial) = self.spec.trial(&held.id) else { return Ok(()) };
        if let OutcomeFile::Finished(outcome) = self.dir.trial(&trial.id).read_outcome_file()? {
            self.insert(TrialRecord::new(trial, *outcome));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::results::best::update_best;
    use crate::results::record::Status;
    use crate::results::test_records::{pull, write_trial_folder};

    /// A spec of `n` trials (seeds 1..=n) and an empty results folder.
    fn sweep_of(n: usize) -> (SweepSpec, tempfile::TempDir, ResultsDir) {
        let seeds: Vec<String> = (1..=n).map(|s| s.to_string()).collect();
        let text = format!(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
             [train]\nsteps = 4\nlearning_rate = 0.01\n[sweep]\nseeds = [{}]\nvalid = [4]\n",
            seeds.join(", ")
        );
        let spec = crate::spec::parse_spec(&text, Path::new("s.toml")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = ResultsDir::new(tmp.path());
        std::fs::create_dir_all(tmp.path().join("trials")).unwrap();
        std::fs::write(tmp.path().join(crate::results::layout::MARKER_FILE), "").unwrap();
        (spec, tmp, dir)
    }

    /// Trial `n` of `spec` finished (as a worker leaves it on disk), all 4 images right, with
    /// final loss `loss`.
    fn finish(dir: &ResultsDir, spec: &SweepSpec, n: usize, loss: f64) -> TrialRecord {
        let record = pull(&spec.trials[n], Status::Done, &["yy", "yy", "nn", "nn"], Some(loss));
        write_trial_folder(dir, &record);
        record
    }

    fn best_id(dir: &ResultsDir) -> Option<TrialId> {
        TrialPaths { dir: dir.path(BEST_DIR) }.read_outcome().unwrap().map(|o| o.id)
    }

    #[test]
    fn the_gap_is_a_second_or_four_times_the_last_rewrite() {
        assert_eq!(gap_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(gap_after(Duration::from_millis(249)), Duration::from_secs(1));
        assert_eq!(gap_after(Duration::from_millis(300)), Duration::from_millis(1200));
        assert_eq!(gap_after(Duration::from_secs(2)), Duration::from_secs(8));
    }

    /// Issue 11: every trial a new winner (the worst case for a rule "rewrite when the winner
    /// changes"), yet the leaderboard is rewritten once per second at most, not once per trial;
    /// `best/` follows each new winner at once.
    #[test]
    fn issue_11_rewrites_are_paced_while_best_follows_every_winner() {
        let n = 300;
        let (spec, _tmp, dir) = sweep_of(n);
        let started = Instant::now();
        let mut ledger = Ledger::rebuild(&dir, &spec, Prune::SpareEarlierPicks, Standings::none()).unwrap();
        for k in 0..n {
            // Same scores, lower loss each time: by the 4th tie-break the newest trial wins.
            let record = finish(&dir, &spec, k, 1.0 - k as f64 / 1000.0);
            ledger.add(record).unwrap();
            assert_eq!(best_id(&dir).as_ref(), Some(&spec.trials[k].id), "after trial {k}");
        }
        // One rewrite at the start, then at most one per MIN_GAP (a rebuild after every trial
        // would make n + 1).
        let most = 1 + (started.elapsed().as_secs_f64() / MIN_GAP.as_secs_f64()) as usize;
        let rewrites = ledger.rewrites();
        assert!(rewrites <= most, "{rewrites} rewrites, at most {most}");
        ledger.rewrite().unwrap();
        let ids = |records: &[TrialRecord]| records.iter().map(|r| r.id().clone()).collect::<Vec<_>>();
        assert_eq!(ids(ledger.records()), ids(&dir.read_records(&spec).unwrap()));
    }

    /// Two workers: `best/` holds another worker's trial that this one has not read; this
    /// worker's worse trial must not replace it.
    #[test]
    fn a_better_trial_of_another_worker_stays_in_best() {
        let (spec, _tmp, dir) = sweep_of(3);
        let mut ledger = Ledger::rebuild(&dir, &spec, Prune::SpareEarlierPicks, Standings::none()).unwrap();
        let theirs = finish(&dir, &spec, 0, 0.1);
        update_best(&dir, Some(&theirs)).unwrap();
        let mine = finish(&dir, &spec, 1, 0.2);
        ledger.add(mine).unwrap();
        assert_eq!(best_id(&dir).as_ref(), Some(theirs.id()));
        let better = finish(&dir, &spec, 2, 0.05);
        ledger.add(better.clone()).unwrap();
        assert_eq!(best_id(&dir).as_ref(), Some(better.id()));
    }
}
