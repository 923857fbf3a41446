//! Judging a classifier: scoring images (`score`, from the image features of `crate::features`),
//! the logits kept beside each answer (`answer_logits`), predictions and the users' result block
//! (`result`), confusion counts and the metrics derived from them (`metrics`), exact binomial tails (`binomial`), the paired test that compares two
//! models' answers (`stats`, `paired`), the race that stops pulling configs shown worse than the
//! leader (`race`, measured on simulated sweeps by `race_sim`), and the decision threshold
//! certified for a precision target (`operating_point`).

pub mod answer_logits;
pub mod binomial;
pub mod metrics;
pub mod operating_point;
pub mod paired;
pub mod race;
pub mod race_sim;
pub mod result;
pub mod score;
pub mod splits;
pub mod stats;
#[cfg(test)]
mod testing;

pub use metrics::{Confusion, Metric};
pub use splits::{Split, SplitConfusions};
