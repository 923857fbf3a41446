//! Exporters: pure functions from finished trials to bytes (the leaderboard CSV, `configs.csv`,
//! terminal tables, a comparison of two sweeps, `report.html`). Writing the bytes is the caller's.

pub mod columns;
pub mod configs;
mod csv;
pub mod html;
mod plot;
pub mod table;

pub use self::configs::configs_csv;
pub use self::csv::leaderboard_csv;

use crate::spec::SweepSpec;
use crate::sweep::configs::ConfigSummary;
use crate::sweep::export::{Exporter, ReportInput};
use crate::sweep::record::TrialRecord;

/// The sweep's files as this module writes them.
pub struct Report;

impl Exporter for Report {
    fn leaderboard_csv(&self, ranked: &[&TrialRecord]) -> Vec<u8> {
        leaderboard_csv(ranked)
    }

    fn configs_csv(&self, spec: &SweepSpec, configs: &[ConfigSummary]) -> Vec<u8> {
        configs_csv(spec, configs)
    }

    fn report_html(&self, input: &ReportInput) -> anyhow::Result<String> {
        html::render(input)
    }
}
