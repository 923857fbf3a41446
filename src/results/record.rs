//! What a finished trial leaves behind: `outcome.json` (its status, scores, attempts and times)
//! and the `metrics.jsonl` loss log, with their serde shapes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::data::Label;
use crate::eval::answer_logits::AnswerLogits;
use crate::eval::operating_point::OperatingPoint;
use crate::eval::{Confusion, SplitConfusions};
use crate::spec::{ConfigId, FinalModel, SelectMetric, Trial, TrialId, TrialParams};
pub use crate::train::step_log::loss_serde;
use crate::train::StepLog;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trained (possibly after reseeds), scored and saved.
    Done,
    /// Every attempt (1 + `abort.max_reseeds`) diverged.
    Diverged,
    /// The runner reported an error; `error` says which.
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a failed trial failed (see `failure.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// No space, an I/O error, out of memory, interrupted: retried on the next run.
    Environment,
    /// Anything else: would fail again; rerun only with `--retry-failed`.
    Input,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Environment => "environment",
            FailureKind::Input => "input",
        })
    }
}

/// One attempt of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "lowercase", deny_unknown_fields)]
pub enum AttemptRecord {
    Finished {
        seed: u64,
    },
    Diverged {
        seed: u64,
        stage: u8,
        step: usize,
        #[serde(with = "loss_serde")]
        loss: f64,
    },
    Failed {
        seed: u64,
    },
}

/// `outcome.json`: written last, atomically; its presence marks the trial finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialOutcome {
    pub id: TrialId,
    pub status: Status,
    /// Attempts after the first (0 when the first attempt finished or failed).
    pub reseeds: u32,
    pub attempts: Vec<AttemptRecord>,
    /// Scores of the untrained model (absent when the runner failed before reporting them).
    pub before: Option<SplitConfusions>,
    /// Scores of the trained model; present exactly when `status` is done.
    pub after: Option<SplitConfusions>,
    /// The last logged loss of the last attempt.
    #[serde(with = "opt_loss_serde")]
    pub final_loss: Option<f64>,
    pub stage2: Stage2Ran,
    /// The runner's error, when `status` is failed.
    pub error: Option<String>,
    /// What kind of error, when `status` is failed (absent in folders written before kinds
    /// were recorded: then the message says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// The trained model's answer to each validation image, with its logits (done trials; empty
    /// in folders written before answers were recorded). Pairs configs image by image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_answers: Vec<ValidAnswer>,
    /// Seconds in training steps, all attempts.
    pub training_secs: f64,
    /// Seconds from the trial's start to its outcome, all attempts.
    pub trial_secs: f64,
    pub started_at: String,
    pub finished_at: String,
}

impl TrialOutcome {
    /// Whether the trial's weights were saved (and may still be on disk).
    pub fn has_weights(&self) -> bool {
        self.status == Status::Done
    }

    /// `valid.precision 0.9000` or why there is none; warns when a done trial cannot win.
    pub fn result_line(&self, select: SelectMetric) -> String {
        let value = self.after.and_then(|a| a.get(select.split).value(select.metric));
        match (self.status, value) {
            (Status::Done, Some(v)) => format!("{select} {v:.4}"),
            (Status::Done, None) => {
                crate::logging::warn!(
                    "trial {}: {select} is undefined (a zero denominator, e.g. no image predicted positive); \
                     it cannot become best",
                    self.id
                );
                format!("{select} undefined")
            }
            (Status::Diverged, _) => format!("every attempt diverged ({} reseeds)", self.reseeds),
            (Status::Failed, _) => self.error.clone().unwrap_or_default(),
        }
    }
}

/// One validation image as a trained model answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidAnswer {
    /// The image as written in the dataset.
    pub image: String,
    /// Whether its label is the positive answer.
    pub positive: bool,
    /// Whether the model answered positive.
    pub answered_positive: bool,
    /// The logits behind the answer (absent in folders written before they were recorded: such a
    /// config cannot certify a precision target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<AnswerLogits>,
}

impl ValidAnswer {
    pub fn new(image: &str, label: Label, answer: Label) -> ValidAnswer {
        ValidAnswer {
            image: image.to_string(),
            positive: label == Label::Positive,
            answered_positive: answer == Label::Positive,
            logits: None,
        }
    }

    /// The answer P(yes) > 0.5 of `logits`, kept with them.
    pub fn scored(image: &str, label: Label, logits: AnswerLogits) -> ValidAnswer {
        ValidAnswer { logits: Some(logits), ..ValidAnswer::new(image, label, logits.answer()) }
    }

    pub fn is_right(&self) -> bool {
        self.positive == self.answered_positive
    }
}

/// A finished trial: its parameters (from the spec), its config and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub params: TrialParams,
    pub config: ConfigId,
    pub outcome: TrialOutcome,
}

impl TrialRecord {
    /// The record of `trial` that finished with `outcome`.
    pub fn new(trial: &Trial, outcome: TrialOutcome) -> TrialRecord {
        TrialRecord { params: trial.params.clone(), config: trial.config.clone(), outcome }
    }

    pub fn id(&self) -> &TrialId {
        &self.outcome.id
    }
}

/// `best/final.json`: what the final model is, and how it scored on the test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalRecord {
    /// `best_trial`, `soup` or `refit`.
    #[serde(rename = "final")]
    pub final_model: FinalModel,
    /// The winning config, and its label (`learning_rate=0.01 prompt="…"`).
    pub config: ConfigId,
    pub config_label: String,
    /// The trained folders behind the model: one trial (best_trial), the config's pulls (soup)
    /// or the refit runs (refit), as paths relative to the results folder.
    pub members: Vec<String>,
    /// The final model's counts on the test images (at P(yes) > 0.5); absent without
    /// `[validation] test`.
    pub test: Option<Confusion>,
    /// With `[select] min_precision`: the winning config's threshold, temperature and target,
    /// which the final model ships with (docs/operating-point.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<Box<OperatingPoint>>,
    /// The final model's counts on the test images at that threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_at_threshold: Option<Confusion>,
    /// Why the sweep stopped before it was complete (its budget: `max_pulls`, a deadline), when
    /// it did: the model is made of what had finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
}

/// Whether the second stage ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage2Ran {
    /// The spec has no `[stage2]`.
    #[default]
    NotConfigured,
    /// Configured, but its `when` did not hold after stage 1.
    Skipped,
    Ran,
}

/// One line of `metrics.jsonl`: a recorded step of a stage of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossLine {
    pub attempt: u32,
    /// 1 or 2.
    pub stage: u8,
    #[serde(flatten)]
    pub log: StepLog,
}

/// UTC time as `2026-11-28T07:36:47Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `loss_serde` for an optional loss.
mod opt_loss_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    struct Loss(#[serde(with = "super::loss_serde")] f64);

    pub fn serialize<S: Serializer>(loss: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match loss {
            Some(loss) => super::loss_serde::serialize(loss, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<Loss>::deserialize(d)?.map(|Loss(loss)| loss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_date_u() {
        // `date -u -d @951782400 +%FT%TZ` → 2000-02-29T00:00:00Z; @1795851407 → 2026-11-28T07:36:47Z.
        let at = |secs| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_851_407), "2026-11-28T07:36:47Z");
    }

    #[test]
    fn answers_without_logits_still_read_and_answers_with_them_round_trip() {
        // As written before the logits were recorded.
        let old = r#"{"image":"a.png","positive":true,"answered_positive":false}"#;
        let read: ValidAnswer = serde_json::from_str(old).unwrap();
        assert_eq!(read, ValidAnswer::new("a.png", Label::Positive, Label::Negative));
        assert_eq!(serde_json::to_string(&read).unwrap(), old);
        // z = 2 − (−1) = 3: P(yes) = σ(3) = 0.9525741268224334, answered yes.
        let scored = ValidAnswer::scored("b.png", Label::Negative, AnswerLogits::from_logits(2.0, -1.0));
        assert!(scored.answered_positive && !scored.is_right());
        assert!((scored.logits.unwrap().p_yes - 0.952_574_126_822_433_4).abs() < 1e-15);
        let json = serde_json::to_string(&scored).unwrap();
        assert_eq!(serde_json::from_str::<ValidAnswer>(&json).unwrap(), scored);
    }

    #[test]
    fn non_finite_losses_survive_json() {
        for loss in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25] {
            let attempt = AttemptRecord::Diverged { seed: 1, stage: 1, step: 3, loss };
            let json = serde_json::to_string(&attempt).unwrap();
            let back: AttemptRecord = serde_json::from_str(&json).unwrap();
            let AttemptRecord::Diverged { loss: got, .. } = back else { panic!("{json}") };
            assert!(got == loss || (got.is_nan() && loss.is_nan()), "{json}");
        }
        let json =
            serde_json::to_string(&AttemptRecord::Diverged { seed: 1, stage: 1, step: 3, loss: f64::NAN })
                .unwrap();
        assert_eq!(json, r#"{"end":"diverged","seed":1,"stage":1,"step":3,"loss":"NaN"}"#);
    }
}
