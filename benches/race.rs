//! The race's rule and its alternatives on simulated sweeps (`gacha::eval::race_sim`): the pulls
//! a race's decision rests on, how often it drops the truly best config, and the true precision
//! of its choice against the full grid's on the same answers; docs/race.md reports the output.
//!
//! `cargo bench --bench race` runs every rule on every spread, shape and answer model (1000 sweeps
//! a row, seed 2026); `--scan` runs the default rule on k-fold 5×S, S = 3..=10, instead;
//! arguments that are not flags keep the rows whose label contains one of them, `--sweeps N`
//! sets the sweeps: `cargo bench --bench race -- --sweeps 500 "harmonic 0.05"`. Rows run one
//! after another, each row's sweeps on rayon's threads; a row's numbers do not depend on how
//! many threads there are.

use std::time::Instant;

use gacha::eval::race::{
    judge, ConfigState, DropTest, End, Look, Pull, RaceInput, RaceRule, RaceState, Spending,
};
use gacha::eval::race_sim::{
    simulate_with, AnswerModel, Estimate, SimGrid, SimSetup, SimValidation, Spread, USERS_IMAGES,
    USERS_POSITIVES,
};
use gacha::eval::stats::normal_sf;

const SWEEPS: usize = 1000;
const SEED: u64 = 2026;
/// The configs of every simulated sweep (issue 28: 48, most mediocre).
const CONFIGS: usize = 48;
/// The test images every shape sets aside (the demo's 16).
const TEST_IMAGES: usize = 16;
/// irace's default confidence 0.95.
const IRACE_ALPHA: f64 = 0.05;

/// A rule of this crate's race, or irace's F-race.
#[derive(Clone, Copy)]
enum Racer {
    Rule(RaceRule),
    Friedman,
}

fn racers() -> Vec<(String, Racer)> {
    let mcnemar = |alpha, spending| Racer::Rule(RaceRule { test: DropTest::McNemar { alpha, spending } });
    let mut racers: Vec<(String, Racer)> = [0.05, 0.02, 0.01, 0.005, 0.002]
        .into_iter()
        .map(|alpha| (format!("constant {alpha}"), mcnemar(alpha, Spending::Constant)))
        .collect();
    racers.extend([
        ("bonferroni 0.05".to_string(), mcnemar(0.05, Spending::Bonferroni)),
        ("harmonic 0.05".to_string(), mcnemar(0.05, Spending::Harmonic)),
        ("harmonic 0.1".to_string(), mcnemar(0.1, Spending::Harmonic)),
        ("obrien-fleming 0.05".to_string(), mcnemar(0.05, Spending::OBrienFleming)),
        ("smac-like (lower value)".to_string(), Racer::Rule(RaceRule { test: DropTest::LowerValue })),
        ("irace-like (friedman)".to_string(), Racer::Friedman),
    ]);
    racers
}

