//! Every training setting on one screen, with the only defaults: a sweep spec's `[train]` table
//! deserializes straight into [`TrainConfig`] (its keys are the field names), and `gacha train`
//! takes the same struct as its flags (`--learning-rate`, `--steps`, …). The seed and the
//! divergence guard are set per attempt (a spec's `seed` axis and `[abort]` table), so they are
//! flags but not `[train]` keys.

use clap::Args;
use serde::{Deserialize, Serialize};

use super::guard::DivergenceGuard;
use super::optim::OptimizerKind;
use super::schedule::Schedule;
use crate::model::{LoraConfig, LoraTarget, Trainable};

/// Which weights train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrainableKind {
    /// The language model's q/k/v/o projection weights (the big_vision demo's recipe).
    Attention,
    /// LoRA adapters (`lora_rank`, `lora_alpha`, `lora_targets`); the base stays frozen.
    Lora,
}

/// One training run. Field order is the serialized order, which trial ids are hashed from: add
/// new fields with a default that is skipped when serializing, or every trial id changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate (after warmup). Required.
    #[arg(long, visible_alias = "lr")]
    pub learning_rate: f64,

    // What trains.
    /// What trains: `lora` (adapters on `lora_targets`) or `attention` (the q/k/v/o weights).
    #[serde(default = "defaults::trainable")]
    #[arg(long, value_enum, default_value_t = defaults::trainable())]
    pub trainable: TrainableKind,
    /// LoRA rank r.
    #[serde(default = "defaults::lora_rank")]
    #[arg(long, default_value_t = defaults::lora_rank())]
    pub lora_rank: usize,
    /// LoRA alpha: the update B·A is scaled by alpha / r.
    #[serde(default = "defaults::lora_alpha")]
    #[arg(long, default_value_t = defaults::lora_alpha())]
    pub lora_alpha: f64,
    /// Projections of every decoder layer that get an adapter, among q,k,v,o,gate,up,down.
    #[serde(default = "defaults::lora_targets")]
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o")]
    pub lora_targets: Vec<LoraTarget>,

    // Length and batches.
    /// Optimizer steps.
    #[serde(default = "defaults::steps")]
    #[arg(long, default_value_t = defaults::steps())]
    pub steps: usize,
    /// Examples (image frames) per forward/backward pass.
    #[serde(default = "defaults::batch_size")]
    #[arg(long, default_value_t = defaults::batch_size())]
    pub batch_size: usize,
    /// Passes whose gradients are averaged per step (effective batch = batch_size × grad_accum).
    #[serde(default = "defaults::grad_accum")]
    #[arg(long, default_value_t = defaults::grad_accum())]
    pub grad_accum: usize,

    // Optimizer and learning rate.
    /// `sgd` (plain, the demo's) or `adamw`.
    #[serde(default = "defaults::optimizer")]
    #[arg(long, value_enum, default_value_t = defaults::optimizer())]
    pub optimizer: OptimizerKind,
    /// `cosine` (warmup, then down to 0 at step `steps + 1`) or `constant` (warmup, then flat).
    #[serde(default = "defaults::schedule")]
    #[arg(long, value_enum, default_value_t = defaults::schedule())]
    pub schedule: Schedule,
    /// Linear warmup steps.
    #[serde(default)]
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,

    // Logging and safety.
    /// Log the loss (and check it against the guard's threshold) every this many steps and at
    /// the last step; a NaN or infinite loss ends the run at any step.
    #[serde(default = "defaults::log_every")]
    #[arg(long, default_value_t = defaults::log_every())]
    pub log_every: usize,
    /// Seeds the batch order and the LoRA A initialisation (a spec's `seed`, or its reseeds).
    #[serde(skip)]
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// When the run counts as diverged (a spec's `[abort]`).
    #[serde(skip)]
    #[command(flatten)]
    pub guard: DivergenceGuard,
}

/// The defaults, taken from the users' recipe.
pub mod defaults {
    use super::{LoraTarget, OptimizerKind, Schedule, TrainableKind};

