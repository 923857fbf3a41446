//! A race as a results folder's finished trials decide it (the rule is `eval::race`, the why
//! docs/race.md): the configs that enter it, its pull keys in run order, and each finished trial
//! placed at its config and key.
//!
//! - **Configs** are the spec's, in order of their first trial, less those screened out.
//! - **Keys**: k-fold, seed by seed (the spec's seeds, then a race's extra seeds), each seed's
//!   repeats and folds in turn; holdout, one key per seed. The keys in play are the grid's, or
//!   with a budget the grid's and the extra seeds' (`RaceBoard::judge`'s `keys`).
//! - **Pulls**: a done trial's validation answers; a diverged trial's held-out images, each
//!   answered wrong (from the sweep's partition, so the board is the driver's: it has the
//!   dataset); a failed trial answers nothing. A trial this run will rerun is pending.
//!
//! The driver writes what it judged to `race.json` ([`RaceFile`]), which `configs.csv`, the
//! report and `gacha status` read.

use std::collections::HashMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::layout::{ResultsDir, RACE_FILE, SCREEN_FILE};
use super::record::{Status, TrialOutcome, TrialRecord};
use super::screen::ScreenFile;
use crate::data::Label;
use crate::eval::paired::Answer;
use crate::eval::race::{
    holdout_first_round, judge, ConfigState, End, ImageAnswer, Pull, PullKey, RaceInput, RaceRule, RaceState,
};
use crate::eval::{Confusion, Metric};
use crate::spec::partition::Partition;
use crate::spec::{ConfigId, HeldOut, SweepSpec, Trial, TrialId};

/// The fixed parts of one sweep's race: who races, on which keys, and where each trial sits.
pub struct RaceBoard<'a> {
    spec: &'a SweepSpec,
    partition: &'a Partition,
    /// The dataset's images (as written) and labels, by example index.
    images: Vec<(&'a str, Label)>,
    rule: RaceRule,
    metric: Metric,
    /// The configs that race, in spec order.
    configs: Vec<ConfigId>,
    /// By spec trial index: its (config, key) in the race, `None` when its config does not race.
    place: Vec<Option<(usize, usize)>>,
    /// The spec trial at (config, key).
    cells: Vec<Vec<Option<usize>>>,
    /// Keys of the spec's own seeds, and of every seed with the extra ones.
    grid_keys: usize,
    all_keys: usize,
    first_round: usize,
    /// Small ids of images (as written), shared by every config.
    image_ids: HashMap<&'a str, u32>,
}

impl<'a> RaceBoard<'a> {
    /// The race of `spec` over `images` (the dataset's, by example index) among the configs
    /// `enters` lets in.
    pub fn new(
        spec: &'a SweepSpec,
        partition: &'a Partition,
        images: Vec<(&'a str, Label)>,
        enters: impl Fn(&Trial) -> bool,
    ) -> RaceBoard<'a> {
        let mut seeds: Vec<u64> = Vec::new();
        for trial in &spec.trials {
            if !seeds.contains(&trial.params.seed) {
                seeds.push(trial.params.seed);
            }
        }
        let keys_per_seed = spec.validation.folds().len().max(1);
        let key_of = |trial: &Trial| {
            let seed = seeds.iter().position(|&s| s == trial.params.seed).expect("listed above");
            let fold = match trial.params.held_out() {
                HeldOut::Fold(f) => (f.repeat - 1) * f.folds + (f.fold - 1),
                HeldOut::Images(_) | HeldOut::Nothing => 0,
            };
            seed * keys_per_seed + fold
        };
        let extra = seeds.iter().filter(|s| spec.extra_seeds.contains(s)).count();
        let all_keys = seeds.len() * keys_per_seed;
        let grid_keys = (seeds.len() - extra) * keys_per_seed;
        let mut configs: Vec<ConfigId> = Vec::new();
        let mut place = Vec::with_capacity(spec.trials.len());
        let mut cells: Vec<Vec<Option<usize>>> = Vec::new();
        for (n, trial) in spec.trials.iter().enumerate() {
            if !enters(trial) {
                place.push(None);
                continue;
            }
            let config = match configs.iter().position(|c| c == &trial.config) {
                Some(c) => c,
                None => {
                    configs.push(trial.config.clone());
                    cells.push(vec![None; all_keys]);
                    configs.len() - 1
                }
            };
            let key = key_of(trial);
            cells[config][key] = Some(n);
            place.push(Some((config, key)));
        }
        let first_round = match spec.validation.kfold {
            Some(k) => k.folds,
            None => {
                let valid = spec.trials.iter().find_map(|t| match t.params.held_out() {
                    HeldOut::Images(v) => v.resolve(partition.pool().len()).ok(),
                    _ => None,
                });
                holdout_first_round(partition.pool().len(), valid.unwrap_or(1))
            }
        };
        let image_ids = images.iter().enumerate().map(|(i, (image, _))| (*image, i as u32)).collect();
        RaceBoard {
            spec,
            partition,
            images,
            rule: RaceRule::DEFAULT,
            metric: spec.select.metric.metric,
            configs,
            place,
            cells,
            grid_keys,
            all_keys,
            first_round,
            image_ids,
        }
    }

