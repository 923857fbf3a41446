//! The stop request: SIGINT (Ctrl-C), SIGTERM (`kill`, `scancel`, Kubernetes) and SIGHUP (a
//! closed terminal) set a flag that the runner reads after every step, so the sweep ends after
//! the current step and the interrupted trial is left unfinished (redone on the next run, never
//! recorded failed). The process then exits [`EXIT_INTERRUPTED`], whichever signal it was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once, read often, shared with the signal handler.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

/// Exit status of a run stopped by SIGINT, SIGTERM or SIGHUP (128 + SIGINT, as shells report
/// Ctrl-C): "stopped on request; the same command resumes".
pub const EXIT_INTERRUPTED: u8 = 130;

impl StopFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A flag set by SIGINT, SIGTERM or SIGHUP. A second signal exits at once with
    /// [`EXIT_INTERRUPTED`]: the unfinished trial is redone on the next run either way. Call
    /// once per process.
    pub fn on_stop_signals() -> anyhow::Result<StopFlag> {
        let flag = StopFlag::default();
        let handler_flag = flag.clone();
        ctrlc::set_handler(move || {
            if handler_flag.is_requested() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            handler_flag.request();
            crate::warn!("stopping after the current step (Ctrl-C or the same signal again to quit now)");
        })?;
        Ok(flag)
    }
}
