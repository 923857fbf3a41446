//! The operating point: the decision threshold chosen for a precision target and certified on a
//! config's out-of-fold answers (issue 30; docs/operating-point.md says why each choice).
//!
//! The input is one entry per image that the config answered out of fold: its label and the logit
//! differences z = logit(yes) − logit(no) of the pulls that answered it. Then:
//! 1. **Temperature** (`temperature`): one T per config, fitted on every (image, pull) pair, so
//!    that P(yes) = σ(z / T) means the same for each pull, and for a soup or a refit of the config.
//! 2. **Pooling**: an image's score is the mean of its pulls' z / T, one score per image. A soup
//!    averages its pulls' weights, which to first order averages their logits, so the pooled score
//!    imitates what the shipped model will say; and a mean of z / T ranks images as a mean of z
//!    does, so no fitted number changes which thresholds certify.
//! 3. **Certification** (`certify`): the distinct pooled scores, strictest first, each tested by an
//!    exact one-sided binomial bound, stopping at the first failure; the last to pass ships.
//!
//! Evidence is counted per image, never per pull: several seeds' answers on one image are not
//! independent (the simulation in `simulation` shows the guarantee failing when they are counted
//! as if they were).

mod certify;
#[cfg(test)]
mod simulation;
pub mod temperature;

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use certify::{candidates, certify, Candidate, Certification};
pub use temperature::{fit_temperature, Temperature};

use crate::data::Label;
use crate::eval::binomial::{binomial_cdf, clopper_pearson_lower};
use crate::eval::{Confusion, Metric};

/// A precision target: precision of "yes" at least `min_precision`, claimed at `confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TargetFields", into = "TargetFields")]
pub struct Target {
    min_precision: f64,
    confidence: f64,
}

/// `Target` as stored, checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFields {
    min_precision: f64,
    confidence: f64,
}

impl TryFrom<TargetFields> for Target {
    type Error = String;
    fn try_from(fields: TargetFields) -> Result<Target, String> {
        Target::new(fields.min_precision, fields.confidence)
    }
}

impl From<Target> for TargetFields {
    fn from(target: Target) -> TargetFields {
        TargetFields { min_precision: target.min_precision, confidence: target.confidence }
    }
}

impl Target {
    /// Both numbers must lie strictly between 0 and 1.
    pub fn new(min_precision: f64, confidence: f64) -> Result<Target, String> {
        for (name, value) in [("min_precision", min_precision), ("confidence", confidence)] {
            if !(value > 0.0 && value < 1.0) {
                return Err(format!("{name} must lie strictly between 0 and 1, got {value}"));
            }
        }
        Ok(Target { min_precision, confidence })
    }

    pub fn min_precision(&self) -> f64 {
        self.min_precision
    }

    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// Whether `counts` certify the target: P(Binomial(n, 1 − p0) ≤ FP) ≤ 1 − confidence, with n
    /// the images answered yes and FP the false ones among them.
    pub fn passes(&self, counts: &Confusion) -> bool {
        let n = counts.tp + counts.fp;
        n > 0 && binomial_cdf(counts.fp, n, 1.0 - self.min_precision) <= 1.0 - self.confidence
    }

    /// The one-sided Clopper–Pearson lower bound of the precision of `counts` at the target's
    /// confidence; `None` when nothing was answered yes. At least `min_precision` exactly when
    /// `passes`.
    pub fn lower_bound(&self, counts: &Confusion) -> Option<f64> {
        clopper_pearson_lower(counts.tp, counts.fp, self.confidence)
    }

    /// The fewest images answered yes, `false_yes` of them wrongly, that can certify the target.
    /// With none wrong, the smallest n with p0^n ≤ 1 − confidence, i.e. n ≥ ln δ / ln p0.
    pub fn needed_yes(&self, false_yes: u64) -> u64 {
        let mut n = false_yes + 1;
        while binomial_cdf(false_yes, n, 1.0 - self.min_precision) > 1.0 - self.confidence {
            n += 1;
        }
        n
    }

