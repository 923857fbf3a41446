//! `gacha leaderboard --configs` and the report's configs table: the columns of `configs.csv`
//! (`results::config_columns`) that people read, aligned as text.

use super::table::{aligned, shorten};
use crate::eval::Metric;
use crate::results::config_columns::ConfigColumn;
use crate::results::judge::{config_axes, ConfigSummary};
use crate::spec::SweepSpec;

/// The columns people read: rank, config, the axes with more than one value, pulls that did not
/// finish well, the select metric (pooled valid) with its interval, F1, the comparison with the
/// best, the mean loss.
pub fn table_columns(spec: &SweepSpec) -> Vec<ConfigColumn> {
    let metric = spec.select.metric.metric;
    let mut cols = vec![ConfigColumn::Rank, ConfigColumn::Config];
    if spec.search.is_adaptive() {
        cols.push(ConfigColumn::Standing);
    }
    cols.extend(config_axes(spec).filter(|axis| axis.len > 1).cloned().map(ConfigColumn::Axis));
    cols.extend([
        ConfigColumn::Pulls,
        ConfigColumn::Diverged,
        ConfigColumn::Failed,
        ConfigColumn::Metric(metric),
    ]);
    if Metric::PROPORTIONS.contains(&metric) {
        cols.extend([ConfigColumn::Low(metric), ConfigColumn::High(metric)]);
    }
    if metric != Metric::F1 {
        cols.push(ConfigColumn::Metric(Metric::F1));
    }
    cols.extend([ConfigColumn::VsBest, ConfigColumn::PVsBest, ConfigColumn::MeanFinalLoss]);
    cols
}

/// A cell as shown to people: long axis values (prompts) shortened, losses to 4 decimals.
pub fn display_config_cell(col: &ConfigColumn, config: &ConfigSummary) -> String {
    let cell = col.cell(config);
    match col {
        ConfigColumn::Axis(_) => shorten(cell),
        ConfigColumn::MeanFinalLoss => config.mean_final_loss.map(|l| format!("{l:.4}")).unwrap_or(cell),
        _ => cell,
    }
}

/// The ranked configs as an aligned text table; `-` for empty cells.
pub fn configs_table(spec: &SweepSpec, configs: &[ConfigSummary]) -> String {
    let cols = table_columns(spec);
    let mut rows = vec![cols.iter().map(ConfigColumn::name).collect::<Vec<_>>()];
    rows.extend(configs.iter().map(|config| cols.iter().map(|c| display_config_cell(c, config)).collect()));
    aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::test_records::two_configs;

    #[test]
    fn table_shows_the_varying_axes_and_the_select_metric() {
        let (spec, configs) = two_configs();
        let text = configs_table(&spec, &configs);
        let expected = format!(
            "\
rank  config        prompt                            pulls  diverged  failed  precision  precision_low  precision_high  f1      vs_best            p_vs_best  mean_final_loss
1     {}  Is it \"ok\", then?                 2      0         0       0.7500     0.3006         0.9544          0.7500  best               -          0.3750
2     {}  Does this advertisement break a…  2      1         0       0.3333     0.0615         0.7923          0.2857  indistinguishable  0.2188     0.1250
",
            configs[0].id, configs[1].id
        );
        assert_eq!(text, expected, "\n{text}");
    }
}
