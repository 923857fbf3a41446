//! The race: configs run the same pull keys in one fixed order, and a config that a paired test
//! finds worse than the current leader stops getting pulls (docs/race.md has the measurements).
//!
//! - **Keys.** A key is a (seed or repeat, fold) in k-fold, a (seed, hold-out) in holdout: the
//!   same validation images for every config, so every comparison is paired. The caller lists
//!   them in run order; [`RaceInput::keys`] may grow past the grid (more seeds for the
//!   survivors) and the looks already made stay as they were.
//! - **First round.** No look before `first_round` keys: every fold of the first seed (and
//!   repeat) in k-fold, [`holdout_first_round`] keys in holdout.
//! - **Looks.** Look n comes after key `first_round + n − 1`, once every racing config has
//!   finished every key up to it (finished: done, diverged or failed). The pulls a look counts
//!   are those keys, whatever else has finished: pulls run ahead, or run by a config since
//!   dropped, change nothing, so the state is a function of the finished pulls alone.
//! - **Pool and leader.** A config's pool is its answers on the counted keys: a done pull's
//!   answers; a diverged pull answers every image of its key wrong (the caller gives them: the
//!   images its split held out); a failed pull answers nothing. The leader is the racing config first by, in turn: the lower end of the
//!   select metric's Wilson 95% interval on its pool (F1: its value), the value, F1, the input
//!   order; it must have a done pull and a defined value. Without a leader nothing is dropped.
//! - **Drop.** Each other racing config is paired with the leader on the images both answered
//!   on the counted keys (`paired`: as the metric sees them). [`DropTest::McNemar`] drops it when
//!   the leader is right more often and the mid-p is below the look's level ([`Spending`]): a tie
//!   never drops, and the leader is never tested. All drops of a look are against one leader.
//! - **End.** Decided when one config is left, or after the look at the last key. The survivors
//!   then share what is left of the budget: more keys (seeds) appended to `keys`, raced on.
//! - **Next pulls.** While undecided, the unfinished pulls of the racing configs on the keys the
//!   next look counts (the first round, then one key more per look), key by key, in input order
//!   within a key: workers taking pulls in this order agree without talking, and none runs a pull
//!   that a look could make useless; the pulls run are those of a race run one pull at a time.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::paired::{Answer, Paired};
use super::stats::{normal_isf, normal_sf};
use super::{Confusion, Metric};

/// The family level of the default rule: a drop's mid-p must be below this, spent over looks.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// How the default rule spends [`DEFAULT_ALPHA`] over its looks.
pub const DEFAULT_SPENDING: Spending = Spending::Harmonic;

/// When a racing config is dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RaceRule {
    pub test: DropTest,
}

impl RaceRule {
    pub const DEFAULT: RaceRule =
        RaceRule { test: DropTest::McNemar { alpha: DEFAULT_ALPHA, spending: DEFAULT_SPENDING } };
}

impl Default for RaceRule {
    fn default() -> RaceRule {
        RaceRule::DEFAULT
    }
}

/// What shows a config worse than the leader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DropTest {
    /// The leader right more often on the paired images and the mid-p McNemar p-value below
    /// the look's level: `alpha` spent over the looks by `spending`.
    McNemar { alpha: f64, spending: Spending },
    /// SMAC3's intensifier: the select metric on its pool below the leader's, no test.
    LowerValue,
}

/// How a family level α is spent over the looks: the level of look n (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spending {
    /// α at every look: no correction (Pocock-like when α is tuned by simulation).
    Constant,
    /// α/(n(n+1)) at look n: the levels sum to α over any number of looks (1/n − 1/(n+1)
    /// telescopes), so appending keys never changes a level already used.
    Harmonic,
    /// α/L, L the looks the keys allow (`keys − first_round + 1`); depends on `keys`.
    Bonferroni,
    /// O'Brien–Fleming-like: the level of z > z(α/2)/√t, t the counted keys' fraction of all
    /// `keys` (Lan–DeMets' boundary shape); strict early, α at the last key; depends on `keys`.
    OBrienFleming,
}

