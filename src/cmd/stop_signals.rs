//! SIGINT (Ctrl-C), SIGTERM (`kill`, `scancel`, Kubernetes) and SIGHUP (a closed terminal) ask a
//! run to stop after the current step (`sweep::stop::StopFlag`); the process then exits
//! [`Outcome::Interrupted`], whichever signal it was.

use super::Outcome;
use crate::sweep::stop::StopFlag;

/// A flag set by SIGINT, SIGTERM or SIGHUP. A second signal exits at once with
/// [`Outcome::Interrupted`]: the unfinished trial is redone on the next run either way. Call
/// once per process.
pub fn stop_flag() -> anyhow::Result<StopFlag> {
    let flag = StopFlag::default();
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if handler_flag.is_requested() {
            std::process::exit(i32::from(Outcome::Interrupted.code()));
        }
        handler_flag.request();
        crate::logging::warn!(
            "stopping after the current step (Ctrl-C or the same signal again to quit now)"
        );
    })?;
    Ok(flag)
}
