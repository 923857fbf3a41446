//! The results folder and its lock.
//!
//! ```text
//! results/<name>/
//!   spec.toml            the spec of the latest run, byte for byte
//!   lock                 held (OS file lock) while a sweep writes here; holds its pid
//!   leaderboard.csv      rebuilt from the trial folders after every trial
//!   configs.csv          one row per config (its pulls pooled, ranked), rebuilt with it
//!   report.html          written at the end of a run
//!   best/                the final model: a copy of the winning trial's folder (weights
//!                        hard-linked), or a soup of the winning config's pulls or refits;
//!                        final.json says which, and its test scores
//!   refit/<id>/          final = "refit": the winning config trained on every non-test image
//!                        (the same files as a trial folder)
//!   trials/<id>/
//!     config.toml        the resolved parameters
//!     split.json         which images were train and which valid
//!     metrics.jsonl      every logged step of every attempt
//!     weights/           the trained weights (removed for trials outside `keep`)
//!     outcome.json       written last, atomically: present = finished
//! ```
//! A trial folder without `outcome.json` is unfinished (the process died) and is wiped before
//! the trial runs again.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::record::{FinalRecord, TrialOutcome, TrialRecord};
use crate::spec::{SweepSpec, TrialId};

pub const SPEC_FILE: &str = "spec.toml";
pub const LEADERBOARD_FILE: &str = "leaderboard.csv";
pub const CONFIGS_FILE: &str = "configs.csv";
pub const REPORT_FILE: &str = "report.html";
const LOCK_FILE: &str = "lock";
const TRIALS_DIR: &str = "trials";
const REFIT_DIR: &str = "refit";
pub const BEST_DIR: &str = "best";
/// In `best/`: what the final model is and its test counts (`FinalRecord`).
pub const FINAL_FILE: &str = "final.json";

/// The files of one trial.
#[derive(Debug, Clone)]
pub struct TrialPaths {
    pub dir: PathBuf,
}

impl TrialPaths {
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn split(&self) -> PathBuf {
        self.dir.join("split.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn weights(&self) -> PathBuf {
        self.dir.join("weights")
    }
    pub fn outcome(&self) -> PathBuf {
        self.dir.join("outcome.json")
    }

    /// The outcome, or `None` when the trial has not finished.
    pub fn read_outcome(&self) -> anyhow::Result<Option<TrialOutcome>> {
        read_json_if_present(&self.outcome(), "a trial outcome")
    }
}

/// A JSON file as `T`, or `None` when there is no such file; `what` names `T` in errors.
fn read_json_if_present<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> anyhow::Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("{}: cannot read", path.display())),
    };
    let value = serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))?;
    Ok(Some(value))
}

/// A results folder, read-only: what `gacha leaderboard` and `gacha report` look at.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    pub root: PathBuf,
}

impl ResultsDir {
    pub fn new(root: &Path) -> ResultsDir {
        ResultsDir { root: root.to_path_buf() }
    }

    pub fn trial(&self, id: &TrialId) -> TrialPaths {
        TrialPaths { dir: self.root.join(TRIALS_DIR).join(id.as_str()) }
    }

    /// The folder of a refit run of the final model.
    pub fn refit(&self, id: &TrialId) -> TrialPaths {
        TrialPaths { dir: self.root.join(REFIT_DIR).join(id.as_str()) }
    }

    /// `path` relative to the results folder, for records that must survive moving it.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// The spec copy the last run left here (its paths are not checked: they were relative to
    /// the original spec's folder).
    pub fn read_spec(&self) -> anyhow::Result<SweepSpec> {
        let path = self.path(SPEC_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{}: cannot read (is {} a results folder?)", path.display(), self.root.display())
        })?;
        Ok(crate::spec::parse_spec(&text, &path)?)
    }

    /// `best/final.json`, or `None` before the final model is made.
    pub fn read_final(&self) -> anyhow::Result<Option<FinalRecord>> {
        read_json_if_present(&self.path(BEST_DIR).join(FINAL_FILE), "a final-model record")
    }

    /// Every finished trial of `spec`, in spec order.
    pub fn read_records(&self, spec: &SweepSpec) -> anyhow::Result<Vec<TrialRecord>> {
        let mut records = Vec::new();
        for trial in &spec.trials {
            if let Some(outcome) = self.trial(&trial.id).read_outcome()? {
                records.push(TrialRecord {
                    params: trial.params.clone(),
                    config: trial.config.clone(),
                    outcome,
                });
            }
        }
        Ok(records)
    }

    /// Trial folders that the spec does not name (left by an earlier version of the spec).
    pub fn unlisted_trials(&self, spec: &SweepSpec) -> anyhow::Result<Vec<String>> {
        let dir = self.root.join(TRIALS_DIR);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if TrialId::parse(&name).is_some_and(|id| spec.trial(&id).is_none()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// A results folder this process writes to, locked against other processes for as long as it
/// lives. The OS drops the lock when the process dies, so a dead run's lock is simply taken.
#[derive(Debug)]
pub struct LockedResults {
    pub dir: ResultsDir,
    _lock: File,
}

impl LockedResults {
    /// Create the folder if needed and take its lock; fails at once if another process holds it.
    pub fn open(root: &Path) -> anyhow::Result<LockedResults> {
        std::fs::create_dir_all(root.join(TRIALS_DIR))
            .with_context(|| format!("{}: cannot create the results folder", root.display()))?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("{}: cannot open", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
                bail!(
                    "{} is in use by another gacha sweep{holder}; wait for it to finish, or pass \
                     --results DIR to write elsewhere",
                    root.display()
                );
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("{}: cannot lock", lock_path.display()))
            }
        }
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        lock.sync_all()?;
        remove_stale_temporaries(root)?;
        Ok(LockedResults { dir: ResultsDir::new(root), _lock: lock })
    }

    /// `paths`' folder emptied (an unfinished attempt's leftovers removed).
    pub fn fresh(&self, paths: TrialPaths) -> anyhow::Result<TrialPaths> {
        remove_dir_if_present(&paths.dir)?;
        std::fs::create_dir_all(&paths.dir)
            .with_context(|| format!("{}: cannot create", paths.dir.display()))?;
        Ok(paths)
    }
}

/// Remove the temporary files (`.NAME.tmp-PID`, see `fsutil::write_atomic`) of a process that
/// died while writing here; safe because the caller holds the lock.
fn remove_stale_temporaries(root: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(root).with_context(|| format!("{}: cannot list", root.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("{}: cannot remove", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `remove_dir_all`, quiet when the folder is already gone.
pub fn remove_dir_if_present(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("{}: cannot remove", dir.display()))
        }
        _ => Ok(()),
    }
}
