//! What one trial is made of: `[train]` (the trainer's own `TrainConfig`), `[abort]`, `[stage2]`
//! and the sweep axes, with their defaults. Field names are the spec keys.
//!
//! `TrialParams` is what a trial's id is hashed from and what `config.toml` records, so every
//! value that can change a trial's result belongs here (and nothing that cannot).

use serde::{Deserialize, Serialize};

use super::validation::FoldIndex;
use crate::data::split::ValidSize;
use crate::train::guard::{DivergenceGuard, DEFAULT_LOSS_ABOVE};
pub use crate::train::stage2::{Stage2Params, Stage2When};
use crate::train::TrainConfig;

/// Everything that defines one trial. `seed`, `valid`, `prompt` and any `train` field can be a
/// `[sweep]` axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialParams {
    /// Seeds the train/valid split and the training run (LoRA init, batch order). A reseeded
    /// attempt keeps the split and derives a fresh training seed (`reseed`).
    pub seed: u64,
    /// Holdout: how many examples are held out for validation, a count (10) or a fraction
    /// (0.1) of the images not set aside for test. Absent in k-fold and refit trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<ValidSize>,
    /// k-fold: the fold this trial holds out (it trains on the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<FoldIndex>,
    /// The question asked of every image; absent: each example's own `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The `[train]` table.
    pub train: TrainConfig,
    #[serde(default)]
    pub abort: AbortParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2: Option<Stage2Params>,
}

/// Defaults of the sweep policy (`[abort]`, `[stage2]`).
mod defaults {
    pub fn max_reseeds() -> u32 {
        2
    }
}

/// The `[abort]` table: when a run counts as diverged, and how often it is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortParams {
    /// A logged loss above this (or NaN/±inf at any step) ends the attempt as diverged. Absent:
    /// the trainer's default threshold (`train::guard::DEFAULT_LOSS_ABOVE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_above: Option<f64>,
    /// How many times a diverged trial is retried with a fresh derived seed.
    #[serde(default = "defaults::max_reseeds")]
    pub max_reseeds: u32,
}

impl Default for AbortParams {
    fn default() -> Self {
        AbortParams { loss_above: None, max_reseeds: defaults::max_reseeds() }
    }
}

/// What a trial holds out for validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeldOut {
    /// Holdout: this many images drawn with the trial's seed.
    Images(ValidSize),
    /// k-fold: one fold of a shared partition.
    Fold(FoldIndex),
    /// A refit of the final model: it trains on every non-test image.
    Nothing,
}

impl TrialParams {
    pub fn held_out(&self) -> HeldOut {
        match (self.valid, self.fold) {
            (Some(valid), _) => HeldOut::Images(valid),
            (None, Some(fold)) => HeldOut::Fold(fold),
            (None, None) => HeldOut::Nothing,
        }
    }

    /// The value of `field`, named as `Axis::field` names it (`seed`, `valid`, `prompt`,
    /// `train.learning_rate`), as JSON; `null` when it is unset.
    pub fn field_value(&self, field: &str) -> serde_json::Value {
        let json = serde_json::to_value(self).expect("trial parameters serialize to JSON");
        field.split('.').fold(&json, |value, key| &value[key]).clone()
    }

    /// The parameters that make the trial's config: everything but the seed and the fold (a
    /// holdout's `valid` size stays: it changes what a pull is trained on).
    pub fn config_params(&self) -> TrialParams {
        TrialParams { seed: 0, fold: None, ..self.clone() }
    }

    /// The refit of this trial's config with `seed`: trained on every non-test image.
    pub fn refit(&self, seed: u64) -> TrialParams {
        TrialParams { seed, valid: None, fold: None, ..self.clone() }
    }

    /// Stage 1's training settings for an attempt seeded `seed`: `[train]` as it is, the
    /// divergence threshold of `[abort]` (the trainer's default when absent).
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        let guard = DivergenceGuard { loss_above: self.abort.loss_above.unwrap_or(DEFAULT_LOSS_ABOVE) };
        TrainConfig { seed, guard, ..self.train.clone() }
    }
}

/// A value that deserialized but makes no sense: the dotted field and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidParam {
    pub field: String,
    pub message: String,
}

impl TrialParams {
    /// Checks serde cannot express: `[train]`'s own, then positive policy values.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        self.train.validate().map_err(|invalid| InvalidParam {
            field: format!("train.{}", invalid.field),
            message: invalid.message,
        })?;
        let positive = |field: &str, ok: bool| match ok {
            true => Ok(()),
            false => Err(InvalidParam { field: field.into(), message: "must be greater than 0".into() }),
        };
        if let Some(loss_above) = self.abort.loss_above {
            positive("abort.loss_above", loss_above.is_finite() && loss_above > 0.0)?;
        }
        if let Some(stage2) = &self.stage2 {
            positive("stage2.lr_factor", stage2.lr_factor.is_finite() && stage2.lr_factor > 0.0)?;
            positive("stage2.steps", stage2.steps != Some(0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> TrialParams {
        toml::from_str(&format!("seed = 5\nvalid = 10\n{text}")).unwrap()
    }

    #[test]
    fn train_config_is_the_train_table_with_the_seed_and_the_abort_threshold() {
        let p = params("[train]\nlearning_rate = 0.5\nsteps = 7\n[abort]\nloss_above = 9.0\n");
        let cfg = p.train_config(11);
        assert_eq!((cfg.seed, cfg.guard.loss_above), (11, 9.0));
        assert_eq!(TrainConfig { seed: 0, guard: DivergenceGuard::default(), ..cfg }, p.train);
        // No [abort] threshold: the trainer's default.
        let cfg = params("[train]\nlearning_rate = 0.5\n").train_config(1);
        assert_eq!(cfg.guard.loss_above, DEFAULT_LOSS_ABOVE);
    }

    #[test]
    fn stage2_config_scales_the_rate_and_sets_its_steps() {
        let p = params(
            "[train]\nlearning_rate = 0.5\nsteps = 8\n[stage2]\nwhen = \"always\"\nlr_factor = 0.25\n",
        );
        let stage2 = p.stage2.as_ref().unwrap().train_config(&p.train_config(3));
        assert_eq!((stage2.learning_rate, stage2.steps, stage2.seed), (0.125, 8, 3));
        let p = params("[train]\nlearning_rate = 0.5\n[stage2]\nwhen = \"always\"\nsteps = 2\n");
        assert_eq!(p.stage2.as_ref().unwrap().train_config(&p.train_config(3)).steps, 2);
    }
}
