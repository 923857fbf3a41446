//! The divergence guard: a training run whose loss explodes is stopped and reported with the step
//! and the loss, so a sweep can record it as an outcome (and reseed) instead of wasting steps.

/// Default `loss_above`. A yes/no answer plus `<eos>` starts near the log of the vocabulary size
/// (ln 257152 ≈ 12.5 for an untrained head, ~1–3 for a pretrained one); a mean loss above 100
/// means the weights have blown up, not that the run is merely slow.
pub const DEFAULT_LOSS_ABOVE: f64 = 100.0;

/// Why a loss was judged diverged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diverged {
    /// The 1-based step whose loss tripped the guard.
    pub step: usize,
    pub loss: f64,
}

/// Stops a run when the loss is NaN, ±∞ or above a threshold.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct DivergenceGuard {
    /// Stop as diverged when a logged step's loss after warmup is above this (or any step's is
    /// not finite).
    #[arg(long, default_value_t = DEFAULT_LOSS_ABOVE)]
    pub loss_above: f64,
}

impl Default for DivergenceGuard {
    fn default() -> Self {
        DivergenceGuard { loss_above: DEFAULT_LOSS_ABOVE }
    }
}

impl DivergenceGuard {
    /// `Err(Diverged)` when `loss` at `step` is not finite or exceeds `loss_above`.
    pub fn check(&self, step: usize, loss: f64) -> Result<(), Diverged> {
        if loss.is_finite() && loss <= self.loss_above {
            Ok(())
        } else {
            Err(Diverged { step, loss })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_finite_losses_up_to_the_threshold() {
        let guard = DivergenceGuard { loss_above: 5.0 };
        assert_eq!(guard.check(1, 0.0), Ok(()));
        assert_eq!(guard.check(2, 5.0), Ok(()));
        assert_eq!(guard.check(3, 4.999), Ok(()));
    }

    #[test]
    fn trips_above_the_threshold_and_on_non_finite() {
        let guard = DivergenceGuard { loss_above: 5.0 };
        assert_eq!(guard.check(7, 5.01), Err(Diverged { step: 7, loss: 5.01 }));
        assert_eq!(guard.check(8, f64::INFINITY), Err(Diverged { step: 8, loss: f64::INFINITY }));
        assert_eq!(guard.check(9, f64::NEG_INFINITY), Err(Diverged { step: 9, loss: f64::NEG_INFINITY }));
        let nan = guard.check(10, f64::NAN).unwrap_err();
        assert_eq!(nan.step, 10);
        assert!(nan.loss.is_nan());
    }

    #[test]
    fn default_threshold_is_the_named_constant() {
        assert_eq!(DivergenceGuard::default().loss_above, DEFAULT_LOSS_ABOVE);
        assert!(DivergenceGuard::default().check(1, 12.5).is_ok());
    }
}
