//! Simulated sweeps with a known truth: what a race rule costs and what it chooses, against the
//! full grid on the same answers (docs/race.md).
//!
//! A sweep has configs of known quality. The dataset is the users' shape (96 images, 54
//! positive by default); `test` images are set aside, the rest is the pool. Seeds 1, 2, … each
//! give the keys of one round: in k-fold every fold of one partition of the pool (drawn once per
//! sweep and shared by all seeds, as gacha's k-fold is), in holdout `valid` images drawn afresh.
//! Each pull answers each of its images right with a probability:
//!
//! - [`AnswerModel::Independent`], the scripted runner's model (`sweep::scripted`): the config's
//!   `accuracy`, independently per pull and image;
//! - [`AnswerModel::Correlated`]: logistic(μ + sd·(√shared·u + √(1−shared)·v)) with u ~ N(0,1)
//!   per image (hard for every config) and v ~ N(0,1) per (config, image) (hard for this config
//!   on every seed), both drawn once per sweep, μ set so that the mean is `accuracy`: seeds of a
//!   config repeat their mistakes, so a test that counts them as independent is too bold.
//!
//! A config with [`Divergence::OddSeeds`] diverges on odd seeds, as the scripted runner does from
//! learning rate 0.5, and diverged pulls count every image wrong, as configs.csv counts them.
//! Its true precision is then that of its pool over all seeds: π·a·(1−d) / (π·a·(1−d) +
//! (1−π)·((1−a)·(1−d) + d)), d = ½ the share of diverging seeds, π the positive share; d = 0 gives
//! the scripted runner's πa/(πa + (1−π)(1−a)). The metric is precision throughout.
//!
//! Per sweep: the grid's choice is the config the full grid ranks first (a race that never drops,
//! looked at once after the last key: configs.csv's order, less the final loss the simulation
//! lacks); the race's is its last leader when decided. With `confirm`, the race then spends what
//! is left of the grid's pulls on more seeds for its survivors (while a whole seed fits) and
//! chooses again. Means come with normal 95% intervals, rates with Wilson's. Each sweep draws
//! from its own ChaCha8 stream of `seed`, so a report is the same on any number of threads.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::metrics::wilson_95;
use super::paired::Answer;
use super::race::{
    holdout_first_round, judge, ConfigState, DropTest, End, ImageAnswer, Pull, RaceInput, RaceRule,
    RaceState, Spending,
};
use super::Metric;

/// The users' dataset: 96 images, 54 of them positive.
pub const USERS_IMAGES: usize = 96;
pub const USERS_POSITIVES: usize = 54;
/// z of a two-sided 95% normal interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// When a simulated config's pulls diverge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    Never,
    /// On odd seeds (the scripted runner at 0.5 ≤ learning rate < 1).
    OddSeeds,
}

/// A simulated config: how often its trained pulls answer right, and when they diverge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub accuracy: f64,
    pub divergence: Divergence,
}

impl SimConfig {
    /// Its true precision when `positive_share` of images are positive (see the module doc).
    pub fn true_precision(&self, positive_share: f64) -> f64 {
        let diverged = match self.divergence {
            Divergence::Never => 0.0,
            Divergence::OddSeeds => 0.5,
        };
        let (pi, a) = (positive_share, self.accuracy);
        let tp = pi * a * (1.0 - diverged);
        let fp = (1.0 - pi) * ((1.0 - a) * (1.0 - diverged) + diverged);
        tp / (tp + fp)
    }
}

/// How a sweep's configs are spread: a few near the top, one in `diverging_one_in` diverging
/// on odd seeds, the rest mediocre; accuracies evenly spaced within each range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub top: &'static [f64],
    pub mediocre: (f64, f64),
    pub diverging: (f64, f64),
    pub diverging_one_in: usize,
}

impl Spread {
    /// Three near the top (precision 0.937, 0.929, 0.920 at 54/96 positive), 1 in 8 diverging,
    /// the mediocre from 0.70 to 0.88 (precision 0.75 to 0.91).
    pub const REALISTIC: Spread = Spread {
        top: &[0.92, 0.91, 0.90],
        mediocre: (0.70, 0.88),
        diverging: (0.80, 0.92),
        diverging_one_in: 8,
    };
    /// Harder: the top three half as far apart, the mediocre from 0.80 to 0.89.
    pub const TIGHT: Spread = Spread {
        top: &[0.92, 0.915, 0.91],
        mediocre: (0.80, 0.89),
        diverging: (0.80, 0.92),
        diverging_one_in: 8,
    };
    /// Two equally best configs (a tie: dropping either is a pure false alarm), otherwise as
    /// [`Spread::REALISTIC`].
    pub const TWINS: Spread = Spread {
        top: &[0.92, 0.92, 0.90],
        mediocre: (0.70, 0.88),
        diverging: (0.80, 0.92),
        diverging_one_in: 8,
    };

