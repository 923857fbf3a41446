//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no server): the
//! configs (a forest plot of their pooled intervals, their table, one small chart per axis, and
//! the expected quality of the final model), the best trial's parameters, its before/after
//! metrics and confusion matrices, the loss curves of every attempt, and the leaderboard.

use std::fmt::Write;

use super::configs::{display_config_cell, table_columns};
use super::plot::{
    confusion_svg, forest_plot, loss_chart, pr_curve_svg, Curve, CurveKind, ForestMark, ForestRow, PrMarks,
};
use super::race_chart::race_chart;
use super::table::{display_cell, shorten, summary_columns};
use super::ReportInput;
use crate::data::Label;
use crate::eval::operating_point::{candidates, pooled_logit, Verdict};
use crate::eval::{Confusion, Metric, Split, SplitConfusions};
use crate::results::columns::{plain, Column, Count};
use crate::results::config_columns::ConfigColumn;
use crate::results::judge::{config_axes, image_logits, pool_by_axis, winning_config, ConfigSummary, VsBest};
use crate::results::record::{Status, TrialRecord};
use crate::spec::SweepSpec;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}\
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}\
td:first-child,th:first-child{text-align:left}\
tr.best{background:#e6efff}tr.indistinguishable{background:#fff2de}\
tr.diverged td{color:#b22}tr.failed td{color:#888}p.estimate{font-size:1.1em}\
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
    configs_section(&mut html, input)?;
    race_section(&mut html, input)?;
    match input.winner {
        Some(best) => best_section(&mut html, spec, best)?,
        None => html.push_str("<h2>Best trial</h2><p>No finished trial has a defined select metric yet.</p>"),
    }
    html.push_str(
        "<h2>Loss curves</h2><p>Each curve starts at step 1, whose loss is the untrained model's \
         (computed before the first update).</p>",
    );
    html.push_str(&loss_chart(&curves(input), (1100, 420))?);
    leaderboard_section(&mut html, input)?;
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Chart widths (between labels and notes) of the configs' forest plot and of one axis chart.
const FOREST_PX: u32 = 520;
const AXIS_CHART_PX: u32 = 320;

fn configs_section(html: &mut String, input: &ReportInput) -> anyhow::Result<()> {
    let spec = input.spec;
    let metric = spec.select.metric.metric;
    html.push_str("<h2>Configs</h2>");
    if input.configs.is_empty() {
        html.push_str("<p>No trial has finished yet.</p>");
        return Ok(());
    }
    write!(
        html,
        "<p>A config is a trial's parameters less its seed (and fold); here each is judged over all \
         its pulls, their validation answers pooled (a diverged pull's images count as wrong \
         answers, a failed pull is left out). Ranked by the lower end of the 95% interval of pooled \
         valid {metric}{f1_note}. A config is <em>indistinguishable</em> from the winner unless a \
         paired test on the images both answered (same image, seed and repeat; a diverged pull \
         answered its images wrong) says it is worse at p &lt; 0.05 (mid-p McNemar). All columns: <a href=\"configs.csv\">configs.csv</a>.</p>",
        f1_note = if metric == Metric::F1 { " (f1 has no interval: its value)" } else { "" },
    )?;
    estimate_paragraph(html, input)?;
    let rows: Vec<ForestRow> = input.configs.iter().map(|c| config_row(spec, c, metric)).collect();
    let x_desc = format!("pooled valid {metric}, 95% Wilson interval");
    html.push_str(&forest_plot(&rows, &x_desc, FOREST_PX)?);
    configs_table_html(html, input)?;
    operating_point_section(html, input)?;
    let axes: Vec<_> = config_axes(spec).filter(|axis| axis.len > 1).collect();
    if !axes.is_empty() {
        write!(html, "<h3>By axis</h3><p>Pooled valid {metric} over every config with each value.</p>")?;
        html.push_str("<div class=\"svgs\">");
        for axis in axes {
            let rows: Vec<ForestRow> = pool_by_axis(spec, input.configs, axis)
                .iter()
                .map(|value| ForestRow {
                    label: shorten(plain(&value.value)),
                    value: value.pooled.value(metric),
                    interval: value.pooled.wilson_95(metric),
                    mark: ForestMark::Plain,
                    note: format!("{}, {} config(s)", estimate(&value.pooled, metric), value.configs),
                    warn: false,
                })
                .collect();
            write!(html, "<div><h4>{}</h4>", escape(axis.name()))?;
            html.push_str(&forest_plot(&rows, &format!("pooled valid {metric}"), AXIS_CHART_PX)?);
            html.push_str("</div>");
        }
        html.push_str("</div>");
    }
    Ok(())
}

/// A race's looks: each config's pooled value and interval at each, and where it was dropped.
fn race_section(html: &mut String, input: &ReportInput) -> anyhow::Result<()> {
    let Some(race) = input.race else { return Ok(()) };
    let metric = input.spec.select.metric.metric;
    let winner = input.configs.first().map(|c| &c.id);
    let Some(svg) = race_chart(race, metric, winner, (1100, 380))? else { return Ok(()) };
    let state =
        race.end.as_deref().map_or("not decided yet".to_string(), |why| format!("decided ({})", escape(why)));
    write!(
        html,
        "<h2>Race</h2><p>Every config ran the same (seed, fold) keys in one order; at each look a config \
         that a paired test finds worse than the leader is dropped (<span style=\"color:#d22828\">×</span>: \
         its pulls stop). Each line is a config's pooled valid {metric} over the keys its look counted, \
         with its 95% Wilson interval; blue: the winning config. {looks} look(s), {state}; the looks in \
         full: <a href=\"race.json\">race.json</a>, how it decides: docs/race.md.</p>",
        looks = race.looks.len(),
    )?;
    html.push_str(&svg);
    Ok(())
}

/// With a precision target: the winner's out-of-fold precision–recall curve, the target, the
/// shipped threshold with its lower bound, and the final model's test point.
fn operating_point_section(html: &mut String, input: &ReportInput) -> anyhow::Result<()> {
    let Some(winner) = winning_config(input.configs) else { return Ok(()) };
    let Some(op) = winner.operating_point else { return Ok(()) };
    let pulls: Vec<&TrialRecord> = input.ranked.iter().copied().filter(|r| r.config == winner.id).collect();
    let Some(images) = image_logits(&pulls) else { return Ok(()) };
    let pooled: Vec<(Label, f64)> =
        images.iter().map(|image| (image.label, pooled_logit(&image.logit_diffs))).collect();
    let point = |c: &Confusion| Some((c.value(Metric::Recall)?, c.value(Metric::Precision)?));
    let points: Vec<(f64, f64)> = candidates(&pooled).iter().filter_map(|c| point(&c.counts)).collect();
    let (Some(shipped), false) = (point(&op.counts), points.is_empty()) else { return Ok(()) };
    let test = input
        .final_record
        .filter(|r| r.config == winner.id)
        .and_then(|r| r.test_at_threshold.as_ref())
        .and_then(point);
    let marks = PrMarks {
        target: op.target.min_precision(),
        shipped,
        lower_bound: op.precision_lower_bound,
        certified: op.verdict == Verdict::Certified,
        test,
    };
    write!(
        html,
        "<h3>Operating point</h3><p>{}. The curve: the winner's out-of-fold answers, each image \
         once (its mean logit difference over the pulls that answered it), one point per candidate \
         threshold from the strictest (left). A point above the dashed target line is not \
         certified by being there: the bar goes down to the lower bound of the shipped point's \
         precision; points right of the first failure were never tested (docs/operating-point.md).</p>",
        escape(&op.to_string())
    )?;
    html.push_str(&pr_curve_svg(&points, &marks)?);
    Ok(())
}

/// `0.900 [0.596, 0.982] (9/10)`, `0.947` (F1), or `undefined`.
fn estimate(c: &Confusion, metric: Metric) -> String {
    match (c.value(metric), c.wilson_95(metric), c.proportion(metric)) {
        (Some(v), Some((low, high)), Some((k, n))) => format!("{v:.3} [{low:.3}, {high:.3}] ({k}/{n})"),
        (Some(v), _, _) => format!("{v:.3}"),
        (None, _, _) => "undefined".to_string(),
    }
}

/// A config's forest plot row: `#rank` and the axes that vary, its estimate, its diverged pulls.
fn config_row(spec: &SweepSpec, config: &ConfigSummary, metric: Metric) -> ForestRow {
    let values: Vec<String> = config_axes(spec)
        .filter(|axis| axis.len > 1)
        .map(|axis| format!("{}={}", axis.name(), shorten(plain(&config.params.field_value(&axis.field)))))
        .collect();
    let label = if values.is_empty() { config.label.clone() } else { values.join(" ") };
    let mut note = estimate(&config.pooled, metric);
    if config.done == 0 {
        note.push_str(", no done pull");
    }
    if config.diverged > 0 {
        note.push_str(&format!(", {} of {} pulls diverged", config.diverged, config.pulls()));
    }
    let mark = match config.vs_best {
        Some(VsBest::Best) => ForestMark::Best,
        Some(VsBest::Indistinguishable) => ForestMark::Indistinguishable,
        _ => ForestMark::Other,
    };
    ForestRow {
        label: format!("#{} {label}", config.rank),
        value: config.value,
        interval: config.interval,
        mark,
        note,
        warn: config.diverged > 0,
    }
}

/// What the final model is expected to score: on the test images when there are some, else the
/// winner's pooled validation estimate, said to be optimistic.
fn estimate_paragraph(html: &mut String, input: &ReportInput) -> std::fmt::Result {
    let metric = input.spec.select.metric.metric;
    if let Some((record, test)) = input.final_record.and_then(|r| r.test.map(|t| (r, t))) {
        return write!(
            html,
            "<p class=\"estimate\">Expected {metric} of the final model (<code>{kind}</code> of \
             <code>{label}</code>): <b>{value}</b> on {n} test images that no pull trained on and \
             nothing was chosen by.</p>",
            kind = record.final_model,
            label = escape(&record.config_label),
            value = estimate(&test, metric),
            n = test.total(),
        );
    }
    match winning_config(input.configs) {
        Some(best) => write!(
            html,
            "<p class=\"estimate\">Winner <code>{label}</code>: pooled valid {metric} <b>{value}</b>. \
             There are no test images (<code>[validation] test</code>), so this is the validation \
             estimate, and it is optimistic for the chosen config: the same images chose it.</p>",
            label = escape(&best.label),
            value = estimate(&best.pooled, metric),
        ),
        None => write!(html, "<p>No config can win yet: none has a done pull with a defined {metric}.</p>"),
    }
}

fn configs_table_html(html: &mut String, input: &ReportInput) -> std::fmt::Result {
    let cols = table_columns(input.spec);
    html.push_str("<table><tr>");
    for col in &cols {
        write!(html, "<th>{}</th>", escape(&col.name()))?;
    }
    html.push_str("</tr>");
    for config in input.configs {
        let class = config.vs_best.map_or("", |v| v.name());
        write!(html, "<tr class=\"{class}\">")?;
        for col in &cols {
            let title = match col {
                ConfigColumn::Axis(_) => format!(" title=\"{}\"", escape(&col.cell(config))),
                _ => String::new(),
            };
            write!(html, "<td{title}>{}</td>", escape(&display_config_cell(col, config)))?;
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    Ok(())
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
    let csv = crate::results::layout::LEADERBOARD_FILE;
    write!(
        html,
        "<h2>Leaderboard</h2><p>All columns: <a href=\"{csv}\">{csv}</a>.</p><table><tr><th>#</th>"
    )?;
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
                if line.stage == 1 {
                    stage1_steps = line.log.steps;
                }
                let offset = if line.stage > 1 { stage1_steps } else { 0 };
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
    use crate::results::judge::summarize_configs;
    use crate::results::record::{FinalRecord, LossLine, Status};
    use crate::results::test_records::{pull, record};
    use crate::train::StepLog;

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
            stage: 1,
            log: StepLog { step, steps: 4, learning_rate: 0.1, loss, grad_norm: 1.0, ms: 2.0 },
        };
        let losses = vec![vec![log(0, 2, 0.5), log(0, 4, 0.25)], vec![log(0, 3, f64::NAN)]];
        let ranked = [&best, &diverged];
        let configs = summarize_configs(&[best.clone(), diverged.clone()], &spec, &Default::default());
        let html = render(&ReportInput {
            spec: &spec,
            ranked: &ranked,
            losses: &losses,
            winner: Some(&best),
            configs: &configs,
            final_record: None,
            race: None,
        })
        .unwrap();
        assert!(html.contains("<h1>Sweep <code>a&lt;b</code></h1>"));
        assert!(html.contains("2 of 2 trials finished: 1 done, 1 diverged, 0 failed"), "{html}");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert_eq!(
            html.matches("<svg").count(),
            4,
            "the configs' forest plot (no axis varies but seeds), two confusion matrices, the loss chart"
        );
        assert!(html.contains("<tr class=\"best\">") && html.contains("<tr class=\"diverged\">"));
        assert!(html
            .contains("<td>valid</td><td>after</td><td>3</td><td>4</td><td>1</td><td>2</td><td>0.7000</td>"));
    }

    #[test]
    fn configs_section_marks_the_winner_and_says_which_estimate_it_shows() {
        let spec = crate::spec::parse_spec(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
             [train]\nsteps = 4\n[sweep]\nseeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.1]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let t = |n: usize| &spec.trials[n]; // seed 1: lr 0.01, 0.1; seed 2: lr 0.01, 0.1
        let records = vec![
            pull(t(0), Status::Done, &["yy", "yy", "nn", "nn"], Some(0.1)),
            pull(t(1), Status::Diverged, &["yn", "yn", "nn", "nn"], None),
            pull(t(2), Status::Done, &["yy", "yy", "nn", "ny"], Some(0.1)),
            pull(t(3), Status::Done, &["yy", "yy", "nn", "nn"], Some(0.2)),
        ];
        // lr 0.1 against lr 0.01: its diverged seed-1 pull answered wrong all 4 images the winner
        // got right (b = 4); on seed 2 it was right where the winner said yes to a no (c = 1):
        // p = 2·(1 + ½·5)/32 = 0.219, indistinguishable.
        let configs = summarize_configs(&records, &spec, &Default::default());
        let ranked: Vec<&TrialRecord> = records.iter().collect();
        let losses = vec![Vec::new(); records.len()];
        let page = |final_record: Option<&FinalRecord>| {
            render(&ReportInput {
                spec: &spec,
                ranked: &ranked,
                losses: &losses,
                winner: Some(&records[0]),
                configs: &configs,
                final_record,
                race: None,
            })
            .unwrap()
        };
        let html = page(None);
        // The forest plot, one chart for the learning rate (valid has one value), two confusion
        // matrices and the loss chart.
        assert_eq!(html.matches("<svg").count(), 5, "{html}");
        // lr 0.01 pools tp 4 tn 3 fp 1: 4/5; Wilson by hand (z² = 3.84146): centre
        // 1.18415/1.76829 = 0.66966, half 1.10838·√0.0704146 = 0.29412 → [0.376, 0.964].
        assert!(html.contains("pooled valid precision <b>0.800 [0.376, 0.964] (4/5)</b>"), "{html}");
        assert!(html.contains("optimistic for the chosen config"), "{html}");
        assert!(html.contains("#1 learning_rate=0.01") && html.contains("1 of 2 pulls diverged"), "{html}");
        // The legend (plotters puts SVG text on its own line) and the table row.
        assert!(html.contains("\nwinner\n</text>") && html.contains("\nindistinguishable from the winner\n"));
        assert!(
            html.contains("<tr class=\"best\"><td>1</td>")
                && html.contains("<tr class=\"indistinguishable\">")
        );
        // With test counts: 19 of 20 flagged right; centre 1.04604/1.19207 = 0.87749, half
        // 1.64417·√0.0047759 = 0.11362 → [0.764, 0.991]; 40 test images in all.
        let final_record = FinalRecord {
            final_model: crate::spec::FinalModel::Soup,
            config: configs[0].id.clone(),
            config_label: configs[0].label.clone(),
            members: Vec::new(),
            test: Some(Confusion { tp: 19, tn: 18, fp: 1, fn_: 2 }),
            budget: None,
            operating_point: None,
            test_at_threshold: None,
        };
        let html = page(Some(&final_record));
        assert!(html.contains("<b>0.950 [0.764, 0.991] (19/20)</b> on 40 test images"), "{html}");
        assert!(html.contains("<code>soup</code> of <code>valid=4 learning_rate=0.01</code>"), "{html}");
        assert!(!html.contains("optimistic"), "{html}");
    }

    #[test]
    fn a_target_adds_the_winners_precision_recall_curve() {
        let spec = crate::spec::parse_spec(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
             [select]\nmin_precision = 0.95\n[train]\nsteps = 4\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [4]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        // 50 yes at z = 4 above 5 no at z = 1: certified at n = 50, FP = 0 (as in judge's tests).
        let labels: Vec<bool> = (0..55).map(|i| i < 50).collect();
        let z: Vec<f64> = (0..55).map(|i| if i < 50 { 4.0 } else { 1.0 }).collect();
        let records = vec![crate::results::test_records::scored_pull(&spec.trials[0], &labels, &z)];
        let configs = summarize_configs(&records, &spec, &Default::default());
        let ranked: Vec<&TrialRecord> = records.iter().collect();
        let losses = vec![Vec::new(); records.len()];
        let html = render(&ReportInput {
            spec: &spec,
            ranked: &ranked,
            losses: &losses,
            winner: Some(&records[0]),
            configs: &configs,
            final_record: None,
            race: None,
        })
        .unwrap();
        assert!(html.contains("<h3>Operating point</h3><p>P(yes) &gt; "), "{html}");
        assert!(html.contains("certifies precision ≥ 0.95 at 90% confidence on 55 images"), "{html}");
        assert!(
            html.contains("\ncertified threshold, bar to its lower bound; dashed: target 0.95\n"),
            "{html}"
        );
        // The forest plot, the curve, two confusion matrices and the loss chart.
        assert_eq!(html.matches("<svg").count(), 5, "{html}");
        // Without a target: no curve.
        let plain =
            crate::spec::parse_spec(&spec.text.replace("min_precision = 0.95\n", ""), Path::new("s.toml"))
                .unwrap();
        let configs = summarize_configs(&records, &plain, &Default::default());
        let html = render(&ReportInput {
            spec: &plain,
            ranked: &ranked,
            losses: &losses,
            winner: Some(&records[0]),
            configs: &configs,
            final_record: None,
            race: None,
        })
        .unwrap();
        assert!(!html.contains("Operating point"));
    }
}