fn shapes() -> Vec<(&'static str, SimGrid)> {
    let grid = |seeds, validation| SimGrid {
        images: USERS_IMAGES,
        positives: USERS_POSITIVES,
        test: TEST_IMAGES,
        seeds,
        validation,
    };
    vec![
        ("k-fold 5x3", grid(3, SimValidation::Kfold { folds: 5 })),
        ("k-fold 5x10", grid(10, SimValidation::Kfold { folds: 5 })),
        ("holdout 10x30", grid(30, SimValidation::Holdout { valid: 10 })),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sweeps = args
        .iter()
        .position(|a| a == "--sweeps")
        .and_then(|i| args.get(i + 1))
        .map_or(SWEEPS, |n| n.parse().expect("--sweeps takes a number"));
    // cargo passes `--bench`; the word after `--sweeps` is its value.
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--sweeps"))
        .map(|(_, a)| a)
        .collect();
    println!("{sweeps} sweeps per row, seed {SEED}, {CONFIGS} configs, {TEST_IMAGES} test images");
    println!(
        "| spread | shape | answers | rule | pulls % of grid | best dropped % | race − grid precision | \
         confirmed − grid (pulls %) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let spreads = [("realistic", Spread::REALISTIC), ("tight", Spread::TIGHT), ("twins", Spread::TWINS)];
    let models = [("independent", AnswerModel::Independent), ("correlated", AnswerModel::CORRELATED)];
    // Every rule on the three shapes, then the default rule on k-fold 5×S (`--scan`).
    let mut rows: Vec<(String, SimSetup, Racer)> = Vec::new();
    for (spread_name, spread) in spreads {
        for (shape_name, grid) in shapes() {
            for (model_name, answers) in models {
                for (rule_name, racer) in racers() {
                    let label = format!("| {spread_name} | {shape_name} | {model_name} | {rule_name} |");
                    let setup = SimSetup { configs: spread.configs(CONFIGS), grid, answers, confirm: true };
                    rows.push((label, setup, racer));
                }
            }
        }
    }
    if args.iter().any(|a| a == "--scan") {
        rows.clear();
        for (spread_name, spread) in &spreads[..2] {
            for (model_name, answers) in models {
                for seeds in 3..=10 {
                    let label = format!("| {spread_name} | k-fold 5x{seeds} | {model_name} | default |");
                    let grid = SimGrid { seeds, ..shapes()[0].1 };
                    let setup = SimSetup { configs: spread.configs(CONFIGS), grid, answers, confirm: true };
                    rows.push((label, setup, Racer::Rule(RaceRule::DEFAULT)));
                }
            }
        }
    }
    for (label, setup, racer) in rows {
        if !filters.is_empty() && !filters.iter().any(|f| label.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let report = match racer {
            Racer::Rule(rule) => simulate_with(&setup, sweeps, SEED, &|input| judge(&rule, input)),
            Racer::Friedman => simulate_with(&setup, sweeps, SEED, &friedman_race),
        };
        let (confirmed, confirmed_pulls) = report.confirmed.expect("confirm is on");
        // Appending keys lowers these rules' past levels: configs they dropped come back and
        // wait for pulls never run, so the confirmation stalls.
        let moving = matches!(
            racer,
            Racer::Rule(RaceRule {
                test: DropTest::McNemar { spending: Spending::Bonferroni | Spending::OBrienFleming, .. }
            })
        );
        let confirmed = if moving {
            "n/a (levels move with keys)".to_string()
        } else {
            format!("{} ({:.0})", signed(confirmed), 100.0 * confirmed_pulls.mean)
        };
        println!(
            "{label} {} | {} | {} | {confirmed} |",
            percent(report.pulls),
            percent(report.best_dropped),
            signed(report.difference),
        );
        eprintln!("{label} {:.1} s", started.elapsed().as_secs_f64());
    }
}

fn percent(e: Estimate) -> String {
    format!("{:.1} [{:.1}, {:.1}]", 100.0 * e.mean, 100.0 * e.low, 100.0 * e.high)
}

fn signed(e: Estimate) -> String {
    format!("{:+.4} [{:+.4}, {:+.4}]", e.mean, e.low, e.high)
}

/// irace's F-race (`R/race.R`, `aux2.friedman` and `aux_friedman`) on the same looks as the
/// race: per key, each racing config's cost is 1 − its precision on that key's images (a
/// diverged pull, or one that never said yes, costs 1); the costs are ranked within each key
/// (ties averaged) and the Friedman test (tie-corrected) run; if p < 0.05, configs whose rank
/// sum exceeds the best's by more than Conover's t-based difference are dropped. With two
/// left, one at most as costly on every key drops the other (an exact tie drops the second,
/// as irace does), else a paired Wilcoxon signed-rank test. Approximations: χ² tail by
/// Wilson–Hilferty, t quantile by its Cornish–Fisher series, Wilcoxon by the normal with
/// continuity and tie corrections. The chosen config is the survivors' first by this crate's
/// ranking (the last look's leader), as for the other rules.
fn friedman_race(input: &RaceInput) -> RaceState {
    let configs = input.configs.len();
    let keys = input.keys;
    let cost = |c: usize, key: usize| -> Option<f64> {
        match input.configs[c].get(key)? {
            Pull::Pending => None,
            Pull::Diverged(_) | Pull::Failed => Some(1.0),
            Pull::Done(answers) => {
                let tp = answers.iter().filter(|a| a.answer.positive && a.answer.answered_positive).count();
                let yes = answers.iter().filter(|a| a.answer.answered_positive).count();
                Some(if yes == 0 { 1.0 } else { 1.0 - tp as f64 / yes as f64 })
            }
        }
    };
    let mut states = vec![ConfigState::Racing; configs];
    let mut looks: Vec<Look> = Vec::new();
    let mut end = None;
    for counted in input.first_round.clamp(1, keys.max(1))..=keys {
        let racing: Vec<usize> = (0..configs).filter(|&c| states[c] == ConfigState::Racing).collect();
        let costs: Option<Vec<Vec<f64>>> =
            racing.iter().map(|&c| (0..counted).map(|key| cost(c, key)).collect()).collect();
        let Some(costs) = costs else { break };
        let number = looks.len() + 1;
        let (best, p, dropped) =
            if racing.len() == 2 { wilcoxon_step(&costs) } else { friedman_step(&costs) };
        for &d in &dropped {
            states[racing[d]] = ConfigState::Dropped { look: number, p, leader: racing[best] };
        }
        looks.push(Look {
            keys: counted,
            level: Some(IRACE_ALPHA),
            leader: Some(racing[best]),
            entries: vec![],
        });
        if racing.len() - dropped.len() <= 1 {
            end = Some(End::OneLeft);
            break;
        } else if counted == keys {
            end = Some(End::KeysRanOut);
        }
    }
    if end.is_some() {
        for state in states.iter_mut().filter(|s| **s == ConfigState::Racing) {
            *state = ConfigState::Survivor;
        }
        let survivors: Vec<usize> = (0..configs).filter(|&c| states[c] == ConfigState::Survivor).collect();
        let look = looks.last_mut().expect("decided after a look");
        look.leader = ranked_first(input, &survivors, look.keys);
    }
    RaceState { configs: states, looks, end, next: Vec::new() }
}

/// The first of `configs` by the race's ranking on keys 0..keys (a race that never drops,
/// looked at once).
fn ranked_first(input: &RaceInput, configs: &[usize], keys: usize) -> Option<usize> {
    let grid = RaceRule { test: DropTest::McNemar { alpha: 0.0, spending: Spending::Constant } };
    let pulls = configs.iter().map(|&c| input.configs[c][..keys].to_vec()).collect();
    let sub = RaceInput { metric: input.metric, first_round: keys, keys, configs: pulls };
    judge(&grid, &sub).leader().map(|i| configs[i])
}

/// Average ranks (1-based) of `values`, lowest first.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for &o in &order[i..=j] {
            ranks[o] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    ranks
}

/// Σ (t³ − t) over the groups of tied values.
fn tie_sum(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.chunk_by(|a, b| a == b).map(|g| (g.len() as f64).powi(3) - g.len() as f64).sum()
}

/// (best, p, dropped) of `costs[config][key]` by Friedman and Conover.
fn friedman_step(costs: &[Vec<f64>]) -> (usize, f64, Vec<usize>) {
    let (k, n) = (costs.len() as f64, costs[0].len() as f64);
    let mut rank_sums = vec![0.0; costs.len()];
    let (mut squares, mut ties) = (0.0, 0.0);
    for key in 0..costs[0].len() {
        let column: Vec<f64> = costs.iter().map(|c| c[key]).collect();
        for (sum, r) in rank_sums.iter_mut().zip(ranks(&column)) {
            *sum += r;
            squares += r * r;
        }
        ties += tie_sum(&column);
    }
    let best = (0..costs.len()).min_by(|&a, &b| rank_sums[a].total_cmp(&rank_sums[b])).expect("configs");
    let centre = n * (k + 1.0) / 2.0;
    let spread: f64 = rank_sums.iter().map(|r| (r - centre).powi(2)).sum();
    let statistic = 12.0 * spread / (n * k * (k + 1.0) - ties / (k - 1.0));
    let p = chi_square_sf(statistic, k - 1.0);
    if p.is_nan() || p >= IRACE_ALPHA {
        return (best, p, Vec::new());
    }
    let df = (n - 1.0) * (k - 1.0);
    let sum_squares: f64 = rank_sums.iter().map(|r| r * r).sum();
    let margin = t_975(df) * (2.0 * (n * squares - sum_squares) / df).sqrt();
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| rank_sums[a].total_cmp(&rank_sums[b]));
    let kept = order.iter().take_while(|&&c| (rank_sums[c] - rank_sums[best]).abs() <= margin).count();
    (best, p, order[kept..].to_vec())
}

/// (best, p, dropped) of two configs' costs, irace's way.
fn wilcoxon_step(costs: &[Vec<f64>]) -> (usize, f64, Vec<usize>) {
    let (first, second) = (&costs[0], &costs[1]);
    if first.iter().zip(second).all(|(a, b)| a <= b) {
        return (0, 0.0, vec![1]);
    }
    if first.iter().zip(second).all(|(a, b)| b <= a) {
        return (1, 0.0, vec![0]);
    }
    let differences: Vec<f64> = first.iter().zip(second).map(|(a, b)| a - b).filter(|d| *d != 0.0).collect();
    let n = differences.len() as f64;
    let magnitudes: Vec<f64> = differences.iter().map(|d| d.abs()).collect();
    let w_plus: f64 =
        ranks(&magnitudes).iter().zip(&differences).filter(|(_, d)| **d > 0.0).map(|(r, _)| r).sum();
    let centre = n * (n + 1.0) / 4.0;
    let sd = (n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_sum(&magnitudes) / 48.0).sqrt();
    let z = ((w_plus - centre).abs() - 0.5).max(0.0) / sd;
    let p = (2.0 * normal_sf(z)).min(1.0);
    // W+ above its centre: the first costs more.
    let (best, worse) = if w_plus > centre { (1, 0) } else { (0, 1) };
    (best, p, if p < IRACE_ALPHA { vec![worse] } else { Vec::new() })
}

/// P(χ²_df > x) by the Wilson–Hilferty cube-root normal approximation.
fn chi_square_sf(x: f64, df: f64) -> f64 {
    let scale = 2.0 / (9.0 * df);
    normal_sf(((x / df).cbrt() - (1.0 - scale)) / scale.sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: the normal's plus the first
/// three Cornish–Fisher terms (Abramowitz & Stegun 26.7.5).
fn t_975(df: f64) -> f64 {
    let z: f64 = 1.959_963_984_540_054;
    let g1 = (z.powi(3) + z) / 4.0;
    let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
    let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
    z + g1 / df + g2 / df.powi(2) + g3 / df.powi(3)
}