    /// `count` configs: the top ones first, then the diverging, then the mediocre.
    pub fn configs(&self, count: usize) -> Vec<SimConfig> {
        let top = self.top.len().min(count);
        let diverging = (count / self.diverging_one_in.max(1)).min(count - top);
        let mediocre = count - top - diverging;
        let evenly = |(low, high): (f64, f64), n: usize| {
            (0..n).map(move |i| {
                if n == 1 {
                    (low + high) / 2.0
                } else {
                    low + (high - low) * i as f64 / (n - 1) as f64
                }
            })
        };
        let config = |divergence| move |accuracy| SimConfig { accuracy, divergence };
        let mut configs: Vec<SimConfig> =
            self.top[..top].iter().copied().map(config(Divergence::Never)).collect();
        configs.extend(evenly(self.diverging, diverging).map(config(Divergence::OddSeeds)));
        configs.extend(evenly(self.mediocre, mediocre).map(config(Divergence::Never)));
        configs
    }
}

/// How a pull's answers are drawn (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnswerModel {
    Independent,
    /// `sd`: the spread of an image's logit; `shared`: the part of its variance common to all
    /// configs.
    Correlated {
        sd: f64,
        shared: f64,
    },
}

impl AnswerModel {
    /// The harder variant docs/race.md measures.
    pub const CORRELATED: AnswerModel = AnswerModel::Correlated { sd: 1.5, shared: 0.5 };
}

/// How each pull of a simulated sweep holds out its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimValidation {
    /// One partition of the pool into `folds` folds: a key per fold per seed.
    Kfold { folds: usize },
    /// `valid` images drawn per seed: a key per seed.
    Holdout { valid: usize },
}

/// The shape of a simulated grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimGrid {
    pub images: usize,
    pub positives: usize,
    /// Images set aside before anything else.
    pub test: usize,
    /// Seeds 1..=seeds.
    pub seeds: u64,
    pub validation: SimValidation,
}

impl SimGrid {
    fn keys_per_seed(&self) -> usize {
        match self.validation {
            SimValidation::Kfold { folds } => folds,
            SimValidation::Holdout { .. } => 1,
        }
    }

    /// The keys of the full grid.
    pub fn keys(&self) -> usize {
        self.seeds as usize * self.keys_per_seed()
    }

