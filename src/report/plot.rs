//! SVG drawings for the report, with plotters: the loss curves of every attempt, and a
//! confusion matrix.

use plotters::prelude::*;

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
/// Head room above the highest finished loss.
const Y_MARGIN: f64 = 1.1;

fn plot_error<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {err:?}")
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
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
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
