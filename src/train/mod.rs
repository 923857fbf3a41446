//! Training: the schedule, the optimizers, the divergence guard and the loop.

pub mod guard;
pub mod optim;
pub mod schedule;
