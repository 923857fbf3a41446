//! Two classifiers' answers to the same images, paired as a metric sees them, and the question
//! "is the first shown better than the second?" (the mid-p McNemar test of `stats`).
//!
//! Pairs are kept as the metric sees them: for precision those where either answered positive
//! (a pair where both said no touches neither's precision), for recall those whose label is
//! positive, all of them for accuracy and F1. Of the kept pairs, `b` counts those the first got
//! right and the second wrong, `c` the reverse.

use super::stats::mcnemar_mid_p;
use super::Metric;

/// One answer to one image: its label and what was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub positive: bool,
    pub answered_positive: bool,
}

impl Answer {
    /// The wrong answer to an image with this label (how a diverged pull answers).
    pub fn wrong(positive: bool) -> Answer {
        Answer { positive, answered_positive: !positive }
    }

    pub fn is_right(self) -> bool {
        self.positive == self.answered_positive
    }
}

/// The pairs a metric sees and their discordant counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paired {
    pub pairs: u64,
    /// The first right, the second wrong.
    pub b: u64,
    /// The second right, the first wrong.
    pub c: u64,
}

impl Paired {
    /// Count the pair (`first`, `second`) if `metric` sees it.
    pub fn add(&mut self, metric: Metric, first: Answer, second: Answer) {
        let seen = match metric {
            Metric::Precision => first.answered_positive || second.answered_positive,
            Metric::Recall => first.positive,
            Metric::Accuracy | Metric::F1 => true,
        };
        if !seen {
            return;
        }
        self.pairs += 1;
        match (first.is_right(), second.is_right()) {
            (true, false) => self.b += 1,
            (false, true) => self.c += 1,
            _ => {}
        }
    }

    /// The two-sided mid-p McNemar p-value of the discordant pairs (1 when there are none).
    pub fn mid_p(&self) -> f64 {
        mcnemar_mid_p(self.b, self.c)
    }

    /// The first is shown better at `level`: right more often (`b > c`; a tie never is) and
    /// `mid_p() < level`.
    pub fn first_better_at(&self, level: f64) -> bool {
        self.b > self.c && self.mid_p() < level
    }
}

impl std::ops::AddAssign for Paired {
    fn add_assign(&mut self, other: Paired) {
        self.pairs += other.pairs;
        self.b += other.b;
        self.c += other.c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pair: &str) -> Answer {
        Answer { positive: pair.starts_with('y'), answered_positive: pair.ends_with('y') }
    }

    #[test]
    fn each_metric_keeps_the_pairs_it_counts() {
        // (first's answer, second's answer), label then answer.
        let rows = [
            ("yy", "yn"), // a yes: the first right, the second wrong
            ("nn", "ny"), // a no: the first right, the second said yes
            ("ny", "nn"), // a no: the first said yes, the second right
            ("yn", "yn"), // a yes both missed
            ("nn", "nn"), // a no both got right
        ];
        let paired = |metric| {
            let mut paired = Paired::default();
            for (first, second) in rows {
                paired.add(metric, answer(first), answer(second));
            }
            paired
        };
        assert_eq!(paired(Metric::Accuracy), Paired { pairs: 5, b: 2, c: 1 });
        assert_eq!(paired(Metric::F1), Paired { pairs: 5, b: 2, c: 1 });
        // Precision: where either said yes, rows 0, 1, 2.
        assert_eq!(paired(Metric::Precision), Paired { pairs: 3, b: 2, c: 1 });
        // Recall: the yes images, rows 0 and 3.
        assert_eq!(paired(Metric::Recall), Paired { pairs: 2, b: 1, c: 0 });
    }

    #[test]
    fn better_needs_the_lead_and_the_level() {
        // b = 7, c = 1: mid-p 0.0390625 (stats' hand computation).
        let ahead = Paired { pairs: 8, b: 7, c: 1 };
        assert!(ahead.first_better_at(0.05));
        assert!(!ahead.first_better_at(0.039));
        // The same p with the second ahead, and a tie: never.
        assert!(!Paired { pairs: 8, b: 1, c: 7 }.first_better_at(0.05));
        assert!(!Paired { pairs: 20, b: 10, c: 10 }.first_better_at(1.1));
        assert_eq!(Paired::default().mid_p(), 1.0);
        assert_eq!(Answer::wrong(true), answer("yn"));
        assert_eq!(Answer::wrong(false), answer("ny"));
    }
}
