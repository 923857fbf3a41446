//! The learning-rate schedule: a pure function of the step, as in big_vision's
//! `create_learning_rate_schedule` (docs/design.md §9).
//!
//! Steps are 1-based. `total_steps` is the schedule's horizon: the demo trains steps 1..=64 with a
//! horizon of 65, so the last step still gets a small non-zero rate; `train` passes `steps + 1`.

use serde::{Deserialize, Serialize};

/// How the learning rate moves after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warmup, then half a cosine from the base rate down to 0 at `total_steps`.
    Cosine,
    /// Linear warmup, then the base rate.
    Constant,
}

/// Learning rate at `step` (1-based):
/// `base · min(1, step/warmup) · ½(1 + cos(π · clip((step − warmup)/(total − warmup), 0, 1)))`,
/// the cosine factor being 1 for `Schedule::Constant` (and when `total <= warmup`).
pub fn learning_rate(
    schedule: Schedule,
    base_lr: f64,
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
) -> f64 {
    let step = step as f64;
    let warmup = warmup_steps as f64;
    let warm = if warmup_steps == 0 { 1.0 } else { (step / warmup).min(1.0) };
    let decay = match schedule {
        Schedule::Constant => 1.0,
        Schedule::Cosine if total_steps <= warmup_steps => 1.0,
        Schedule::Cosine => {
            let progress = ((step - warmup) / (total_steps as f64 - warmup)).clamp(0.0, 1.0);
            0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    base_lr * warm * decay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_demo_log() {
        // Printed by finetune_paligemma.ipynb (docs/design.md §9): horizon 65, warmup 6, base 0.03,
        // shown with five decimals.
        let expected = [
            (1, 0.00500),
            (6, 0.03000),
            (7, 0.02998),
            (16, 0.02792),
            (32, 0.01778),
            (48, 0.00574),
            (64, 0.00002),
        ];
        for (step, want) in expected {
            let got = learning_rate(Schedule::Cosine, 0.03, step, 65, 6);
            assert!((got - want).abs() < 5e-6, "step {step}: got {got:.6}, demo printed {want:.5}");
        }
    }

    #[test]
    fn matches_the_users_log_line() {
        // The users' old script printed `step: 32/256   lr: 0.02995` with base 0.03: horizon 257,
        // warmup round(25.7) = 26; by hand 0.03·½(1 + cos(π·6/231)) = 0.029950.
        let got = learning_rate(Schedule::Cosine, 0.03, 32, 257, 26);
        assert!((got - 0.02995).abs() < 5e-6, "{got}");
    }

    #[test]
    fn boundaries() {
        // End of warmup is the base rate; the horizon is 0; past it stays 0.
        assert_eq!(learning_rate(Schedule::Cosine, 0.5, 10, 100, 10), 0.5);
        assert!(learning_rate(Schedule::Cosine, 0.5, 100, 100, 10).abs() < 1e-15);
        assert!(learning_rate(Schedule::Cosine, 0.5, 150, 100, 10).abs() < 1e-15);
        // Halfway through the decay is half the base rate.
        assert!((learning_rate(Schedule::Cosine, 0.5, 55, 100, 10) - 0.25).abs() < 1e-12);
        // No warmup: step 1 starts at (almost) the base rate, never divides by zero.
        let first = learning_rate(Schedule::Cosine, 1.0, 1, 11, 0);
        assert!((first - 0.5 * (1.0 + (std::f64::consts::PI / 11.0).cos())).abs() < 1e-12);
        // Warmup as long as the horizon: warmup only, no NaN.
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 5, 5, 5), 1.0);
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 2, 5, 5), 0.4);
    }

    #[test]
    fn constant_warms_up_then_holds() {
        assert_eq!(learning_rate(Schedule::Constant, 0.2, 1, 100, 4), 0.05);
        assert_eq!(learning_rate(Schedule::Constant, 0.2, 4, 100, 4), 0.2);
        assert_eq!(learning_rate(Schedule::Constant, 0.2, 100, 100, 4), 0.2);
        assert_eq!(learning_rate(Schedule::Constant, 0.2, 1, 100, 0), 0.2);
    }
}
