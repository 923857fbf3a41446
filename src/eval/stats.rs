//! Exact tests on paired answers: the two-sided mid-p McNemar test; and the normal tail that
//! the race's O'Brien–Fleming-like levels are drawn from.
//!
//! Two classifiers answer the same images. Only the discordant pairs tell them apart: `b` images
//! the first got right and the second wrong, `c` the reverse. If both are equally good, each
//! discordant pair is a fair coin, so X = min(b, c) ~ Binomial(b + c, ½). The exact conditional
//! test doubles the tail P(X ≤ min(b, c)) and is too conservative at small counts; the mid-p test
//! counts the observed point half:
//!
//! p = 2·[P(X < min(b, c)) + ½·P(X = min(b, c))], capped at 1; p = 1 when b + c = 0.
//!
//! Fagerland, Lydersen & Laake (2013), "The McNemar test for binary matched-pairs data: mid-p and
//! asymptotic are better than exact conditional", BMC Medical Research Methodology 13:91. (At
//! b = c the formula gives 1; the paper's supplement writes 1 − ½·P(X = b) there. Either is far
//! above any threshold.)

use crate::eval::binomial::binomial_pmfs;

/// The two-sided mid-p McNemar p-value of `b` and `c` discordant pairs (see the module doc).
pub fn mcnemar_mid_p(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // Stepped in log space: 2^−n alone underflows an f64 past n ≈ 1074 pairs, which a repeated
    // k-fold over a few hundred images reaches.
    let pmfs: Vec<f64> = binomial_pmfs(n, 0.5).take(b.min(c) as usize + 1).collect();
    let (at, below) = pmfs.split_last().expect("take(m + 1) of n + 1 ≥ 1 terms is never empty");
    (2.0 * (below.iter().sum::<f64>() + 0.5 * at)).min(1.0)
}

/// P(Z > z) for a standard normal Z: ½·erfc(z/√2), erfc by the Chebyshev fit of Press et al.,
/// *Numerical Recipes* (2nd ed., §6.2, `erfcc`), whose fractional error is below 1.2e-7
/// everywhere, so deep tails (1e-10 and below) keep their digits.
pub fn normal_sf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, &coef| coef + t * acc);
    let erfc = t * (-x * x + poly).exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// The z with `normal_sf(z) = tail`, for 0 < tail < 1, by bisection (to about 1e-12).
pub fn normal_isf(tail: f64) -> f64 {
    let (mut low, mut high) = (-40.0, 40.0);
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if normal_sf(mid) > tail {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::testing::close;

    #[test]
    fn matches_hand_computed_binomial_tails() {
        // b = 7, c = 1 (the paper's airway example has 1 and 7 discordant pairs, mid-p 0.039):
        // n = 8, P(X < 1) = 1/256, P(X = 1) = 8/256 → 2·(1 + 4)/256 = 0.0390625.
        close(mcnemar_mid_p(7, 1), 0.039_062_5, 1e-12);
        // b = 2, c = 5: n = 7, P(X < 2) = (1 + 7)/128, P(X = 2) = 21/128 → 2·(8 + 10.5)/128.
        close(mcnemar_mid_p(2, 5), 37.0 / 128.0, 1e-12);
        // b = 0, c = 10: only the point, halved and doubled: 1/1024.
        close(mcnemar_mid_p(0, 10), 1.0 / 1024.0, 1e-12);
    }

    #[test]
    fn large_counts_do_not_underflow() {
        // Computed independently with exact rationals (Python `fractions` and `math.comb`):
        // (40, 60) → 0.046044066929342806; (1000, 1100), n = 2100 > 1074 → 0.029110633685909038.
        // Tolerance 1e-10: the log-space steps add about one rounding error each.
        close(mcnemar_mid_p(40, 60), 0.046_044_066_929_342_806, 1e-10);
        close(mcnemar_mid_p(1000, 1100), 0.029_110_633_685_909_038, 1e-10);
    }

    #[test]
    fn symmetric_and_one_when_nothing_tells_them_apart() {
        for (b, c) in [(7, 1), (2, 5), (0, 3), (40, 60)] {
            assert_eq!(mcnemar_mid_p(b, c), mcnemar_mid_p(c, b), "({b}, {c})");
        }
        assert_eq!(mcnemar_mid_p(0, 0), 1.0);
        // b = c: 2·[P(X < b) + ½·P(X = b)] = 1 exactly by symmetry (capped against rounding).
        assert!((mcnemar_mid_p(3, 3) - 1.0).abs() < 1e-12);
        assert!(mcnemar_mid_p(500, 500) <= 1.0);
    }

    #[test]
    fn normal_tail_matches_scipy() {
        // scipy.stats.norm.sf (scipy 1.17): the fit's fractional error is below 1.2e-7.
        for (z, sf) in [
            (-1.0, 0.841_344_746_068_542_9),
            (0.0, 0.5),
            (1.959_963_984_540_054, 0.025),
            (3.0, 0.001_349_898_031_630_093_3),
            (6.0, 9.865_876_450_376_946e-10),
            (8.0, 6.220_960_574_271_74e-16),
        ] {
            close(normal_sf(z), sf, 2e-7);
        }
        // scipy.stats.norm.isf(0.025), isf(0.005).
        close(normal_isf(0.025), 1.959_963_984_540_054_5, 1e-6);
        close(normal_isf(0.005), 2.575_829_303_548_901, 1e-6);
    }
}
