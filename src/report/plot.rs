//! SVG drawings for the report, with plotters: the loss curves of every attempt, a confusion
//! matrix, forest plots (a value and its interval per row: configs, or an axis's values), and the
//! winner's precision–recall curve with its operating point.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::eval::Confusion;

/// How a loss curve is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveKind {
    /// The winning trial's final attempt: thick, blue.
    Best,
    /// Another finished attempt: thin, grey.
    Finished,
    /// An attempt stopped by the divergence guard: red, with a cross where it stopped.
    Diverged,
}

/// One attempt's logged losses, x = step counted across stages.
#[derive(Debug, Clone)]
pub struct Curve {
    pub kind: CurveKind,
    /// Finite points only; a diverged attempt's last point is `diverged_at`.
    pub points: Vec<(u64, f64)>,
    /// Step and loss where the guard stopped the attempt (loss may be NaN or huge).
    pub diverged_at: Option<(u64, f64)>,
}

const BEST_BLUE: RGBColor = RGBColor(31, 90, 200);
const OTHER_GREY: RGBColor = RGBColor(150, 150, 150);
const DIVERGED_RED: RGBColor = RGBColor(210, 40, 40);
const INDISTINGUISHABLE_ORANGE: RGBColor = RGBColor(230, 130, 0);
const PLAIN_INK: RGBColor = RGBColor(60, 60, 60);
/// Head room above the highest finished loss.
const Y_MARGIN: f64 = 1.1;

fn plot_error<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {err:?}")
}

/// The legend box of the line charts: `position`, type of `font_px`, on white with a black border.
fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
    font_px: u32,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", font_px))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

/// Loss curves, diverged ones clipped to the top of the chart and marked with a cross.
pub fn loss_chart(curves: &[Curve], size: (u32, u32)) -> anyhow::Result<String> {
    let finished_max = curves
        .iter()
        .filter(|c| c.kind != CurveKind::Diverged)
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(f64::NAN, f64::max);
    let any_max = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).fold(f64::NAN, f64::max);
    let y_top = if finished_max.is_finite() { finished_max } else { any_max };
    let y_top = if y_top.is_finite() && y_top > 0.0 { y_top * Y_MARGIN } else { 1.0 };
    // Whole steps from 0 (the untrained model's loss, when logged, sits at step 0).
    let x_end = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0).chain(c.diverged_at.map(|d| d.0)))
        .fold(1, u64::max);
    let clip = |(x, y): (u64, f64)| (x, if y.is_finite() { y.min(y_top) } else { y_top });

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0..x_end, 0.0..y_top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        // Grey first, then red, then the winner on top.
        for kind in [CurveKind::Finished, CurveKind::Diverged, CurveKind::Best] {
            let (color, width) = match kind {
                CurveKind::Best => (BEST_BLUE, 3),
                CurveKind::Finished => (OTHER_GREY, 1),
                CurveKind::Diverged => (DIVERGED_RED, 1),
            };
            let mut labelled = false;
            for curve in curves.iter().filter(|c| c.kind == kind) {
                let points: Vec<(u64, f64)> =
                    curve.points.iter().copied().chain(curve.diverged_at).map(clip).collect();
                let series = chart
                    .draw_series(LineSeries::new(points, color.stroke_width(width)))
                    .map_err(plot_error)?;
                if !labelled {
                    labelled = true;
                    let label = match kind {
                        CurveKind::Best => "best trial",
                        CurveKind::Finished => "other trials",
                        CurveKind::Diverged => "diverged (× where the guard stopped it)",
                    };
                    series.label(label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                    });
                }
                if let Some(at) = curve.diverged_at {
                    chart
                        .draw_series(std::iter::once(Cross::new(clip(at), 6, DIVERGED_RED.stroke_width(2))))
                        .map_err(plot_error)?;
                }
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 14)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// How a forest plot row is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForestMark {
    /// The winning config: blue.
    Best,
    /// A config indistinguishable from the winner: orange.
    Indistinguishable,
    /// A config shown worse, or untested: grey.
    Other,
    /// A row that is not a config (an axis value): dark, no legend.
    Plain,
}

impl ForestMark {
    fn colour(self) -> RGBColor {
        match self {
            ForestMark::Best => BEST_BLUE,
            ForestMark::Indistinguishable => INDISTINGUISHABLE_ORANGE,
            ForestMark::Other => OTHER_GREY,
            ForestMark::Plain => PLAIN_INK,
        }
    }

    fn legend(self) -> &'static str {
        match self {
            ForestMark::Best => "winner",
            ForestMark::Indistinguishable => "indistinguishable from the winner",
            ForestMark::Other => "worse, or untested",
            ForestMark::Plain => "",
        }
    }
}

