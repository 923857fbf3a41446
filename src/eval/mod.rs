//! Judging a classifier: scoring images (`score`, from the image features of `crate::features`),
//! predictions and the users' result block (`result`), confusion counts and the metrics derived
//! from them (`metrics`), exact binomial tails (`binomial`), the paired test that compares two
//! models' answers (`stats`), and the decision threshold certified for a precision target
//! (`operating_point`).

pub mod binomial;
pub mod metrics;
pub mod operating_point;
pub mod result;
pub mod score;
pub mod splits;
pub mod stats;
#[cfg(test)]
mod testing;

pub use metrics::{Confusion, Metric};
pub use splits::{Split, SplitConfusions};