impl Spending {
    /// The level of look `look` (1-based) of `looks`, made after `counted` of `keys` keys.
    pub fn level(self, alpha: f64, look: usize, looks: usize, (counted, keys): (usize, usize)) -> f64 {
        match self {
            Spending::Constant => alpha,
            Spending::Harmonic => alpha / (look * (look + 1)) as f64,
            Spending::Bonferroni => alpha / looks.max(1) as f64,
            Spending::OBrienFleming => {
                let fraction = counted as f64 / keys.max(1) as f64;
                2.0 * normal_sf(normal_isf(alpha / 2.0) / fraction.sqrt())
            }
        }
    }
}

/// The holdout first round: as many keys as it takes `valid` images per key to answer as many
/// images as the pool holds (each image once on average, like one k-fold round). Covering every
/// image would take about (pool/valid)·ln(pool) keys of random hold-outs.
pub fn holdout_first_round(pool: usize, valid: usize) -> usize {
    pool.div_ceil(valid.max(1)).max(1)
}

/// A config's answer to one image of a key; `image` is the caller's index of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageAnswer {
    pub image: u32,
    pub answer: Answer,
}

/// One config's pull at one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Pull {
    /// Not finished (not started, or running).
    Pending,
    /// Trained and answered its key's validation images.
    Done(Vec<ImageAnswer>),
    /// Diverged: every image its split held out, answered wrong ([`Answer::wrong`]).
    Diverged(Vec<ImageAnswer>),
    /// Failed (a crash, not the config's doing): answers nothing.
    Failed,
}

/// Everything a race's state is derived from.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceInput {
    /// The select metric.
    pub metric: Metric,
    /// Keys before the first look (clamped to 1..=keys).
    pub first_round: usize,
    /// How many keys the race may use, grid and beyond.
    pub keys: usize,
    /// By config: its pulls in key order; missing ones are pending, ones past `keys` ignored.
    pub configs: Vec<Vec<Pull>>,
}

/// Where a config stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigState {
    /// Still getting pulls.
    Racing,
    /// Shown worse than `leader` at look `look` (1-based), with the mid-p `p` of that look.
    Dropped { look: usize, p: f64, leader: usize },
    /// Left when the race was decided.
    Survivor,
}

/// One config at one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookEntry {
    pub config: usize,
    /// Its pool on the look's keys.
    pub pooled: Confusion,
    /// Its pairs with the leader (the leader first); `None` for the leader and without one.
    pub versus: Option<Paired>,
    pub dropped: bool,
}

/// One look: who led, at which level, and every config racing into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    /// The keys it counted: keys 0..keys.
    pub keys: usize,
    /// The drop level (`None` for [`DropTest::LowerValue`]).
    pub level: Option<f64>,
    pub leader: Option<usize>,
    pub entries: Vec<LookEntry>,
}

/// Why a race is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    OneLeft,
    KeysRanOut,
}

/// A pull to run: config `config` (input index) at key `key` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullKey {
    pub config: usize,
    pub key: usize,
}

/// A race as its finished pulls decide it.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceState {
    /// By input index.
    pub configs: Vec<ConfigState>,
    pub looks: Vec<Look>,
    /// `Some` once decided.
    pub end: Option<End>,
    /// The pulls to run next, in the order to take them; empty once decided.
    pub next: Vec<PullKey>,
}

impl RaceState {
    pub fn is_decided(&self) -> bool {
        self.end.is_some()
    }

    /// The last look's leader.
    pub fn leader(&self) -> Option<usize> {
        self.looks.last().and_then(|look| look.leader)
    }

    /// The pulls the decisions rest on: each dropped config's keys up to its drop, every other
    /// config's keys up to the last look (0 before the first look).
    pub fn pulls_judged(&self) -> usize {
        let last = self.looks.last().map_or(0, |look| look.keys);
        let keys = |state: &ConfigState| match state {
            ConfigState::Dropped { look, .. } => self.looks[look - 1].keys,
            ConfigState::Racing | ConfigState::Survivor => last,
        };
        self.configs.iter().map(keys).sum()
    }
}

