//! Claims: how any number of workers (processes on one host, or on many hosts sharing the results
//! folder) share the trials of one spec with no coordinator.
//!
//! A worker runs a trial only while it holds the trial's claim, `claims/<id>`: a file made with an
//! exclusive create (`O_CREAT | O_EXCL`), so of two workers that try at once exactly one gets it.
//! It holds the worker (host, pid), a random token and the start time. A thread of the holder
//! refreshes the file's modification time every [`heartbeat_every`]; a claim not refreshed for
//! [`stale_after`] belongs to a dead worker (killed, its node lost) and is taken over: renamed
//! aside (of several takers, exactly one rename succeeds), checked to be the stale one and not a
//! fresh claim made meanwhile, then replaced by the taker's own.
//!
//! A holder whose claim was taken over (it was frozen longer than the stale period) or removed
//! learns so at its next heartbeat: [`Claim::is_lost`] turns true, the trial stops at the next step
//! and its result is not committed, so a trial is never recorded by two workers. A released or
//! lost claim leaves the trial folder as it is: a folder without `outcome.json` is unfinished and
//! the next holder starts it afresh.
//!
//! What the file system must give: atomic rename and exclusive create (every local file system,
//! NFSv3+ and the parallel cluster file systems do), and clocks that agree to well within the
//! stale period (NTP), since the age of a heartbeat is the reader's clock minus the mtime.
//!
//! Work beside the trials (the leaderboard, `best/`, the final model with its refits) is done
//! under [`ExportLock`], an OS lock (`flock`) held for as long as the work takes, so one worker
//! at a time does it; the OS drops it when its holder dies. The file system must support `flock`
//! across hosts where workers on several hosts share the folder (NFSv4 does). Its holder writes
//! who it is into the lock file and refreshes the file's modification time like a claim's
//! heartbeat; a worker waiting for it says so and gives up on a stop request or a holder gone
//! quiet (`lock_wait.rs`).
//!
//! A claim's age is the distance between the reader's clock and its modification time, either
//! way: a time in the future (a bad clock, a `touch`) ages it as much as one in the past.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::lock_wait::{acquire, LockMode};
pub use super::lock_wait::{heartbeat_every, stale_after, STALE_VAR};
use super::record::utc_timestamp;
use crate::fsutil::host_name;
use crate::spec::SweepSpec;

/// The claims folder inside a results folder.
pub const CLAIMS_DIR: &str = "claims";
/// The lock file of [`ExportLock`], in the claims folder.
const EXPORT_LOCK: &str = ".export-lock";

/// What a claim file holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClaimInfo {
    /// `host:pid`.
    pub worker: String,
    pub host: String,
    pub pid: u32,
    /// Random: tells this claim from a later one of the same worker.
    pub token: String,
    pub started_at: String,
}

impl ClaimInfo {
    fn new() -> ClaimInfo {
        let (host, pid) = (host_name(), std::process::id());
        ClaimInfo {
            worker: format!("{host}:{pid}"),
            host,
            pid,
            token: format!("{:016x}", rand::random::<u64>()),
            started_at: utc_timestamp(SystemTime::now()),
        }
    }
}

/// A claim file as another worker sees it.
#[derive(Debug, Clone)]
pub struct ClaimState {
    /// `None` when the file cannot be parsed (being written, or damaged).
    pub info: Option<ClaimInfo>,
    /// Time since its last heartbeat.
    pub age: Duration,
}

impl ClaimState {
    /// No heartbeat for `stale`, or its worker is a process of this host that has ended (as
    /// after SIGKILL: then it need not be waited for).
    pub fn is_stale(&self, stale: Duration) -> bool {
        let ended_here = self
            .info
            .as_ref()
            .is_some_and(|i| i.host == host_name() && i.pid != std::process::id() && !process_alive(i.pid));
        self.age > stale || ended_here
    }
}

/// The claims of one results folder.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
    /// Set by a stop request: a wait for the export lock gives up.
    stop: Arc<AtomicBool>,
}

/// What [`Claims::try_claim`] found.
pub enum ClaimAttempt {
    Claimed(Claim),
    /// A live worker holds it.
    Held(ClaimState),
}

