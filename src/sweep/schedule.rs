//! Which trials a sweep runs, and in which order.
//!
//! - **Grid**: every trial of the spec's own seeds whose config is screened in, in spec order.
//! - **Race**: the race's next pulls as the finished trials decide them (`results::race`): while
//!   it runs, every unfinished pull of a racing config, key by key; once decided, nothing more,
//!   unless there is a budget (`[search] max_pulls`, `--until`, `--for`): then its keys are the
//!   grid's and the extra seeds', and the survivors go on over them while budget is left.

use std::collections::HashSet;

use crate::eval::race::{ConfigState, PullKey, RaceState};
use crate::results::race::RaceBoard;
use crate::results::record::{TrialOutcome, TrialRecord};
use crate::spec::SweepSpec;

/// A sweep's plan.
pub enum Schedule<'a> {
    /// Spec trial indices, in run order.
    Grid {
        spec: &'a SweepSpec,
        trials: Vec<usize>,
    },
    Race {
        board: &'a RaceBoard<'a>,
    },
}

impl<'a> Schedule<'a> {
    /// The grid of `spec` over the configs `enters` lets in (the extra seeds are a race's).
    pub fn grid(spec: &'a SweepSpec, enters: impl Fn(usize) -> bool) -> Schedule<'a> {
        let trials = (0..spec.trials.len())
            .filter(|&n| !spec.extra_seeds.contains(&spec.trials[n].params.seed) && enters(n))
            .collect();
        Schedule::Grid { spec, trials }
    }

    /// A race's unfinished pulls to run next, as spec trial indices in order (empty: nothing
    /// left to run); a grid's unfinished trials.
    pub fn next(
        &self,
        records: &[TrialRecord],
        settled: &dyn Fn(&TrialOutcome) -> bool,
        budget_set: bool,
    ) -> anyhow::Result<Vec<usize>> {
        let finished: HashSet<&str> =
            records.iter().filter(|r| settled(&r.outcome)).map(|r| r.id().as_str()).collect();
        let unfinished = |spec: &SweepSpec, n: &usize| !finished.contains(spec.trials[*n].id.as_str());
        match self {
            Schedule::Grid { spec, trials } => {
                Ok(trials.iter().copied().filter(|n| unfinished(spec, n)).collect())
            }
            Schedule::Race { board } => {
                let keys = board.keys_in_play(budget_set);
                let state = board.judge(records, settled, keys)?;
                let trials =
                    pulls(&state, keys, budget_set).into_iter().filter_map(|pull| board.trial_of(pull));
                Ok(trials.filter(|n| unfinished(board.spec(), n)).collect())
            }
        }
    }
}

/// The pulls to run: the race's next while it runs; once decided, with a budget, every
/// survivor's keys (more seeds while budget is left), without one none.
fn pulls(state: &RaceState, keys: usize, budget_set: bool) -> Vec<PullKey> {
    if !state.is_decided() {
        return state.next.clone();
    }
    if !budget_set {
        return Vec::new();
    }
    let survivors: Vec<usize> =
        (0..state.configs.len()).filter(|&c| state.configs[c] == ConfigState::Survivor).collect();
    (0..keys).flat_map(|key| survivors.iter().map(move |&config| PullKey { config, key })).collect()
}
