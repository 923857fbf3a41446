//! Presentation: terminal tables (`table`, `configs`), a comparison of two sweeps, the sweep's
//! summary lines (`summary`) and `report.html` (`html`, `plot`): pure functions from finished
//! trials to text, and [`write_report`], which writes the page into a results folder. The CSV
//! files' bytes are the results folder's own (`results::csv`, `results::config_columns`).

pub mod configs;
pub mod html;
mod plot;
pub mod summary;
pub mod table;

use std::path::PathBuf;

use anyhow::Context;

use crate::fsutil::write_atomic;
use crate::results::judge::{self, ConfigSummary};
use crate::results::layout::{ResultsDir, REPORT_FILE};
use crate::results::race::read_standings;
use crate::results::rank::{rank, winner};
use crate::results::record::{FinalRecord, LossLine, TrialRecord};
use crate::spec::SweepSpec;

/// What the report page shows.
pub struct ReportInput<'a> {
    pub spec: &'a SweepSpec,
    /// Finished trials in leaderboard order.
    pub ranked: &'a [&'a TrialRecord],
    /// Each ranked trial's loss log (same order).
    pub losses: &'a [Vec<LossLine>],
    pub winner: Option<&'a TrialRecord>,
    /// The configs, ranked (`judge::summarize_configs`).
    pub configs: &'a [ConfigSummary],
    /// `best/final.json`, once the final model is made.
    pub final_record: Option<&'a FinalRecord>,
}

/// Write `report.html` from the finished trials.
pub fn write_report(dir: &ResultsDir, spec: &SweepSpec, records: &[TrialRecord]) -> anyhow::Result<PathBuf> {
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
                    crate::logging::warn!(
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
    let configs = judge::summarize_configs(records, spec, &read_standings(dir, spec)?);
    let final_record = dir.read_final()?;
    let html = html::render(&ReportInput {
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
