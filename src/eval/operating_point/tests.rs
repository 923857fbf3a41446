use super::*;
use Label::{Negative, Positive};

fn target() -> Target {
    Target::new(0.95, 0.9).unwrap()
}

#[test]
fn needed_yes_matches_the_exact_binomial_table() {
    // scipy.stats.binom: the smallest n with binom.cdf(f, n, 1 − p0) ≤ 1 − confidence, for
    // f = 0, 1, 2, 3 false yes (the table in docs/operating-point.md, recomputed). With f = 0 it is
    // ⌈ln δ / ln p0⌉: ln 0.1 / ln 0.9 = 21.85 → 22 and ln 0.1 / ln 0.95 = 44.89 → 45.
    let table = [
        ((0.90, 0.90), [22, 38, 52, 65]),
        ((0.90, 0.95), [29, 46, 61, 76]),
        ((0.95, 0.95), [59, 93, 124, 153]),
        ((0.80, 0.90), [11, 18, 25, 32]),
        ((0.95, 0.90), [45, 77, 105, 132]),
    ];
    for ((p0, confidence), needed) in table {
        let target = Target::new(p0, confidence).unwrap();
        let got: Vec<u64> = (0..4).map(|f| target.needed_yes(f)).collect();
        assert_eq!(got, needed, "p0 {p0}, confidence {confidence}");
    }
}

#[test]
fn passes_exactly_when_the_lower_bound_reaches_the_target() {
    let target = target();
    for n in 1..=160 {
        for fp in 0..=n.min(8) {
            let counts = Confusion { tp: n - fp, fp, ..Confusion::default() };
            let bound = target.lower_bound(&counts).unwrap();
            // Away from the boundary (bisection resolution), both sides must agree.
            if (bound - 0.95).abs() > 1e-9 {
                assert_eq!(target.passes(&counts), bound >= 0.95, "n {n}, fp {fp}, bound {bound}");
            }
        }
    }
    assert!(!target.passes(&Confusion { tn: 10, fn_: 3, ..Confusion::default() }));
}

#[test]
fn feasibility_says_what_a_sweep_can_certify() {
    let fits = target().feasibility(96, 54);
    assert_eq!(
        fits.to_string(),
        "precision ≥ 0.95 at 90% confidence needs at least 45 images answered yes with no false one \
         (77 with one); the sweep judges 96 images, 54 of them yes"
    );
    assert!(fits.certifiable());
    let short = Target::new(0.9, 0.95).unwrap().feasibility(40, 22);
    assert!(!short.certifiable());
    assert!(short.to_string().ends_with("at 95% confidence needs at least 29 images answered yes with no false one (46 with one); the sweep judges 40 images, 22 of them yes: no threshold can certify the target on them"), "{short}");
}

#[test]
fn targets_are_checked_when_made_and_when_read() {
    assert!(Target::new(1.0, 0.9)
        .unwrap_err()
        .contains("min_precision must lie strictly between 0 and 1, got 1"));
    assert!(Target::new(0.9, 0.0).unwrap_err().contains("confidence"));
    assert!(Target::new(f64::NAN, 0.9).is_err());
    let json = serde_json::to_string(&target()).unwrap();
    assert_eq!(json, r#"{"min_precision":0.95,"confidence":0.9}"#);
    assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), target());
    let bad = serde_json::from_str::<Target>(r#"{"min_precision":0.95,"confidence":1.5}"#).unwrap_err();
    assert!(bad.to_string().contains("confidence must lie strictly between 0 and 1, got 1.5"), "{bad}");
}

/// 80 images: 25 yes, then 20 pairs (no, yes), then 15 no, scored 40, 39, … by two pulls each
/// (the rank's score ± 1, so that the mean is the score).
fn uncertifiable() -> Vec<ImageLogits> {
    let labels = std::iter::repeat_n(Positive, 25)
        .chain((0..20).flat_map(|_| [Negative, Positive]))
        .chain(std::iter::repeat_n(Negative, 15));
    labels
        .enumerate()
        .map(|(i, label)| {
            let score = 40.0 - i as f64;
            ImageLogits { label, logit_diffs: vec![score - 1.0, score + 1.0] }
        })
        .collect()
}

#[test]
fn uncertified_returns_the_best_bound_with_its_recall() {
    // No candidate reaches 45 yes with no false one; the best bound (scipy.stats.beta.ppf over
    // every candidate) is at the top 25 yes: 0.1^(1/25) = 0.912011, recall 25/45 = 0.556.
    let point = choose(&uncertifiable(), target()).unwrap();
    assert_eq!(point.verdict, Verdict::Uncertified);
    assert_eq!(point.counts, Confusion { tp: 25, fp: 0, fn_: 20, tn: 35 });
    assert!((point.precision_lower_bound - 0.912_010_839_355_909_8).abs() < 1e-12);
    // Each image counted once: 80 images, not 160 pulls.
    assert_eq!(point.counts.total(), 80);
    assert_eq!(point.temperature.pairs, 160);
    // The 25th image scores 16: the threshold is just below it.
    assert_eq!(point.answer(16.0), Positive);
    assert_eq!(point.answer(15.999), Negative);
    assert_eq!(
        point.standing(),
        Standing::Uncertified { best_lower_bound: point.precision_lower_bound, recall: Some(25.0 / 45.0) }
    );
}

