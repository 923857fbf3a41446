//! The second stage of a run (`[stage2]`): train again from stage 1's weights at a lower rate,
//! always or only when stage 1 left mistakes on the training set: the users' "a second stage at
//! lr/10", resolved into the trainer's own [`TrainConfig`].

use serde::{Deserialize, Serialize};

use super::TrainConfig;

/// Stage 2's default rate, as a factor of stage 1's.
fn default_lr_factor() -> f64 {
    0.1
}

/// When the second stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage2When {
    Always,
    /// Only when stage 1 left a mistake on the training set (train accuracy below 1).
    TrainNotPerfect,
}

/// The `[stage2]` table: train again, from stage 1's weights, at a lower rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Params {
    pub when: Stage2When,
    /// Stage 2's peak learning rate is `train.learning_rate × lr_factor`.
    #[serde(default = "default_lr_factor")]
    pub lr_factor: f64,
    /// Stage 2's steps; absent: the same as `train.steps`. Its schedule restarts (same
    /// `schedule` and `warmup_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

impl Stage2Params {
    /// Whether stage 2 runs, given how many training images stage 1's model answers wrong.
    pub fn applies(&self, wrong_on_train_after_stage1: u64) -> bool {
        match self.when {
            Stage2When::Always => true,
            Stage2When::TrainNotPerfect => wrong_on_train_after_stage1 > 0,
        }
    }

    pub fn learning_rate(&self, train: &TrainConfig) -> f64 {
        train.learning_rate * self.lr_factor
    }

    pub fn steps(&self, train: &TrainConfig) -> usize {
        self.steps.unwrap_or(train.steps)
    }

    /// Stage 2's settings, continuing from stage 1's: the rate times `lr_factor`, its own
    /// steps, the schedule restarted.
    pub fn train_config(&self, stage1: &TrainConfig) -> TrainConfig {
        TrainConfig { learning_rate: self.learning_rate(stage1), steps: self.steps(stage1), ..stage1.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_not_perfect_runs_only_after_a_mistake_on_train() {
        let stage2 = Stage2Params { when: Stage2When::TrainNotPerfect, lr_factor: 0.1, steps: None };
        assert!(!stage2.applies(0));
        assert!(stage2.applies(1));
        let always = Stage2Params { when: Stage2When::Always, ..stage2 };
        assert!(always.applies(0));
    }
}
