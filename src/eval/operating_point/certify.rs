//! The fixed-sequence test of a precision target (Learn-then-Test) on scores counted once per image.
//!
//! - **Candidates** are the distinct scores, strictest first: candidate j answers yes to every
//!   image scoring at least s_j, so no threshold between two scores is left out and none depends
//!   on a fitted parameter. Its threshold is the f64 just below s_j, so that the rule z > t says
//!   yes to exactly those images.
//! - **The test** of a candidate with n yes answers, FP of them false: it passes when
//!   P(Binomial(n, 1 − p0) ≤ FP) ≤ δ, i.e. when the one-sided Clopper–Pearson lower bound of its
//!   precision at confidence 1 − δ is at least p0.
//! - **The sequence** begins at the strictest candidate with at least `Target::needed_yes(0)` yes
//!   answers (a candidate with fewer fails whatever the labels, and would end the sequence before
//!   it starts; where the sequence begins depends on the scores, never on the labels) and stops
//!   at the first failure. The hypotheses are then tested in an order fixed before any label is
//!   looked at, so the chance that any passing candidate has a true precision below p0 is at most
//!   δ with no correction for the number of candidates. (That argument is made for thresholds
//!   fixed in advance; candidates at the images' own scores are the limit of an ever finer fixed
//!   grid, and the start depends on the unlabelled scores: `simulation` checks the rule as a
//!   whole.) Recall only grows down the sequence, so the last candidate to pass is the one with
//!   the highest recall.
//! - **When none passes**, the candidate with the highest lower bound is returned (ties: the one
//!   with the higher recall), marked as not certified.

use crate::data::Label;
use crate::eval::Confusion;

use super::{Target, Verdict};

/// A threshold on scores and the answers it gives on the images it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Yes when the score is above this.
    pub threshold_logit: f64,
    /// Counts at the threshold, each image once.
    pub counts: Confusion,
}

/// What the fixed sequence found: the last candidate to pass (`Verdict::Certified`), or, when none
/// passed, the one with the highest lower bound (`Verdict::Uncertified`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Certification {
    pub verdict: Verdict,
    pub candidate: Candidate,
    /// The one-sided Clopper–Pearson lower bound of its precision at the target's confidence.
    pub lower_bound: f64,
}

/// One candidate per distinct score, strictest first (see the module doc); empty for no scores.
/// Scores must be finite.
pub fn candidates(scores: &[(Label, f64)]) -> Vec<Candidate> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let positives = sorted.iter().filter(|(label, _)| *label == Label::Positive).count() as u64;
    let negatives = sorted.len() as u64 - positives;
    let (mut tp, mut fp) = (0, 0);
    let mut out = Vec::new();
    for (i, &(label, score)) in sorted.iter().enumerate() {
        match label {
            Label::Positive => tp += 1,
            Label::Negative => fp += 1,
        }
        // Close the candidate at the last image of a group of equal scores.
        if sorted.get(i + 1).is_none_or(|next| next.1 != score) {
            let counts = Confusion { tp, fp, fn_: positives - tp, tn: negatives - fp };
            out.push(Candidate { threshold_logit: score.next_down(), counts });
        }
    }
    out
}

/// The fixed-sequence test of `target` over the candidates of `scores`; `None` for no scores.
pub fn certify(scores: &[(Label, f64)], target: &Target) -> Option<Certification> {
    let candidates = candidates(scores);
    let needed = target.needed_yes(0);
    let mut certified = None;
    for candidate in candidates.iter().filter(|c| c.counts.tp + c.counts.fp >= needed) {
        if !target.passes(&candidate.counts) {
            break;
        }
        certified = Some(candidate);
    }
    if let Some(&candidate) = certified {
        let lower_bound = target.lower_bound(&candidate.counts).expect("a passing candidate says yes");
        return Some(Certification { verdict: Verdict::Certified, candidate, lower_bound });
    }
    best_bound(&candidates, target).map(|(candidate, lower_bound)| Certification {
        verdict: Verdict::Uncertified,
        candidate,
        lower_bound,
    })
}

