//! Confusion counts (tp, tn, fp, fn) and accuracy, precision, recall, F1 with Wilson intervals.
//!
//! A metric whose denominator is zero (precision with no predicted positives, say) is undefined:
//! `None`, shown as an empty CSV cell or `n/a`, never as 0 or 1.

use std::fmt;

use crate::data::Label;

/// Counts of predictions against labels; "positive" is the first answer word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confusion {
    pub tp: u64,
    pub tn: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// A metric derived from a confusion count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Accuracy, Metric::Precision, Metric::Recall, Metric::F1];
    /// The metrics that are proportions and so have a Wilson interval (F1 is not one).
    pub const PROPORTIONS: [Metric; 3] = [Metric::Accuracy, Metric::Precision, Metric::Recall];

    /// The name used in CSV headers, specs and logs.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// z for a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Confusion {
    /// Count one prediction.
    pub fn add(&mut self, label: Label, predicted: Label) {
        match (label, predicted) {
            (Label::Positive, Label::Positive) => self.tp += 1,
            (Label::Negative, Label::Negative) => self.tn += 1,
            (Label::Negative, Label::Positive) => self.fp += 1,
            (Label::Positive, Label::Negative) => self.fn_ += 1,
        }
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (Label, Label)>) -> Confusion {
        let mut c = Confusion::default();
        for (label, predicted) in pairs {
            c.add(label, predicted);
        }
        c
    }

    pub fn total(&self) -> u64 {
        self.tp + self.tn + self.fp + self.fn_
    }

    /// The metric as (successes, trials) when it is a proportion; F1 is not one.
    pub fn proportion(&self, metric: Metric) -> Option<(u64, u64)> {
        match metric {
            Metric::Accuracy => Some((self.tp + self.tn, self.total())),
            Metric::Precision => Some((self.tp, self.tp + self.fp)),
            Metric::Recall => Some((self.tp, self.tp + self.fn_)),
            Metric::F1 => None,
        }
    }

    /// The metric's value, or `None` when it is undefined (zero denominator).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match self.proportion(metric) {
            Some((num, den)) => ratio(num, den),
            // F1 = 2tp / (2tp + fp + fn): defined whenever there is any positive, predicted or true.
            None => ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_),
        }
    }

    /// Wilson score 95% interval of a proportion metric; `None` for F1 or an empty denominator.
    pub fn wilson_95(&self, metric: Metric) -> Option<(f64, f64)> {
        let (num, den) = self.proportion(metric)?;
        wilson_95(num, den)
    }
}

/// Wilson score 95% interval of `successes` in `trials`; `None` when there are no trials.
pub fn wilson_95(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z_95 * Z_95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// A metric value for text output: four decimals, or `n/a` when undefined.
pub fn format_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(tp: u64, tn: u64, fp: u64, fn_: u64) -> Confusion {
        Confusion { tp, tn, fp, fn_ }
    }

    #[test]
    fn counts_each_cell_from_pairs() {
        use Label::*;
        let c = Confusion::from_pairs([
            (Positive, Positive),
            (Positive, Negative),
            (Negative, Positive),
            (Negative, Negative),
            (Negative, Negative),
        ]);
        assert_eq!(c, conf(1, 2, 1, 1));
    }

    #[test]
    fn metrics_match_hand_counts() {
        // tp 6, tn 3, fp 2, fn 1: accuracy 9/12, precision 6/8, recall 6/7, F1 12/15.
        let c = conf(6, 3, 2, 1);
        assert_eq!(c.value(Metric::Accuracy), Some(0.75));
        assert_eq!(c.value(Metric::Precision), Some(0.75));
        assert_eq!(c.value(Metric::Recall), Some(6.0 / 7.0));
        assert_eq!(c.value(Metric::F1), Some(0.8));
    }

    #[test]
    fn undefined_metrics_are_none_not_zero() {
        // Nothing predicted positive: precision undefined; recall 0 of 3 is a real 0.
        let c = conf(0, 5, 0, 3);
        assert_eq!(c.value(Metric::Precision), None);
        assert_eq!(c.value(Metric::Recall), Some(0.0));
        assert_eq!(c.value(Metric::F1), Some(0.0));
        // No positives anywhere: F1 and recall undefined too.
        let c = conf(0, 5, 0, 0);
        assert_eq!(c.value(Metric::F1), None);
        assert_eq!(c.value(Metric::Recall), None);
        assert_eq!(format_metric(c.value(Metric::Recall)), "n/a");
        assert_eq!(Confusion::default().value(Metric::Accuracy), None);
    }

    #[test]
    fn wilson_interval_matches_published_value() {
        // 8 of 10: p = 0.8, z² = 3.8415; by hand: centre 0.99207/1.38415 = 0.71674,
        // half-width 1.41603·√0.0256037 = 0.22658 → (0.4902, 0.9433).
        let c = conf(8, 0, 2, 0);
        let (lo, hi) = c.wilson_95(Metric::Precision).unwrap();
        assert!((lo - 0.4902).abs() < 1e-4, "{lo}");
        assert!((hi - 0.9433).abs() < 1e-4, "{hi}");
        assert_eq!(c.wilson_95(Metric::F1), None);
        assert_eq!(conf(0, 1, 0, 0).wilson_95(Metric::Precision), None);
    }
}
