//! What a sweep writes beside its trial folders, built from their records: the leaderboard,
//! `configs.csv`, `best/`, the weights budget and `report.html` (`ledger.rs` says when). The bytes come from an
//! [`Exporter`] (the `report` layer implements it and `cmd` passes it in), so the driver never
//! imports the layer above it.

use std::path::PathBuf;

use anyhow::Context;

use super::best::{self, Prune};
use super::configs::{self, ConfigSummary};
use super::layout::{ResultsDir, CONFIGS_FILE, LEADERBOARD_FILE, REPORT_FILE};
use super::rank::{rank, winner};
use super::record::{FinalRecord, LossLine, TrialRecord};
use crate::fsutil::write_atomic;
use crate::spec::{FinalModel, SweepSpec};

/// Serialisers of finished trials to bytes.
pub trait Exporter {
    /// `leaderboard.csv` of the trials in leaderboard order.
    fn leaderboard_csv(&self, ranked: &[&TrialRecord]) -> Vec<u8>;
    /// `configs.csv` of the ranked configs.
    fn configs_csv(&self, spec: &SweepSpec, configs: &[ConfigSummary]) -> Vec<u8>;
    /// `report.html`.
    fn report_html(&self, input: &ReportInput) -> anyhow::Result<String>;
}

/// What the report page shows.
pub struct ReportInput<'a> {
    pub spec: &'a SweepSpec,
    /// Finished trials in leaderboard order.
    pub ranked: &'a [&'a TrialRecord],
    /// Each ranked trial's loss log (same order).
    pub losses: &'a [Vec<LossLine>],
    pub winner: Option<&'a TrialRecord>,
    /// The configs, ranked (`configs::summarize_configs`).
    pub configs: &'a [ConfigSummary],
    /// `best/final.json`, once the final model is made.
    pub final_record: Option<&'a FinalRecord>,
}

/// Write the leaderboard, `configs.csv`, `best/` and the weights budget from `records`: every
/// finished trial of `spec`, in spec order (as `ResultsDir::read_records` reads them).
pub(super) fn write_exports(
    dir: &ResultsDir,
    spec: &SweepSpec,
    records: &[TrialRecord],
    prune: Prune,
    exporter: &dyn Exporter,
) -> anyhow::Result<()> {
    let ranked = rank(records, spec.select.metric);
    write_atomic(&dir.path(LEADERBOARD_FILE), &exporter.leaderboard_csv(&ranked))?;
    let configs = configs::summarize_configs(records, spec);
    write_atomic(&dir.path(CONFIGS_FILE), &exporter.configs_csv(spec, &configs))?;
    follow_winner(dir, spec, winner(&ranked, spec.select.metric))?;
    best::prune_weights(dir, spec, &ranked, &configs, prune)
}

/// Make `best/` hold `winner`'s folder (none: no `best/`), unless it holds the final model: a
/// soup or refit in `best/` is the final step's; until then `best/` follows the top trial.
pub(super) fn follow_winner(
    dir: &ResultsDir,
    spec: &SweepSpec,
    winner: Option<&TrialRecord>,
) -> anyhow::Result<()> {
    let final_made = spec.select.final_model != FinalModel::BestTrial && dir.read_final()?.is_some();
    if !final_made {
        best::update_best(dir, winner)?;
    }
    Ok(())
}

/// Write `report.html` from the finished trials.
pub fn write_report(
    dir: &ResultsDir,
    spec: &SweepSpec,
    records: &[TrialRecord],
    exporter: &dyn Exporter,
) -> anyhow::Result<PathBuf> {
    let ranked = rank(records, spec.select.metric);
    let mut losses = Vec::with_capacity(ranked.len());
    for record in &ranked {
        let path = dir.trial(record.id()).metrics();
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let lines = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| match serde_json::from_str(line) {
                Ok(line) => Some(line),
                Err(err) => {
                    crate::warn!(
                        "{}:{}: not a loss line ({err}); left out of the report",
                        path.display(),
                        i + 1
                    );
                    None
                }
            })
            .collect::<Vec<_>>();
        losses.push(lines);
    }
    let configs = configs::summarize_configs(records, spec);
    let final_record = dir.read_final()?;
    let html = exporter.report_html(&ReportInput {
        spec,
        ranked: &ranked,
        losses: &losses,
        winner: winner(&ranked, spec.select.metric),
        configs: &configs,
        final_record: final_record.as_ref(),
    })?;
    let path = dir.path(REPORT_FILE);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}