/// The candidate with the highest lower bound, the later (higher recall) one on a tie.
fn best_bound(candidates: &[Candidate], target: &Target) -> Option<(Candidate, f64)> {
    let mut best: Option<(Candidate, f64)> = None;
    for &candidate in candidates {
        // The bound lies below the observed precision: skip the bisection when that cannot win.
        let observed = candidate.counts.tp as f64 / (candidate.counts.tp + candidate.counts.fp) as f64;
        if best.is_some_and(|(_, bound)| observed < bound) {
            continue;
        }
        let bound = target.lower_bound(&candidate.counts).expect("every candidate says yes to an image");
        if best.is_none_or(|(_, best_bound)| bound >= best_bound) {
            best = Some((candidate, bound));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::{Negative, Positive};

    fn target() -> Target {
        Target::new(0.95, 0.9).unwrap()
    }

    /// `yes` positives scoring 100, 99, …, then `labels` below them in order.
    fn ranked(yes: usize, then: &[Label]) -> Vec<(Label, f64)> {
        let labels = std::iter::repeat_n(Positive, yes).chain(then.iter().copied());
        labels.enumerate().map(|(i, label)| (label, 100.0 - i as f64)).collect()
    }

    #[test]
    fn candidates_group_ties_and_count_each_image_once() {
        let scores = [(Positive, 2.0), (Negative, 1.0), (Positive, 1.0), (Negative, -3.0)];
        let got = candidates(&scores);
        let conf = |tp, fp, fn_, tn| Confusion { tp, fp, fn_, tn };
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].counts, conf(1, 0, 1, 2));
        assert_eq!(got[1].counts, conf(2, 1, 0, 1));
        assert_eq!(got[2].counts, conf(2, 2, 0, 0));
        // z > threshold says yes to exactly the images scoring at least the candidate's score.
        assert!(got[1].threshold_logit < 1.0 && 1.0_f64.next_down() <= got[1].threshold_logit);
    }

    #[test]
    fn perfect_separation_certifies_all_positives_then_stops_at_the_first_no() {
        // 60 yes images above 5 no images. n = 60, FP = 0: 0.95^60 = 0.046 ≤ 0.1 passes. The
        // next candidate, n = 61 with FP = 1, has P(Binomial(61, 0.05) ≤ 1) = 0.184 > 0.1: stop.
        let scores = ranked(60, &[Negative; 5]);
        let Certification { verdict, candidate, lower_bound } = certify(&scores, &target()).unwrap();
        assert_eq!(verdict, Verdict::Certified);
        assert_eq!(candidate.counts, Confusion { tp: 60, fp: 0, fn_: 0, tn: 5 });
        assert!((lower_bound - 0.1_f64.powf(1.0 / 60.0)).abs() < 1e-12);
    }

    #[test]
    fn the_sequence_stops_at_the_first_failure_even_if_later_candidates_pass() {
        // 50 yes, then a no at rank 51, then 100 yes, then 20 no. At n = 51, FP = 1: 0.95^51 +
        // 51·0.05·0.95^50 = 0.0731 + 0.1962 = 0.269 > 0.1, so the sequence ends; the last pass is
        // the 50 yes above it (0.95^50 = 0.0769 ≤ 0.1). Further down, n = 151 with FP = 1 gives
        // 0.95^151 + 151·0.05·0.95^150 = 0.00043 + 0.0034 ≤ 0.1 and would pass, but is never tested.
        let mut then = vec![Negative];
        then.extend([Positive; 100]);
        then.extend([Negative; 20]);
        let scores = ranked(50, &then);
        let Certification { verdict, candidate, .. } = certify(&scores, &target()).unwrap();
        assert_eq!(verdict, Verdict::Certified);
        assert_eq!((candidate.counts.tp, candidate.counts.fp), (50, 0));
        let later = Confusion { tp: 150, fp: 1, fn_: 0, tn: 20 };
        assert!(target().passes(&later));
    }

    #[test]
    fn candidates_with_too_few_yes_are_skipped_not_failed() {
        // 45 yes images alone certify (0.95^45 = 0.0994 ≤ 0.1); the 44 candidates above them
        // cannot pass whatever the labels, and must not end the sequence.
        let scores = ranked(45, &[Negative; 3]);
        let got = certify(&scores, &target()).unwrap();
        assert_eq!(
            (got.verdict, got.candidate.counts.tp, got.candidate.counts.fp),
            (Verdict::Certified, 45, 0)
        );
    }

    #[test]
    fn without_a_pass_the_best_bound_is_returned() {
        // 44 yes then 36 no: no candidate reaches n = 45 with FP = 0. The best bound is at
        // n = 44, FP = 0: 0.1^(1/44) = 0.9490; every later candidate has a false yes.
        let scores = ranked(44, &[Negative; 36]);
        let Certification { verdict, candidate, lower_bound } = certify(&scores, &target()).unwrap();
        assert_eq!(verdict, Verdict::Uncertified);
        assert_eq!((candidate.counts.tp, candidate.counts.fp), (44, 0));
        assert!((lower_bound - 0.1_f64.powf(1.0 / 44.0)).abs() < 1e-12);
        assert_eq!(certify(&[], &target()), None);
    }
}