/// A finished pull as the race counts it: its answers sorted by image, each image once.
#[derive(Debug, Clone)]
struct Finished<'a> {
    done: bool,
    answers: Cow<'a, [ImageAnswer]>,
}

/// One config's finished pulls by key (`None`: pending).
type Sheet<'a> = Vec<Option<Finished<'a>>>;

/// Derive the race's state from its finished pulls (the module doc gives the rule).
pub fn judge(rule: &RaceRule, input: &RaceInput) -> RaceState {
    let keys = input.keys;
    let sheets = sheets(input);
    let first_look = input.first_round.clamp(1, keys.max(1));
    let looks_allowed = (keys + 1).saturating_sub(first_look);
    // Leading finished keys of each config.
    let ready: Vec<usize> = sheets.iter().map(|s| s.iter().take_while(|k| k.is_some()).count()).collect();
    let mut states = vec![ConfigState::Racing; sheets.len()];
    let mut tally = vec![Tally::default(); sheets.len()];
    let mut looks: Vec<Look> = Vec::new();
    let mut end = (keys == 0).then_some(End::KeysRanOut);
    for counted in first_look..=keys {
        let racing: Vec<usize> = (0..sheets.len()).filter(|&c| states[c] == ConfigState::Racing).collect();
        if end.is_some() || racing.iter().any(|&c| ready[c] < counted) {
            break;
        }
        for &c in &racing {
            tally[c].count_to(&sheets[c], counted);
        }
        let leader = leader(&racing, &tally, input.metric);
        let number = looks.len() + 1;
        let level = match rule.test {
            DropTest::McNemar { alpha, spending } => {
                Some(spending.level(alpha, number, looks_allowed, (counted, keys)))
            }
            DropTest::LowerValue => None,
        };
        let mut entries = Vec::with_capacity(racing.len());
        for &c in &racing {
            let versus =
                leader.filter(|&l| l != c).map(|l| tally[c].versus(&sheets, l, c, counted, input.metric));
            let dropped = versus.is_some_and(|paired| match rule.test {
                DropTest::McNemar { .. } => level.is_some_and(|level| paired.first_better_at(level)),
                DropTest::LowerValue => {
                    let value = |c: usize| tally[c].pooled.value(input.metric);
                    leader.is_some_and(|l| higher_first(value(l), value(c)) == Ordering::Less)
                }
            });
            entries.push(LookEntry { config: c, pooled: tally[c].pooled, versus, dropped });
        }
        for entry in entries.iter().filter(|e| e.dropped) {
            let (p, leader) = (entry.versus.map_or(1.0, |v| v.mid_p()), leader.expect("a drop has a leader"));
            states[entry.config] = ConfigState::Dropped { look: number, p, leader };
        }
        let left = entries.iter().filter(|e| !e.dropped).count();
        looks.push(Look { keys: counted, level, leader, entries });
        if left <= 1 {
            end = Some(End::OneLeft);
        } else if counted == keys {
            end = Some(End::KeysRanOut);
        }
    }
    let mut next = Vec::new();
    if end.is_some() {
        for state in states.iter_mut().filter(|s| **s == ConfigState::Racing) {
            *state = ConfigState::Survivor;
        }
    } else {
        // Only the keys the next look counts: a worker takes no pull a look may make useless.
        let horizon = (first_look + looks.len()).min(keys);
        for key in 0..horizon {
            let unfinished = |&c: &usize| states[c] == ConfigState::Racing && sheets[c][key].is_none();
            next.extend((0..sheets.len()).filter(unfinished).map(|config| PullKey { config, key }));
        }
    }
    RaceState { configs: states, looks, end, next }
}