impl Claims {
    /// The claims folder of the results folder `root` (created if needed).
    pub fn open(root: &Path) -> anyhow::Result<Claims> {
        let dir = root.join(CLAIMS_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Claims { dir, stop: Arc::default() })
    }

    /// The claims of `root` to read (`gacha status`); nothing is created.
    pub fn at(root: &Path) -> Claims {
        Claims { dir: root.join(CLAIMS_DIR), stop: Arc::default() }
    }

    /// These claims, with waits for the export lock ended by `stop` (a stop request).
    pub fn stopping_on(self, stop: Arc<AtomicBool>) -> Claims {
        Claims { stop, ..self }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The claim `name` (a trial id) as it is now, if any.
    pub fn state(&self, name: &str) -> anyhow::Result<Option<ClaimState>> {
        read_state(&self.path(name))
    }

    /// Take the claim `name`: create it, or take over a stale one.
    pub fn try_claim(&self, name: &str) -> anyhow::Result<ClaimAttempt> {
        let path = self.path(name);
        loop {
            let info = ClaimInfo::new();
            match create_claim(&path, &info) {
                Ok(()) => return Ok(ClaimAttempt::Claimed(Claim::hold(path, info))),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err).with_context(|| format!("{}: cannot create", path.display())),
            }
            let Some(state) = read_state(&path)? else { continue }; // released meanwhile
            if !state.is_stale(stale_after()) {
                return Ok(ClaimAttempt::Held(state));
            }
            match self.remove_stale(name, &info.token)? {
                Some(ClaimState { info: Some(old), .. }) => crate::logging::info!(
                    "taking over {name} from {} (claimed {}; no heartbeat since)",
                    old.worker,
                    old.started_at
                ),
                Some(_) => {}
                // Another worker took it over first, or it was refreshed: look again.
                None => match read_state(&path)? {
                    Some(state) if !state.is_stale(stale_after()) => return Ok(ClaimAttempt::Held(state)),
                    _ => continue,
                },
            }
        }
    }

    /// Remove the stale claim `name`: rename it aside (one renamer wins), and if what was renamed
    /// turns out to be fresh (a takeover by someone else happened in between), put it back.
    /// What was removed, if the stale claim is gone.
    fn remove_stale(&self, name: &str, token: &str) -> anyhow::Result<Option<ClaimState>> {
        let path = self.path(name);
        let aside = self.path(&format!(".{name}.taken-{token}"));
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot move {} aside", path.display())),
        }
        let taken = read_state(&aside)?;
        let fresh = taken.as_ref().is_some_and(|s| !s.is_stale(stale_after()));
        if fresh {
            // A fresh claim: give it back (a hard link fails rather than replace a newer one;
            // then its holder sees its claim gone and stops).
            let _ = std::fs::hard_link(&aside, &path);
        }
        std::fs::remove_file(&aside).with_context(|| format!("{}: cannot remove", aside.display()))?;
        Ok(if fresh { None } else { Some(taken.unwrap_or(ClaimState { info: None, age: Duration::ZERO })) })
    }

    /// Every claim here, by trial id.
    pub fn all(&self) -> anyhow::Result<Vec<(String, ClaimState)>> {
        let mut claims = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(claims),
            entries => entries.with_context(|| format!("{}: cannot list", self.dir.display()))?,
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(state) = read_state(&self.path(&name))? {
                claims.push((name, state));
            }
        }
        claims.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(claims)
    }

    /// Remove the claims left by dead workers on trials that are `finished` (a worker killed
    /// after recording its trial, before releasing it), and the claims a takeover moved aside
    /// and was killed before removing (`.<id>.taken-<token>`, stale); how many claims.
    pub fn clear_stale(&self, finished: impl Fn(&str) -> bool) -> anyhow::Result<usize> {
        let mut cleared = 0;
        for (name, state) in self.all()? {
            if finished(&name) && state.is_stale(stale_after()) {
                let token = format!("{:016x}", rand::random::<u64>());
                cleared += usize::from(self.remove_stale(&name, &token)?.is_some());
            }
        }
        for entry in
            std::fs::read_dir(&self.dir).with_context(|| format!("{}: cannot list", self.dir.display()))?
        {
            let path = entry?.path();
            let taken = path.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with('.') && n.to_string_lossy().contains(".taken-")
            });
            if taken && read_state(&path)?.is_some_and(|s| s.age > stale_after()) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(cleared)
    }

    /// Wait for (saying so: `lock_wait.rs`), then hold, the lock under which the files beside
    /// the trials are rebuilt.
    pub fn export_lock(&self) -> anyhow::Result<ExportLock> {
        let path = self.path(EXPORT_LOCK);
        let mut file = crate::fsutil::open_keeping(&path)?;
        acquire(&file, &path, LockMode::Exclusive, "the export lock", &self.stop)?;
        // Who holds it, for those who wait: written in place (nobody else writes it now).
        let holder = format!("{} since {}\n", ClaimInfo::new().worker, utc_timestamp(SystemTime::now()));
        let _ = file.set_len(0).and_then(|()| file.write_all(holder.as_bytes()));
        Ok(ExportLock { heartbeat: Heartbeat::start(path), _file: file })
    }
}

