//! `gacha check SPEC.toml`: a spec checked against its dataset's size, summarised, with warnings
//! about sweeps that would run but rank poorly.

use std::fmt;

use toml::de::DeTable;

use super::error::{Locator, SpecError};
use super::validation::Kfold;
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
    /// Holdout: each `valid` value and the number of validation images it gives.
    pub valid_counts: Vec<(ValidSize, usize)>,
    /// k-fold: the folds and repeats, and the sizes of the folds.
    pub kfold: Option<(Kfold, usize, usize)>,
    /// Test images set aside first (0: none).
    pub test: usize,
    pub examples: usize,
    /// Configs, and pulls (trials) per config.
    pub configs: usize,
    pub pulls_per_config: usize,
    /// The fewest validation images pooled over one config's pulls.
    pub pooled_valid: usize,
    /// A race's extra seeds (not counted in `trials`).
    pub extra_seeds: usize,
    /// The sampled axes' drawn values.
    pub drawn: Vec<(String, Vec<String>)>,
    pub warnings: Vec<SpecWarning>,
}

/// A spec that will run but may not mean what the user hopes.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecWarning {
    SmallValid { valid: ValidSize, count: usize },
    SmallPooled { count: usize },
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
            SpecWarning::SmallPooled { count } => write!(
                f,
                "a config's pulls together predict only {count} validation images (< {MIN_RANKABLE_VALID}): \
                 its interval will be wide; add seeds, folds or repeats"
            ),
            SpecWarning::SelectsOnTrain { metric } => write!(
                f,
                "select.metric = {metric:?} ranks trials by how well they fit their own training data; \
                 a valid.* metric ranks generalisation"
            ),
        }
    }
}

/// Check `spec` against a dataset of `examples` examples: the test draw, every `valid` value and
/// the folds must leave every part non-empty. Warnings go into the result; printing is the
/// caller's.
pub fn check_spec(spec: &SweepSpec, examples: usize) -> Result<SpecCheck, SpecError> {
    let doc =
        DeTable::parse(&spec.text).map_err(|err| Locator::lines_only(&spec.file, &spec.text).toml(&err))?;
    let at = Locator::new(&spec.file, &spec.text, &doc);
    let fail = |path: &[&str], message: String| {
        at.at(
            at.span_of(path).unwrap_or(0..0),
            path.join("."),
            format!("{message} (dataset {})", spec.data.path),
        )
    };
    let test = match spec.validation.test {
        Some(test) => {
            test.size.resolve(examples).map_err(|err| fail(&["validation", "test"], err.to_string()))?
        }
        None => 0,
    };
    let pool = examples - test;
    let grid: Vec<&super::Trial> =
        spec.trials.iter().filter(|t| !spec.extra_seeds.contains(&t.params.seed)).collect();
    let mut valid_sizes: Vec<ValidSize> = Vec::new();
    for trial in &grid {
        if let Some(valid) = trial.params.valid.filter(|v| !valid_sizes.contains(v)) {
            valid_sizes.push(valid);
        }
    }
    let mut valid_counts = Vec::with_capacity(valid_sizes.len());
    let mut warnings = Vec::new();
    for valid in valid_sizes {
        let count = valid.resolve(pool).map_err(|err| fail(&["sweep", "valid"], err.to_string()))?;
        if count < MIN_RANKABLE_VALID {
            warnings.push(SpecWarning::SmallValid { valid, count });
        }
        valid_counts.push((valid, count));
    }
    let kfold = match spec.validation.kfold {
        Some(k) if k.folds > pool => {
            return Err(fail(
                &["validation", "folds"],
                format!("{} folds of {pool} images: at most one fold per image", k.folds),
            ))
        }
        Some(k) => Some((k, pool / k.folds, pool.div_ceil(k.folds))),
        None => None,
    };
    let mut configs: Vec<&super::ConfigId> = grid.iter().map(|t| &t.config).collect();
    configs.sort();
    configs.dedup();
    let pulls_per_config = grid.len() / configs.len().max(1);
    let pooled_valid = match kfold {
        // Each pull validates one fold: a pool's share of 1/folds.
        Some((k, _, _)) => pool * pulls_per_config / k.folds,
        None => valid_counts.iter().map(|&(_, n)| n).min().unwrap_or(0) * pulls_per_config,
    };
    if pooled_valid < MIN_RANKABLE_VALID {
        warnings.push(SpecWarning::SmallPooled { count: pooled_valid });
    }
    if spec.select.metric.split == Split::Train {
        warnings.push(SpecWarning::SelectsOnTrain { metric: spec.select.metric.to_string() });
    }
    Ok(SpecCheck {
        file: spec.file.display().to_string(),
        trials: grid.len(),
        axes: spec.axes.clone(),
        valid_counts,
        kfold,
        test,
        examples,
        configs: configs.len(),
        pulls_per_config,
        pooled_valid,
        extra_seeds: spec.extra_seeds.len(),
        drawn: spec.drawn.clone(),
        warnings,
    })
}

impl fmt::Display for SpecCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |a: &Axis| if a.is_seeds() { a.len - self.extra_seeds } else { a.len };
        let mut product: Vec<String> = self.axes.iter().map(|a| len(a).to_string()).collect();
        if let Some((k, _, _)) = self.kfold {
            product.push(format!("{} folds", k.folds));
            if k.repeats > 1 {
                product.push(format!("{} repeats", k.repeats));
            }
        }
        writeln!(f, "{}: {} trials ({})", self.file, self.trials, product.join(" × "))?;
        let width = self.axes.iter().map(|a| a.key.len()).max().unwrap_or(0);
        for axis in &self.axes {
            let extra = match self.extra_seeds {
                n if n > 0 && axis.is_seeds() => format!(", and {n} extra for a race's survivors"),
                _ => String::new(),
            };
            writeln!(
                f,
                "  {:width$}  {} value(s){extra}, sets {} (line {})",
                axis.key,
                len(axis),
                axis.field,
                axis.line
            )?;
            if let Some((_, values)) = self.drawn.iter().find(|(key, _)| *key == axis.key) {
                writeln!(f, "  {:width$}  drawn: {}", "", values.join(", "))?;
            }
        }
        let pool = self.examples - self.test;
        if self.test > 0 {
            writeln!(
                f,
                "  test images: {} of {} (never trained on, never used to choose)",
                self.test, self.examples
            )?;
        }
        match self.kfold {
            Some((k, smallest, largest)) => {
                let sizes = if smallest == largest {
                    smallest.to_string()
                } else {
                    format!("{smallest}–{largest}")
                };
                let repeats =
                    if k.repeats > 1 { format!(" × {} repeats", k.repeats) } else { String::new() };
                writeln!(f, "  validation: {}-fold{repeats} over {pool} images (folds of {sizes})", k.folds)?;
            }
            None => {
                let counts: Vec<String> =
                    self.valid_counts.iter().map(|(v, n)| format!("{v} → {n}")).collect();
                writeln!(f, "  validation images of {pool}: {}", counts.join(", "))?;
            }
        }
        writeln!(
            f,
            "  configs: {} × {} pulls; each config judged on {} pooled validation predictions",
            self.configs, self.pulls_per_config, self.pooled_valid
        )
    }
}
