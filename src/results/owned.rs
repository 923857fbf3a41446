//! What gacha owns in a results folder, and what it does with everything else (issue 29): it
//! removes or replaces only files it wrote, known by their names (`layout.rs` lists them) or by a
//! manifest (`manifest.rs`: the weights of a trial, every file of `best/`), and a listed file
//! only while it still holds what was listed. Anything else in a folder gacha must clear is left
//! where it is, or, where gacha must replace the folder, moved aside to
//! `set-aside/<what>-<time>/` with a message, never deleted.
//!
//! - Clearing a trial folder for a new run (unfinished, or a failure rerun): its named files and
//!   listed weights go; other files stay where they are (said); files in `weights/` that no
//!   manifest lists (a runner killed between saving and listing, or the user's) are moved aside,
//!   since the new run writes there.
//! - `keep`: a trial's listed weights go, its manifest says so; other files in `weights/` stay.
//! - A replaced `best/` (`best.rs`): its listed files go, anything else is moved aside.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

pub use super::layout::SET_ASIDE_DIR;
use super::layout::{names_in, ResultsDir, TrialPaths, TRIAL_FILES};
use super::manifest::{files_under, Manifest};
use super::record::utc_timestamp;

/// In `best/`: every file gacha put there.
pub const FOLDER_MANIFEST: &str = "files.sha256";
/// Most file names a message lists.
const LISTED: usize = 5;

/// A temporary of `fsutil::write_atomic` (`.NAME.tmp-HOST-PID`): gacha's by its name.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Empty a trial folder for a new run of the trial (see the module doc).
pub fn clear_trial(results: &ResultsDir, paths: &TrialPaths) -> anyhow::Result<()> {
    let weights = paths.weights();
    if weights.exists() {
        let listed = Manifest::read(&paths.weights_manifest())?.unwrap_or_default();
        remove_listed(&paths.dir, &listed)?;
        remove_temporaries(&weights)?;
        remove_empty_dirs(&weights)?;
        if weights.exists() {
            let left = files_under(&paths.dir, &weights)?;
            let to = set_aside(results, &weights, &format!("trial-{}", paths.id()))?;
            crate::logging::warn!(
                "{}: {} not listed in {} (the user's, or a run killed while saving): moved to {}",
                weights.display(),
                describe(&left),
                paths.weights_manifest().display(),
                to.display()
            );
        }
    }
    for name in TRIAL_FILES {
        remove_file_if_present(&paths.dir.join(name))?;
    }
    remove_temporaries(&paths.dir)?;
    let kept = names_in(&paths.dir)?;
    if !kept.is_empty() {
        crate::logging::info!(
            "{}: running the trial again beside {}, which gacha did not write (left as they are)",
            paths.dir.display(),
            describe(&kept)
        );
    }
    Ok(())
}

/// How removing a trial's weights (`keep`) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsRemoval {
    /// The listed weights are gone (other files in `weights/` stay).
    Removed,
    /// The trial predates weight manifests: nothing is known to be gacha's, nothing was removed.
    Unlisted,
}

/// Remove the weights a trial's manifest lists; the manifest then says they were removed.
pub fn remove_weights(paths: &TrialPaths) -> anyhow::Result<WeightsRemoval> {
    let Some(listed) = Manifest::read(&paths.weights_manifest())? else {
        return Ok(WeightsRemoval::Unlisted);
    };
    remove_listed(&paths.dir, &listed)?;
    let weights = paths.weights();
    remove_temporaries(&weights)?;
    remove_empty_dirs(&weights)?;
    let note = format!("weights removed by [select] keep at {}", utc_timestamp(SystemTime::now()));
    Manifest { files: Default::default(), note: Some(note) }.write(&paths.weights_manifest())?;
    if weights.exists() {
        crate::logging::info!(
            "keep: {} holds {} that gacha did not write; left there",
            weights.display(),
            describe(&files_under(&paths.dir, &weights)?)
        );
    }
    Ok(WeightsRemoval::Removed)
}

/// Get rid of `dir`, a folder gacha replaced (an earlier `best/`): its files listed in its
/// `files.sha256` that still hold what was listed are removed, anything else is moved to
/// `set-aside/<what>-<time>/` with a warning. A folder without a manifest (made before them)
/// counts the names gacha writes in it and its `weights/` as gacha's.
pub fn dispose(results: &ResultsDir, dir: &Path, what: &str) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let manifest_path = dir.join(FOLDER_MANIFEST);
    let listed = match Manifest::read(&manifest_path)? {
        Some(listed) => listed,
        None => legacy_listing(dir)?,
    };
    remove_listed(dir, &listed)?;
    remove_file_if_present(&manifest_path)?;
    remove_temporaries(dir)?;
    remove_empty_dirs(dir)?;
    if dir.exists() {
        let left = files_under(dir, dir)?;
        let to = set_aside(results, dir, what)?;
        crate::logging::warn!(
            "{}/ held {} that gacha did not write: moved to {} (gacha replaces {what}/ whole)",
            results.path(what).display(),
            describe(&left),
            to.display()
        );
    }
    Ok(())
}

/// What gacha wrote in a `best/` from before manifests: the names it writes there, and its
/// `weights/` (a copy gacha made).
pub fn legacy_listing(dir: &Path) -> anyhow::Result<Manifest> {
    let mut names: Vec<String> = files_under(dir, &dir.join("weights"))?;
    names.extend(TRIAL_FILES.iter().chain(&[super::layout::FINAL_FILE]).map(|n| n.to_string()));
    let present: Vec<String> = names.into_iter().filter(|n| dir.join(n).is_file()).collect();
    Manifest::of(dir, present)
}