    /// What `gacha check` says before a sweep that judges `images` images, `positives` of them yes.
    pub fn feasibility(&self, images: u64, positives: u64) -> Feasibility {
        Feasibility {
            target: *self,
            needed: self.needed_yes(0),
            needed_with_one_false: self.needed_yes(1),
            images,
            positives,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded to 1e-8 so that 0.9 shows as 90, not 90.00000000000001.
        let percent = (self.confidence * 1e10).round() / 1e8;
        write!(f, "precision ≥ {} at {percent}% confidence", self.min_precision)
    }
}

/// The arithmetic of a target against the images a sweep judges on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feasibility {
    pub target: Target,
    /// Images answered yes, none wrongly, that certify the target at the least.
    pub needed: u64,
    /// The same with one of them wrong.
    pub needed_with_one_false: u64,
    /// Images the sweep judges out of fold, and how many of them are labelled yes.
    pub images: u64,
    pub positives: u64,
}

impl Feasibility {
    /// Whether any threshold could certify the target on these images: only if at least `needed`
    /// of them are labelled yes.
    pub fn certifiable(&self) -> bool {
        self.positives >= self.needed
    }
}

impl fmt::Display for Feasibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs at least {} images answered yes with no false one ({} with one); the sweep judges {} images, {} of them yes",
            self.target, self.needed, self.needed_with_one_false, self.images, self.positives
        )?;
        if !self.certifiable() {
            write!(f, ": no threshold can certify the target on them")?;
        }
        Ok(())
    }
}

/// One image's out-of-fold evidence: its label and the logit difference z = logit(yes) − logit(no)
/// of each pull that answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLogits {
    pub label: Label,
    pub logit_diffs: Vec<f64>,
}

/// Why no operating point could be chosen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperatingPointError {
    #[error("no image was answered out of fold")]
    NoImages,
    #[error("image {index} has no out-of-fold answer")]
    NoAnswers { index: usize },
    #[error("image {index}: pull {pull} gave the logit difference {value}, not a finite number")]
    NotFinite { index: usize, pull: usize, value: f64 },
}

/// Whether the shipped threshold was certified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The last threshold of the fixed sequence to pass the test.
    Certified,
    /// None passed: the threshold with the best lower bound, which is below the target.
    Uncertified,
}

/// A config's operating point: what `best/final.json` carries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    pub target: Target,
    pub temperature: Temperature,
    /// Answer yes when z (for the pooled evidence: the mean over the pulls) is above this.
    pub threshold_logit: f64,
    /// The same threshold as a calibrated probability, σ(threshold_logit / T).
    pub threshold_p_yes: f64,
    pub verdict: Verdict,
    /// Out-of-fold counts at the threshold, each image once.
    pub counts: Confusion,
    /// The one-sided Clopper–Pearson lower bound of their precision at the target's confidence.
    pub precision_lower_bound: f64,
}

/// The mean of an image's logit differences: its pooled score in z units (divide by T for the
/// calibrated one; the order of images is the same).
pub fn pooled_logit(logit_diffs: &[f64]) -> f64 {
    logit_diffs.iter().sum::<f64>() / logit_diffs.len() as f64
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The operating point of a config for `target` from its out-of-fold evidence (module doc).
pub fn choose(images: &[ImageLogits], target: Target) -> Result<OperatingPoint, OperatingPointError> {
    for (index, image) in images.iter().enumerate() {
        if image.logit_diffs.is_empty() {
            return Err(OperatingPointError::NoAnswers { index });
        }
        if let Some((pull, &value)) = image.logit_diffs.iter().enumerate().find(|(_, z)| !z.is_finite()) {
            return Err(OperatingPointError::NotFinite { index, pull, value });
        }
    }
    let pairs = images.iter().flat_map(|image| image.logit_diffs.iter().map(|&z| (image.label, z)));
    let temperature = fit_temperature(pairs).ok_or(OperatingPointError::NoImages)?;
    let pooled: Vec<(Label, f64)> =
        images.iter().map(|image| (image.label, pooled_logit(&image.logit_diffs))).collect();
    let Certification { verdict, candidate, lower_bound } =
        certify(&pooled, &target).expect("images is not empty: the temperature had pairs to fit");
    Ok(OperatingPoint {
        target,
        temperature,
        threshold_logit: candidate.threshold_logit,
        threshold_p_yes: sigmoid(candidate.threshold_logit / temperature.temperature),
        verdict,
        counts: candidate.counts,
        precision_lower_bound: lower_bound,
    })
}

/// How a config ranks for a precision target: every certified config before every uncertified
/// one; certified ones by recall, uncertified ones by their best lower bound, then recall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    Certified { recall: f64 },
    Uncertified { best_lower_bound: f64, recall: Option<f64> },
}

