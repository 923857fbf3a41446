//! The race chart of the report: each config's pooled select metric at every look of the race
//! (`race.json`), with its Wilson 95% interval as a bar, the leader at the end drawn thick and
//! blue, and a red cross where a config was dropped (its line stops there).

use plotters::prelude::*;

use crate::eval::Metric;
use crate::results::race::{RaceFile, Standing};
use crate::spec::ConfigId;

const WINNER_BLUE: RGBColor = RGBColor(31, 90, 200);
const RACING_GREY: RGBColor = RGBColor(150, 150, 150);
const DROPPED_RED: RGBColor = RGBColor(210, 40, 40);

/// A config at a look: the look (1-based), its pooled value and interval.
struct Point {
    look: f64,
    value: f64,
    interval: Option<(f64, f64)>,
}

/// One config's points over the looks.
struct Line {
    config: ConfigId,
    points: Vec<Point>,
    dropped_at: Option<usize>,
}

fn lines(race: &RaceFile, metric: Metric) -> Vec<Line> {
    race.configs
        .iter()
        .map(|config| {
            let points = race
                .looks
                .iter()
                .enumerate()
                .filter_map(|(n, look)| {
                    let entry = look.entries.iter().find(|e| e.config == config.config)?;
                    let value = entry.pooled.value(metric)?;
                    Some(Point { look: (n + 1) as f64, value, interval: entry.pooled.wilson_95(metric) })
                })
                .collect();
            let dropped_at = match config.standing {
                Standing::Dropped { look, .. } => Some(look),
                _ => None,
            };
            Line { config: config.config.clone(), points, dropped_at }
        })
        .collect()
}

/// The chart as an SVG string; `None` before the first look.
pub fn race_chart(
    race: &RaceFile,
    metric: Metric,
    winner: Option<&ConfigId>,
    size: (u32, u32),
) -> anyhow::Result<Option<String>> {
    if race.looks.is_empty() {
        return Ok(None);
    }
    let lines = lines(race, metric);
    let low = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.interval.map_or(p.value, |i| i.0)))
        .fold(1.0, f64::min);
    let y_low = (low - 0.02).clamp(0.0, 1.0);
    let x_end = race.looks.len() as f64 + 0.5;
    let error = |err: &dyn std::fmt::Debug| anyhow::anyhow!("cannot draw the race chart: {err:?}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5..x_end, y_low..1.0)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("look")
            .y_desc(format!("pooled valid {metric}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| error(&e))?;
        // The others first, the winner on top.
        let is_winner = |line: &Line| Some(&line.config) == winner;
        for line in lines.iter().filter(|l| !is_winner(l)).chain(lines.iter().filter(|l| is_winner(l))) {
            let (color, width) = if is_winner(line) { (WINNER_BLUE, 3) } else { (RACING_GREY, 1) };
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|p| (p.look, p.value)),
                    color.stroke_width(width),
                ))
                .map_err(|e| error(&e))?;
            let bars = line.points.iter().filter_map(|p| {
                p.interval.map(|(lo, hi)| {
                    PathElement::new(vec![(p.look, lo), (p.look, hi)], color.mix(0.5).stroke_width(width))
                })
            });
            chart.draw_series(bars).map_err(|e| error(&e))?;
            if let Some(p) = line.dropped_at.and_then(|look| line.points.get(look - 1)) {
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (p.look, p.value),
                        6,
                        DROPPED_RED.stroke_width(2),
                    )))
                    .map_err(|e| error(&e))?;
            }
        }
        root.present().map_err(|e| error(&e))?;
    }
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Confusion;
    use crate::results::race::{RaceConfig, RaceEntry, RaceLook};

    fn entry(config: &str, tp: u64, fp: u64) -> RaceEntry {
        RaceEntry {
            config: ConfigId::for_tests(config),
            pooled: Confusion { tp, tn: 10, fp, fn_: 2 },
            p: None,
            dropped: false,
        }
    }

    #[test]
    fn a_dropped_config_stops_at_its_look_with_a_cross() {
        let config = |id: &str, standing| RaceConfig { config: ConfigId::for_tests(id), standing, vs: None };
        let race = RaceFile {
            keys: 3,
            grid_keys: 3,
            first_round: 1,
            end: Some("one config left".into()),
            configs: vec![
                config("aaa", Standing::Survivor),
                config("bbb", Standing::Dropped { look: 1, p: 0.001 }),
            ],
            screened_out: Vec::new(),
            looks: vec![
                RaceLook {
                    keys: 1,
                    level: Some(0.025),
                    leader: None,
                    entries: vec![entry("aaa", 9, 1), entry("bbb", 5, 5)],
                },
                RaceLook { keys: 2, level: Some(0.0083), leader: None, entries: vec![entry("aaa", 18, 2)] },
            ],
        };
        let lines = lines(&race, Metric::Precision);
        // Precision tp / (tp + fp): 9/10 then 18/20 for aaa; 5/10 for bbb, dropped at look 1.
        assert_eq!(
            lines[0].points.iter().map(|p| (p.look, p.value)).collect::<Vec<_>>(),
            vec![(1.0, 0.9), (2.0, 0.9)]
        );
        assert_eq!(lines[1].points.iter().map(|p| (p.look, p.value)).collect::<Vec<_>>(), vec![(1.0, 0.5)]);
        assert_eq!(lines[1].dropped_at, Some(1));
        let svg = race_chart(&race, Metric::Precision, Some(&ConfigId::for_tests("aaa")), (600, 300))
            .unwrap()
            .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        // The cross: two red strokes.
        assert_eq!(svg.matches("#D22828").count(), 2, "{svg}");
        // Before any look there is nothing to draw.
        let none = RaceFile { looks: Vec::new(), ..race };
        assert!(race_chart(&none, Metric::Precision, None, (600, 300)).unwrap().is_none());
    }
}
