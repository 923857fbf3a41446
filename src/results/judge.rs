//! Configs: a trial's parameters less its seed, fold and repeat (`TrialParams::config_params`).
//! A sweep judges configs, not pulls: one pull's 10 validation images mostly measure its luck;
//! all of a config's pulls together measure the config. `configs.csv` has one row per config.
//!
//! The rules:
//!
//! - **Pool.** A config's pooled confusion is the sum of `after.valid` over its done pulls: in
//!   k-fold each image predicted out of fold once per repeat (and seed), in holdout each seed's
//!   hold-out. A **diverged** pull counts every one of its validation images as a wrong answer
//!   (its positives as fn, its negatives as fp; the labels are those of its `before.valid`
//!   counts), so a config that often diverges scores low. A **failed** pull (a crash, not the
//!   config's doing) is left out of the pool and counted under `failed`.
//! - **Value.** The metric of `[select] metric` on the pooled **validation** confusion, whichever
//!   split `metric` names: `train` and `all` hold training images.
//! - **Rank.** Configs that can win (at least one done pull and a defined value, and in a race not
//!   dropped, nor screened out before it: `race.rs`) first; then, in
//!   turn: the lower end of the value's Wilson 95% interval, higher first (F1 is not a proportion
//!   and has no interval: its value instead); the value; pooled valid F1; the mean final loss of
//!   the done pulls, lower first; the config id. No key looks at `all`. The first config wins if
//!   it can win.
//! - **Indistinguishable from the best.** The winner's and another config's answers are paired
//!   by (image, seed, repeat) over the images both answered. A diverged pull answered its images
//!   wrong, as in the pool (its images are known when a done pull of any config holds out the
//!   same split: same seed and validation size, or same fold; else it is left unpaired); a failed
//!   pull answered nothing; an image listed twice in the dataset is paired once. Pairs are kept as
//!   the metric sees them: for precision those where either answered positive, for recall those
//!   whose label is positive, all of them for accuracy and F1. With b the pairs the winner got
//!   right and the other wrong, and c the reverse, the mid-p McNemar test (`eval::stats`) gives
//!   p. `worse`: p < 0.05 and b > c. `indistinguishable`: otherwise, i.e. not shown worse (a
//!   config that beats the winner on the shared images yet ranks below it, because of its
//!   diverged pulls, stays in this set). `untested`: no pair at all.
//! - **A precision target** (`[select] min_precision`, docs/operating-point.md). Each config's
//!   operating point is chosen on its done pulls' out-of-fold logits (`eval::operating_point`:
//!   each image once, its score the mean over the pulls that answered it; diverged pulls give no
//!   logits and are left out of it). It is absent when a done pull's answers carry no logits
//!   (records written before they were kept). The ranking then puts, right after "can win", the
//!   configs with an operating point before those without, and among them "recall at the
//!   certified target" (`operating_point::Standing`: certified first by recall, then the
//!   uncertified by their best lower bound); the keys above break ties. The paired test then
//!   looks at each pull's answers at its config's own threshold (z above `threshold_logit`), on
//!   the pairs recall counts (the yes images): the target holds precision, recall is ranked.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Add;

use super::race::Standing;
use super::rank::higher_first;
use super::record::{Status, TrialRecord, ValidAnswer};
use crate::data::Label;
use crate::eval::operating_point::{self, ImageLogits, OperatingPoint};
use crate::eval::stats::mcnemar_mid_p;
use crate::eval::{Confusion, Metric};
use crate::spec::{Axis, ConfigId, SweepSpec, TrialId, TrialParams};

/// Below this mid-p value (and with the winner right more often) a config is worse than the
/// winner; at or above it, indistinguishable.
pub const INDISTINGUISHABLE_P: f64 = 0.05;

/// How a config compares with the winning one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsBest {
    /// The winning config itself.
    Best,
    /// Not shown worse on the images both answered (p ≥ 0.05, or the winner not ahead).
    Indistinguishable,
    /// Wrong more often than the winner on the images both answered, p < 0.05.
    Worse,
    /// No image answered by both.
    Untested,
}

impl VsBest {
    pub fn name(self) -> &'static str {
        match self {
            VsBest::Best => "best",
            VsBest::Indistinguishable => "indistinguishable",
            VsBest::Worse => "worse",
            VsBest::Untested => "untested",
        }
    }
}

