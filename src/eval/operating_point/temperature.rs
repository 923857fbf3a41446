//! The temperature T that calibrates logit differences: P(yes) = σ(z / T), z = logit(yes) − logit(no).
//!
//! T minimises the mean log loss of σ(z / T) over (label, z) pairs. Written with β = 1/T and the
//! margin m = z for a yes image, −z for a no one, the loss L(β) = mean ln(1 + e^(−β·m)) is convex
//! and its slope L'(β) = −mean m·σ(−β·m) rises with β, so the minimum is where the slope crosses
//! zero: found by bisection on ln β. T is kept within [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`]:
//! pairs that a positive scale separates perfectly (every yes above 0, every no below) keep
//! lowering the loss as T shrinks, and pairs ordered the wrong way round as T grows; either way
//! the fit stops at a limit and says so.

use serde::{Deserialize, Serialize};

use crate::data::Label;

/// The smallest temperature tried: σ(z / 0.01) is 0 or 1 for any |z| above 0.5.
pub const MIN_TEMPERATURE: f64 = 0.01;
/// The largest temperature tried: σ(z / 100) stays within 0.45–0.55 for |z| below 20.
pub const MAX_TEMPERATURE: f64 = 100.0;

/// Halvings of the ln β bracket (width ln 10⁴ ≈ 9.2) to reach f64 resolution.
const BISECTIONS: usize = 64;

/// A fitted temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Temperature {
    /// P(yes) = σ(z / temperature).
    pub temperature: f64,
    /// The mean log loss (nats) of σ(z / temperature) over the pairs it was fitted on.
    pub log_loss: f64,
    /// How many (label, z) pairs it was fitted on.
    pub pairs: u64,
    /// The fit stopped at `MIN_TEMPERATURE` or `MAX_TEMPERATURE` (see the module doc).
    pub at_limit: bool,
}

/// ln(1 + e^x) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn mean_log_loss(margins: &[f64], beta: f64) -> f64 {
    margins.iter().map(|m| softplus(-beta * m)).sum::<f64>() / margins.len() as f64
}

/// L'(β) = −mean m·σ(−β·m), with σ(−x) = 1 / (1 + e^x).
fn slope(margins: &[f64], beta: f64) -> f64 {
    -margins.iter().map(|m| m / (1.0 + (beta * m).exp())).sum::<f64>() / margins.len() as f64
}

/// The temperature of `pairs` (each an image's label and one pull's logit difference); `None`
/// when there are none.
pub fn fit_temperature(pairs: impl IntoIterator<Item = (Label, f64)>) -> Option<Temperature> {
    let margins: Vec<f64> = pairs
        .into_iter()
        .map(|(label, z)| match label {
            Label::Positive => z,
            Label::Negative => -z,
        })
        .collect();
    if margins.is_empty() {
        return None;
    }
    let (mut lo, mut hi) = ((1.0 / MAX_TEMPERATURE).ln(), (1.0 / MIN_TEMPERATURE).ln());
    let (temperature, at_limit) = if slope(&margins, lo.exp()) >= 0.0 {
        (MAX_TEMPERATURE, true)
    } else if slope(&margins, hi.exp()) <= 0.0 {
        (MIN_TEMPERATURE, true)
    } else {
        for _ in 0..BISECTIONS {
            let mid = 0.5 * (lo + hi);
            if slope(&margins, mid.exp()) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (1.0 / (0.5 * (lo + hi)).exp(), false)
    };
    Some(Temperature {
        temperature,
        log_loss: mean_log_loss(&margins, 1.0 / temperature),
        pairs: margins.len() as u64,
        at_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::testing::close;
    use Label::{Negative, Positive};

    #[test]
    fn matches_the_closed_form_of_repeated_margins() {
        // Three yes images at z = 1 and one no image at z = 1 (margins 1, 1, 1, −1), and the
        // mirror image at z = −1: the slope is zero where σ(β) = 3/4, so β = ln 3 and
        // T = 1/ln 3 = 0.910239…; the loss there is (3·ln(4/3) + ln 4)/4 = 0.562335….
        let pairs = [(Positive, 1.0), (Positive, 1.0), (Positive, 1.0), (Negative, 1.0)];
        let mirror = pairs.map(|(label, z)| (if label == Positive { Negative } else { Positive }, -z));
        let fit = fit_temperature(pairs.into_iter().chain(mirror)).unwrap();
        close(fit.temperature, 1.0 / 3.0_f64.ln(), 1e-12);
        close(fit.log_loss, (3.0 * (4.0_f64 / 3.0).ln() + 4.0_f64.ln()) / 4.0, 1e-12);
        assert_eq!(fit.pairs, 8);
        assert!(!fit.at_limit);
    }

    #[test]
    fn matches_scipy_on_mixed_logits() {
        // scipy 1.17.1: m = sign·z; brentq(lambda b: -np.mean(m / (1 + np.exp(b*m))), 1e-2, 1e2)
        // (xtol = rtol = 1e-15) gives β = 0.3485791222426954, T = 2.868789139080332, and
        // np.mean(np.logaddexp(0, -β·m)) = 0.47677148010844.
        let pairs = [
            (Positive, 6.0),
            (Positive, 2.5),
            (Positive, -1.0),
            (Positive, 9.0),
            (Negative, -4.0),
            (Negative, 3.0),
            (Negative, -7.5),
            (Negative, 0.5),
        ];
        let fit = fit_temperature(pairs).unwrap();
        close(fit.temperature, 2.868_789_139_080_332, 1e-9);
        close(fit.log_loss, 0.476_771_480_108_44, 1e-9);
        assert!(!fit.at_limit);
    }

    #[test]
    fn scaling_the_logits_scales_the_temperature() {
        let pairs = [(Positive, 2.0), (Positive, -0.5), (Negative, -3.0), (Negative, 1.0), (Positive, 4.0)];
        let fit = fit_temperature(pairs).unwrap();
        let scaled = fit_temperature(pairs.map(|(label, z)| (label, 5.0 * z))).unwrap();
        close(scaled.temperature, 5.0 * fit.temperature, 1e-9);
        close(scaled.log_loss, fit.log_loss, 1e-12);
    }

    #[test]
    fn separable_or_reversed_pairs_stop_at_a_limit() {
        let separable = fit_temperature([(Positive, 2.0), (Negative, -1.0)]).unwrap();
        assert_eq!((separable.temperature, separable.at_limit), (MIN_TEMPERATURE, true));
        let reversed = fit_temperature([(Positive, -2.0), (Negative, 1.0)]).unwrap();
        assert_eq!((reversed.temperature, reversed.at_limit), (MAX_TEMPERATURE, true));
        assert_eq!(fit_temperature([]), None);
    }
}