impl Standing {
    /// The order of two configs' standings, better first.
    pub fn better_first(a: &Standing, b: &Standing) -> Ordering {
        // An undefined recall (no image labelled yes) ranks below any recall.
        let recall_first = |a: Option<f64>, b: Option<f64>| b.unwrap_or(-1.0).total_cmp(&a.unwrap_or(-1.0));
        match (a, b) {
            (Standing::Certified { recall: a }, Standing::Certified { recall: b }) => b.total_cmp(a),
            (Standing::Certified { .. }, Standing::Uncertified { .. }) => Ordering::Less,
            (Standing::Uncertified { .. }, Standing::Certified { .. }) => Ordering::Greater,
            (
                Standing::Uncertified { best_lower_bound: bound_a, recall: recall_a },
                Standing::Uncertified { best_lower_bound: bound_b, recall: recall_b },
            ) => bound_b.total_cmp(bound_a).then_with(|| recall_first(*recall_a, *recall_b)),
        }
    }
}

impl OperatingPoint {
    /// The answer at this operating point to a logit difference z (one model's, or a pooled one).
    pub fn answer(&self, logit_diff: f64) -> Label {
        if logit_diff > self.threshold_logit {
            Label::Positive
        } else {
            Label::Negative
        }
    }

    /// Out-of-fold recall at the threshold (`None` when no image is labelled yes).
    pub fn recall(&self) -> Option<f64> {
        self.counts.value(Metric::Recall)
    }

    /// The select value "recall at the certified precision target".
    pub fn standing(&self) -> Standing {
        match self.verdict {
            Verdict::Certified => {
                Standing::Certified { recall: self.recall().expect("a certified threshold found yes images") }
            }
            Verdict::Uncertified => {
                Standing::Uncertified { best_lower_bound: self.precision_lower_bound, recall: self.recall() }
            }
        }
    }
}

/// A lower bound for text: floored to three decimals, so that 0.9499 never reads as 0.950.
fn floor3(value: f64) -> f64 {
    (value * 1000.0).floor() / 1000.0
}

impl fmt::Display for OperatingPoint {
    /// One line for the end of a sweep, e.g. `no threshold certifies precision ≥ 0.95 at 90%
    /// confidence on 80 images: best lower bound 0.910, at recall 0.40; shipping P(yes) > 0.870
    /// uncertified`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let recall = self.recall().map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}"));
        let bound = floor3(self.precision_lower_bound);
        match self.verdict {
            Verdict::Certified => write!(
                f,
                "P(yes) > {:.3} certifies {} on {} images: {} answered yes, {} wrongly, lower bound {bound:.3}, recall {recall}",
                self.threshold_p_yes,
                self.target,
                c.total(),
                c.tp + c.fp,
                c.fp,
            ),
            Verdict::Uncertified => write!(
                f,
                "no threshold certifies {} on {} images: best lower bound {bound:.3}, at recall {recall}; shipping P(yes) > {:.3} uncertified",
                self.target,
                c.total(),
                self.threshold_p_yes,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
