//! The `[select]` table: which metric ranks the leaderboard and picks `best/`, how many
//! configs' pulls keep their weights, and the precision target a config's decision threshold is
//! certified for (`min_precision`, `confidence`: docs/operating-point.md).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::eval::operating_point::Target;
use crate::eval::{Metric, Split};

/// A metric on a part of the dataset, written `valid.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectMetric {
    pub split: Split,
    pub metric: Metric,
}

impl Default for SelectMetric {
    /// The users' question: of the images flagged, how many were right, on held-out data.
    fn default() -> Self {
        SelectMetric { split: Split::Valid, metric: Metric::Precision }
    }
}

impl fmt::Display for SelectMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.split, self.metric)
    }
}

impl FromStr for SelectMetric {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = text.split_once('.').and_then(|(split, metric)| {
            Some(SelectMetric { split: Split::from_name(split)?, metric: Metric::from_name(metric)? })
        });
        parsed.ok_or_else(|| {
            format!(
                "unknown metric {text:?}: expected SPLIT.METRIC with SPLIT one of train, valid, all and \
                 METRIC one of accuracy, precision, recall, f1 (e.g. \"valid.precision\")"
            )
        })
    }
}

impl<'de> Deserialize<'de> for SelectMetric {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What `best/` holds at the end of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalModel {
    /// The first trial of the leaderboard, as trained.
    #[default]
    BestTrial,
    /// The average of the winning config's trained weights over its pulls.
    Soup,
    /// The winning config trained again on every non-test image (one run per `refit_seeds`),
    /// then souped.
    Refit,
}

impl FinalModel {
    pub fn name(self) -> &'static str {
        match self {
            FinalModel::BestTrial => "best_trial",
            FinalModel::Soup => "soup",
            FinalModel::Refit => "refit",
        }
    }
}

impl fmt::Display for FinalModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[select]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// Ranks the leaderboard (higher first) and picks `best/`. Default `valid.precision`.
    #[serde(default)]
    pub metric: SelectMetric,
    /// Only the pulls of the best `keep` configs, and the top trial, keep their weights once
    /// every trial has finished (`results::best`). Absent: every trial keeps its weights.
    #[serde(default)]
    pub keep: Option<usize>,
    /// The final model in `best/` (default `best_trial`).
    #[serde(default, rename = "final")]
    pub final_model: FinalModel,
    /// `final = "refit"`: the seeds of the refit runs (default: the `seeds` axis).
    #[serde(default)]
    pub refit_seeds: Option<Vec<u64>>,
    /// The precision of "yes" each config's threshold is certified for; absent: no target,
    /// every answer at P(yes) > 0.5.
    #[serde(default)]
    pub min_precision: Option<f64>,
    /// The confidence of that claim (default [`DEFAULT_CONFIDENCE`]); only with `min_precision`.
    #[serde(default)]
    pub confidence: Option<f64>,
}

/// The confidence of a precision target when the spec gives none.
pub const DEFAULT_CONFIDENCE: f64 = 0.9;

impl SelectSpec {
    /// The precision target, checked: the spec key at fault and why, when a value is out of range
    /// or `confidence` comes without `min_precision`.
    pub fn checked_target(&self) -> Result<Option<Target>, (&'static str, String)> {
        match (self.min_precision, self.confidence) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err((
                "confidence",
                "a confidence needs a target: add min_precision (e.g. min_precision = 0.95)".into(),
            )),
            (Some(p), confidence) => {
                let key = if p > 0.0 && p < 1.0 { "confidence" } else { "min_precision" };
                Target::new(p, confidence.unwrap_or(DEFAULT_CONFIDENCE)).map(Some).map_err(|e| (key, e))
            }
        }
    }

    /// The precision target of a spec that was read (`checked_target` held then).
    pub fn target(&self) -> Option<Target> {
        self.checked_target().expect("the precision target was checked when the spec was read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_and_metric() {
        let m: SelectMetric = "all.f1".parse().unwrap();
        assert_eq!(m, SelectMetric { split: Split::All, metric: Metric::F1 });
        assert_eq!(m.to_string(), "all.f1");
        assert!("valid.auc".parse::<SelectMetric>().unwrap_err().contains("unknown metric \"valid.auc\""));
        assert!("precision".parse::<SelectMetric>().is_err());
    }
}
