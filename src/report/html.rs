//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no server): the best
//! trial's parameters, its before/after metrics and confusion matrices, the loss curves of every
//! attempt, and the leaderboard.

use std::fmt::Write;

use super::columns::{Column, Count};
use super::plot::{confusion_svg, loss_chart, Curve, CurveKind};
use super::table::{display_cell, summary_columns};
use crate::eval::{Metric, Split, SplitConfusions};
use crate::spec::SweepSpec;
use crate::sweep::record::{LossLine, Status, TrialRecord};

/// What the page shows.
pub struct ReportInput<'a> {
    pub spec: &'a SweepSpec,
    /// Finished trials in leaderboard order.
    pub ranked: &'a [&'a TrialRecord],
    /// Each ranked trial's loss log (same order).
    pub losses: &'a [Vec<LossLine>],
    pub winner: Option<&'a TrialRecord>,
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}\
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}\
td:first-child,th:first-child{text-align:left}\
tr.best{background:#e6efff}tr.diverged td{color:#b22}tr.failed td{color:#888}\
.svgs{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}code{background:#f4f4f4;padding:1px 4px}";

pub fn render(input: &ReportInput) -> anyhow::Result<String> {
    let spec = input.spec;
    let mut html = String::new();
    let counts = |status| input.ranked.iter().filter(|r| r.outcome.status == status).count();
    write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>gacha: {name}</title><style>{STYLE}</style>\
         </head><body><h1>Sweep <code>{name}</code></h1><p>{finished} of {total} trials finished: {done} done, \
         {diverged} diverged, {failed} failed. Ranked by <code>{select}</code>. Model <code>{model}</code>, \
         data <code>{data}</code>.</p>",
        name = escape(&spec.name),
        finished = input.ranked.len(),
        total = spec.trials.len(),
        done = counts(Status::Done),
        diverged = counts(Status::Diverged),
        failed = counts(Status::Failed),
        select = spec.select.metric,
        model = escape(&spec.model.path),
        data = escape(&spec.data.path),
    )?;
    match input.winner {
        Some(best) => best_section(&mut html, spec, best)?,
        None => html.push_str("<h2>Best trial</h2><p>No finished trial has a defined select metric yet.</p>"),
    }
    html.push_str("<h2>Loss curves</h2>");
    html.push_str(&loss_chart(&curves(input), (1100, 420))?);
    leaderboard_section(&mut html, input)?;
    html.push_str("</body></html>\n");
    Ok(html)
}

fn best_section(html: &mut String, spec: &SweepSpec, best: &TrialRecord) -> anyhow::Result<()> {
    let trial = spec.trial(best.id());
    write!(
        html,
        "<h2>Best trial <code>{}</code></h2><p>{}; weights and metrics in <code>best/</code>.</p>",
        best.id(),
        escape(trial.map_or("", |t| t.label.as_str()))
    )?;
    html.push_str("<table><tr><th>split</th><th>model</th>");
    for name in Count::ALL.map(Count::name).into_iter().chain(Metric::ALL.map(Metric::name)) {
        write!(html, "<th>{name}</th>")?;
    }
    html.push_str("</tr>");
    for split in Split::ALL {
        for (when, scores) in [("before", best.outcome.before), ("after", best.outcome.after)] {
            let Some(scores) = scores else { continue };
            metrics_row(html, split, when, &scores)?;
        }
    }
    html.push_str("</table><div class=\"svgs\">");
    for (when, scores) in [("before training", best.outcome.before), ("after training", best.outcome.after)] {
        if let Some(scores) = scores {
            html.push_str(&confusion_svg(&format!("valid, {when}"), &scores.valid, &spec.data.answers)?);
        }
    }
    html.push_str("</div>");
    Ok(())
}

fn metrics_row(html: &mut String, split: Split, when: &str, scores: &SplitConfusions) -> std::fmt::Result {
    let c = scores.get(split);
    write!(html, "<tr><td>{split}</td><td>{when}</td>")?;
    for count in Count::ALL {
        write!(html, "<td>{}</td>", count.of(&c))?;
    }
    for metric in Metric::ALL {
        write!(html, "<td>{}</td>", crate::eval::metrics::format_metric(c.value(metric)))?;
    }
    html.push_str("</tr>");
    Ok(())
}

fn leaderboard_section(html: &mut String, input: &ReportInput) -> std::fmt::Result {
    let cols = summary_columns(input.ranked, input.spec.select.metric);
    html.push_str("<h2>Leaderboard</h2><p>All columns: <a href=\"leaderboard.csv\">leaderboard.csv</a>.</p><table><tr><th>#</th>");
    for col in &cols {
        write!(html, "<th>{}</th>", escape(&col.name()))?;
    }
    html.push_str("</tr>");
    for (i, record) in input.ranked.iter().enumerate() {
        let class = if Some(record.id()) == input.winner.map(TrialRecord::id) {
            "best"
        } else {
            record.outcome.status.name()
        };
        write!(html, "<tr class=\"{class}\"><td>{}</td>", i + 1)?;
        for col in &cols {
            let cell = display_cell(col, record);
            let title = match col {
                Column::Prompt => format!(" title=\"{}\"", escape(&col.cell(record))),
                Column::Status => record
                    .outcome
                    .error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" title=\"{}\"", escape(e))),
                _ => String::new(),
            };
            write!(html, "<td{title}>{}</td>", escape(&cell))?;
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    Ok(())
}

/// One curve per attempt: x counts stage 2's steps after stage 1's.
fn curves(input: &ReportInput) -> Vec<Curve> {
    let mut curves = Vec::new();
    for (record, lines) in input.ranked.iter().zip(input.losses) {
        let last_attempt = lines.iter().map(|l| l.attempt).max().unwrap_or(0);
        for attempt in 0..=last_attempt {
            let mut stage1_steps = 0;
            let mut points = Vec::new();
            for line in lines.iter().filter(|l| l.attempt == attempt) {
                if line.log.stage == 1 {
                    stage1_steps = line.log.steps;
                }
                let offset = if line.log.stage > 1 { stage1_steps } else { 0 };
                points.push(((line.log.step + offset) as u64, line.log.loss));
            }
            let finished = attempt == last_attempt && record.outcome.status == Status::Done;
            let kind = match (finished, Some(record.id()) == input.winner.map(TrialRecord::id)) {
                (true, true) => CurveKind::Best,
                (true, false) => CurveKind::Finished,
                (false, _) => CurveKind::Diverged,
            };
            let diverged_at = (kind == CurveKind::Diverged).then(|| points.pop()).flatten();
            if !points.is_empty() || diverged_at.is_some() {
                curves.push(Curve { kind, points, diverged_at });
            }
        }
    }
    curves
}

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sweep::record::{LossLine, Status};
    use crate::sweep::runner::StepLog;
    use crate::sweep::test_records::record;

    #[test]
    fn page_has_the_sections_and_escapes_text() {
        let spec = crate::spec::parse_spec(
            "name = \"a<b\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
             [train]\nlearning_rate = 0.1\n[sweep]\nseeds = [1, 2]\nvalid = [10]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let mut best = record("0123456789ab", Status::Done, [3, 4, 1, 2], Some(0.125));
        best.params.prompt = Some("<script>".into());
        let diverged = record("ba9876543210", Status::Diverged, [0, 0, 0, 0], Some(f64::NAN));
        let log = |attempt, step, loss| LossLine {
            attempt,
            log: StepLog { stage: 1, step, steps: 4, learning_rate: 0.1, loss },
        };
        let losses = vec![vec![log(0, 2, 0.5), log(0, 4, 0.25)], vec![log(0, 3, f64::NAN)]];
        let ranked = [&best, &diverged];
        let html =
            render(&ReportInput { spec: &spec, ranked: &ranked, losses: &losses, winner: Some(&best) })
                .unwrap();
        assert!(html.contains("<h1>Sweep <code>a&lt;b</code></h1>"));
        assert!(html.contains("2 of 2 trials finished: 1 done, 1 diverged, 0 failed"), "{html}");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert_eq!(html.matches("<svg").count(), 3, "two confusion matrices and the loss chart");
        assert!(html.contains("<tr class=\"best\">") && html.contains("<tr class=\"diverged\">"));
        assert!(html
            .contains("<td>valid</td><td>after</td><td>3</td><td>4</td><td>1</td><td>2</td><td>0.7000</td>"));
    }
}