/// One row of a forest plot.
#[derive(Debug, Clone)]
pub struct ForestRow {
    /// Left of the chart.
    pub label: String,
    /// The point; `None` draws nothing (say why in `note`).
    pub value: Option<f64>,
    /// The whisker.
    pub interval: Option<(f64, f64)>,
    pub mark: ForestMark,
    /// Right of the chart: the numbers, and what went wrong.
    pub note: String,
    /// Draw the note in red (e.g. the config has diverged pulls).
    pub warn: bool,
}

/// Pixels per forest plot row.
const FOREST_ROW: u32 = 24;
/// Pixels per character, roughly, of the labels' sans-serif (sizes the label and note margins).
const CHAR_PX: u32 = 7;
/// Longest label or note of a forest plot row, in characters (longer ones end in `…`).
const MARGIN_CHARS: u32 = 72;
/// Font size of forest plot labels (plotters draws SVG text at about 0.8 of it).
const FOREST_FONT: u32 = 15;
/// From this chart width on, ticks every 0.1; below it every 0.2.
const WIDE_FOREST_PX: u32 = 500;

/// Rows of values in [0, 1] with their intervals, top to bottom, on a chart `plot_px` wide
/// between the labels and the notes; a legend on top when any row is a config.
pub fn forest_plot(rows: &[ForestRow], x_desc: &str, plot_px: u32) -> anyhow::Result<String> {
    if rows.is_empty() {
        return Ok(String::new());
    }
    let legend: Vec<ForestMark> = [ForestMark::Best, ForestMark::Indistinguishable, ForestMark::Other]
        .into_iter()
        .filter(|m| rows.iter().any(|r| r.mark == *m))
        .collect();
    let top = if legend.is_empty() { 8 } else { 30 };
    let chars = |text: &str| text.chars().count() as u32;
    let fit = |text: &str| -> String {
        if chars(text) <= MARGIN_CHARS {
            text.to_string()
        } else {
            text.chars().take(MARGIN_CHARS as usize - 1).chain(['…']).collect()
        }
    };
    let margin_px = |texts: &mut dyn Iterator<Item = &String>| {
        texts.map(|t| chars(&fit(t))).max().unwrap_or(0) * CHAR_PX + 16
    };
    let label_px = margin_px(&mut rows.iter().map(|r| &r.label)).max(40);
    let note_px = margin_px(&mut rows.iter().map(|r| &r.note)).max(40);
    let n = rows.len();
    let (width, height) = (label_px + plot_px + note_px + 8, top + FOREST_ROW * n as u32 + 46);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let font = |colour: RGBColor, h: HPos| {
            ("sans-serif", FOREST_FONT).into_font().color(&colour).pos(Pos::new(h, VPos::Center))
        };
        let mut x = 8;
        for mark in legend {
            root.draw(&Circle::new((x + 5, 14), 5, mark.colour().filled())).map_err(plot_error)?;
            root.draw(&Text::new(mark.legend(), (x + 15, 14), font(BLACK, HPos::Left)))
                .map_err(plot_error)?;
            x += 15 + chars(mark.legend()) as i32 * CHAR_PX as i32 + 24;
        }
        let mut chart = ChartBuilder::on(&root)
            .margin_top(top)
            .margin_left(4)
            .margin_right(note_px)
            .x_label_area_size(36)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0.0..1.0, -0.5..n as f64 - 0.5)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(if plot_px >= WIDE_FOREST_PX { 11 } else { 6 })
            .x_label_formatter(&|x| format!("{x:.1}"))
            .x_desc(x_desc)
            .label_style(("sans-serif", FOREST_FONT))
            .axis_desc_style(("sans-serif", FOREST_FONT))
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        for (i, row) in rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let colour = row.mark.colour();
            if let Some((low, high)) = row.interval {
                chart
                    .draw_series(LineSeries::new([(low, y), (high, y)], colour.stroke_width(2)))
                    .map_err(plot_error)?;
                for end in [low, high] {
                    chart
                        .draw_series(LineSeries::new(
                            [(end, y - 0.2), (end, y + 0.2)],
                            colour.stroke_width(2),
                        ))
                        .map_err(plot_error)?;
                }
            }
            if let Some(value) = row.value {
                chart
                    .draw_series(std::iter::once(Circle::new((value, y), 5, colour.filled())))
                    .map_err(plot_error)?;
            }
            let (left, py) = chart.backend_coord(&(0.0, y));
            let (right, _) = chart.backend_coord(&(1.0, y));
            root.draw(&Text::new(fit(&row.label), (left - 8, py), font(BLACK, HPos::Right)))
                .map_err(plot_error)?;
            let ink = if row.warn { DIVERGED_RED } else { BLACK };
            root.draw(&Text::new(fit(&row.note), (right + 10, py), font(ink, HPos::Left)))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// What the precision–recall chart marks besides the curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrMarks {
    /// The target precision: a dashed line.
    pub target: f64,
    /// The shipped threshold's (recall, precision) and the lower bound of its precision.
    pub shipped: (f64, f64),
    pub lower_bound: f64,
    pub certified: bool,
    /// The final model's (recall, precision) on the test images at that threshold.
    pub test: Option<(f64, f64)>,
}