/// Held while a worker rebuilds the leaderboard, `best/` or the final model; its heartbeat
/// refreshes the lock file while it is held (a refit may take hours).
pub struct ExportLock {
    heartbeat: Heartbeat,
    _file: File,
}

impl Drop for ExportLock {
    fn drop(&mut self) {
        self.heartbeat.stop();
    }
}

/// A thread that sets a file's modification time to now every [`heartbeat_every`] until
/// stopped.
struct Heartbeat {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(path: PathBuf) -> Heartbeat {
        let (stop, stopped) = channel();
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(heartbeat_every()) {
                let _ = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
            }
        });
        Heartbeat { stop: Some(stop), thread: Some(thread) }
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A claim this worker holds, refreshed by a thread until it is dropped, which releases it.
pub struct Claim {
    path: PathBuf,
    info: ClaimInfo,
    lost: Arc<AtomicBool>,
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Claim {
    fn hold(path: PathBuf, info: ClaimInfo) -> Claim {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = channel();
        let (thread_path, token, thread_lost) = (path.clone(), info.token.clone(), lost.clone());
        let heartbeat = std::thread::spawn(move || loop {
            match stopped.recv_timeout(heartbeat_every()) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if !refresh(&thread_path, &token) {
                thread_lost.store(true, Ordering::SeqCst);
                return;
            }
        });
        Claim { path, info, lost, stop: Some(stop), heartbeat: Some(heartbeat) }
    }

    /// Whether another worker holds this claim now (it took it over) or it was removed.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst) || !self.is_ours()
    }

    /// Why the claim is lost, in words (once [`Claim::is_lost`]): removed, or taken over.
    pub fn why_lost(&self) -> String {
        match read_info(&self.path) {
            Some(info) => format!(
                "{} took it over (this worker went {:.0} s without a heartbeat)",
                info.worker,
                stale_after().as_secs_f64()
            ),
            None if !self.path.exists() => {
                format!("its claim {} was removed, not by this worker", self.path.display())
            }
            None => {
                format!("its claim {} was replaced by something that is not a claim", self.path.display())
            }
        }
    }

    /// The shared flag the heartbeat sets when the claim is lost.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    fn is_ours(&self) -> bool {
        read_info(&self.path).is_some_and(|info| info.token == self.info.token)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        if self.is_ours() {
            // Best effort: a claim left behind goes stale and is taken over.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether process `pid` of this host is running (true where `/proc` cannot tell).
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Write a new claim file; `AlreadyExists` when someone holds it.
fn create_claim(path: &Path, info: &ClaimInfo) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = file
        .write_all(&serde_json::to_vec_pretty(info).expect("a claim is strings"))
        .and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Refresh the heartbeat of the claim at `path` if it is still `token`'s; whether it was.
fn refresh(path: &Path, token: &str) -> bool {
    if read_info(path).is_none_or(|info| info.token != token) {
        return false;
    }
    let touched = OpenOptions::new().write(true).open(path).and_then(|f| f.set_modified(SystemTime::now()));
    touched.is_ok()
}

fn read_info(path: &Path) -> Option<ClaimInfo> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn read_state(path: &Path) -> anyhow::Result<Option<ClaimState>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("{}: cannot read", path.display())),
    };
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let age = match SystemTime::now().duration_since(modified) {
        Ok(age) => age,
        // A heartbeat in the future is no fresher than one as far in the past.
        Err(ahead) => ahead.duration(),
    };
    Ok(Some(ClaimState { info: read_info(path), age }))
}

