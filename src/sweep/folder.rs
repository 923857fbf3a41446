//! Taking a results folder for writing: the marker that says gacha made it (gacha writes into
//! no other folder), the lock that keeps a second sweep out, and the checks on what gacha would
//! replace (`best/`, `lock`). The lock is an OS file lock (`flock`) on the folder itself, so it
//! cannot be undone by deleting a file inside; `lock` only records the holder's pid, replaced by
//! rename and never written through a symbolic link.

use std::fs::{File, TryLockError};
use std::path::Path;

use anyhow::{bail, Context};

use super::layout::{
    remove_dir_if_present, ResultsDir, TrialPaths, BEST_DIR, FINAL_FILE, SPEC_FILE, TRIALS_DIR,
};
use crate::fsutil::write_atomic;

const LOCK_FILE: &str = "lock";
/// The marker of a results folder, with a line for whoever finds it.
const MARKER_FILE: &str = "gacha-results.txt";
const MARKER_TEXT: &str =
    "This folder is written by `gacha sweep`; gacha deletes and overwrites files here.\n";

/// A results folder this process writes to, locked against other processes for as long as it
/// lives. The OS drops the lock when the process dies, so a dead run's lock is simply taken.
#[derive(Debug)]
pub struct LockedResults {
    pub dir: ResultsDir,
    /// The folder itself, opened and locked (`flock`): no file inside can be deleted to undo it.
    _lock: File,
}

impl LockedResults {
    /// Create the folder if needed (refusing one gacha did not make) and take its lock; fails at
    /// once if another process holds it.
    pub fn open(root: &Path) -> anyhow::Result<LockedResults> {
        claim_folder(root)?;
        let lock = File::open(root).with_context(|| format!("{}: cannot open", root.display()))?;
        let lock_path = root.join(LOCK_FILE);
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_regular(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
                bail!(
                    "{} is in use by another gacha sweep{holder}; wait for it to finish, or pass \
                     --results DIR to write elsewhere",
                    root.display()
                );
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("{}: cannot lock", root.display()))
            }
        }
        refuse_symlink(&lock_path)?;
        write_atomic(&lock_path, std::process::id().to_string().as_bytes())?;
        remove_stale_temporaries(root)?;
        let dir = ResultsDir::new(root);
        refuse_foreign_best(&dir)?;
        Ok(LockedResults { dir, _lock: lock })
    }

    /// `paths`' folder emptied (an unfinished attempt's leftovers removed).
    pub fn fresh(&self, paths: TrialPaths) -> anyhow::Result<TrialPaths> {
        remove_dir_if_present(&paths.dir)?;
        std::fs::create_dir_all(&paths.dir)
            .with_context(|| format!("{}: cannot create", paths.dir.display()))?;
        Ok(paths)
    }
}

/// Make `root` a results folder of gacha's: create it with its marker and `trials/`, or check
/// that it is one (a folder with `spec.toml` and `trials/` from before the marker gets it).
fn claim_folder(root: &Path) -> anyhow::Result<()> {
    let marker = root.join(MARKER_FILE);
    let trials = root.join(TRIALS_DIR);
    if root.exists() && !root.is_dir() {
        bail!("{}: not a folder; pass --results DIR with a folder path", root.display());
    }
    if !marker.exists() {
        let legacy = root.join(SPEC_FILE).is_file() && trials.is_dir();
        let foreign = list_names(root)?;
        if !legacy && !foreign.is_empty() {
            let shown = foreign.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            bail!(
                "{}: not a gacha results folder (no {MARKER_FILE}) and not empty (holds {shown}{}); \
                 gacha writes only into a new or empty folder or one it made: pass --results with another path",
                root.display(),
                if foreign.len() > 3 { ", …" } else { "" }
            );
        }
        std::fs::create_dir_all(root)
            .with_context(|| format!("{}: cannot create the results folder", root.display()))?;
        refuse_symlink(&marker)?;
        write_atomic(&marker, MARKER_TEXT.as_bytes())?;
    }
    match std::fs::symlink_metadata(&trials) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            bail!("{}: not a folder (gacha keeps its trial folders there); move it away", trials.display())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&trials).with_context(|| format!("{}: cannot create", trials.display()))
        }
        Err(err) => Err(err).with_context(|| format!("{}: cannot read", trials.display())),
    }
}

/// The names in `dir`, sorted (none when it does not exist).
fn list_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries.with_context(|| format!("{}: cannot list", dir.display()))?,
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(
            entry
                .with_context(|| format!("{}: cannot list", dir.display()))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    Ok(names)
}

/// Refuse to go on when `path` is a symbolic link: gacha never writes through one.
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{}: is a symbolic link, and gacha writes this file itself; remove the link", path.display());
    }
    Ok(())
}

/// The text of `path` if it is a regular file (a symbolic link is not followed).
fn read_regular(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| std::fs::read_to_string(path).ok()).flatten()
}

/// Refuse a `best/` that gacha did not make: one with neither `outcome.json` (a trial's copy)
/// nor `final.json` (a soup or refit), since updating it would remove what is there.
fn refuse_foreign_best(dir: &ResultsDir) -> anyhow::Result<()> {
    let best = dir.path(BEST_DIR);
    let Ok(meta) = std::fs::symlink_metadata(&best) else { return Ok(()) };
    let ours = meta.is_dir() && (best.join("outcome.json").is_file() || best.join(FINAL_FILE).is_file());
    if !ours {
        bail!(
            "{}: not made by gacha (no outcome.json or {FINAL_FILE}), and gacha replaces best/; \
             move it away and run again",
            best.display()
        );
    }
    Ok(())
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
