//! Judging a classifier: scoring images (`score`, via `frames`, or from the `features` cache),
//! predictions and the users' result block (`result`), confusion counts and the metrics derived
//! from them (`metrics`), the paired test that compares two models' answers (`stats`, `paired`),
//! and the race that stops pulling configs shown worse than the leader (`race`, measured on
//! simulated sweeps by `race_sim`).

pub mod features;
pub mod frames;
pub mod metrics;
pub mod paired;
pub mod race;
pub mod race_sim;
pub mod result;
pub mod score;
pub mod splits;
pub mod stats;

pub use metrics::{Confusion, Metric};
pub use splits::{Split, SplitConfusions};