    pub fn spec(&self) -> &'a SweepSpec {
        self.spec
    }

    /// Keys of the spec's own seeds.
    pub fn grid_keys(&self) -> usize {
        self.grid_keys
    }

    /// Keys of every seed, the extra ones included.
    pub fn all_keys(&self) -> usize {
        self.all_keys
    }

    /// The keys a race plays: the grid's; with a budget the extra seeds' too (the survivors go
    /// on while budget is left).
    pub fn keys_in_play(&self, budget_set: bool) -> usize {
        if budget_set {
            self.all_keys
        } else {
            self.grid_keys
        }
    }

    pub fn configs(&self) -> &[ConfigId] {
        &self.configs
    }

    /// The spec trial of a pull.
    pub fn trial_of(&self, pull: PullKey) -> Option<usize> {
        self.cells.get(pull.config)?.get(pull.key).copied().flatten()
    }

    /// The race's state over its first `keys` keys, from `records` (every finished trial of
    /// the spec; those `settled` says this run reruns count as pending).
    pub fn judge(
        &self,
        records: &[TrialRecord],
        settled: &dyn Fn(&TrialOutcome) -> bool,
        keys: usize,
    ) -> anyhow::Result<RaceState> {
        let keys = keys.min(self.all_keys);
        let mut configs: Vec<Vec<Pull>> = vec![vec![Pull::Pending; keys]; self.configs.len()];
        let at: HashMap<&TrialId, usize> =
            self.spec.trials.iter().enumerate().map(|(n, t)| (&t.id, n)).collect();
        for record in records.iter().filter(|r| settled(&r.outcome)) {
            let Some(&n) = at.get(record.id()) else { continue };
            let Some((config, key)) = self.place[n] else { continue };
            if key < keys {
                configs[config][key] = self.pull(record)?;
            }
        }
        let input = RaceInput { metric: self.metric, first_round: self.first_round, keys, configs };
        Ok(judge(&self.rule, &input))
    }

    /// A finished trial as the race counts it.
    fn pull(&self, record: &TrialRecord) -> anyhow::Result<Pull> {
        Ok(match record.outcome.status {
            Status::Done => Pull::Done(
                record
                    .outcome
                    .valid_answers
                    .iter()
                    .filter_map(|a| {
                        let image = *self.image_ids.get(a.image.as_str())?;
                        Some(ImageAnswer {
                            image,
                            answer: Answer { positive: a.positive, answered_positive: a.answered_positive },
                        })
                    })
                    .collect(),
            ),
            Status::Diverged => {
                let split = self.partition.split(&record.params)?;
                let wrong = split.valid.iter().map(|&i| {
                    let (image, label) = self.images[i];
                    let image = self.image_ids[image];
                    ImageAnswer { image, answer: Answer::wrong(label == Label::Positive) }
                });
                Pull::Diverged(wrong.collect())
            }
            Status::Failed => Pull::Failed,
        })
    }

    /// `race.json` for `state`, judged over `keys` keys.
    pub fn file(&self, state: &RaceState, keys: usize, screened_out: Vec<ConfigId>) -> RaceFile {
        let id = |c: usize| self.configs[c].clone();
        RaceFile {
            keys,
            grid_keys: self.grid_keys,
            first_round: self.first_round,
            end: state.end.map(|end| match end {
                End::OneLeft => "one config left".to_string(),
                End::KeysRanOut => "the keys ran out".to_string(),
            }),
            configs: state
                .configs
                .iter()
                .enumerate()
                .map(|(c, s)| RaceConfig { config: id(c), standing: standing(*s), vs: vs(*s).map(id) })
                .collect(),
            screened_out,
            looks: state
                .looks
                .iter()
                .map(|look| RaceLook {
                    keys: look.keys,
                    level: look.level,
                    leader: look.leader.map(id),
                    entries: look
                        .entries
                        .iter()
                        .map(|e| RaceEntry {
                            config: id(e.config),
                            pooled: e.pooled,
                            p: e.versus.map(|v| v.mid_p()),
                            dropped: e.dropped,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn standing(state: ConfigState) -> Standing {
    match state {
        ConfigState::Racing => Standing::Racing,
        ConfigState::Dropped { look, p, .. } => Standing::Dropped { look, p },
        ConfigState::Survivor => Standing::Survivor,
    }
}

fn vs(state: ConfigState) -> Option<usize> {
    match state {
        ConfigState::Dropped { leader, .. } => Some(leader),
        _ => None,
    }
}

/// Where a config stands in a race.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// Still getting pulls.
    Racing,
    /// Shown worse than the leader at look `look` (1-based), mid-p `p`.
    Dropped { look: usize, p: f64 },
    /// Left when the race was decided.
    Survivor,
    /// Its prompt was screened out before the race (`[search] screen_prompts`).
    ScreenedOut,
}

impl Standing {
    /// As `configs.csv` writes it: `racing`, `dropped at look 3`, `survivor`, `screened out`.
    pub fn name(&self) -> String {
        match self {
            Standing::Racing => "racing".into(),
            Standing::Dropped { look, .. } => format!("dropped at look {look}"),
            Standing::Survivor => "survivor".into(),
            Standing::ScreenedOut => "screened out".into(),
        }
    }

    /// Whether the config may still win: not dropped, not screened out.
    pub fn may_win(&self) -> bool {
        matches!(self, Standing::Racing | Standing::Survivor)
    }
}

/// `race.json`: the race as the driver last judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceFile {
    /// Keys in play, and of them the grid's.
    pub keys: usize,
    pub grid_keys: usize,
    /// Keys before the first look.
    pub first_round: usize,
    /// Why the race is decided; `None` while it runs.
    pub end: Option<String>,
    pub configs: Vec<RaceConfig>,
    /// Configs that never raced.
    pub screened_out: Vec<ConfigId>,
    pub looks: Vec<RaceLook>,
}

impl RaceFile {
    /// Each config's standing, screened-out ones included.
    pub fn standings(&self) -> HashMap<ConfigId, Standing> {
        let racing = self.configs.iter().map(|c| (c.config.clone(), c.standing));
        racing.chain(self.screened_out.iter().map(|c| (c.clone(), Standing::ScreenedOut))).collect()
    }
}

/// One config in `race.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceConfig {
    pub config: ConfigId,
    #[serde(flatten)]
    pub standing: Standing,
    /// The leader it was dropped against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs: Option<ConfigId>,
}

/// One look in `race.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceLook {
    /// It counted keys 0..keys.
    pub keys: usize,
    /// Its drop level.
    pub level: Option<f64>,
    pub leader: Option<ConfigId>,
    pub entries: Vec<RaceEntry>,
}

/// A config at a look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceEntry {
    pub config: ConfigId,
    /// Its pool on the look's keys.
    pub pooled: Confusion,
    /// Its mid-p against the leader (`None`: the leader, or no leader).
    pub p: Option<f64>,
    pub dropped: bool,
}

/// Where every config stands, for `configs.csv` and `race.json`: a race's standings over its
/// keys in play, and the configs screened out.
pub struct Standings<'a> {
    pub race: Option<(&'a RaceBoard<'a>, usize)>,
    pub screened_out: Vec<ConfigId>,
}