#[test]
fn certification_does_not_depend_on_the_scale_of_the_logits() {
    // 50 yes above 30 no: certified at recall 1 on any scale. Scaling every z by c scales T by c,
    // so the calibrated threshold is the same P(yes) and the counts do not move.
    let images: Vec<ImageLogits> = (0..80)
        .map(|i| ImageLogits {
            label: if i < 50 { Positive } else { Negative },
            logit_diffs: vec![10.0 - 0.25 * i as f64, 9.0 - 0.25 * i as f64, 11.5 - 0.3 * i as f64],
        })
        .collect();
    let point = choose(&images, target()).unwrap();
    let scaled: Vec<ImageLogits> = images
        .iter()
        .map(|image| ImageLogits {
            label: image.label,
            logit_diffs: image.logit_diffs.iter().map(|z| 0.2 * z).collect(),
        })
        .collect();
    let scaled_point = choose(&scaled, target()).unwrap();
    assert_eq!(point.verdict, Verdict::Certified);
    assert_eq!(point.counts, Confusion { tp: 50, fp: 0, fn_: 0, tn: 30 });
    assert_eq!(scaled_point.counts, point.counts);
    assert!(!point.temperature.at_limit);
    assert!((scaled_point.temperature.temperature - 0.2 * point.temperature.temperature).abs() < 1e-9);
    assert!((scaled_point.threshold_p_yes - point.threshold_p_yes).abs() < 1e-9);
}

#[test]
fn the_pooled_score_is_the_mean_of_the_pulls() {
    assert_eq!(pooled_logit(&[3.0, -5.0]), -1.0);
    assert_eq!(pooled_logit(&[2.0]), 2.0);
}

#[test]
fn bad_evidence_is_named() {
    assert_eq!(choose(&[], target()), Err(OperatingPointError::NoImages));
    let empty = [
        ImageLogits { label: Positive, logit_diffs: vec![1.0] },
        ImageLogits { label: Negative, logit_diffs: vec![] },
    ];
    assert_eq!(choose(&empty, target()).unwrap_err().to_string(), "image 1 has no out-of-fold answer");
    let nan = [ImageLogits { label: Positive, logit_diffs: vec![1.0, f64::NAN] }];
    assert_eq!(
        choose(&nan, target()).unwrap_err().to_string(),
        "image 0: pull 1 gave the logit difference NaN, not a finite number"
    );
}

fn point(verdict: Verdict, counts: Confusion, bound: f64) -> OperatingPoint {
    OperatingPoint {
        target: target(),
        temperature: Temperature { temperature: 2.0, log_loss: 0.3, pairs: 160, at_limit: false },
        threshold_logit: 3.8,
        threshold_p_yes: 0.869_891,
        verdict,
        counts,
        precision_lower_bound: bound,
    }
}

#[test]
fn the_last_line_says_whether_the_target_is_certified() {
    // The issue's example: 80 images, best bound 0.91 at recall 0.40 (18 of 45 yes found).
    let none = point(Verdict::Uncertified, Confusion { tp: 18, fp: 1, fn_: 27, tn: 34 }, 0.914_9);
    assert_eq!(
        none.to_string(),
        "no threshold certifies precision ≥ 0.95 at 90% confidence on 80 images: best lower bound \
         0.914, at recall 0.40; shipping P(yes) > 0.870 uncertified"
    );
    let certified = point(Verdict::Certified, Confusion { tp: 103, fp: 1, fn_: 9, tn: 87 }, 0.962_3);
    assert_eq!(
        certified.to_string(),
        "P(yes) > 0.870 certifies precision ≥ 0.95 at 90% confidence on 200 images: 104 answered \
         yes, 1 wrongly, lower bound 0.962, recall 0.92"
    );
    // Floored, not rounded: a bound of 0.94996 must not read as 0.950.
    assert!(point(Verdict::Uncertified, none.counts, 0.949_96).to_string().contains("bound 0.949,"));
}

#[test]
fn certified_configs_rank_first_by_recall_then_uncertified_by_bound() {
    let certified = |recall| Standing::Certified { recall };
    let uncertified =
        |best_lower_bound, recall| Standing::Uncertified { best_lower_bound, recall: Some(recall) };
    let mut standings = [
        uncertified(0.91, 0.9),
        certified(0.4),
        uncertified(0.93, 0.2),
        certified(0.8),
        Standing::Uncertified { best_lower_bound: 0.91, recall: None },
        uncertified(0.91, 0.95),
    ];
    standings.sort_by(Standing::better_first);
    assert_eq!(
        standings,
        [
            certified(0.8),
            certified(0.4),
            uncertified(0.93, 0.2),
            uncertified(0.91, 0.95),
            uncertified(0.91, 0.9),
            Standing::Uncertified { best_lower_bound: 0.91, recall: None },
        ]
    );
}