/// Each config's answers by key: a done or diverged pull's sorted, a failed pull's none, a
/// pending pull `None`.
fn sheets(input: &RaceInput) -> Vec<Sheet<'_>> {
    fn sorted(answers: &[ImageAnswer]) -> Cow<'_, [ImageAnswer]> {
        if answers.windows(2).all(|w| w[0].image < w[1].image) {
            return Cow::Borrowed(answers);
        }
        let mut answers = answers.to_vec();
        answers.sort_by_key(|a| a.image);
        answers.dedup_by_key(|a| a.image);
        Cow::Owned(answers)
    }
    input
        .configs
        .iter()
        .map(|pulls| {
            (0..input.keys)
                .map(|key| match pulls.get(key).unwrap_or(&Pull::Pending) {
                    Pull::Pending => None,
                    Pull::Done(answers) => Some(Finished { done: true, answers: sorted(answers) }),
                    Pull::Diverged(answers) => Some(Finished { done: false, answers: sorted(answers) }),
                    Pull::Failed => Some(Finished { done: false, answers: Cow::Borrowed(&[]) }),
                })
                .collect()
        })
        .collect()
}

/// A config's running counts: its pool and done pulls on its first `keys` keys, and its pairs
/// with one leader on that leader's first `versus_keys` keys.
#[derive(Debug, Clone, Default)]
struct Tally {
    keys: usize,
    pooled: Confusion,
    done: usize,
    versus: Option<(usize, usize, Paired)>,
}

impl Tally {
    fn count_to(&mut self, sheet: &Sheet, keys: usize) {
        for pull in sheet[self.keys..keys].iter().flatten() {
            self.done += usize::from(pull.done);
            for a in pull.answers.iter() {
                let Answer { positive, answered_positive } = a.answer;
                let cell = match (positive, answered_positive) {
                    (true, true) => &mut self.pooled.tp,
                    (false, false) => &mut self.pooled.tn,
                    (false, true) => &mut self.pooled.fp,
                    (true, false) => &mut self.pooled.fn_,
                };
                *cell += 1;
            }
        }
        self.keys = keys;
    }

    /// The pairs (leader first) on keys 0..keys, carried on from the last look while the
    /// leader stays the same.
    fn versus(
        &mut self,
        sheets: &[Sheet],
        leader: usize,
        config: usize,
        keys: usize,
        metric: Metric,
    ) -> Paired {
        let (from, mut paired) = match self.versus {
            Some((l, counted, paired)) if l == leader => (counted, paired),
            _ => (0, Paired::default()),
        };
        for pair in sheets[leader][from..keys].iter().zip(&sheets[config][from..keys]) {
            if let (Some(ours), Some(theirs)) = pair {
                paired += pair_key(&ours.answers, &theirs.answers, metric);
            }
        }
        self.versus = Some((leader, keys, paired));
        paired
    }
}

/// The pairs of two sorted answer lists of one key, matched by image.
fn pair_key(first: &[ImageAnswer], second: &[ImageAnswer], metric: Metric) -> Paired {
    let (mut paired, mut j) = (Paired::default(), 0);
    for a in first {
        while j < second.len() && second[j].image < a.image {
            j += 1;
        }
        if j < second.len() && second[j].image == a.image {
            paired.add(metric, a.answer, second[j].answer);
        }
    }
    paired
}

/// The racing config that ranks first and can win.
fn leader(racing: &[usize], tally: &[Tally], metric: Metric) -> Option<usize> {
    let key = |c: usize| {
        let pooled = &tally[c].pooled;
        let value = pooled.value(metric);
        let lower = pooled.wilson_95(metric).map(|(low, _)| low).or(value);
        (lower, value, pooled.value(Metric::F1))
    };
    let can_win = |c: &&usize| tally[**c].done > 0 && tally[**c].pooled.value(metric).is_some();
    racing.iter().filter(can_win).copied().min_by(|&a, &b| {
        let (ka, kb) = (key(a), key(b));
        higher_first(ka.0, kb.0)
            .then_with(|| higher_first(ka.1, kb.1))
            .then_with(|| higher_first(ka.2, kb.2))
            .then_with(|| a.cmp(&b))
    })
}

/// Higher first, `None` last.
fn higher_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests;