    /// The race's first round: a whole k-fold partition, or [`holdout_first_round`].
    pub fn first_round(&self) -> usize {
        match self.validation {
            SimValidation::Kfold { folds } => folds,
            SimValidation::Holdout { valid } => holdout_first_round(self.images - self.test, valid),
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSetup {
    pub configs: Vec<SimConfig>,
    pub grid: SimGrid,
    pub answers: AnswerModel,
    /// Spend the rest of the grid's pulls on the survivors (more seeds) and choose again.
    pub confirm: bool,
}

/// A mean or rate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// The mean of `values` with a normal 95% interval.
    fn mean_of(values: impl Iterator<Item = f64> + Clone) -> Estimate {
        let n = values.clone().count().max(1) as f64;
        let mean = values.clone().sum::<f64>() / n;
        let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let half = Z_95 * (var / n).sqrt();
        Estimate { mean, low: mean - half, high: mean + half }
    }

    /// `hits` of `trials` with Wilson's 95% interval.
    fn rate(hits: usize, trials: usize) -> Estimate {
        let (low, high) = wilson_95(hits as u64, trials as u64).unwrap_or((0.0, 1.0));
        Estimate { mean: hits as f64 / trials.max(1) as f64, low, high }
    }
}

/// What a rule did over the simulated sweeps.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    pub sweeps: usize,
    /// The full grid's pulls: configs × keys.
    pub grid_pulls: usize,
    /// The pulls the race's decision rested on, as a fraction of `grid_pulls`.
    pub pulls: Estimate,
    /// How often the truly best config (the first, if tied) was dropped.
    pub best_dropped: Estimate,
    /// True precision of the race's choice and of the grid's, and the paired difference.
    pub race_precision: Estimate,
    pub grid_precision: Estimate,
    pub difference: Estimate,
    /// With `confirm`: the difference after the survivors' extra seeds, and the pulls used.
    pub confirmed: Option<(Estimate, Estimate)>,
}

/// Simulate `sweeps` sweeps of `setup` raced by `rule`.
pub fn simulate(setup: &SimSetup, rule: &RaceRule, sweeps: usize, seed: u64) -> SimReport {
    simulate_with(setup, sweeps, seed, &|input| judge(rule, input))
}

/// Simulate with any racer: a function from the finished pulls to the race's state.
pub fn simulate_with(
    setup: &SimSetup,
    sweeps: usize,
    seed: u64,
    racer: &(dyn Fn(&RaceInput) -> RaceState + Sync),
) -> SimReport {
    let means = logit_means(setup);
    let results: Vec<Swept> = (0..sweeps)
        .into_par_iter()
        .map(|sweep| one_sweep(setup, &means, (seed, sweep as u64), racer))
        .collect();
    let of = |f: fn(&Swept) -> f64| Estimate::mean_of(results.iter().map(f));
    let grid_pulls = setup.configs.len() * setup.grid.keys();
    let confirmed = setup.confirm.then(|| {
        let difference = of(|s| s.confirmed.map_or(f64::NAN, |(truth, _)| truth) - s.grid);
        (difference, of(|s| s.confirmed.map_or(f64::NAN, |(_, pulls)| pulls)))
    });
    SimReport {
        sweeps,
        grid_pulls,
        pulls: of(|s| s.pulls),
        best_dropped: Estimate::rate(results.iter().filter(|s| s.best_dropped).count(), sweeps),
        race_precision: of(|s| s.race),
        grid_precision: of(|s| s.grid),
        difference: of(|s| s.race - s.grid),
        confirmed,
    }
}

/// One simulated sweep's outcome: pulls as a fraction of the grid's, true precisions chosen.
#[derive(Debug, Clone, Copy)]
struct Swept {
    pulls: f64,
    best_dropped: bool,
    race: f64,
    grid: f64,
    confirmed: Option<(f64, f64)>,
}

/// The rule of the grid: one look after the last key, nothing dropped.
const GRID: RaceRule = RaceRule { test: DropTest::McNemar { alpha: 0.0, spending: Spending::Constant } };

fn one_sweep(
    setup: &SimSetup,
    means: &[f64],
    (seed, stream): (u64, u64),
    racer: &(dyn Fn(&RaceInput) -> RaceState + Sync),
) -> Swept {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut world = World::new(setup, means, rng);
    let grid = &setup.grid;
    let configs = setup.configs.len();
    let mut input = RaceInput {
        metric: Metric::Precision,
        first_round: grid.first_round(),
        keys: 0,
        configs: vec![vec![]; configs],
    };
    for seed in 1..=grid.seeds {
        world.add_seed(&mut input, seed, &vec![true; configs]);
    }
    let grid_pulls = configs * input.keys;
    let share = |pulls: usize| pulls as f64 / grid_pulls as f64;
    let pi = grid.positives as f64 / grid.images as f64;
    let truth = |chosen: Option<usize>| chosen.map_or(0.0, |c| setup.configs[c].true_precision(pi));
    let best = (0..configs).max_by(|&a, &b| truth(Some(a)).total_cmp(&truth(Some(b))).then(b.cmp(&a)));
    let first_round = std::mem::replace(&mut input.first_round, input.keys);
    let grid_choice = judge(&GRID, &input).leader();
    input.first_round = first_round;
    let mut race = racer(&input);
    let swept = Swept {
        pulls: share(race.pulls_judged()),
        best_dropped: best.is_some_and(|b| matches!(race.configs[b], ConfigState::Dropped { .. })),
        race: truth(race.leader()),
        grid: truth(grid_choice),
        confirmed: None,
    };
    if !setup.confirm {
        return swept;
    }
    let mut seed = grid.seeds;
    loop {
        let survivors: Vec<bool> = race.configs.iter().map(|s| *s == ConfigState::Survivor).collect();
        let per_seed = survivors.iter().filter(|&&s| s).count() * grid.keys_per_seed();
        let left = grid_pulls.saturating_sub(race.pulls_judged());
        if race.end != Some(End::KeysRanOut) || per_seed == 0 || left < per_seed {
            break;
        }
        // As many seeds as the survivors can all finish; drops on the way free room for more.
        for _ in 0..left / per_seed {
            seed += 1;
            world.add_seed(&mut input, seed, &survivors);
        }
        race = racer(&input);
    }
    Swept { confirmed: Some((truth(race.leader()), share(race.pulls_judged()))), ..swept }
}

/// One sweep's images and each config's chance to answer each image right.
struct World {
    /// By image: positive?
    positive: Vec<bool>,
    /// The non-test images, in a random order (k-fold: fold i holds positions ≡ i mod folds).
    pool: Vec<u32>,
    /// By config, by image.
    right: Vec<Vec<f64>>,
    divergence: Vec<Divergence>,
    validation: SimValidation,
    rng: ChaCha8Rng,
}

impl World {
    fn new(setup: &SimSetup, means: &[f64], mut rng: ChaCha8Rng) -> World {
        let grid = &setup.grid;
        let positive: Vec<bool> = (0..grid.images).map(|i| i < grid.positives).collect();
        let mut images: Vec<u32> = (0..grid.images as u32).collect();
        images.shuffle(&mut rng);
        let pool = images[grid.test.min(grid.images)..].to_vec();
        let right = match setup.answers {
            AnswerModel::Independent => setup.configs.iter().map(|c| vec![c.accuracy; grid.images]).collect(),
            AnswerModel::Correlated { sd, shared } => {
                let hard: Vec<f64> = (0..grid.images).map(|_| normal(&mut rng)).collect();
                means
                    .iter()
                    .map(|mu| {
                        let mut logit =
                            |u: f64| mu + sd * (shared.sqrt() * u + (1.0 - shared).sqrt() * normal(&mut rng));
                        hard.iter().map(|&u| logistic(logit(u))).collect()
                    })
                    .collect()
            }
        };
        let divergence = setup.configs.iter().map(|c| c.divergence).collect();
        World { positive, pool, right, divergence, validation: grid.validation, rng }
    }

