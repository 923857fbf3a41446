//! Progress and log messages go to stderr; stdout carries only results (leaderboards, reports).
//!
//! The verbosity is the one piece of global state, set once from `-v`/`-q` in `main`. The macros
//! `info!`, `debug!` and `warn!` are used by path: `crate::logging::info!(…)`.

use std::sync::atomic::{AtomicU8, Ordering};

/// How much to say on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

pub fn init(level: Verbosity) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Verbosity) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// Print a progress/info line to stderr unless `-q` was given.
macro_rules! info {
    ($($arg:tt)*) => {{
        if $crate::logging::enabled($crate::logging::Verbosity::Normal) {
            eprintln!($($arg)*);
        }
    }};
}

/// Print a detail line to stderr only with `-v`.
macro_rules! debug {
    ($($arg:tt)*) => {{
        if $crate::logging::enabled($crate::logging::Verbosity::Verbose) {
            eprintln!($($arg)*);
        }
    }};
}

/// Print a warning to stderr (always, even with `-q`).
macro_rules! warning {
    ($($arg:tt)*) => {{
        eprintln!("gacha: warning: {}", format!($($arg)*));
    }};
}

pub(crate) use {debug, info, warning as warn};