impl Standings<'_> {
    /// No race, nothing screened: a plain grid.
    pub fn none() -> Standings<'static> {
        Standings { race: None, screened_out: Vec::new() }
    }

    /// The standings `records` give, and `race.json` when there is a race.
    pub fn judge(
        &self,
        records: &[TrialRecord],
    ) -> anyhow::Result<(HashMap<ConfigId, Standing>, Option<RaceFile>)> {
        let mut standings: HashMap<ConfigId, Standing> =
            self.screened_out.iter().map(|c| (c.clone(), Standing::ScreenedOut)).collect();
        let Some((board, keys)) = self.race else { return Ok((standings, None)) };
        let state = board.judge(records, &|_| true, keys)?;
        let file = board.file(&state, keys, self.screened_out.clone());
        standings.extend(file.standings());
        Ok((standings, Some(file)))
    }
}

/// Every config's standing as the folder's `race.json` and `screen.json` record it (empty for a
/// plain grid): for the commands that read a results folder without running it.
/// `race.json` of a results folder, if the sweep is a race that has looked at its pulls.
pub fn read_race(dir: &ResultsDir) -> anyhow::Result<Option<RaceFile>> {
    read_json::<RaceFile>(&dir.path(RACE_FILE))
}

pub fn read_standings(dir: &ResultsDir, spec: &SweepSpec) -> anyhow::Result<HashMap<ConfigId, Standing>> {
    let mut standings = HashMap::new();
    if let Some(race) = read_race(dir)? {
        standings.extend(race.standings());
    }
    if let Some(screen) = read_json::<ScreenFile>(&dir.path(SCREEN_FILE))? {
        for trial in &spec.trials {
            if trial.params.prompt.as_ref().is_some_and(|p| !screen.enters(p)) {
                standings.insert(trial.config.clone(), Standing::ScreenedOut);
            }
        }
    }
    Ok(standings)
}

/// A JSON file of gacha's, if present.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not gacha's JSON", path.display()))?,
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("{}: cannot read", path.display())),
    }
}