/// One config and its pulls judged together (see the module doc for every rule).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSummary {
    pub id: ConfigId,
    /// Its axis values (`Trial::config_label`): `valid=10 learning_rate=0.03`.
    pub label: String,
    /// Its pulls' parameters less the seed and fold.
    pub params: TrialParams,
    /// Its finished pulls, in spec order.
    pub trials: Vec<TrialId>,
    pub done: usize,
    pub diverged: usize,
    pub failed: usize,
    /// The validation counts of its done and diverged pulls.
    pub pooled: Confusion,
    /// The select metric on `pooled`; `None` when undefined.
    pub value: Option<f64>,
    /// The value's Wilson 95% interval; `None` for F1 and for an undefined value.
    pub interval: Option<(f64, f64)>,
    /// 1 for the first config.
    pub rank: usize,
    /// The mean final loss of its done pulls.
    pub mean_final_loss: Option<f64>,
    /// Against the winning config; `None` when no config can win.
    pub vs_best: Option<VsBest>,
    /// The mid-p McNemar p-value against the winner; `None` for the winner and when untested.
    pub p_vs_best: Option<f64>,
    /// Where it stands in a race, or screened out; `None` in a plain grid.
    pub standing: Option<Standing>,
    /// Its threshold for the spec's precision target; `None` without a target, or when its
    /// records carry no logits.
    pub operating_point: Option<OperatingPoint>,
}

impl ConfigSummary {
    /// Its finished pulls, whatever their status.
    pub fn pulls(&self) -> usize {
        self.trials.len()
    }

    /// At least one done pull and a defined value.
    pub fn can_win(&self) -> bool {
        self.done > 0 && self.value.is_some() && self.standing.is_none_or(|s| s.may_win())
    }

    /// The first ranking key: the interval's lower end, or the value where there is no interval.
    fn lower_bound(&self) -> Option<f64> {
        self.interval.map(|(low, _)| low).or(self.value)
    }
}

/// One config per `config` of `records`, ranked, with its comparison against the winner.
pub fn summarize_configs(
    records: &[TrialRecord],
    spec: &SweepSpec,
    standings: &HashMap<ConfigId, Standing>,
) -> Vec<ConfigSummary> {
    let target = spec.select.target();
    // With a target, configs compete on recall at their thresholds (module doc).
    let metric = if target.is_some() { Metric::Recall } else { spec.select.metric.metric };
    let mut groups: Vec<Vec<&TrialRecord>> = Vec::new();
    let mut index: HashMap<&ConfigId, usize> = HashMap::new();
    for record in records {
        let slot = *index.entry(&record.config).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(record);
    }
    let images = split_images(records);
    let mut judged: Vec<(ConfigSummary, Answers)> = groups
        .iter()
        .map(|pulls| {
            let mut summary = summarize(pulls, spec, spec.select.metric.metric);
            summary.standing = standings.get(&summary.id).copied();
            summary.operating_point = target.and_then(|target| {
                let images = image_logits(pulls)?;
                operating_point::choose(&images, target).ok()
            });
            let threshold = summary.operating_point.map(|op| op.threshold_logit);
            (summary, answers(pulls, &images, threshold))
        })
        .collect();
    judged.sort_by(|(a, _), (b, _)| compare(a, b));
    let winner = judged.first().filter(|(s, _)| s.can_win()).map(|(_, answers)| answers.clone());
    let mut summaries = Vec::with_capacity(judged.len());
    for (rank, (mut summary, answers)) in judged.into_iter().enumerate() {
        summary.rank = rank + 1;
        if let Some(best) = &winner {
            (summary.vs_best, summary.p_vs_best) = if rank == 0 {
                (Some(VsBest::Best), None)
            } else {
                let (vs_best, p) = versus(&discordant(best, &answers, metric));
                (Some(vs_best), p)
            };
        }
        summaries.push(summary);
    }
    summaries
}

/// The winning config: the first ranked, if it can win.
pub fn winning_config(summaries: &[ConfigSummary]) -> Option<&ConfigSummary> {
    summaries.first().filter(|s| s.can_win())
}

/// The axes that make configs: every axis but the seeds, in spec order.
pub fn config_axes(spec: &SweepSpec) -> impl Iterator<Item = &Axis> {
    spec.axes.iter().filter(|axis| !axis.is_seeds())
}

/// One value of an axis and every config with it, pooled.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisValue {
    /// The value as JSON (`0.03`, `"Is it ok?"`).
    pub value: serde_json::Value,
    /// How many finished configs have it.
    pub configs: usize,
    /// Their pooled confusions, summed.
    pub pooled: Confusion,
}