/// Move `from` to `set-aside/<what>-<time>/` in the results folder; where it went.
fn set_aside(results: &ResultsDir, from: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let base = results.path(SET_ASIDE_DIR);
    std::fs::create_dir_all(&base).with_context(|| format!("{}: cannot create", base.display()))?;
    let to = free_name(&base, &format!("{what}-{}", utc_timestamp(SystemTime::now())));
    std::fs::rename(from, &to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    Ok(to)
}

/// `dir/name`, or `dir/name-2`, `-3`, … when taken.
pub fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut candidate = dir.join(name);
    let mut n = 2;
    while candidate.exists() {
        candidate = dir.join(format!("{name}-{n}"));
        n += 1;
    }
    candidate
}

/// Remove each file `listed` of `root` that still holds what was listed.
fn remove_listed(root: &Path, listed: &Manifest) -> anyhow::Result<()> {
    for rel in listed.files.keys() {
        if listed.holds(root, rel) {
            remove_file_if_present(&root.join(rel))?;
        }
    }
    Ok(())
}

fn remove_file_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("{}: cannot remove", path.display()))
        }
        _ => Ok(()),
    }
}

/// Remove the temporaries of `fsutil::write_atomic` directly in `dir`.
fn remove_temporaries(dir: &Path) -> anyhow::Result<()> {
    for name in names_in(dir)? {
        let path = dir.join(&name);
        if is_temporary(&name) && path.is_file() {
            remove_file_if_present(&path)?;
        }
    }
    Ok(())
}

/// Remove `dir` and the folders under it that hold nothing (no file anywhere below).
fn remove_empty_dirs(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(_) if std::fs::read_dir(dir).map(|mut e| e.next().is_some()).unwrap_or(true) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("{}: cannot remove", dir.display())),
    }
}

/// `a.txt, plots, …` (the first few of `names`).
fn describe(names: &[String]) -> String {
    let shown = names.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > LISTED => format!("{n} files ({shown}, …)"),
        1 => shown,
        n => format!("{n} files ({shown})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(root: &Path) -> (ResultsDir, TrialPaths) {
        let results = ResultsDir::new(root);
        let id = crate::spec::TrialId::parse("0123456789ab").unwrap();
        let paths = results.trial(&id);
        std::fs::create_dir_all(paths.weights()).unwrap();
        for name in ["config.toml", "split.json", "metrics.jsonl", "outcome.json"] {
            std::fs::write(paths.dir.join(name), name).unwrap();
        }
        std::fs::write(paths.weights().join("w.bin"), "weights").unwrap();
        Manifest::of(&paths.dir, ["weights/w.bin".to_string()])
            .unwrap()
            .write(&paths.weights_manifest())
            .unwrap();
        (results, paths)
    }

    #[test]
    fn clearing_a_trial_removes_only_its_own_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (results, paths) = trial(tmp.path());
        std::fs::write(paths.dir.join("user.txt"), "u").unwrap();
        std::fs::create_dir(paths.dir.join("plots")).unwrap();
        std::fs::write(paths.dir.join("plots/a.png"), "p").unwrap();
        clear_trial(&results, &paths).unwrap();
        assert_eq!(names_in(&paths.dir).unwrap(), ["plots", "user.txt"]);
        assert_eq!(std::fs::read_to_string(paths.dir.join("plots/a.png")).unwrap(), "p");

        // Unlisted files in weights/ are moved aside, not deleted.
        std::fs::create_dir(paths.weights()).unwrap();
        std::fs::write(paths.weights().join("stray.bin"), "s").unwrap();
        clear_trial(&results, &paths).unwrap();
        assert!(!paths.weights().exists());
        let aside = files_under(tmp.path(), &tmp.path().join(SET_ASIDE_DIR)).unwrap();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].starts_with("set-aside/trial-0123456789ab-") && aside[0].ends_with("/stray.bin"));
    }

    #[test]
    fn keep_removes_listed_weights_and_leaves_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, paths) = trial(tmp.path());
        std::fs::write(paths.weights().join("user-notes.txt"), "mine").unwrap();
        assert!(paths.has_weights());
        assert_eq!(remove_weights(&paths).unwrap(), WeightsRemoval::Removed);
        assert!(!paths.has_weights());
        assert_eq!(names_in(&paths.weights()).unwrap(), ["user-notes.txt"]);
        let manifest = Manifest::read(&paths.weights_manifest()).unwrap().unwrap();
        assert!(
            manifest.files.is_empty()
                && manifest.note.unwrap().starts_with("weights removed by [select] keep")
        );
    }

    #[test]
    fn a_replaced_folder_loses_its_listed_files_and_the_rest_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let results = ResultsDir::new(tmp.path());
        let old = tmp.path().join(".best.old");
        std::fs::create_dir_all(old.join("weights")).unwrap();
        std::fs::write(old.join("weights/w.bin"), "w").unwrap();
        std::fs::write(old.join("config.toml"), "c").unwrap();
        Manifest::of(&old, ["weights/w.bin".into(), "config.toml".into()])
            .unwrap()
            .write(&old.join(FOLDER_MANIFEST))
            .unwrap();
        // The user's file, and a listed file the user rewrote in place.
        std::fs::write(old.join("scores.csv"), "s").unwrap();
        std::fs::write(old.join("config.toml"), "edited").unwrap();
        dispose(&results, &old, "best").unwrap();
        assert!(!old.exists());
        let aside = files_under(tmp.path(), &tmp.path().join(SET_ASIDE_DIR)).unwrap();
        let names: Vec<&str> = aside.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["config.toml", "scores.csv"], "{aside:?}");
    }
}