    pub fn trainable() -> TrainableKind {
        TrainableKind::Lora
    }
    pub fn lora_rank() -> usize {
        8
    }
    pub fn lora_alpha() -> f64 {
        16.0
    }
    pub fn lora_targets() -> Vec<LoraTarget> {
        LoraTarget::ATTENTION.to_vec()
    }
    pub fn steps() -> usize {
        256
    }
    pub fn batch_size() -> usize {
        2
    }
    pub fn grad_accum() -> usize {
        1
    }
    pub fn optimizer() -> OptimizerKind {
        OptimizerKind::Sgd
    }
    pub fn schedule() -> Schedule {
        Schedule::Cosine
    }
    pub fn log_every() -> usize {
        8
    }
}

/// A setting that makes no sense: the field (its key) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

impl InvalidField {
    /// `must be greater than 0` unless `ok`.
    pub fn positive(field: &'static str, ok: bool) -> Result<(), InvalidField> {
        match ok {
            true => Ok(()),
            false => Err(InvalidField { field, message: "must be greater than 0".into() }),
        }
    }

    /// A finite number greater than 0: `inf` and `nan` (which TOML accepts) are named as such.
    pub fn positive_number(field: &'static str, value: f64) -> Result<(), InvalidField> {
        if !value.is_finite() {
            return Err(InvalidField {
                field,
                message: format!("must be a finite number greater than 0, not {value}"),
            });
        }
        InvalidField::positive(field, value > 0.0)
    }
}

impl TrainConfig {
    /// The defaults, at `learning_rate`.
    pub fn new(learning_rate: f64) -> TrainConfig {
        TrainConfig {
            learning_rate,
            trainable: defaults::trainable(),
            lora_rank: defaults::lora_rank(),
            lora_alpha: defaults::lora_alpha(),
            lora_targets: defaults::lora_targets(),
            steps: defaults::steps(),
            batch_size: defaults::batch_size(),
            grad_accum: defaults::grad_accum(),
            optimizer: defaults::optimizer(),
            schedule: defaults::schedule(),
            warmup_steps: 0,
            log_every: defaults::log_every(),
            seed: 0,
            guard: DivergenceGuard::default(),
        }
    }

