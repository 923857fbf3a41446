//! The stop request: a flag that the runner reads after every step, so the sweep ends after the
//! current step and the interrupted trial is left unfinished (redone on the next run, never
//! recorded failed). The command layer sets it from SIGINT, SIGTERM and SIGHUP
//! (`cmd::stop_signals`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once, read often, shared with the signal handler.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for the waits of a lower layer (`results::lock_wait`) to give up on.
    pub fn shared(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}
