//! The leaderboard order and the choice of the winner.
//!
//! Trials are ordered by, in turn:
//! 1. the select metric (e.g. `valid.precision`), higher first, undefined last;
//! 2. the lower end of its Wilson 95% interval, higher first: the same value on more images is
//!    stronger evidence (30/30 before 10/10; F1 has no interval and skips this);
//! 3. valid F1, higher first, undefined last (precision alone rewards flagging almost nothing);
//! 4. the final logged loss, lower first, missing or NaN last;
//! 5. status: done, diverged, failed;
//! 6. the trial id, so the order never depends on run order.
//!
//! No tie-break looks at `all`: it counts the images the trial was trained on.
//!
//! Only a `done` trial whose select metric is defined can win.

use std::cmp::Ordering;

use super::record::{Status, TrialRecord};
use crate::eval::{Metric, Split};
use crate::spec::SelectMetric;

/// A trial's value of a metric after training (`None`: not scored, or undefined).
pub fn metric_after(record: &TrialRecord, split: Split, metric: Metric) -> Option<f64> {
    record.outcome.after.and_then(|after| after.get(split).value(metric))
}

/// Higher first, `None` (and NaN) last.
pub(super) fn higher_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    let key = |v: Option<f64>| v.filter(|v| !v.is_nan());
    match (key(a), key(b)) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare(a: &TrialRecord, b: &TrialRecord, select: SelectMetric) -> Ordering {
    let after = |r: &TrialRecord, split, metric| metric_after(r, split, metric);
    let neg_loss = |r: &TrialRecord| r.outcome.final_loss.map(|l| -l);
    let lower = |r: &TrialRecord| {
        r.outcome.after.and_then(|s| s.get(select.split).wilson_95(select.metric)).map(|(lo, _)| lo)
    };
    higher_first(after(a, select.split, select.metric), after(b, select.split, select.metric))
        .then_with(|| higher_first(lower(a), lower(b)))
        .then_with(|| higher_first(after(a, Split::Valid, Metric::F1), after(b, Split::Valid, Metric::F1)))
        .then_with(|| higher_first(neg_loss(a), neg_loss(b)))
        .then_with(|| a.outcome.status.cmp(&b.outcome.status))
        .then_with(|| a.id().cmp(b.id()))
}

/// The records in leaderboard order.
pub fn rank(records: &[TrialRecord], select: SelectMetric) -> Vec<&TrialRecord> {
    let mut ranked: Vec<&TrialRecord> = records.iter().collect();
    ranked.sort_by(|a, b| compare(a, b, select));
    ranked
}

/// The winner: the first ranked trial, if it is done and its select metric is defined.
pub fn winner<'a>(ranked: &[&'a TrialRecord], select: SelectMetric) -> Option<&'a TrialRecord> {
    ranked.first().copied().filter(|r| can_win(r, select))
}

/// Whether `record` can win: it is done and its select metric is defined. Every such trial ranks
/// before every other, so the winner is the first of these in leaderboard order.
pub fn can_win(record: &TrialRecord, select: SelectMetric) -> bool {
    record.outcome.status == Status::Done && metric_after(record, select.split, select.metric).is_some()
}

/// Whether `a` ranks before `b` on the leaderboard.
pub fn ranks_before(a: &TrialRecord, b: &TrialRecord, select: SelectMetric) -> bool {
    compare(a, b, select) == Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::test_records::record;

    #[test]
    fn orders_by_metric_then_tie_breaks_then_id() {
        // (id, status, valid [tp, tn, fp, fn], final loss); train is the same for all.
        let records = vec![
            record("aaaaaaaaaaaa", Status::Done, [2, 1, 1, 0], Some(0.3)), // precision 2/3
            record("bbbbbbbbbbbb", Status::Done, [3, 0, 1, 0], Some(0.5)), // precision 3/4, f1 6/7
            record("cccccccccccc", Status::Done, [3, 0, 1, 1], Some(0.2)), // precision 3/4, f1 6/8
            record("dddddddddddd", Status::Done, [0, 5, 0, 3], Some(0.1)), // precision undefined, f1 0
            record("eeeeeeeeeeee", Status::Diverged, [0, 0, 0, 0], None),
            record("ffffffffffff", Status::Failed, [0, 0, 0, 0], None),
            record("000000000000", Status::Done, [3, 0, 1, 1], Some(0.2)), // ties c: id decides
        ];
        let select = SelectMetric::default();
        let ids: Vec<&str> = rank(&records, select).iter().map(|r| r.id().as_str()).collect();
        assert_eq!(
            ids,
            [
                "bbbbbbbbbbbb",
                "000000000000",
                "cccccccccccc",
                "aaaaaaaaaaaa",
                "dddddddddddd",
                "eeeeeeeeeeee",
                "ffffffffffff"
            ]
        );
        assert_eq!(winner(&rank(&records, select), select).unwrap().id().as_str(), "bbbbbbbbbbbb");
    }

    #[test]
    fn the_same_value_on_more_images_ranks_first_and_all_is_never_looked_at() {
        // Both precision 1: 3/3 (Wilson lower 0.44) against 9/9 (0.70); the 3/3 trial has the
        // better valid F1, which must not matter before the interval.
        let mut few = record("aaaaaaaaaaaa", Status::Done, [3, 7, 0, 0], Some(0.1));
        let many = record("bbbbbbbbbbbb", Status::Done, [9, 0, 0, 1], Some(0.9));
        // `all` counts training images: a perfect training fit must not lift a trial.
        few.outcome.after.as_mut().unwrap().train = crate::eval::Confusion { tp: 90, tn: 90, fp: 0, fn_: 0 };
        let select = SelectMetric::default();
        let records = [few, many];
        let ids: Vec<&str> = rank(&records, select).iter().map(|r| r.id().as_str()).collect();
        assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]);
    }

    #[test]
    fn no_winner_when_the_best_metric_is_undefined() {
        let records = vec![record("dddddddddddd", Status::Done, [0, 5, 0, 3], Some(0.1))];
        let select = SelectMetric::default();
        assert!(winner(&rank(&records, select), select).is_none());
    }
}
