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
