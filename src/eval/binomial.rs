//! Exact binomial tails and the one-sided Clopper–Pearson lower bound built on them.
//!
//! Terms are stepped in log space, ln P(X = k + 1) = ln P(X = k) + ln((n − k)/(k + 1)) + ln(q/(1 − q)),
//! so that counts in the thousands neither underflow nor overflow an f64.

/// P(X = 0), P(X = 1), … of X ~ Binomial(n, q), stopping after P(X = n); q must lie in (0, 1).
pub fn binomial_pmfs(n: u64, q: f64) -> impl Iterator<Item = f64> {
    debug_assert!(q > 0.0 && q < 1.0, "binomial q = {q} outside (0, 1)");
    let odds = (q / (1.0 - q)).ln();
    let mut ln_pmf = n as f64 * (1.0 - q).ln();
    (0..=n).map(move |k| {
        let pmf = ln_pmf.exp();
        ln_pmf += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + odds;
        pmf
    })
}

/// P(X ≤ k) of X ~ Binomial(n, q), capped at 1 against rounding; q must lie in (0, 1).
pub fn binomial_cdf(k: u64, n: u64, q: f64) -> f64 {
    binomial_pmfs(n, q).take(k as usize + 1).sum::<f64>().min(1.0)
}

/// The one-sided Clopper–Pearson lower bound, at `confidence`, of a proportion with `successes`
/// and `failures`: the p at which P(Binomial(n, 1 − p) ≤ failures) = 1 − confidence. Any true
/// proportion below it would give so few failures with probability at most 1 − confidence.
/// `None` when there is nothing to bound (no trials).
pub fn clopper_pearson_lower(successes: u64, failures: u64, confidence: f64) -> Option<f64> {
    let n = successes + failures;
    if n == 0 {
        return None;
    }
    if successes == 0 {
        return Some(0.0);
    }
    let alpha = 1.0 - confidence;
    // P(Binomial(n, 1 − p) ≤ failures) rises with p: bisect on p for the point where it crosses
    // alpha. 64 halvings take the bracket below f64 resolution.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if binomial_cdf(failures, n, 1.0 - mid) > alpha {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::testing::close;

    #[test]
    fn pmfs_and_tails_match_hand_values() {
        // Binomial(4, 0.25): 81/256, 108/256, 54/256, 12/256, 1/256.
        let pmfs: Vec<f64> = binomial_pmfs(4, 0.25).collect();
        let hand = [81.0, 108.0, 54.0, 12.0, 1.0].map(|c| c / 256.0);
        assert_eq!(pmfs.len(), 5);
        for (got, expected) in pmfs.iter().zip(hand) {
            close(*got, expected, 1e-12);
        }
        close(binomial_cdf(1, 4, 0.25), 189.0 / 256.0, 1e-12);
        assert_eq!(binomial_cdf(4, 4, 0.25), 1.0);
        // P(Binomial(61, 0.05) ≤ 1) = 0.95^61 + 61·0.05·0.95^60 = 0.043766 + 0.140513
        // = 0.184279 (scipy.stats.binom.cdf(1, 61, 0.05) = 0.18427919594780778).
        close(binomial_cdf(1, 61, 0.05), 0.184_279_195_947_807_78, 1e-12);
    }

    #[test]
    fn large_counts_neither_underflow_nor_overflow() {
        // scipy.stats.binom.cdf(400, 2000, 0.25) = 7.183777007999094e-08 and
        // binom.cdf(40, 1000, 0.05) = 0.080636573256691 (scipy 1.17.1); 0.75^2000 alone is 1e-250.
        close(binomial_cdf(400, 2000, 0.25), 7.183_777_007_999_094e-8, 1e-9);
        close(binomial_cdf(40, 1000, 0.05), 0.080_636_573_256_691, 1e-10);
    }

    #[test]
    fn clopper_pearson_matches_closed_form_and_scipy() {
        // No failures: P(Binomial(n, 1 − p) ≤ 0) = p^n = alpha, so the bound is alpha^(1/n).
        close(clopper_pearson_lower(45, 0, 0.9).unwrap(), 0.1_f64.powf(1.0 / 45.0), 1e-12);
        close(clopper_pearson_lower(22, 0, 0.9).unwrap(), 0.1_f64.powf(1.0 / 22.0), 1e-12);
        // The bound is the Beta(successes, failures + 1) quantile at 1 − confidence:
        // scipy.stats.beta.ppf(0.1, 96, 4) = 0.9337641592546936 (successes 96, failures 3) and
        // beta.ppf(0.05, 19, 2) = 0.7838938357931526 (scipy 1.17.1).
        close(clopper_pearson_lower(96, 3, 0.9).unwrap(), 0.933_764_159_254_693_6, 1e-10);
        close(clopper_pearson_lower(19, 1, 0.95).unwrap(), 0.783_893_835_793_152_6, 1e-10);
        assert_eq!(clopper_pearson_lower(0, 5, 0.9), Some(0.0));
        assert_eq!(clopper_pearson_lower(0, 0, 0.9), None);
    }
}
