//! Judging a classifier: confusion counts and the metrics derived from them.

pub mod metrics;

pub use metrics::{Confusion, Metric};
