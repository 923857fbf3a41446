//! `configs.csv`: one row per config (`judge.rs`) in rank order. The columns, in one place:
//! `rank, config`, `standing` in a race or where prompts are screened (`racing`, `dropped at look
//! N`, `survivor`, `screened out`), the spec's axes except seeds (named as in
//! trial labels: `valid`, `learning_rate`, `prompt`, …), `pulls, done, diverged, failed`, the
//! pooled validation counts and metrics `tp, tn, fp, fn, accuracy, precision, recall, f1`, the
//! Wilson 95% interval of each proportion (`accuracy_low, accuracy_high, precision_low, …,
//! recall_high`), with a precision target (`[select] min_precision`) its operating point
//! (`certified` yes or no, `threshold` on P(yes), `precision_bound`, `recall_at_threshold`:
//! out-of-fold, each image once), then `vs_best, p_vs_best, mean_final_loss` and `trials` (the
//! finished pulls' ids, space-separated). Undefined values are empty cells.

use super::columns::{plain, Count};
use super::csv::csv_bytes;
use super::judge::{config_axes, ConfigSummary};
use crate::eval::operating_point::{OperatingPoint, Verdict};
use crate::eval::Metric;
use crate::spec::{Axis, SweepSpec};

/// A column of `configs.csv`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigColumn {
    Rank,
    Config,
    /// Where it stands in a race, or screened out (`race.rs`).
    Standing,
    /// A config axis: the config's value of it.
    Axis(Axis),
    Pulls,
    Done,
    Diverged,
    Failed,
    /// A pooled validation count.
    Count(Count),
    /// A metric of the pooled validation counts.
    Metric(Metric),
    /// The lower end of a proportion's Wilson 95% interval.
    Low(Metric),
    /// Its upper end.
    High(Metric),
    /// With a target: whether its threshold is certified, the threshold on P(yes), the lower
    /// bound of precision there and the recall there.
    Certified,
    Threshold,
    PrecisionBound,
    RecallAtThreshold,
    VsBest,
    PVsBest,
    MeanFinalLoss,
    Trials,
}

/// Every column of `configs.csv` for `spec`, in order.
pub fn config_columns(spec: &SweepSpec) -> Vec<ConfigColumn> {
    let mut cols = vec![ConfigColumn::Rank, ConfigColumn::Config];
    if spec.search.is_adaptive() {
        cols.push(ConfigColumn::Standing);
    }
    cols.extend(config_axes(spec).cloned().map(ConfigColumn::Axis));
    cols.extend([ConfigColumn::Pulls, ConfigColumn::Done, ConfigColumn::Diverged, ConfigColumn::Failed]);
    cols.extend(Count::ALL.map(ConfigColumn::Count));
    cols.extend(Metric::ALL.map(ConfigColumn::Metric));
    for metric in Metric::PROPORTIONS {
        cols.extend([ConfigColumn::Low(metric), ConfigColumn::High(metric)]);
    }
    if spec.select.target().is_some() {
        cols.extend([
            ConfigColumn::Certified,
            ConfigColumn::Threshold,
            ConfigColumn::PrecisionBound,
            ConfigColumn::RecallAtThreshold,
        ]);
    }
    cols.extend([
        ConfigColumn::VsBest,
        ConfigColumn::PVsBest,
        ConfigColumn::MeanFinalLoss,
        ConfigColumn::Trials,
    ]);
    cols
}

impl ConfigColumn {
    pub fn name(&self) -> String {
        match self {
            ConfigColumn::Rank => "rank".into(),
            ConfigColumn::Config => "config".into(),
            ConfigColumn::Standing => "standing".into(),
            ConfigColumn::Axis(axis) => axis.name().into(),
            ConfigColumn::Pulls => "pulls".into(),
            ConfigColumn::Done => "done".into(),
            ConfigColumn::Diverged => "diverged".into(),
            ConfigColumn::Failed => "failed".into(),
            ConfigColumn::Count(count) => count.name().into(),
            ConfigColumn::Metric(metric) => metric.name().into(),
            ConfigColumn::Low(metric) => format!("{metric}_low"),
            ConfigColumn::High(metric) => format!("{metric}_high"),
            ConfigColumn::Certified => "certified".into(),
            ConfigColumn::Threshold => "threshold".into(),
            ConfigColumn::PrecisionBound => "precision_bound".into(),
            ConfigColumn::RecallAtThreshold => "recall_at_threshold".into(),
            ConfigColumn::VsBest => "vs_best".into(),
            ConfigColumn::PVsBest => "p_vs_best".into(),
            ConfigColumn::MeanFinalLoss => "mean_final_loss".into(),
            ConfigColumn::Trials => "trials".into(),
        }
    }