/// A precision–recall curve of `points` (recall, precision), one per candidate threshold,
/// strictest first, with the marks of `marks`.
pub fn pr_curve_svg(points: &[(f64, f64)], marks: &PrMarks) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..1.02)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("recall (out of fold)")
            .y_desc("precision")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), OTHER_GREY.stroke_width(2)))
            .map_err(plot_error)?
            .label("out-of-fold answers, each image once")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], OTHER_GREY.stroke_width(2)));
        let dashes = (0..50).map(|k| k as f64 / 50.0).step_by(2);
        for x in dashes {
            chart
                .draw_series(LineSeries::new(
                    [(x, marks.target), (x + 0.02, marks.target)],
                    PLAIN_INK.stroke_width(1),
                ))
                .map_err(plot_error)?;
        }
        let (recall, precision) = marks.shipped;
        let colour = if marks.certified { BEST_BLUE } else { DIVERGED_RED };
        chart
            .draw_series(LineSeries::new(
                [(recall, marks.lower_bound), (recall, precision)],
                colour.stroke_width(2),
            ))
            .map_err(plot_error)?;
        let label = if marks.certified { "certified threshold" } else { "best bound (uncertified)" };
        chart
            .draw_series(std::iter::once(Circle::new((recall, precision), 6, colour.filled())))
            .map_err(plot_error)?
            .label(format!("{label}, bar to its lower bound; dashed: target {}", marks.target))
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, colour.filled()));
        if let Some(test) = marks.test {
            chart
                .draw_series(std::iter::once(Cross::new(test, 7, INDISTINGUISHABLE_ORANGE.stroke_width(3))))
                .map_err(plot_error)?
                .label("final model on the test images")
                .legend(|(x, y)| Cross::new((x + 9, y), 5, INDISTINGUISHABLE_ORANGE.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerLeft, 13)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// A 2×2 confusion matrix: rows the true answer, columns the predicted one, shaded by count.
pub fn confusion_svg(title: &str, c: &Confusion, answers: &[String; 2]) -> anyhow::Result<String> {
    const CELL: i32 = 70;
    const LEFT: i32 = 90;
    const TOP: i32 = 56;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(
            &mut svg,
            (LEFT as u32 + 2 * CELL as u32 + 10, TOP as u32 + 2 * CELL as u32 + 10),
        )
        .into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let text = |s: &str, at: (i32, i32), size: f64| {
            Text::new(s.to_string(), at, ("sans-serif", size).into_font().color(&BLACK))
        };
        root.draw(&text(title, (4, 4), 15.0)).map_err(plot_error)?;
        root.draw(&text("predicted →", (LEFT, 24), 13.0)).map_err(plot_error)?;
        let total = c.total().max(1) as f64;
        let cells = [[c.tp, c.fn_], [c.fp, c.tn]];
        for (row, truth) in answers.iter().enumerate() {
            let y = TOP + row as i32 * CELL;
            root.draw(&text(&format!("true {truth}"), (4, y + CELL / 2 - 7), 14.0)).map_err(plot_error)?;
            for (col, predicted) in answers.iter().enumerate() {
                let x = LEFT + col as i32 * CELL;
                if row == 0 {
                    root.draw(&text(predicted, (x + 6, TOP - 16), 14.0)).map_err(plot_error)?;
                }
                let count = cells[row][col];
                let shade = 0.1 + 0.8 * count as f64 / total;
                let fill = if row == col { BEST_BLUE.mix(shade) } else { DIVERGED_RED.mix(shade) };
                root.draw(&Rectangle::new([(x, y), (x + CELL - 2, y + CELL - 2)], fill.filled()))
                    .map_err(plot_error)?;
                root.draw(&text(&count.to_string(), (x + CELL / 2 - 10, y + CELL / 2 - 10), 20.0))
                    .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forest_plot_draws_defined_rows_and_cuts_long_labels() {
        let row = |label: &str, value, mark| ForestRow {
            label: label.to_string(),
            value,
            interval: value.map(|v: f64| (v - 0.1, v + 0.1)),
            mark,
            note: "note".into(),
            warn: false,
        };
        let long = "x".repeat(90);
        let rows = [row(&long, Some(0.5), ForestMark::Best), row("short", None, ForestMark::Other)];
        let svg = forest_plot(&rows, "pooled valid precision", 300).unwrap();
        // Two legend dots (winner, worse) and one point: the undefined row draws none.
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        let cut = format!("{}…", "x".repeat(71));
        assert!(svg.contains(&format!("\n{cut}\n")) && !svg.contains(&long), "{svg}");
        assert!(forest_plot(&[], "x", 300).unwrap().is_empty());
    }
}
