//! Prompts screened before a sweep (`[search] screen_prompts = K`): every prompt of the `prompt`
//! axis scored on the untrained model over the non-test images, ranked as configs are (the
//! select metric's Wilson 95% lower bound, then its value, then spec order), the first K let in.
//! `screen.json` keeps the result for every worker and run; `screen.csv` shows it.

use serde::{Deserialize, Serialize};

use super::csv::csv_bytes;
use super::rank::higher_first;
use crate::eval::{Confusion, Metric};

/// `screen.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenFile {
    /// How many prompts enter (`screen_prompts`).
    pub keep: usize,
    /// The select metric the prompts were ranked by.
    pub metric: Metric,
    /// The images each prompt answered (the non-test images).
    pub images: usize,
    /// Every prompt, ranked.
    pub prompts: Vec<ScreenedPrompt>,
}

/// One prompt's answers on the untrained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenedPrompt {
    pub prompt: String,
    pub counts: Confusion,
    /// 1 for the first.
    pub rank: usize,
    /// Among the first `keep`.
    pub enters: bool,
}

impl ScreenFile {
    /// Rank `prompts` (with their counts, in spec order) by `metric` and let the first `keep` in.
    pub fn rank(prompts: Vec<(String, Confusion)>, metric: Metric, keep: usize, images: usize) -> ScreenFile {
        let lower = |c: &Confusion| c.wilson_95(metric).map(|(low, _)| low).or(c.value(metric));
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&prompts[a].1, &prompts[b].1);
            higher_first(lower(ca), lower(cb))
                .then_with(|| higher_first(ca.value(metric), cb.value(metric)))
                .then(a.cmp(&b))
        });
        let ranked = order
            .iter()
            .enumerate()
            .map(|(rank, &i)| ScreenedPrompt {
                prompt: prompts[i].0.clone(),
                counts: prompts[i].1,
                rank: rank + 1,
                enters: rank < keep,
            })
            .collect();
        ScreenFile { keep, metric, images, prompts: ranked }
    }

    /// Whether configs asking `prompt` run.
    pub fn enters(&self, prompt: &str) -> bool {
        self.prompts.iter().any(|p| p.prompt == prompt && p.enters)
    }

    /// `screen.csv`: rank, prompt, the counts, the metric with its interval, whether it enters.
    pub fn csv(&self) -> Vec<u8> {
        let metric = self.metric;
        let header = ["rank", "prompt", "tp", "tn", "fp", "fn", metric.name(), "low", "high", "enters"];
        let four = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        let rows = self.prompts.iter().map(|p| {
            let c = p.counts;
            let interval = c.wilson_95(metric);
            vec![
                p.rank.to_string(),
                p.prompt.clone(),
                c.tp.to_string(),
                c.tn.to_string(),
                c.fp.to_string(),
                c.fn_.to_string(),
                four(c.value(metric)),
                four(interval.map(|i| i.0)),
                four(interval.map(|i| i.1)),
                if p.enters { "yes" } else { "no" }.to_string(),
            ]
        });
        csv_bytes(std::iter::once(header.map(String::from).to_vec()).chain(rows))
    }
}

/// Whether two screens were made of the same prompts, images and rule (a changed spec redoes it).
pub fn same_screen(a: &ScreenFile, b_prompts: &[String], keep: usize, metric: Metric, images: usize) -> bool {
    let mut mine: Vec<&str> = a.prompts.iter().map(|p| p.prompt.as_str()).collect();
    let mut theirs: Vec<&str> = b_prompts.iter().map(String::as_str).collect();
    mine.sort_unstable();
    theirs.sort_unstable();
    a.keep == keep && a.metric == metric && a.images == images && mine == theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(tp: u64, fp: u64) -> Confusion {
        Confusion { tp, tn: 10, fp, fn_: 5 }
    }

    #[test]
    fn ranks_by_the_lower_bound_and_lets_the_first_k_in() {
        // Precision: 8/10 (Wilson low 0.4902), 2/2 (0.3424), 40/50 (0.6696), and an undefined
        // one (nothing said yes) last. Lower bounds by hand with z = 1.96: for 40/50, centre
        // (0.8 + 0.0384)/1.0768 = 0.7786, half 1.8202·√(0.0032 + 0.0000384) = 0.1036 → 0.675.
        let prompts = vec![
            ("a".to_string(), counts(8, 2)),
            ("b".to_string(), counts(2, 0)),
            ("c".to_string(), counts(40, 10)),
            ("d".to_string(), counts(0, 0)),
        ];
        let screen = ScreenFile::rank(prompts, Metric::Precision, 2, 80);
        let order: Vec<(&str, usize, bool)> =
            screen.prompts.iter().map(|p| (p.prompt.as_str(), p.rank, p.enters)).collect();
        assert_eq!(order, [("c", 1, true), ("a", 2, true), ("b", 3, false), ("d", 4, false)]);
        assert!(screen.enters("a") && !screen.enters("b") && !screen.enters("zzz"));
        let csv = String::from_utf8(screen.csv()).unwrap();
        assert!(
            csv.starts_with("rank,prompt,tp,tn,fp,fn,precision,low,high,enters\n1,c,40,10,10,5,0.8000,"),
            "{csv}"
        );
        assert!(csv.ends_with("4,d,0,10,0,5,,,,no\n"), "{csv}");
    }
}
