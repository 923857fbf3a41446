//! Waiting on a lock of the results folder (an OS `flock`) the way every wait of gacha's goes
//! (issue 29, case 11): after a second it says what it waits for and who holds it; it gives up
//! when the stop flag is set (Ctrl-C, SIGTERM: the caller exits 130), and once it has waited
//! [`stale_after`] while the holder's heartbeat (the lock file's modification time, which
//! a gacha holder refreshes: see `claim::ExportLock`) is older than that too: a holder stopped with
//! Ctrl-Z, frozen, or a process that is not gacha's. The error then names the holder.
//!
//! Who holds it: on Linux, the processes `/proc/locks` lists on the lock file (this host's
//! only), with their command and whether they are stopped; else what the last gacha holder wrote
//! into the file (`host:pid since …`).

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Environment variable: seconds without a heartbeat after which a claim is stale.
pub const STALE_VAR: &str = "GACHA_CLAIM_STALE_SECS";
/// The default stale period.
pub const DEFAULT_STALE: Duration = Duration::from_secs(120);
/// How long a wait goes before it says so.
const SAY_AFTER: Duration = Duration::from_secs(1);
/// The longest pause between two tries.
const MOST_PAUSE: Duration = Duration::from_millis(250);

/// How long a claim may go without a heartbeat before it is taken over: `GACHA_CLAIM_STALE_SECS`
/// or 120 s.
pub fn stale_after() -> Duration {
    std::env::var(STALE_VAR)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_STALE, Duration::from_secs_f64)
}

/// How often a holder refreshes its claim: a sixth of the stale period, so that five missed
/// heartbeats in a row are still not stale.
pub fn heartbeat_every() -> Duration {
    stale_after() / 6
}

/// Whether a lock is taken by one holder or shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// A wait on a lock ended by a stop request: the command exits as interrupted.
#[derive(Debug, thiserror::Error)]
#[error("stopped while waiting for {what} ({path})")]
pub struct StoppedWaiting {
    pub what: String,
    pub path: String,
}

/// Take the lock on `file` (at `path`; `what` names it in messages) in `mode`, waiting as the
/// module doc says.
pub fn acquire(
    file: &File,
    path: &Path,
    mode: LockMode,
    what: &str,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut said = false;
    loop {
        let tried = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) => {
                return Err(anyhow::Error::new(err).context(format!("{}: cannot lock", path.display())));
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Err(StoppedWaiting { what: what.to_string(), path: path.display().to_string() }.into());
        }
        let waited = started.elapsed();
        if waited >= SAY_AFTER && !said {
            said = true;
            crate::logging::warn!("waiting for {what} ({}), held by {}", path.display(), holder(path));
        }
        let quiet = heartbeat_age(path);
        if waited >= stale_after() && quiet >= stale_after() {
            anyhow::bail!(
                "{what} ({}) is held by {}, which has not refreshed it for {:.0} s: it is stopped (Ctrl-Z), \
                 frozen or not gacha; resume or end it, then run again",
                path.display(),
                holder(path),
                quiet.as_secs_f64()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MOST_PAUSE);
    }
}

/// Time since the lock file was last refreshed (its modification time; a time in the future
/// counts as far off as it is).
fn heartbeat_age(path: &Path) -> Duration {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    match SystemTime::now().duration_since(modified) {
        Ok(age) => age,
        Err(ahead) => ahead.duration(),
    }
}

/// Who holds the lock on `path`, in words.
pub fn holder(path: &Path) -> String {
    let local = local_holders(path);
    if !local.is_empty() {
        return local.iter().map(|&pid| describe_process(pid)).collect::<Vec<_>>().join(", ");
    }
    match std::fs::read_to_string(path).map(|t| t.trim().to_string()) {
        Ok(text) if !text.is_empty() => text,
        _ => "a process of another host (or one that does not say)".to_string(),
    }
}

/// The pids of this host's processes `/proc/locks` lists as holding a lock on `path`.
#[cfg(target_os = "linux")]
fn local_holders(path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Ok(locks)) = (std::fs::metadata(path), std::fs::read_to_string("/proc/locks")) else {
        return Vec::new();
    };
    // `1: FLOCK  ADVISORY  WRITE 1234 fe:00:5308882 0 EOF`; waiters' lines have `->` after the
    // number. The device is major:minor in hex, the inode in decimal.
    let file = format!("{:02x}:{:02x}:{}", libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino());
    let mut pids: Vec<u32> = locks
        .lines()
        .filter(|line| !line.contains("->"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(5) == Some(&file.as_str())).then(|| fields.get(4)?.parse().ok()).flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(not(target_os = "linux"))]
fn local_holders(_: &Path) -> Vec<u32> {
    Vec::new()
}

/// `process 1234 (gacha)`, with `, stopped` when it is (state T in `/proc/PID/stat`).
fn describe_process(pid: u32) -> String {
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command's closing parenthesis.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    let stopped = if matches!(state, Some('T' | 't')) { ", stopped (kill -CONT to resume it)" } else { "" };
    match command {
        Ok(command) => format!("process {pid} ({command}) on this host{stopped}"),
        Err(_) => format!("process {pid} on this host{stopped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_waited_for_until_stopped_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = File::create(&path).unwrap();
        held.lock().unwrap();
        let waiter = File::options().write(true).open(&path).unwrap();
        let stop = AtomicBool::new(true);
        let err = acquire(&waiter, &path, LockMode::Exclusive, "the test lock", &stop).unwrap_err();
        assert!(err.downcast_ref::<StoppedWaiting>().is_some(), "{err:#}");
        #[cfg(target_os = "linux")]
        assert!(holder(&path).starts_with(&format!("process {} (", std::process::id())), "{}", holder(&path));
        drop(held);
        acquire(&waiter, &path, LockMode::Exclusive, "the test lock", &AtomicBool::new(false)).unwrap();
    }
}