/// For each value of `axis`, in spec order, the pooled confusion of all configs with that value.
pub fn pool_by_axis(spec: &SweepSpec, summaries: &[ConfigSummary], axis: &Axis) -> Vec<AxisValue> {
    let mut values: Vec<AxisValue> = Vec::with_capacity(axis.len);
    for trial in &spec.trials {
        if values.len() == axis.len {
            break;
        }
        let value = trial.params.field_value(&axis.field);
        if !values.iter().any(|v| v.value == value) {
            values.push(AxisValue { value, configs: 0, pooled: Confusion::default() });
        }
    }
    for summary in summaries {
        let value = summary.params.field_value(&axis.field);
        if let Some(slot) = values.iter_mut().find(|v| v.value == value) {
            slot.configs += 1;
            slot.pooled = slot.pooled + summary.pooled;
        }
    }
    values
}

/// The summary of one config's pulls, before ranking (`rank` 0, no comparison yet).
fn summarize(pulls: &[&TrialRecord], spec: &SweepSpec, metric: Metric) -> ConfigSummary {
    let first = pulls.first().expect("a config has at least one pull");
    let count = |status| pulls.iter().filter(|r| r.outcome.status == status).count();
    let pooled = pulls.iter().map(|r| pool_share(r)).fold(Confusion::default(), Add::add);
    let losses: Vec<f64> = pulls
        .iter()
        .filter(|r| r.outcome.status == Status::Done)
        .filter_map(|r| r.outcome.final_loss)
        .filter(|loss| loss.is_finite())
        .collect();
    ConfigSummary {
        id: first.config.clone(),
        label: spec.trial(first.id()).map(|t| t.config_label.clone()).unwrap_or_default(),
        params: first.params.config_params(),
        trials: pulls.iter().map(|r| r.id().clone()).collect(),
        done: count(Status::Done),
        diverged: count(Status::Diverged),
        failed: count(Status::Failed),
        pooled,
        value: pooled.value(metric),
        interval: pooled.wilson_95(metric),
        rank: 0,
        mean_final_loss: (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64),
        vs_best: None,
        p_vs_best: None,
        standing: None,
        operating_point: None,
    }
}

/// A config's out-of-fold evidence for its operating point: one entry per image its done pulls
/// answered, with the logit difference of each. `None` when there is none, or when a done pull's
/// answers carry no logits.
pub fn image_logits(pulls: &[&TrialRecord]) -> Option<Vec<ImageLogits>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut images: Vec<ImageLogits> = Vec::new();
    for record in pulls.iter().filter(|r| r.outcome.status == Status::Done) {
        if record.outcome.valid_answers.is_empty() {
            return None;
        }
        for answer in &record.outcome.valid_answers {
            let z = answer.logits?.logit_diff();
            let slot = *index.entry(answer.image.as_str()).or_insert_with(|| {
                let label = if answer.positive { Label::Positive } else { Label::Negative };
                images.push(ImageLogits { label, logit_diffs: Vec::new() });
                images.len() - 1
            });
            images[slot].logit_diffs.push(z);
        }
    }
    (!images.is_empty()).then_some(images)
}

/// What one pull adds to its config's pool: its trained counts, all wrong answers when it
/// diverged, nothing when it failed.
fn pool_share(record: &TrialRecord) -> Confusion {
    let outcome = &record.outcome;
    match outcome.status {
        Status::Done => outcome.after.map(|after| after.valid).unwrap_or_default(),
        Status::Diverged => outcome.before.map_or_else(Confusion::default, |before| {
            let labels = before.valid;
            Confusion { tp: 0, tn: 0, fp: labels.tn + labels.fp, fn_: labels.tp + labels.fn_ }
        }),
        Status::Failed => Confusion::default(),
    }
}

fn compare(a: &ConfigSummary, b: &ConfigSummary) -> Ordering {
    let f1 = |s: &ConfigSummary| s.pooled.value(Metric::F1);
    let neg_loss = |s: &ConfigSummary| s.mean_final_loss.map(|loss| -loss);
    b.can_win()
        .cmp(&a.can_win())
        .then_with(|| target_first(a.operating_point.as_ref(), b.operating_point.as_ref()))
        .then_with(|| higher_first(a.lower_bound(), b.lower_bound()))
        .then_with(|| higher_first(a.value, b.value))
        .then_with(|| higher_first(f1(a), f1(b)))
        .then_with(|| higher_first(neg_loss(a), neg_loss(b)))
        .then_with(|| a.id.cmp(&b.id))
}

/// With a precision target: configs with an operating point first, those by standing.
fn target_first(a: Option<&OperatingPoint>, b: Option<&OperatingPoint>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => operating_point::Standing::better_first(&a.standing(), &b.standing()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Which image a validation answer is about, and in which seed and repeat.
type PairKey<'a> = (&'a str, u64, usize);

/// One answer as the paired test sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    positive: bool,
    answered_positive: bool,
}

impl Answer {
    fn is_right(self) -> bool {
        self.positive == self.answered_positive
    }
}