    /// The `[train]` keys (the names the struct serializes with), sorted.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(TrainConfig::new(1.0)).expect("a train config serializes to JSON") {
            serde_json::Value::Object(fields) => fields.keys().cloned().collect(),
            other => unreachable!("a struct serializes to a JSON object, not {other}"),
        }
    }

    /// The trainable set to give `PaliGemma::set_trainable`.
    pub fn trainable_set(&self) -> Trainable {
        match self.trainable {
            TrainableKind::Attention => Trainable::Attention,
            TrainableKind::Lora => Trainable::Lora(LoraConfig {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                targets: self.lora_targets.clone(),
            }),
        }
    }

    /// The schedule's horizon: one past the last step, as the demo (64 steps, horizon 65).
    pub fn horizon(&self) -> usize {
        self.steps + 1
    }

    /// Whether step `step` gets a log line (and a look from the divergence guard's threshold).
    pub fn is_log_step(&self, step: usize) -> bool {
        step == self.steps || step.is_multiple_of(self.log_every.max(1))
    }

    /// Reject settings that cannot run, naming the field.
    pub fn validate(&self) -> Result<(), InvalidField> {
        InvalidField::positive_number("learning_rate", self.learning_rate)?;
        InvalidField::positive("steps", self.steps > 0)?;
        InvalidField::positive("batch_size", self.batch_size > 0)?;
        InvalidField::positive("grad_accum", self.grad_accum > 0)?;
        InvalidField::positive("log_every", self.log_every > 0)?;
        if self.trainable == TrainableKind::Lora {
            InvalidField::positive("lora_rank", self.lora_rank > 0)?;
            InvalidField::positive_number("lora_alpha", self.lora_alpha)?;
            if self.lora_targets.is_empty() {
                return Err(InvalidField {
                    field: "lora_targets",
                    message: "needs at least one of q, k, v, o, gate, up, down".into(),
                });
            }
        }
        if self.warmup_steps > self.steps {
            return Err(InvalidField {
                field: "warmup_steps",
                message: format!("{} is more than steps ({})", self.warmup_steps, self.steps),
            });
        }
        let loss_above = self.guard.loss_above;
        InvalidField::positive_number("loss_above", loss_above)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_table_reads_every_key_and_rejects_unknown_ones() {
        let cfg: TrainConfig = toml::from_str(
            "learning_rate = 0.5\ntrainable = \"attention\"\noptimizer = \"adamw\"\nsteps = 7\n\
             batch_size = 3\ngrad_accum = 2\nwarmup_steps = 1\nlog_every = 4\nschedule = \"constant\"\n\
             lora_targets = [\"v\", \"down_proj\"]\n",
        )
        .unwrap();
        assert_eq!((cfg.trainable, cfg.optimizer), (TrainableKind::Attention, OptimizerKind::AdamW));
        assert_eq!((cfg.learning_rate, cfg.schedule, cfg.warmup_steps), (0.5, Schedule::Constant, 1));
        assert_eq!((cfg.steps, cfg.batch_size, cfg.grad_accum, cfg.log_every), (7, 3, 2, 4));
        assert_eq!(cfg.lora_targets, [LoraTarget::V, LoraTarget::Down]);
        // The seed and the guard are not [train] keys.
        for key in ["step = 3", "seed = 3", "loss_above = 3.0"] {
            let err = toml::from_str::<TrainConfig>(&format!("learning_rate = 1.0\n{key}")).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{key}: {err}");
        }
        assert!(toml::from_str::<TrainConfig>("steps = 3")
            .unwrap_err()
            .to_string()
            .contains("learning_rate"));
    }

    #[test]
    fn the_defaults_are_the_users_recipe_in_toml_and_on_the_command_line() {
        // LoRA r8 α16 on q/k/v/o, 256 SGD steps of batch 2, cosine without warmup, log every 8.
        let want = TrainConfig::new(0.5);
        assert_eq!(toml::from_str::<TrainConfig>("learning_rate = 0.5").unwrap(), want);
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            train: TrainConfig,
        }
        let flags = <Flags as clap::Parser>::try_parse_from(["x", "--lr", "0.5"]).unwrap();
        assert_eq!(flags.train, want);
        assert_eq!((want.trainable, want.lora_rank, want.lora_alpha), (TrainableKind::Lora, 8, 16.0));
        assert_eq!((want.steps, want.batch_size, want.warmup_steps, want.log_every), (256, 2, 0, 8));
    }

    #[test]
    fn keys_are_the_train_table_keys_without_seed_and_guard() {
        let keys = TrainConfig::keys();
        assert_eq!(keys.len(), 12);
        assert!(keys.iter().any(|k| k == "learning_rate") && keys.is_sorted(), "{keys:?}");
        assert!(!keys.iter().any(|k| k == "seed" || k == "loss_above" || k == "guard"));
    }

    #[test]
    fn validate_names_the_field() {
        let bad = |cfg: TrainConfig| cfg.validate().unwrap_err().field;
        assert_eq!(bad(TrainConfig::new(0.0)), "learning_rate");
        assert_eq!(bad(TrainConfig::new(f64::INFINITY)), "learning_rate");
        assert_eq!(bad(TrainConfig { steps: 0, ..TrainConfig::new(1.0) }), "steps");
        assert_eq!(bad(TrainConfig { warmup_steps: 300, ..TrainConfig::new(1.0) }), "warmup_steps");
        assert_eq!(bad(TrainConfig { lora_targets: vec![], ..TrainConfig::new(1.0) }), "lora_targets");
        let attention =
            TrainConfig { trainable: TrainableKind::Attention, lora_rank: 0, ..TrainConfig::new(1.0) };
        assert_eq!(attention.validate(), Ok(()));
        let guard = DivergenceGuard { loss_above: -1.0 };
        assert_eq!(bad(TrainConfig { guard, ..TrainConfig::new(1.0) }), "loss_above");
    }
}
