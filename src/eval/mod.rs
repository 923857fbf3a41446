//! Judging a classifier: scoring images (`score`, from the image features of `crate::features`),
//! predictions and the users' result block (`result`), confusion counts and the metrics derived
//! from them (`metrics`), and the paired test that compares two models' answers (`stats`).

pub mod metrics;
pub mod result;
pub mod score;
pub mod splits;
pub mod stats;

pub use metrics::{Confusion, Metric};
pub use splits::{Split, SplitConfusions};