/// `trial 3 (ID) is running in HOST:PID`, or for several, their numbers.
pub fn held_elsewhere(spec: &SweepSpec, held: &[(usize, ClaimState)]) -> String {
    match held {
        [(n, state)] => {
            let worker = state.info.as_ref().map_or("another worker", |i| i.worker.as_str());
            format!("trial {} ({}) is running in {worker}", n + 1, spec.trials[*n].id)
        }
        _ => {
            let numbers: Vec<String> = held.iter().map(|(n, _)| (n + 1).to_string()).collect();
            format!("{} trials are running in other workers: {}", held.len(), numbers.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::lock_wait::DEFAULT_STALE;

    fn claimed(attempt: ClaimAttempt) -> Claim {
        match attempt {
            ClaimAttempt::Claimed(claim) => claim,
            ClaimAttempt::Held(state) => panic!("held: {state:?}"),
        }
    }

    #[test]
    fn a_held_claim_is_refused_and_a_released_one_taken() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path()).unwrap();
        let first = claimed(claims.try_claim("a").unwrap());
        let ClaimAttempt::Held(state) = claims.try_claim("a").unwrap() else { panic!("claimed twice") };
        assert_eq!(state.info.unwrap().token, first.info.token);
        assert!(!first.is_lost());
        drop(first);
        assert!(claims.state("a").unwrap().is_none(), "dropping releases");
        claimed(claims.try_claim("a").unwrap());
    }

    #[test]
    fn a_stale_claim_is_taken_over_and_its_holder_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path()).unwrap();
        let old = claimed(claims.try_claim("a").unwrap());
        // Age it past the stale period (as a dead worker's would be).
        let past = SystemTime::now() - DEFAULT_STALE - Duration::from_secs(5);
        File::options().write(true).open(claims.path("a")).unwrap().set_modified(past).unwrap();
        let new = claimed(claims.try_claim("a").unwrap());
        assert!(old.is_lost(), "the old holder sees the takeover");
        assert!(!new.is_lost());
        drop(old); // does not remove the new holder's claim
        assert_eq!(read_info(&claims.path("a")).unwrap().token, new.info.token);
        let names: Vec<_> = std::fs::read_dir(&claims.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a")], "nothing left aside");
    }

    /// Issue 29, case 11: a heartbeat dated in the future (a bad clock, a `touch -d`) does not
    /// hold a trial for ever; it is as stale as one as far in the past.
    #[test]
    fn a_claim_dated_in_the_future_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path()).unwrap();
        let old = claimed(claims.try_claim("a").unwrap());
        let ahead = SystemTime::now() + DEFAULT_STALE + Duration::from_secs(3600);
        File::options().write(true).open(claims.path("a")).unwrap().set_modified(ahead).unwrap();
        claimed(claims.try_claim("a").unwrap());
        assert!(old.is_lost());
    }

    /// Issue 29, case 15: what a takeover killed midway leaves (`.<id>.taken-<token>`) is
    /// removed once stale, not kept for ever; a fresh one (a takeover under way) stays.
    #[test]
    fn a_stale_leftover_of_a_takeover_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path()).unwrap();
        let (stale, fresh) =
            (claims.path(".a.taken-00000000000000aa"), claims.path(".b.taken-00000000000000bb"));
        for path in [&stale, &fresh] {
            std::fs::write(path, "{}").unwrap();
        }
        let past = SystemTime::now() - DEFAULT_STALE - Duration::from_secs(5);
        File::options().write(true).open(&stale).unwrap().set_modified(past).unwrap();
        claims.clear_stale(|_| true).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn of_many_threads_racing_for_one_claim_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path()).unwrap();
        let won: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| match claims.try_claim("a").unwrap() {
                        ClaimAttempt::Claimed(claim) => {
                            std::mem::forget(claim); // keep it held
                            true
                        }
                        ClaimAttempt::Held(_) => false,
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|&&w| w).count(), 1, "{won:?}");
    }
}
