//! `gacha check SPEC.toml`: a spec checked against its dataset's size, summarised, with warnings
//! about sweeps that would run but rank poorly.

use std::fmt;

use toml::de::DeTable;

use super::error::{Locator, SpecError};
use super::{Axis, SweepSpec};
use crate::data::split::ValidSize;
use crate::eval::Split;

/// Below this many validation images a metric is too coarse to rank trials: on 10 images
/// precision moves in steps of 0.1 or more, and one image flips the ranking.
pub const MIN_RANKABLE_VALID: usize = 30;

/// What `check_spec` found.
#[derive(Debug, Clone)]
pub struct SpecCheck {
    pub file: String,
    pub trials: usize,
    pub axes: Vec<Axis>,
    /// Each `valid` value and the number of validation images it gives.
    pub valid_counts: Vec<(ValidSize, usize)>,
    pub examples: usize,
    pub warnings: Vec<SpecWarning>,
}

/// A spec that will run but may not mean what the user hopes.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecWarning {
    SmallValid { valid: ValidSize, count: usize },
    SelectsOnTrain { metric: String },
}

impl fmt::Display for SpecWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecWarning::SmallValid { valid, count } => write!(
                f,
                "valid = {valid} holds out {count} images (< {MIN_RANKABLE_VALID}): a metric on {count} images \
                 moves in steps of {:.2} or more, too coarse to rank trials; hold out more",
                1.0 / *count as f64
            ),
            SpecWarning::SelectsOnTrain { metric } => write!(
                f,
                "select.metric = {metric:?} ranks trials by how well they fit their own training data; \
                 a valid.* metric ranks generalisation"
            ),
        }
    }
}

/// Check `spec` against a dataset of `examples` examples: every `valid` value must leave both
/// parts non-empty. Warnings go into the result; printing is the caller's.
pub fn check_spec(spec: &SweepSpec, examples: usize) -> Result<SpecCheck, SpecError> {
    let doc =
        DeTable::parse(&spec.text).map_err(|err| Locator::lines_only(&spec.file, &spec.text).toml(&err))?;
    let at = Locator::new(&spec.file, &spec.text, &doc);
    let mut valid_sizes: Vec<ValidSize> = Vec::new();
    for trial in &spec.trials {
        if !valid_sizes.contains(&trial.params.valid) {
            valid_sizes.push(trial.params.valid);
        }
    }
    let mut valid_counts = Vec::with_capacity(valid_sizes.len());
    let mut warnings = Vec::new();
    for valid in valid_sizes {
        let count = valid.resolve(examples).map_err(|err| {
            at.at(
                at.span_of(&["sweep", "valid"]).unwrap_or(0..0),
                "sweep.valid",
                format!("{err} (dataset {})", spec.data.path),
            )
        })?;
        if count < MIN_RANKABLE_VALID {
            warnings.push(SpecWarning::SmallValid { valid, count });
        }
        valid_counts.push((valid, count));
    }
    if spec.select.metric.split == Split::Train {
        warnings.push(SpecWarning::SelectsOnTrain { metric: spec.select.metric.to_string() });
    }
    Ok(SpecCheck {
        file: spec.file.display().to_string(),
        trials: spec.trials.len(),
        axes: spec.axes.clone(),
        valid_counts,
        examples,
        warnings,
    })
}

impl fmt::Display for SpecCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let product: Vec<String> = self.axes.iter().map(|a| a.len.to_string()).collect();
        writeln!(f, "{}: {} trials ({})", self.file, self.trials, product.join(" × "))?;
        let width = self.axes.iter().map(|a| a.key.len()).max().unwrap_or(0);
        for axis in &self.axes {
            writeln!(
                f,
                "  {:width$}  {} value(s), sets {} (line {})",
                axis.key, axis.len, axis.field, axis.line
            )?;
        }
        let counts: Vec<String> = self.valid_counts.iter().map(|(v, n)| format!("{v} → {n}")).collect();
        writeln!(f, "  validation images of {}: {}", self.examples, counts.join(", "))
    }
}
