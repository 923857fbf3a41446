//! One file per subcommand: turn parsed arguments into typed options, call the library, print.

pub mod check;
pub mod demo_data;
pub mod split;
