//! One optimizer step as the loop reports it: the line `gacha train` and a sweep print, and the
//! record a sweep keeps in each trial's `metrics.jsonl`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the loop reports after each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 1-based.
    pub step: usize,
    /// The run's number of steps.
    pub steps: usize,
    /// The schedule's rate at this step.
    pub learning_rate: f64,
    /// Mean loss over the step's micro-batches (before the update).
    #[serde(with = "loss_serde")]
    pub loss: f64,
    /// Global L2 norm of the mean gradient (0 in logs written before it was recorded).
    #[serde(default, with = "loss_serde")]
    pub grad_norm: f64,
    /// Wall time of the step, forward to update (0 in logs written before it was recorded).
    #[serde(default)]
    pub ms: f64,
}

impl fmt::Display for StepLog {
    /// The users' format, then the gradient norm and the step's time:
    /// `step: 32/256   lr: 0.02995   loss: 0.3417   grad norm: 1.2500   ms: 35`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step: {}/{}   lr: {:.5}   loss: {:.4}   grad norm: {:.4}   ms: {:.0}",
            self.step, self.steps, self.learning_rate, self.loss, self.grad_norm, self.ms
        )
    }
}

/// A loss as JSON: a number when finite, else the string `NaN`, `inf` or `-inf` (JSON has no
/// such numbers, and a diverged loss is exactly the value worth keeping).
pub mod loss_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(loss: &f64, s: S) -> Result<S::Ok, S::Error> {
        if loss.is_finite() {
            s.serialize_f64(*loss)
        } else {
            s.serialize_str(&loss.to_string())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(n) => Ok(n),
            Repr::Text(t) => t.parse().map_err(|_| serde::de::Error::custom(format!("not a loss: {t:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_users_format_then_norm_and_time() {
        let log = StepLog {
            step: 32,
            steps: 256,
            learning_rate: 0.029950,
            loss: 0.34171,
            grad_norm: 1.25,
            ms: 35.4,
        };
        assert_eq!(log.to_string(), "step: 32/256   lr: 0.02995   loss: 0.3417   grad norm: 1.2500   ms: 35");
    }

    #[test]
    fn a_log_written_before_norm_and_time_were_recorded_still_reads() {
        let old = r#"{"step":3,"steps":8,"learning_rate":0.1,"loss":"NaN"}"#;
        let log: StepLog = serde_json::from_str(old).unwrap();
        assert!(log.loss.is_nan());
        assert_eq!((log.step, log.grad_norm, log.ms), (3, 0.0, 0.0));
        let json = serde_json::to_string(&StepLog { grad_norm: f64::INFINITY, ..log }).unwrap();
        assert_eq!(
            json,
            r#"{"step":3,"steps":8,"learning_rate":0.1,"loss":"NaN","grad_norm":"inf","ms":0.0}"#
        );
    }
}
