//! `gacha check SPEC`'s plan: what the sweep will run and, where it can be told, when it will
//! end. A grid runs its trials; a race's pulls are estimated by simulating its rule on sweeps of
//! the spec's shape with a typical spread of configs (`eval::race_sim`: three near the top, one
//! in eight diverging, the rest mediocre; the real spread is unknown before the sweep). Durations
//! come from the trials already finished in the spec's results folder, if any.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::clock::local_hh_mm;
use crate::data::{Dataset, Label};
use crate::eval::race::RaceRule;
use crate::eval::race_sim::{simulate, AnswerModel, SimGrid, SimSetup, SimValidation, Spread};
use crate::results::layout::ResultsDir;
use crate::spec::{HeldOut, Strategy, SweepSpec};

/// Simulated sweeps behind the race's estimate (about a second for 48 configs × 15 keys).
const SIMULATED_SWEEPS: usize = 200;

/// The plan's lines: pulls, the race's expected share, and the expected end once durations are
/// known (`workers` trials at once).
pub fn plan(spec: &SweepSpec, dataset: &Dataset, results: &Path, workers: usize) -> anyhow::Result<String> {
    let grid: Vec<_> = spec.trials.iter().filter(|t| !spec.extra_seeds.contains(&t.params.seed)).collect();
    let mut lines = Vec::new();
    let mut expected = grid.len() as f64;
    if spec.search.strategy == Strategy::Race {
        let configs = grid.iter().map(|t| &t.config).collect::<std::collections::HashSet<_>>().len();
        let keys = grid.len() / configs.max(1);
        let (share, low, high) = race_share(spec, dataset, configs, grid.len() / configs.max(1));
        expected = share * grid.len() as f64;
        lines.push(format!(
            "race: {configs} configs over {keys} keys; the grid is {} pulls, the race expected to use about \
             {:.0} ({:.0}% [{:.0}%, {:.0}%] in {SIMULATED_SWEEPS} simulated sweeps of this shape with a typical \
             spread of configs; fewer when a few configs stand out, more when all are alike)",
            grid.len(),
            expected,
            100.0 * share,
            100.0 * low,
            100.0 * high
        ));
        if !spec.extra_seeds.is_empty() {
            lines.push(format!(
                "  with a budget (max_pulls, --until, --for) the survivors go on over {} extra seed(s): {:?}",
                spec.extra_seeds.len(),
                spec.extra_seeds
            ));
        }
    } else {
        lines.push(format!("grid: {} pulls", grid.len()));
    }
    if let Some(max) = spec.search.max_pulls {
        lines.push(format!("  budget: at most {max} pulls (max_pulls)"));
        expected = expected.min(max as f64);
    }
    if let Some(keep) = spec.search.screen_prompts {
        lines.push(format!("  prompts screened first on the untrained model: the best {keep} run"));
    }
    let dir = ResultsDir::new(results);
    let records = if results.join("trials").is_dir() { dir.read_records(spec)? } else { Vec::new() };
    let mut secs: Vec<f64> = records.iter().map(|r| r.outcome.trial_secs).filter(|s| s.is_finite()).collect();
    if secs.is_empty() {
        lines.push(format!("  duration: not known yet (no finished trial in {})", results.display()));
    } else {
        secs.sort_by(f64::total_cmp);
        let median = secs[secs.len() / 2];
        let left = (expected - records.len() as f64).max(0.0);
        let span = Duration::from_secs_f64(left * median / workers.max(1) as f64);
        let now = SystemTime::now();
        lines.push(format!(
            "  duration: {median:.1} s a pull (median of {} finished in {}); the about {left:.0} pulls left, \
             {workers} at once, end about {} (in {})",
            secs.len(),
            results.display(),
            local_hh_mm(now + span, now),
            hours(span)
        ));
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// The race's expected share of the grid's pulls, with its 95% interval.
fn race_share(spec: &SweepSpec, dataset: &Dataset, configs: usize, keys: usize) -> (f64, f64, f64) {
    let images = dataset.examples.len();
    let positives = dataset.examples.iter().filter(|e| e.label == Label::Positive).count();
    let test = spec.validation.test.and_then(|t| t.size.resolve(images).ok()).unwrap_or(0);
    let validation = match spec.validation.kfold {
        Some(k) => SimValidation::Kfold { folds: k.folds },
        None => {
            let valid = spec.trials.iter().find_map(|t| match t.params.held_out() {
                HeldOut::Images(v) => v.resolve(images - test).ok(),
                _ => None,
            });
            SimValidation::Holdout { valid: valid.unwrap_or(1) }
        }
    };
    let per_seed = match validation {
        SimValidation::Kfold { folds } => folds,
        SimValidation::Holdout { .. } => 1,
    };
    let grid = SimGrid { images, positives, test, seeds: (keys / per_seed.max(1)).max(1) as u64, validation };
    let setup = SimSetup {
        configs: Spread::REALISTIC.configs(configs),
        grid,
        answers: AnswerModel::Independent,
        confirm: false,
    };
    let report = simulate(&setup, &RaceRule::DEFAULT, SIMULATED_SWEEPS, 1);
    (report.pulls.mean, report.pulls.low, report.pulls.high)
}

/// `2 h 05 min`, `14 min`.
pub(super) fn hours(span: Duration) -> String {
    let minutes = span.as_secs().div_ceil(60);
    match minutes / 60 {
        0 => format!("{minutes} min"),
        h => format!("{h} h {:02} min", minutes % 60),
    }
}
