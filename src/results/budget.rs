//! What a sweep may spend: at most `[search] max_pulls` pulls, and no pull started that cannot
//! finish before the deadline (`--until`, `--for`) with time left for the final step.
//!
//! Durations are measured as pulls finish: this worker's own packs first (the next pack of K
//! trials is expected to take as long as the longest of its last packs, scaled to K trials);
//! before its first pack, the slowest tenth of the trials finished earlier in the folder. With
//! neither, the first pull starts: nothing can be predicted yet. The final step's reserve is a
//! soup's one pull-time (loading and scoring the members) or a refit's runs, each a pull-time;
//! nothing for the best trial.

use std::time::{Duration, SystemTime};

use crate::clock::local_hh_mm;
use crate::results::record::TrialRecord;
use crate::spec::{FinalModel, SweepSpec};

/// Packs measured that the estimate looks at.
const RECENT_PACKS: usize = 3;

/// A deadline and how the user gave it (`07:00`, `8h`).
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    pub at: SystemTime,
    pub said: String,
}

/// Why a sweep stopped starting pulls before it was complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Spent {
    /// `[search] max_pulls` pulls are finished or running.
    Pulls(usize),
    /// The next pack of `trials` would end at about `would_end`, past the deadline less the
    /// final step's reserve.
    Time { deadline: Deadline, trials: usize, would_end: SystemTime },
}

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spent::Pulls(max) => write!(f, "max_pulls = {max} reached"),
            Spent::Time { deadline, trials, would_end } => {
                let now = SystemTime::now();
                write!(
                    f,
                    "deadline {} ({}): the next {trials} pull(s) would end about {}, too late with the final step",
                    deadline.said,
                    local_hh_mm(deadline.at, now),
                    local_hh_mm(*would_end, now)
                )
            }
        }
    }
}

/// This worker's budget and its measurements.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub max_pulls: Option<usize>,
    pub deadline: Option<Deadline>,
    /// This worker's packs: (trials, seconds from start to recorded).
    packs: Vec<(usize, f64)>,
}

impl Budget {
    pub fn new(max_pulls: Option<usize>, deadline: Option<Deadline>) -> Budget {
        Budget { max_pulls, deadline, packs: Vec::new() }
    }

    /// Whether anything limits the sweep (then a race may use its extra seeds).
    pub fn is_set(&self) -> bool {
        self.max_pulls.is_some() || self.deadline.is_some()
    }

    /// Record a pack of `trials` that took `secs`.
    pub fn measured(&mut self, trials: usize, secs: f64) {
        self.packs.push((trials.max(1), secs));
    }

    /// How many more pulls may start, with `finished` finished and `running` held by workers.
    pub fn pulls_left(&self, finished: usize, running: usize) -> Option<usize> {
        self.max_pulls.map(|max| max.saturating_sub(finished + running))
    }

    /// Seconds a pack of `trials` is expected to take (see the module doc); `None` before any
    /// duration is known.
    pub fn expected_secs(&self, trials: usize, records: &[TrialRecord]) -> Option<f64> {
        let recent = &self.packs[self.packs.len().saturating_sub(RECENT_PACKS)..];
        let per_trial = recent
            .iter()
            .map(|&(k, secs)| secs / k as f64)
            .fold(None, |most: Option<f64>, t| Some(most.map_or(t, |m| m.max(t))));
        let per_trial = per_trial.or_else(|| slow_tenth(records))?;
        Some(per_trial * trials as f64)
    }

    /// Whether a pack of `trials` may start at `now`; `Err` says why not.
    pub fn may_start(
        &self,
        trials: usize,
        records: &[TrialRecord],
        spec: &SweepSpec,
        now: SystemTime,
    ) -> Result<(), Spent> {
        let Some(deadline) = &self.deadline else { return Ok(()) };
        let Some(pack) = self.expected_secs(trials, records) else { return Ok(()) };
        let reserve = self.expected_secs(final_step_pulls(spec), records).unwrap_or(0.0);
        let would_end = now + Duration::from_secs_f64(pack);
        if would_end + Duration::from_secs_f64(reserve) <= deadline.at {
            Ok(())
        } else {
            Err(Spent::Time { deadline: deadline.clone(), trials, would_end })
        }
    }
}

