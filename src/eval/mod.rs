//! Judging a classifier: confusion counts and the metrics derived from them.

pub mod metrics;
pub mod splits;

pub use metrics::{Confusion, Metric};
pub use splits::{Split, SplitConfusions};
