//! From scores to a verdict: predictions at a threshold, their confusion counts, and the users'
//! `Result:` text block.

use crate::data::Label;
use crate::eval::metrics::format_metric;
use crate::eval::score::ScoreRow;
use crate::eval::{Confusion, Metric};

/// The threshold when no `--threshold` is given: p_yes > 0.5, i.e. `logit_yes > logit_no`.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// The positive answer when `p_yes` is strictly above `threshold`, else the negative one.
pub fn predict(p_yes: f32, threshold: f64) -> Label {
    if f64::from(p_yes) > threshold {
        Label::Positive
    } else {
        Label::Negative
    }
}

/// Confusion counts of `rows` at `threshold`.
pub fn confusion(rows: &[ScoreRow], threshold: f64) -> Confusion {
    Confusion::from_pairs(rows.iter().map(|r| (r.label, predict(r.p_yes, threshold))))
}

/// The users' block:
/// ```text
/// Result: valid.jsonl
/// tp=6 tn=3 fp=2 fn=1
/// accuracy: 0.7500
/// precision: 0.7500
/// recall: 0.8571
/// F-measure: 0.8000
/// ```
pub fn result_block(file: &str, c: &Confusion) -> String {
    let line = |name: &str, metric| format!("{name}: {}\n", format_metric(c.value(metric)));
    format!("Result: {file}\ntp={} tn={} fp={} fn={}\n", c.tp, c.tn, c.fp, c.fn_)
        + &line("accuracy", Metric::Accuracy)
        + &line("precision", Metric::Precision)
        + &line("recall", Metric::Recall)
        + &line("F-measure", Metric::F1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: Label, p_yes: f32) -> ScoreRow {
        ScoreRow { image: String::new(), label, p_yes, logit_yes: 0.0, logit_no: 0.0, loss: 0.0 }
    }

    #[test]
    fn threshold_is_strict() {
        assert_eq!(predict(0.5, 0.5), Label::Negative);
        assert_eq!(predict(0.500_001, 0.5), Label::Positive);
        assert_eq!(predict(0.2, 0.1), Label::Positive);
    }

    #[test]
    fn confusion_counts_each_cell() {
        use Label::*;
        let rows = [
            row(Positive, 0.9),
            row(Positive, 0.3),
            row(Negative, 0.7),
            row(Negative, 0.1),
            row(Negative, 0.5),
        ];
        assert_eq!(confusion(&rows, 0.5), Confusion { tp: 1, tn: 2, fp: 1, fn_: 1 });
        assert_eq!(confusion(&rows, 0.2), Confusion { tp: 2, tn: 1, fp: 2, fn_: 0 });
    }

    #[test]
    fn block_matches_hand_values_and_says_n_a() {
        // tp 6, tn 3, fp 2, fn 1: accuracy 9/12, precision 6/8, recall 6/7, F1 12/15.
        let c = Confusion { tp: 6, tn: 3, fp: 2, fn_: 1 };
        assert_eq!(
            result_block("valid.jsonl", &c),
            "Result: valid.jsonl\ntp=6 tn=3 fp=2 fn=1\naccuracy: 0.7500\nprecision: 0.7500\nrecall: 0.8571\nF-measure: 0.8000\n"
        );
        let none_predicted = Confusion { tp: 0, tn: 4, fp: 0, fn_: 0 };
        let block = result_block("a.jsonl", &none_predicted);
        assert!(
            block.ends_with("accuracy: 1.0000\nprecision: n/a\nrecall: n/a\nF-measure: n/a\n"),
            "{block}"
        );
    }
}