    /// Append seed `seed`'s keys, with the pulls of the configs `runs` marks (the others pending).
    fn add_seed(&mut self, input: &mut RaceInput, seed: u64, runs: &[bool]) {
        let keys: Vec<Vec<u32>> = match self.validation {
            SimValidation::Kfold { folds } => (0..folds)
                .map(|fold| {
                    let mut images: Vec<u32> =
                        self.pool.iter().skip(fold).step_by(folds.max(1)).copied().collect();
                    images.sort_unstable();
                    images
                })
                .collect(),
            SimValidation::Holdout { valid } => {
                let mut pool = self.pool.clone();
                pool.shuffle(&mut self.rng);
                pool.truncate(valid);
                pool.sort_unstable();
                vec![pool]
            }
        };
        for images in keys {
            for (config, pulls) in input.configs.iter_mut().enumerate() {
                let pull = if runs[config] { self.pull(config, seed, &images) } else { Pull::Pending };
                pulls.push(pull);
            }
            input.keys += 1;
        }
    }

    fn pull(&mut self, config: usize, seed: u64, images: &[u32]) -> Pull {
        if self.divergence[config] == Divergence::OddSeeds && seed % 2 == 1 {
            let wrong = images
                .iter()
                .map(|&image| ImageAnswer { image, answer: Answer::wrong(self.positive[image as usize]) });
            return Pull::Diverged(wrong.collect());
        }
        let answers = images.iter().map(|&image| {
            let positive = self.positive[image as usize];
            let right = self.rng.random::<f64>() < self.right[config][image as usize];
            ImageAnswer { image, answer: Answer { positive, answered_positive: positive == right } }
        });
        Pull::Done(answers.collect())
    }
}

/// Each config's μ: the logit mean that makes its mean chance `accuracy` (correlated model).
fn logit_means(setup: &SimSetup) -> Vec<f64> {
    let AnswerModel::Correlated { sd, .. } = setup.answers else { return vec![0.0; setup.configs.len()] };
    setup.configs.iter().map(|c| logit_mean(c.accuracy, sd)).collect()
}

/// The μ with E[logistic(μ + sd·Z)] = `mean`, Z ~ N(0,1): the expectation summed over z in
/// [−8, 8] at steps of 0.01, μ by bisection.
pub fn logit_mean(mean: f64, sd: f64) -> f64 {
    let expectation = |mu: f64| {
        let step = 0.01;
        let density = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (-800..=800).map(|i| i as f64 * step).map(|z| logistic(mu + sd * z) * density(z) * step).sum::<f64>()
    };
    let (mut low, mut high) = (-30.0, 30.0);
    for _ in 0..60 {
        let mid = 0.5 * (low + high);
        if expectation(mid) < mean {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

#[cfg(test)]
mod tests;
