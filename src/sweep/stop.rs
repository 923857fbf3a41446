//! The stop request: Ctrl-C sets a flag that the runner reads after every step, so the sweep
//! ends after the current step and the interrupted trial is redone on the next run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once, read often, shared with the Ctrl-C handler.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

/// Exit status of a process ended by a second Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

impl StopFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A flag set by Ctrl-C (SIGINT). A second Ctrl-C exits at once: the unfinished
    /// trial is redone on the next run either way. Call once per process.
    pub fn on_ctrl_c() -> anyhow::Result<StopFlag> {
        let flag = StopFlag::default();
        let handler_flag = flag.clone();
        ctrlc::set_handler(move || {
            if handler_flag.is_requested() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            handler_flag.request();
            crate::warn!("stopping after the current step (Ctrl-C again to quit now)");
        })?;
        Ok(flag)
    }
}
