//! One image as a model answered it: the two answer logits and the P(yes) they give. Trial
//! records keep these beside each answer (issue 30), so that a config's out-of-fold scores can
//! choose and certify a decision threshold (`operating_point`) after the sweep.

use serde::{Deserialize, Serialize};

use crate::data::Label;
use crate::eval::result::DEFAULT_THRESHOLD;
use crate::eval::score::ScoreRow;

/// The logits of the positive and negative answers, and P(yes) = σ(logit_yes − logit_no).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerLogits {
    pub p_yes: f64,
    pub logit_yes: f64,
    pub logit_no: f64,
}

/// An f32 as the f64 with the same shortest decimal text: `0.93`, not `0.9300000071525574`, in
/// the records. Its answer at a threshold is the f32's: both sit on the same side of 0.5.
fn readable(value: f32) -> f64 {
    value.to_string().parse().expect("an f32's text is a number")
}

impl AnswerLogits {
    /// From the two logits; P(yes) computed from their difference.
    pub fn from_logits(logit_yes: f64, logit_no: f64) -> AnswerLogits {
        let p_yes = 1.0 / (1.0 + (logit_no - logit_yes).exp());
        AnswerLogits { p_yes, logit_yes, logit_no }
    }

    /// What the model scored for one image (`eval::score`).
    pub fn of_row(row: &ScoreRow) -> AnswerLogits {
        AnswerLogits {
            p_yes: readable(row.p_yes),
            logit_yes: readable(row.logit_yes),
            logit_no: readable(row.logit_no),
        }
    }

    /// z = logit_yes − logit_no, the score the operating point pools and thresholds.
    pub fn logit_diff(&self) -> f64 {
        self.logit_yes - self.logit_no
    }

    /// The answer at the default threshold, P(yes) > 0.5.
    pub fn answer(&self) -> Label {
        if self.p_yes > DEFAULT_THRESHOLD {
            Label::Positive
        } else {
            Label::Negative
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::result::predict;

    #[test]
    fn rows_keep_their_short_text_and_their_answer() {
        let row = ScoreRow {
            image: "a.png".into(),
            label: Label::Positive,
            p_yes: 0.93,
            logit_yes: 1.5,
            logit_no: -1.0,
            loss: 0.1,
        };
        let logits = AnswerLogits::of_row(&row);
        assert_eq!((logits.p_yes, logits.logit_yes, logits.logit_no), (0.93, 1.5, -1.0));
        assert_eq!(
            serde_json::to_string(&logits).unwrap(),
            r#"{"p_yes":0.93,"logit_yes":1.5,"logit_no":-1.0}"#
        );
        // The f32 just above 0.5 stays above it, and exactly 0.5 answers no, as `predict` does.
        for p in [0.5_f32, 0.5_f32.next_up(), 0.5_f32.next_down()] {
            let row = ScoreRow { p_yes: p, ..row.clone() };
            assert_eq!(AnswerLogits::of_row(&row).answer(), predict(p, DEFAULT_THRESHOLD));
        }
    }

    #[test]
    fn p_yes_is_the_sigmoid_of_the_difference() {
        // σ(ln 3) = 3/4.
        let logits = AnswerLogits::from_logits(3.0_f64.ln() + 2.0, 2.0);
        assert!((logits.p_yes - 0.75).abs() < 1e-12);
        assert!((logits.logit_diff() - 3.0_f64.ln()).abs() < 1e-12);
        assert_eq!(logits.answer(), Label::Positive);
    }
}