    /// The cell of `config` in this column; empty when undefined.
    pub fn cell(&self, config: &ConfigSummary) -> String {
        let four = |value: Option<f64>| value.map(|v| format!("{v:.4}")).unwrap_or_default();
        let interval = |metric: Metric| config.pooled.wilson_95(metric);
        let op = config.operating_point.as_ref();
        match self {
            ConfigColumn::Rank => config.rank.to_string(),
            ConfigColumn::Config => config.id.to_string(),
            ConfigColumn::Standing => config.standing.map(|s| s.name()).unwrap_or_default(),
            ConfigColumn::Axis(axis) => plain(&config.params.field_value(&axis.field)),
            ConfigColumn::Pulls => config.pulls().to_string(),
            ConfigColumn::Done => config.done.to_string(),
            ConfigColumn::Diverged => config.diverged.to_string(),
            ConfigColumn::Failed => config.failed.to_string(),
            ConfigColumn::Count(count) => count.of(&config.pooled).to_string(),
            ConfigColumn::Metric(metric) => four(config.pooled.value(*metric)),
            ConfigColumn::Low(metric) => four(interval(*metric).map(|(low, _)| low)),
            ConfigColumn::High(metric) => four(interval(*metric).map(|(_, high)| high)),
            ConfigColumn::Certified => {
                let certified = |op: &OperatingPoint| op.verdict == Verdict::Certified;
                op.map(|op| if certified(op) { "yes" } else { "no" }.to_string()).unwrap_or_default()
            }
            ConfigColumn::Threshold => four(op.map(|op| op.threshold_p_yes)),
            // Floored, as the sweep's lines show it: 0.94999 never reads as 0.9500.
            ConfigColumn::PrecisionBound => four(op.map(|op| (op.precision_lower_bound * 1e4).floor() / 1e4)),
            ConfigColumn::RecallAtThreshold => four(op.and_then(OperatingPoint::recall)),
            ConfigColumn::VsBest => config.vs_best.map(|v| v.name().to_string()).unwrap_or_default(),
            ConfigColumn::PVsBest => four(config.p_vs_best),
            ConfigColumn::MeanFinalLoss => {
                config.mean_final_loss.map(|l| format!("{l:.6}")).unwrap_or_default()
            }
            ConfigColumn::Trials => config.trials.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(" "),
        }
    }
}