/// The slowest tenth's shortest: the 90th percentile of finished trials' durations.
fn slow_tenth(records: &[TrialRecord]) -> Option<f64> {
    let mut secs: Vec<f64> = records.iter().map(|r| r.outcome.trial_secs).filter(|s| s.is_finite()).collect();
    if secs.is_empty() {
        return None;
    }
    secs.sort_by(f64::total_cmp);
    Some(secs[(secs.len() * 9 / 10).min(secs.len() - 1)])
}

/// The final step in pull-times: none for the best trial, one for a soup, one per refit run.
fn final_step_pulls(spec: &SweepSpec) -> usize {
    match spec.select.final_model {
        FinalModel::BestTrial => 0,
        FinalModel::Soup => 1,
        FinalModel::Refit => spec.refit_seeds().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::record::Status;
    use crate::results::test_records::record;
    use crate::spec::parse_spec;

    fn spec(final_model: &str) -> SweepSpec {
        let text = format!(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
             [train]\nlearning_rate = 0.03\n[select]\nfinal = \"{final_model}\"\n[sweep]\nseeds = [1, 2, 3]\nvalid = [4]\n"
        );
        parse_spec(&text, std::path::Path::new("s.toml")).unwrap()
    }

    fn took(secs: f64) -> TrialRecord {
        let mut r = record("0123456789ab", Status::Done, [1, 1, 0, 0], Some(0.5));
        r.outcome.trial_secs = secs;
        r
    }

    #[test]
    fn own_packs_first_then_the_folders_slow_tenth() {
        let records: Vec<TrialRecord> = (1..=10).map(|s| took(s as f64)).collect();
        let mut budget = Budget::new(None, None);
        // 10 trials of 1..10 s: the 90th percentile is the 10th value by index 9 → 10 s.
        assert_eq!(budget.expected_secs(2, &records), Some(20.0));
        assert_eq!(budget.expected_secs(1, &[]), None);
        // Own packs: 4 trials in 8 s, then 1 in 3 s: the slowest per trial is 3 s.
        budget.measured(4, 8.0);
        budget.measured(1, 3.0);
        assert_eq!(budget.expected_secs(2, &records), Some(6.0));
        // Only the last three packs count.
        budget.measured(1, 1.0);
        budget.measured(1, 1.0);
        budget.measured(1, 1.0);
        assert_eq!(budget.expected_secs(1, &[]), Some(1.0));
    }

    #[test]
    fn a_pack_starts_only_when_it_and_the_final_step_fit() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let deadline = |secs| Some(Deadline { at: now + Duration::from_secs(secs), said: "t".into() });
        let mut budget = Budget::new(None, deadline(100));
        budget.measured(1, 30.0);
        // Best trial: no reserve. 3 × 30 s = 90 s fits in 100 s, 4 × 30 s does not.
        assert_eq!(budget.may_start(3, &[], &spec("best_trial"), now), Ok(()));
        assert!(matches!(
            budget.may_start(4, &[], &spec("best_trial"), now),
            Err(Spent::Time { trials: 4, .. })
        ));
        // A soup reserves one pull (30 s): 2 + 1 fits, 3 + 1 does not; a refit of 3 seeds 3 pulls.
        assert_eq!(budget.may_start(2, &[], &spec("soup"), now), Ok(()));
        assert!(budget.may_start(3, &[], &spec("soup"), now).is_err());
        assert!(budget.may_start(1, &[], &spec("refit"), now).is_err());
        // Without a deadline, or before any duration is known, a pack always starts.
        assert_eq!(Budget::new(None, None).may_start(9, &[], &spec("soup"), now), Ok(()));
        assert_eq!(Budget::new(None, deadline(1)).may_start(9, &[], &spec("soup"), now), Ok(()));
    }

    #[test]
    fn pulls_left_counts_finished_and_running() {
        let budget = Budget::new(Some(10), None);
        assert_eq!(budget.pulls_left(6, 3), Some(1));
        assert_eq!(budget.pulls_left(9, 3), Some(0));
        assert_eq!(Budget::new(None, None).pulls_left(9, 3), None);
    }
}
