//! Exporters: pure functions from finished trials to bytes (the leaderboard CSV, a terminal
//! table, a comparison of two sweeps, `report.html`). Writing the bytes is the caller's.

pub mod columns;
mod csv;
pub mod html;
mod plot;
pub mod table;

pub use self::csv::leaderboard_csv;