/// A config's answers to its validation images, by image, seed and repeat.
type Answers<'a> = HashMap<PairKey<'a>, Answer>;

/// A pull's validation images are fixed by its seed and what it holds out (`Partition::split`):
/// the same for every config. This keys them.
type SplitKey = (u64, String);

fn split_key(record: &TrialRecord) -> SplitKey {
    let held_out = serde_json::to_string(&(record.params.valid, record.params.fold))
        .expect("validation sizes and folds serialize to JSON");
    (record.params.seed, held_out)
}

/// The validation images of every split some done pull answered, with their labels.
fn split_images(records: &[TrialRecord]) -> HashMap<SplitKey, &[ValidAnswer]> {
    let done =
        records.iter().filter(|r| r.outcome.status == Status::Done && !r.outcome.valid_answers.is_empty());
    done.map(|r| (split_key(r), r.outcome.valid_answers.as_slice())).collect()
}

/// A config's done pulls' answers (at `threshold` on z when given, else as recorded), and its
/// diverged pulls' images answered wrong (as the pool counts them; their images are those of a
/// done pull of another config on the same split).
fn answers<'a>(
    pulls: &[&'a TrialRecord],
    images: &HashMap<SplitKey, &'a [ValidAnswer]>,
    threshold: Option<f64>,
) -> Answers<'a> {
    let mut answers = HashMap::new();
    for record in pulls {
        let (seed, repeat) = (record.params.seed, record.params.fold.map_or(0, |f| f.repeat));
        let (given, wrong): (&[ValidAnswer], bool) = match record.outcome.status {
            Status::Done => (&record.outcome.valid_answers, false),
            Status::Diverged => (images.get(&split_key(record)).copied().unwrap_or_default(), true),
            Status::Failed => continue,
        };
        for a in given {
            let answered_positive = match (wrong, threshold, a.logits) {
                (true, _, _) => !a.positive,
                (false, Some(threshold), Some(logits)) => logits.logit_diff() > threshold,
                (false, _, _) => a.answered_positive,
            };
            answers
                .insert((a.image.as_str(), seed, repeat), Answer { positive: a.positive, answered_positive });
        }
    }
    answers
}

/// Paired answers of the winner and another config, as the metric sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Paired {
    pairs: u64,
    /// The winner right, the other wrong.
    b: u64,
    /// The other right, the winner wrong.
    c: u64,
}

fn discordant(best: &Answers, other: &Answers, metric: Metric) -> Paired {
    let mut paired = Paired::default();
    for (key, ours) in best {
        let Some(theirs) = other.get(key) else { continue };
        let seen = match metric {
            Metric::Precision => ours.answered_positive || theirs.answered_positive,
            Metric::Recall => ours.positive,
            Metric::Accuracy | Metric::F1 => true,
        };
        if !seen {
            continue;
        }
        paired.pairs += 1;
        match (ours.is_right(), theirs.is_right()) {
            (true, false) => paired.b += 1,
            (false, true) => paired.c += 1,
            _ => {}
        }
    }
    paired
}

