//! Why a trial failed, and whether the next run retries it: a failure of the environment (no
//! space, an I/O error, out of memory, an interrupted call) says nothing about the trial and is
//! retried on the next run; any other failure (a bad input that the checks missed) would repeat,
//! so it stays failed unless `gacha sweep --retry-failed` asks for it again.

use std::collections::HashSet;
use std::time::SystemTime;

use super::layout::OutcomeFile;
use super::record::{utc_timestamp, FailureKind, Status, TrialOutcome};
use crate::spec::TrialId;

/// Which finished-but-failed trials a run redoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// Failures of the environment only (the default).
    EnvironmentFailures,
    /// Every failed trial (`--retry-failed`).
    AllFailures,
}

/// Phrases of environment errors that reach us as text (candle and CUDA wrap their causes
/// into strings), lower case.
const ENVIRONMENT_PHRASES: [&str; 6] = [
    "no space left on device",
    "disk quota exceeded",
    "out of memory",
    "cannot allocate memory",
    "input/output error",
    "interrupted system call",
];

/// EIO: the OS reports it as an uncategorised error kind.
const EIO: i32 = 5;

/// The kind of the error a trial failed with.
pub fn classify(err: &anyhow::Error) -> FailureKind {
    let io = err.chain().filter_map(|cause| cause.downcast_ref::<std::io::Error>());
    if io.into_iter().any(is_environment_io) {
        return FailureKind::Environment;
    }
    classify_message(&format!("{err:#}"))
}

/// The kind of an error known only by its message (an `outcome.json` from before kinds were
/// recorded).
pub fn classify_message(message: &str) -> FailureKind {
    let message = message.to_lowercase();
    if ENVIRONMENT_PHRASES.iter().any(|phrase| message.contains(phrase)) {
        FailureKind::Environment
    } else {
        FailureKind::Input
    }
}

fn is_environment_io(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        StorageFull
            | QuotaExceeded
            | OutOfMemory
            | Interrupted
            | TimedOut
            | ResourceBusy
            | ReadOnlyFilesystem
    ) || err.raw_os_error() == Some(EIO)
}

/// What an environment error is short of, in words: `space` (full disk, quota), `memory`, a
/// `read-only file system`, or `I/O` for the rest (issue 29, case 20: a read-only folder was
/// called "lack of space").
pub fn environment_cause(err: &anyhow::Error) -> &'static str {
    use std::io::ErrorKind::*;
    let io = err.chain().filter_map(|cause| cause.downcast_ref::<std::io::Error>());
    for err in io {
        match err.kind() {
            StorageFull | QuotaExceeded => return "no space left",
            OutOfMemory => return "out of memory",
            ReadOnlyFilesystem => return "a read-only file system",
            _ => {}
        }
    }
    let message = format!("{err:#}").to_lowercase();
    if message.contains("no space left") || message.contains("quota") {
        "no space left"
    } else if message.contains("memory") {
        "out of memory"
    } else if message.contains("read-only file system") {
        "a read-only file system"
    } else {
        "an I/O error"
    }
}

/// The failure kind of a failed outcome (recorded, or read from its message); `None` otherwise.
pub fn failure_kind(outcome: &TrialOutcome) -> Option<FailureKind> {
    (outcome.status == Status::Failed)
        .then(|| outcome.failure.unwrap_or_else(|| classify_message(outcome.error.as_deref().unwrap_or(""))))
}

/// Whether a run with `rerun` runs the trial of `outcome` again.
pub fn reruns(outcome: &TrialOutcome, rerun: Rerun) -> bool {
    match failure_kind(outcome) {
        Some(FailureKind::Environment) => true,
        Some(FailureKind::Input) => rerun == Rerun::AllFailures,
        None => false,
    }
}

/// Which finished trials this run leaves as they are: all but the failures it reruns, and of
/// those only the ones that failed before it started (a failure of this run, or of a worker
/// beside it since, is not rerun by it).
pub struct Settled {
    rerun: Rerun,
    /// When this run started (`utc_timestamp`: whole seconds).
    since: String,
    /// The trials this run ran.
    ran: HashSet<TrialId>,
}

impl Settled {
    /// For a run starting now.
    pub fn new(rerun: Rerun) -> Settled {
        Settled { rerun, since: utc_timestamp(SystemTime::now()), ran: HashSet::new() }
    }

    pub fn holds(&self, outcome: &TrialOutcome) -> bool {
        !reruns(outcome, self.rerun) || outcome.finished_at > self.since || self.ran.contains(&outcome.id)
    }

    /// Notes that this run ran `id` (its outcome is settled whatever it is).
    pub fn ran(&mut self, id: TrialId) {
        self.ran.insert(id);
    }

    pub fn holds_file(&self, file: &OutcomeFile) -> bool {
        matches!(file, OutcomeFile::Finished(outcome) if self.holds(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_full_disk_under_context_is_the_environment() {
        let err = Err::<(), _>(std::io::Error::from_raw_os_error(28))
            .context("weights/adapter.safetensors: cannot write")
            .context("trial 0123456789ab")
            .unwrap_err();
        assert_eq!(classify(&err), FailureKind::Environment);
        let eio = anyhow::Error::from(std::io::Error::from_raw_os_error(EIO));
        assert_eq!(classify(&eio), FailureKind::Environment);
    }

    #[test]
    fn the_cause_of_an_environment_error_is_named() {
        let error = |code: i32| {
            anyhow::Error::from(std::io::Error::from_raw_os_error(code)).context("w: cannot write")
        };
        // ENOSPC 28, EROFS 30, EIO 5 (Linux errno values).
        assert_eq!(environment_cause(&error(28)), "no space left");
        assert_eq!(environment_cause(&error(30)), "a read-only file system");
        assert_eq!(environment_cause(&error(EIO)), "an I/O error");
        assert_eq!(classify(&error(30)), FailureKind::Environment);
        let cuda = anyhow::anyhow!("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert_eq!(environment_cause(&cuda), "out of memory");
    }

    #[test]
    fn messages_of_wrapped_errors_are_classified() {
        let cuda = anyhow::anyhow!("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert_eq!(classify(&cuda), FailureKind::Environment);
        let missing = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("img/3.png: cannot read")
            .unwrap_err();
        assert_eq!(classify(&missing), FailureKind::Input);
        assert_eq!(
            classify_message("scripted failure at step 6: the prompt contains FAIL"),
            FailureKind::Input
        );
        assert_eq!(
            classify_message("w.safetensors: cannot write: No space left on device (os error 28)"),
            FailureKind::Environment
        );
    }
}
