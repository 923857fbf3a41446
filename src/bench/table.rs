//! The text table of a [`BenchReport`]: one line per trainable set, columns right-aligned, then
//! the FLOP counts and how memory was measured. Column names and cells come from one list.

use super::{BenchReport, RowReport};

type Cell = fn(&BenchReport, &RowReport) -> String;

/// (header, cell) of every column, in order.
const COLUMNS: [(&str, Cell); 16] = [
    ("config", |r, _| r.config.clone()),
    ("device", |r, _| r.device.clone()),
    ("dtype", |r, _| r.dtype.clone()),
    ("threads", |r, _| r.threads.to_string()),
    ("trainable", |_, row| row.trainable.clone()),
    ("batch", |r, _| r.batch.to_string()),
    ("accum", |r, _| r.grad_accum.to_string()),
    ("seq", |r, _| r.seq_len.to_string()),
    ("ms/step", |_, row| num(row.ms_per_step)),
    ("min", |_, row| num(row.ms_per_step_min)),
    ("vis/fwd/bwd/opt ms", |_, row| {
        let p = &row.phases;
        format!("{:.0}/{:.0}/{:.0}/{:.0}", p.vision_ms, p.forward_ms, p.backward_ms, p.optimizer_ms)
    }),
    ("ex/s", |_, row| num(row.examples_per_s)),
    ("score ex/s", |_, row| num(row.score_examples_per_s)),
    ("peak MiB", |_, row| row.peak_mem_mib.map_or("n/a".to_string(), |m| format!("{m:.0}"))),
    ("train TFLOP/s", |_, row| num(row.train_tflops)),
    ("score TFLOP/s", |_, row| num(row.score_tflops)),
];

/// Four significant digits, no exponent for the magnitudes a benchmark shows.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let digits = (3 - x.abs().max(1e-9).log10().floor() as i32).clamp(0, 6) as usize;
    format!("{x:.digits$}")
}

/// The table and its notes, ready for stdout.
pub fn render(report: &BenchReport) -> String {
    let cells: Vec<Vec<String>> =
        report.rows.iter().map(|row| COLUMNS.iter().map(|(_, cell)| cell(report, row)).collect()).collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (header, _))| cells.iter().map(|r| r[i].chars().count()).fold(header.len(), usize::max))
        .collect();
    let line = |texts: Vec<&str>| {
        let padded: Vec<String> = texts.iter().zip(&widths).map(|(t, w)| format!("{t:>w$}")).collect();
        padded.join("  ") + "\n"
    };
    let mut out = line(COLUMNS.iter().map(|(h, _)| *h).collect());
    for row in &cells {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out += &format!(
        "ms/step: median of {} steps after {} warm-up (min also shown); score: median of as many \
         forward passes; params {}; model built in {:.1} s; {}\n",
        report.steps,
        report.warmup,
        report.params,
        report.build_s,
        match report.thread_env.as_str() {
            "" => "no RAYON_NUM_THREADS/CANDLE_NUM_THREADS set",
            env => env,
        }
    );
    for row in &report.rows {
        out += &format!(
            "{}: {} trainable, {:.4} GFLOP per step, {:.4} GFLOP per scoring batch, loss {:.4} -> {:.4}; \
             peak = {}\n",
            row.trainable,
            row.trainable_params,
            row.train_gflop_per_step,
            row.score_gflop_per_batch,
            row.loss_first,
            row.loss_last,
            row.peak_mem_kind
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Phases;
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(123.456), "123.5");
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(98765.4), "98765");
        assert_eq!(num(f64::NAN), "NaN");
    }

    #[test]
    fn one_line_per_row_under_aligned_headers() {
        let row = RowReport {
            trainable: "lora".into(),
            trainable_params: 53248,
            ms_per_step: 150.0,
            ms_per_step_min: 140.26,
            ms_per_step_all: vec![150.0],
            examples_per_s: 26.67,
            phases: Phases { vision_ms: 30.0, forward_ms: 40.0, backward_ms: 79.6, optimizer_ms: 0.4 },
            score_ms_per_batch: 50.0,
            score_examples_per_s: 80.0,
            peak_mem_mib: None,
            peak_mem_kind: "none".into(),
            train_gflop_per_step: 4.5,
            score_gflop_per_batch: 2.0,
            train_tflops: 0.03,
            score_tflops: 0.04,
            loss_first: 7.5,
            loss_last: 7.25,
        };
        let report = BenchReport {
            tool: "gacha bench",
            config: "small".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
            threads: 2,
            thread_env: "RAYON_NUM_THREADS=2".into(),
            batch: 4,
            grad_accum: 1,
            seq_len: 81,
            params: 1000,
            steps: 5,
            warmup: 1,
            seed: 0,
            build_s: 0.5,
            rows: vec![row],
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("score TFLOP/s") && lines[0].contains("vis/fwd/bwd/opt ms"), "{text}");
        assert_eq!(lines[0].len(), lines[1].len(), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "small",
                "cpu",
                "f32",
                "2",
                "lora",
                "4",
                "1",
                "81",
                "150.0",
                "140.3",
                "30/40/80/0",
                "26.67",
                "80.00",
                "n/a",
                "0.03000",
                "0.04000"
            ]
        );
        assert!(text.contains("lora: 53248 trainable, 4.5000 GFLOP per step"), "{text}");
        assert!(text.contains("built in 0.5 s; RAYON_NUM_THREADS=2\n"), "{text}");
    }
}