/// `configs.csv` as bytes (a header row even before any trial has finished).
pub fn configs_csv(spec: &SweepSpec, configs: &[ConfigSummary]) -> Vec<u8> {
    let cols = config_columns(spec);
    let header: Vec<String> = cols.iter().map(ConfigColumn::name).collect();
    let rows = configs.iter().map(|config| cols.iter().map(|c| c.cell(config)).collect::<Vec<_>>());
    csv_bytes(std::iter::once(header).chain(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::test_records::two_configs;

    #[test]
    fn writes_exact_bytes() {
        let (spec, configs) = two_configs();
        let got = String::from_utf8(configs_csv(&spec, &configs)).unwrap();
        let header = "rank,config,valid,prompt,pulls,done,diverged,failed,tp,tn,fp,fn,\
                      accuracy,precision,recall,f1,accuracy_low,accuracy_high,precision_low,precision_high,\
                      recall_low,recall_high,vs_best,p_vs_best,mean_final_loss,trials\n";
        // Wilson 95% by hand, z² = 3.84146: centre (p + z²/2n)/(1 + z²/n), half-width
        // z/(1 + z²/n)·√(p(1 − p)/n + z²/4n²).
        // "ok": pooled tp 3 tn 3 fp 1 fn 1: accuracy 6/8, precision 3/4, recall 3/4, f1 6/8.
        // 6/8: centre 0.99009/1.48018 = 0.66890, half 1.32414·√0.0384432 = 0.25962 → 0.4093, 0.9285.
        // 3/4: centre 1.23019/1.96037 = 0.62753, half 0.99979·√0.1068978 = 0.32689 → 0.3006, 0.9544.
        // Long: tp 1 tn 2 fn 1, plus fn 2 fp 2 for the diverged pull: accuracy 3/8, precision
        // 1/3, recall 1/4, f1 2/7.
        // 3/8: centre 0.61509/1.48018 = 0.41555, half 1.32414·√0.0443026 = 0.27871 → 0.1368, 0.6943.
        // 1/3: centre 0.97358/2.28049 = 0.42692, half 0.85944·√0.1807813 = 0.36542 → 0.0615, 0.7923.
        // 1/4: centre 0.73019/1.96037 = 0.37248, half 0.99979·√0.1068978 = 0.32689 → 0.0456, 0.6994.
        // Paired (precision: where either said yes). Seed 1: image 1, a yes the long prompt
        // missed (b = 1), and image 3, a no the "ok" prompt said yes to (c = 1). Seed 2: the long
        // prompt diverged, so it answered the "ok" pull's images wrong: images 0, 2, 3 (b = 3;
        // image 1 both missed). b = 4, c = 1, n = 5: p = 2·(1 + ½·5)/32 = 0.21875.
        let (ok, long) = (&configs[0], &configs[1]);
        let rows = format!(
            "1,{},4,\"Is it \"\"ok\"\", then?\",2,2,0,0,3,3,1,1,0.7500,0.7500,0.7500,0.7500,\
             0.4093,0.9285,0.3006,0.9544,0.3006,0.9544,best,,0.375000,{} {}\n\
             2,{},4,Does this advertisement break any of the rules?,2,1,1,0,1,2,2,3,0.3750,0.3333,0.2500,0.2857,\
             0.1368,0.6943,0.0615,0.7923,0.0456,0.6994,indistinguishable,0.2188,0.125000,{} {}\n",
            ok.id, ok.trials[0], ok.trials[1], long.id, long.trials[0], long.trials[1]
        );
        let expected = format!("{header}{rows}");
        assert_eq!(got, expected, "\n--- got\n{got}\n--- expected\n{expected}");
    }

    #[test]
    fn a_target_adds_the_operating_point_columns() {
        let text = "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
                    [select]\nmin_precision = 0.95\n[train]\nlearning_rate = 0.03\n[sweep]\nseeds = [1]\nvalid = [4]\n";
        let spec = crate::spec::parse_spec(text, std::path::Path::new("s.toml")).unwrap();
        // 50 yes at z = 4 above 5 no at z = 1: certified with n = 50, FP = 0; the bound
        // 0.1^(1/50) = 0.954992 floors to 0.9549; recall 1.
        let labels: Vec<bool> = (0..55).map(|i| i < 50).collect();
        let z: Vec<f64> = (0..55).map(|i| if i < 50 { 4.0 } else { 1.0 }).collect();
        let records = [crate::results::test_records::scored_pull(&spec.trials[0], &labels, &z)];
        let configs = crate::results::judge::summarize_configs(&records, &spec, &Default::default());
        let csv = String::from_utf8(configs_csv(&spec, &configs)).unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        let at =
            |name: &str| rows[0].iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name}: {csv}"));
        assert_eq!(at("certified"), at("recall_high") + 1);
        assert_eq!(
            [at("certified"), at("precision_bound"), at("recall_at_threshold")].map(|i| rows[1][i]),
            ["yes", "0.9549", "1.0000"]
        );
        // The threshold on P(yes) lies between the calibrated P(yes) of the two groups.
        let op = configs[0].operating_point.unwrap();
        let p = |z: f64| 1.0 / (1.0 + (-z / op.temperature.temperature).exp());
        let threshold: f64 = rows[1][at("threshold")].parse().unwrap();
        assert!(p(1.0) < threshold && threshold <= p(4.0), "{threshold}");
        assert_eq!(at("threshold") + 1, at("precision_bound"));
    }
}