fn versus(paired: &Paired) -> (VsBest, Option<f64>) {
    if paired.pairs == 0 {
        return (VsBest::Untested, None);
    }
    let p = mcnemar_mid_p(paired.b, paired.c);
    let vs_best = if p < INDISTINGUISHABLE_P && paired.b > paired.c {
        VsBest::Worse
    } else {
        VsBest::Indistinguishable
    };
    (vs_best, Some(p))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::results::test_records::{pull, scored_pull};
    use crate::spec::{parse_spec, Trial};

    /// A spec over `sweep` (the `[sweep]` lines) with `extra` tables before `[train]`.
    fn spec(extra: &str, sweep: &str) -> SweepSpec {
        let text = format!(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n{extra}\
             [train]\nsteps = 4\n[sweep]\n{sweep}"
        );
        parse_spec(&text, Path::new("s.toml")).unwrap()
    }

    /// The trial of `spec` with this seed and learning rate.
    fn trial(spec: &SweepSpec, seed: u64, lr: f64) -> &Trial {
        let found = spec.trials.iter().find(|t| t.params.seed == seed && t.params.train.learning_rate == lr);
        found.unwrap_or_else(|| panic!("no trial seed={seed} lr={lr}"))
    }

    const THREE_RATES: &str = "seeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.1, 1.0]\n";

    #[test]
    fn pools_done_pulls_counts_diverged_ones_wrong_and_leaves_failed_ones_out() {
        let spec = spec("", THREE_RATES);
        let t = |seed, lr| trial(&spec, seed, lr);
        let records = vec![
            // lr 0.01: tp 2 tn 1 fp 1, then tp 1 tn 2 fn 1 → pooled 3/3/1/1, precision 3/4.
            pull(t(1, 0.01), Status::Done, &["yy", "yy", "nn", "ny"], Some(0.2)),
            pull(t(2, 0.01), Status::Done, &["yy", "yn", "nn", "nn"], Some(0.4)),
            // lr 0.1: tp 2 tn 2, then diverged on 2 yes and 2 no → fn 2, fp 2: precision 2/4.
            pull(t(1, 0.1), Status::Done, &["yy", "yy", "nn", "nn"], Some(0.1)),
            pull(t(2, 0.1), Status::Diverged, &["yn", "yn", "nn", "nn"], Some(f64::NAN)),
            // lr 1.0: failed (left out), diverged (fn 2, fp 2): precision 0/2, but no done pull.
            pull(t(1, 1.0), Status::Failed, &["yn", "yn", "nn", "nn"], None),
            pull(t(2, 1.0), Status::Diverged, &["yn", "yn", "nn", "nn"], Some(f64::INFINITY)),
        ];
        let configs = summarize_configs(&records, &spec, &Default::default());
        let conf = |tp, tn, fp, fn_| Confusion { tp, tn, fp, fn_ };
        let got: Vec<_> = configs
            .iter()
            .map(|c| (c.params.train.learning_rate, c.pooled, c.done, c.diverged, c.failed))
            .collect();
        assert_eq!(
            got,
            [
                (0.01, conf(3, 3, 1, 1), 2, 0, 0),
                (0.1, conf(2, 2, 2, 2), 1, 1, 0),
                (1.0, conf(0, 0, 2, 2), 0, 1, 1),
            ]
        );
        let a = &configs[0];
        assert_eq!((a.rank, a.value, a.interval), (1, Some(0.75), a.pooled.wilson_95(Metric::Precision)));
        assert_eq!(a.label, "valid=4 learning_rate=0.01");
        assert_eq!(a.trials, [t(1, 0.01).id.clone(), t(2, 0.01).id.clone()]);
        assert_eq!(a.pulls(), 2);
        assert!((a.mean_final_loss.unwrap() - 0.3).abs() < 1e-12);
        // The diverged pull's loss is not averaged; lr 1.0 has no done pull, so no mean and no win.
        assert_eq!((configs[1].mean_final_loss, configs[2].mean_final_loss), (Some(0.1), None));
        assert_eq!((configs[2].value, configs[2].can_win()), (Some(0.0), false));
        assert_eq!(winning_config(&configs).map(|c| &c.id), Some(&t(1, 0.01).config));
        // lr 0.1 against the winner (pairs where either said yes). Seed 1: image 3 the winner got
        // wrong and it got right, c = 1. Seed 2 diverged: the images of the winner's seed-2 pull
        // (same seed and size) answered wrong; images 0, 2, 3 the winner got right, b = 3 (image 1
        // both missed, neither said yes). b = 3, c = 1, n = 4: p = 2·(1 + ½·4)/16 = 0.375.
        // lr 1.0: seed 1 failed (nothing), seed 2 as above: b = 3, c = 0: p = 2·½·1/8 = 0.125.
        let got: Vec<_> = configs.iter().map(|c| (c.vs_best, c.p_vs_best)).collect();
        assert_eq!(got[0], (Some(VsBest::Best), None));
        assert_eq!(got[1].0, Some(VsBest::Indistinguishable));
        assert!((got[1].1.unwrap() - 0.375).abs() < 1e-12, "{got:?}");
        assert_eq!(got[2].0, Some(VsBest::Indistinguishable));
        assert!((got[2].1.unwrap() - 0.125).abs() < 1e-12, "{got:?}");
        // Only a failed pull: untested.
        let failed_only =
            summarize_configs(&[records[0].clone(), records[4].clone()], &spec, &Default::default());
        assert_eq!(failed_only[1].vs_best, Some(VsBest::Untested));
    }

    #[test]
    fn ranks_by_the_lower_bound_then_value_then_f1_then_loss() {
        let sweep = "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01, 0.1, 0.2, 0.3]\n";
        let nine_of_ten = ["yy"; 9].into_iter().chain(["ny"]).collect::<Vec<_>>();
        let records = |spec: &SweepSpec| {
            vec![
                // 3/3: precision 1, Wilson lower 0.4385; f1 1.
                pull(trial(spec, 1, 0.01), Status::Done, &["yy", "yy", "yy", "nn"], Some(0.1)),
                // 9/10: precision 0.9, lower 0.5958; f1 18/19. The same at a higher loss.
                pull(trial(spec, 1, 0.1), Status::Done, &nine_of_ten, Some(0.3)),
                pull(trial(spec, 1, 0.2), Status::Done, &nine_of_ten, Some(0.5)),
                // Never said yes: precision undefined, cannot win even ahead of nothing.
                pull(trial(spec, 1, 0.3), Status::Done, &["yn", "nn"], Some(0.01)),
            ]
        };
        let rates = |configs: &[ConfigSummary]| -> Vec<f64> {
            configs.iter().map(|c| c.params.train.learning_rate).collect()
        };
        let precision = spec("", sweep);
        let configs = summarize_configs(&records(&precision), &precision, &Default::default());
        assert_eq!(rates(&configs), [0.1, 0.2, 0.01, 0.3]);
        assert_eq!(configs.iter().map(|c| c.rank).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!((configs[0].interval.unwrap().0 - 0.5958).abs() < 1e-4);
        assert!((configs[2].interval.unwrap().0 - 0.4385).abs() < 1e-4);
        // F1 has no interval: its value ranks (1 before 18/19), then loss.
        let f1 = spec("[select]\nmetric = \"valid.f1\"\n", sweep);
        let configs = summarize_configs(&records(&f1), &f1, &Default::default());
        assert_eq!(rates(&configs), [0.01, 0.1, 0.2, 0.3]);
        assert_eq!(configs[0].interval, None);
        // The undefined config alone: no winner, nothing compared.
        let alone = summarize_configs(&records(&precision)[3..], &precision, &Default::default());
        assert!(winning_config(&alone).is_none());
        assert_eq!((alone[0].rank, alone[0].vs_best), (1, None));
    }

    #[test]
    fn pairs_answers_by_image_and_seed_and_marks_worse_configs() {
        let spec = spec("", "seeds = [1, 2, 3]\nvalid = [8]\nlearning_rate = [0.01, 0.1, 0.2]\n");
        let t = |seed, lr| trial(&spec, seed, lr);
        let right = ["yy", "yy", "yy", "yy", "nn", "nn", "nn", "nn"];
        let records = vec![
            // The winner: all right, then wrong on image 4 only: precision 8/9.
            pull(t(1, 0.01), Status::Done, &right, Some(0.1)),
            pull(t(2, 0.01), Status::Done, &["yy", "yy", "yy", "yy", "ny", "nn", "nn", "nn"], Some(0.1)),
            // Seed 1: wrong on images 4-7 (b = 4); seed 2: right on 4 (c = 1), wrong on 5-7
            // (b = 3). b = 7, c = 1: p = 2·(1 + 4)/256 = 0.0390625 < 0.05 → worse.
            pull(t(1, 0.1), Status::Done, &["yy", "yy", "yy", "yy", "ny", "ny", "ny", "ny"], Some(0.1)),
            pull(t(2, 0.1), Status::Done, &["yy", "yy", "yy", "yy", "nn", "ny", "ny", "ny"], Some(0.1)),
            // Seed 1 wrong on image 4, where the winner's seed 1 was right: b = 1, p = 0.5 (paired
            // with its seed 2, wrong there too, it would be b = 0 and p = 1). Seed 3 diverged on a
            // split no done pull holds out (valid 8 of seed 3 is nobody's): unpaired.
            pull(t(1, 0.2), Status::Done, &["yy", "yy", "yy", "yy", "ny", "nn", "nn", "nn"], Some(0.1)),
            pull(t(3, 0.2), Status::Diverged, &right, None),
        ];
        let configs = summarize_configs(&records, &spec, &Default::default());
        let got: Vec<_> =
            configs.iter().map(|c| (c.params.train.learning_rate, c.vs_best, c.p_vs_best)).collect();
        assert_eq!(got[0], (0.01, Some(VsBest::Best), None));
        assert_eq!(got[1].0, 0.1);
        assert_eq!(got[1].1, Some(VsBest::Worse));
        assert!((got[1].2.unwrap() - 0.039_062_5).abs() < 1e-12, "{got:?}");
        assert_eq!(got[2].0, 0.2);
        assert_eq!(got[2].1, Some(VsBest::Indistinguishable));
        assert!((got[2].2.unwrap() - 0.5).abs() < 1e-12, "{got:?}");
    }

    #[test]
    fn each_metric_pairs_the_images_it_counts() {
        let answer = |image: &str, pair: &str| ValidAnswer {
            image: image.into(),
            positive: pair.starts_with('y'),
            answered_positive: pair.ends_with('y'),
            logits: None,
        };
        // (image, the winner's answer, the other's answer).
        let rows = [
            ("0", "yy", "yn"), // a yes: the winner right, the other wrong
            ("1", "nn", "ny"), // a no: the winner right, the other said yes
            ("2", "ny", "nn"), // a no: the winner said yes, the other right
            ("3", "yn", "yn"), // a yes both missed
            ("4", "nn", "nn"), // a no both got right
        ];
        let best_answers: Vec<ValidAnswer> = rows.iter().map(|(i, ours, _)| answer(i, ours)).collect();
        let other_answers: Vec<ValidAnswer> = rows.iter().map(|(i, _, theirs)| answer(i, theirs)).collect();
        fn seed_1(answers: &[ValidAnswer]) -> Answers<'_> {
            let answer =
                |a: &ValidAnswer| Answer { positive: a.positive, answered_positive: a.answered_positive };
            answers.iter().map(|a| ((a.image.as_str(), 1, 0), answer(a))).collect()
        }
        let (best, mut other) = (seed_1(&best_answers), seed_1(&other_answers));
        // Image 0 under seed 2: pairs with nothing.
        other.insert(("0", 2, 0), Answer { positive: false, answered_positive: true });
        let paired = |metric| discordant(&best, &other, metric);
        // Accuracy and F1: all five; b = images 0 and 1, c = image 2.
        assert_eq!(paired(Metric::Accuracy), Paired { pairs: 5, b: 2, c: 1 });
        assert_eq!(paired(Metric::F1), Paired { pairs: 5, b: 2, c: 1 });
        // Precision: where either said yes, images 0, 1, 2.
        assert_eq!(paired(Metric::Precision), Paired { pairs: 3, b: 2, c: 1 });
        // Recall: the yes images 0 and 3.
        assert_eq!(paired(Metric::Recall), Paired { pairs: 2, b: 1, c: 0 });
        assert_eq!(versus(&Paired { pairs: 0, b: 0, c: 0 }), (VsBest::Untested, None));
        // p < 0.05 with the other right more often: not shown worse.
        assert_eq!(versus(&Paired { pairs: 8, b: 1, c: 7 }).0, VsBest::Indistinguishable);
        assert_eq!(versus(&Paired { pairs: 8, b: 7, c: 1 }).0, VsBest::Worse);
    }

    #[test]
    fn pools_every_config_of_an_axis_value() {
        let spec = spec("", "seeds = [1]\nvalid = [4]\nlearning_rate = [0.01, 0.1]\nlora_rank = [4, 8]\n");
        let find = |lr: f64, rank: usize| {
            let found = spec
                .trials
                .iter()
                .find(|t| t.params.train.learning_rate == lr && t.params.train.lora_rank == rank);
            found.expect("a trial")
        };
        let records = vec![
            pull(find(0.01, 4), Status::Done, &["yy", "nn"], Some(0.1)), // tp 1 tn 1
            pull(find(0.01, 8), Status::Done, &["yy", "ny"], Some(0.1)), // tp 1 fp 1
            pull(find(0.1, 4), Status::Diverged, &["yn", "nn"], None),   // fn 1 fp 1
        ];
        let configs = summarize_configs(&records, &spec, &Default::default());
        let axes: Vec<&Axis> = config_axes(&spec).collect();
        assert_eq!(
            axes.iter().map(|a| a.name()).collect::<Vec<_>>(),
            ["valid", "learning_rate", "lora_rank"]
        );
        let conf = |tp, tn, fp, fn_| Confusion { tp, tn, fp, fn_ };
        let by_rate = pool_by_axis(&spec, &configs, axes[1]);
        let got: Vec<_> = by_rate.iter().map(|v| (v.value.to_string(), v.configs, v.pooled)).collect();
        assert_eq!(
            got,
            [("0.01".to_string(), 2, conf(2, 1, 1, 0)), ("0.1".to_string(), 1, conf(0, 0, 1, 1))]
        );
        let by_rank = pool_by_axis(&spec, &configs, axes[2]);
        let got: Vec<_> = by_rank.iter().map(|v| (v.value.to_string(), v.configs, v.pooled)).collect();
        // (0.1, 8) has not run: rank 8 pools one config.
        assert_eq!(got, [("4".to_string(), 2, conf(1, 1, 1, 1)), ("8".to_string(), 1, conf(1, 0, 1, 0))]);
    }

    #[test]
    fn a_precision_target_ranks_by_recall_at_each_certified_threshold() {
        let sweep = "seeds = [1]\nvalid = [4]\nlearning_rate = [0.01, 0.1]\n";
        // lr 0.01: 50 yes images at z = 4 above 5 no images at z = 1: at 0.5 precision 50/55
        // (Wilson lower 0.80). Certified at 0.95/0.9 just below z = 4: n = 50, FP = 0,
        // 0.95^50 = 0.077 <= 0.1 (and n = 55 with FP = 5 fails); recall 1.
        let a_labels: Vec<bool> = (0..55).map(|i| i < 50).collect();
        let a_z: Vec<f64> = (0..55).map(|i| if i < 50 { 4.0 } else { 1.0 }).collect();
        // lr 0.1: 40 yes at z = 5 above 5 no at z = -5: at 0.5 precision 40/40 (Wilson lower
        // 0.91), but 40 yes cannot certify (45 needed): best bound 0.1^(1/40) = 0.944, recall 1.
        let b_labels: Vec<bool> = (0..45).map(|i| i < 40).collect();
        let b_z: Vec<f64> = (0..45).map(|i| if i < 40 { 5.0 } else { -5.0 }).collect();
        let records = |spec: &SweepSpec| {
            vec![
                scored_pull(trial(spec, 1, 0.01), &a_labels, &a_z),
                scored_pull(trial(spec, 1, 0.1), &b_labels, &b_z),
            ]
        };
        let rates = |configs: &[ConfigSummary]| -> Vec<f64> {
            configs.iter().map(|c| c.params.train.learning_rate).collect()
        };
        let plain = spec("", sweep);
        let configs = summarize_configs(&records(&plain), &plain, &Default::default());
        assert_eq!(rates(&configs), [0.1, 0.01]);
        assert!(configs.iter().all(|c| c.operating_point.is_none()));

        let targeted = spec("[select]\nmin_precision = 0.95\nconfidence = 0.9\n", sweep);
        let configs = summarize_configs(&records(&targeted), &targeted, &Default::default());
        assert_eq!(rates(&configs), [0.01, 0.1]);
        let (a, b) = (configs[0].operating_point.unwrap(), configs[1].operating_point.unwrap());
        assert_eq!((a.verdict, a.counts.tp, a.counts.fp), (operating_point::Verdict::Certified, 50, 0));
        assert!(a.threshold_logit < 4.0 && a.threshold_logit > 1.0);
        assert_eq!(b.verdict, operating_point::Verdict::Uncertified);
        assert!((b.precision_lower_bound - 0.1_f64.powf(1.0 / 40.0)).abs() < 1e-12);
        // The value is still the select metric at 0.5.
        assert_eq!(configs[0].value, Some(50.0 / 55.0));

        // Records without logits (written before they were kept) read, but cannot certify.
        let mut old = records(&targeted);
        old[0].outcome.valid_answers.iter_mut().for_each(|a| a.logits = None);
        let configs = summarize_configs(&old, &targeted, &Default::default());
        assert_eq!(rates(&configs), [0.1, 0.01]);
        assert!(configs[1].operating_point.is_none());
    }

    #[test]
    fn with_a_target_the_paired_test_looks_at_answers_at_each_threshold() {
        let sweep = "seeds = [1]\nvalid = [4]\nlearning_rate = [0.01, 0.1]\n";
        let targeted = spec("[select]\nmin_precision = 0.95\n", sweep);
        // Both configs see the same 60 images, 50 yes then 10 no. lr 0.01 ranks them perfectly
        // (yes at z = 3, no at z = 1): certified just below z = 3, recall 1. lr 0.1: 45 yes at
        // z = 2, then a no at 1.8, then the other 5 yes at 1.5, the other no at -1. n = 45 with
        // FP = 0 passes (0.95^45 = 0.0994), n = 46 with FP = 1 fails: certified just below 2,
        // recall 0.9. At 0.5 both say yes to every yes image (no pair differs); at their
        // thresholds lr 0.1 misses 5 of them: b = 5, c = 0, mid-p = 2·½·(1/32) = 0.03125 < 0.05.
        let labels: Vec<bool> = (0..60).map(|i| i < 50).collect();
        let a: Vec<f64> = (0..60).map(|i| if i < 50 { 3.0 } else { 1.0 }).collect();
        let b: Vec<f64> = (0..60)
            .map(|i| match i {
                0..45 => 2.0,
                45..50 => 1.5,
                50 => 1.8,
                _ => -1.0,
            })
            .collect();
        let records = vec![
            scored_pull(trial(&targeted, 1, 0.01), &labels, &a),
            scored_pull(trial(&targeted, 1, 0.1), &labels, &b),
        ];
        let configs = summarize_configs(&records, &targeted, &Default::default());
        let recall = |c: &ConfigSummary| c.operating_point.and_then(|op| op.recall());
        assert_eq!((recall(&configs[0]), recall(&configs[1])), (Some(1.0), Some(0.9)));
        assert_eq!(configs[1].vs_best, Some(VsBest::Worse));
        assert!((configs[1].p_vs_best.unwrap() - 0.031_25).abs() < 1e-12);
    }
}
