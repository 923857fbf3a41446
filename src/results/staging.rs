//! Building `best/` beside it and swapping it in (issue 29, cases 1, 5 and 15).
//!
//! A new `best/` is staged in `.best.new/` (a trial's copy) or `.final.tmp/` (a soup or a
//! refit): files are copied, never hard-linked, so nothing written into `best/` reaches a trial's
//! record, and a trial's weights are checked against its `weights.sha256` on the way. Last, the
//! staged folder's `files.sha256` lists every file in it. Then it is swapped with `best/` in one
//! step where the file system can (`fsutil::exchange`; else two renames through `.best.old/`),
//! and the folder it replaced is disposed of (`owned::dispose`): its listed files removed, the
//! rest (a user's `best/scores.csv`) moved to `set-aside/`.
//!
//! After a kill, [`tidy`] (under the export lock, before `best/` is next looked at) finishes the
//! job: a staged folder without its manifest was never complete and is removed (only gacha writes
//! there); one with it (complete, or the old `best/` just swapped out) is disposed of; a `best/`
//! missing between two renames is put back from `.best.old/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::layout::{remove_dir_if_present, ResultsDir, TrialPaths, BEST_DIR, TRIAL_FILES};
use super::manifest::{copy_checked, files_under, Manifest};
use super::owned::{dispose, legacy_listing, FOLDER_MANIFEST};
use crate::fsutil::exchange;

/// Where a trial's copy is staged.
pub const BEST_NEW: &str = ".best.new";
/// Where a soup or refit is staged.
pub const FINAL_NEW: &str = ".final.tmp";
/// Where `best/` waits between the two renames when the file system cannot swap in one step.
const BEST_OLD: &str = ".best.old";
/// What versions before manifests staged `best/` in (hard links into a trial): theirs alone.
const LEGACY_STAGING: &str = ".best.tmp";

/// A folder being built to become `best/`, with the files put in it so far.
pub struct Staged {
    pub dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl Staged {
    /// An empty staging folder `name` in the results folder (which must exist: a folder removed
    /// while a sweep runs is not made again here).
    pub fn new(results: &ResultsDir, name: &str) -> anyhow::Result<Staged> {
        tidy(results)?;
        let dir = results.path(name);
        std::fs::create_dir(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Staged { dir, files: BTreeMap::new() })
    }

    /// Copy what gacha wrote in the trial folder `source` (its named files and the weights its
    /// manifest lists, checked on the way; every file of `weights/` for a trial from before
    /// manifests).
    pub fn copy_trial(&mut self, source: &TrialPaths) -> anyhow::Result<()> {
        let listed = Manifest::read(&source.weights_manifest())?;
        let weights: Vec<(String, Option<String>)> = match &listed {
            Some(listed) => {
                listed.files.iter().map(|(rel, hash)| (rel.clone(), Some(hash.clone()))).collect()
            }
            None => files_under(&source.dir, &source.weights())?.into_iter().map(|rel| (rel, None)).collect(),
        };
        let named =
            TRIAL_FILES.iter().filter(|n| source.dir.join(n).is_file()).map(|n| (n.to_string(), None));
        for (rel, expected) in named.chain(weights) {
            let to = self.dir.join(&rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            let hash = copy_checked(&source.dir.join(&rel), &to, expected.as_deref()).with_context(|| {
                format!(
                    "copying {} to best/: move that trial folder away (or delete its outcome.json) and \
                     run the sweep again to train it anew",
                    source.dir.display()
                )
            })?;
            self.files.insert(rel, hash);
        }
        Ok(())
    }

    /// Count in the file `rel` written into the staging folder.
    pub fn add(&mut self, rel: &str) -> anyhow::Result<()> {
        let manifest = Manifest::of(&self.dir, [rel.to_string()])?;
        self.files.extend(manifest.files);
        Ok(())
    }

    /// Count in every file under `sub` (a folder written into the staging folder).
    pub fn add_all(&mut self, sub: &str) -> anyhow::Result<()> {
        for rel in files_under(&self.dir, &self.dir.join(sub))? {
            self.add(&rel)?;
        }
        Ok(())
    }

    /// Write the manifest, then make the folder `best/` (see the module doc).
    pub fn install(self, results: &ResultsDir) -> anyhow::Result<()> {
        Manifest { files: self.files, note: None }.write(&self.dir.join(FOLDER_MANIFEST))?;
        let best = results.path(BEST_DIR);
        if !best.exists() {
            return rename(&self.dir, &best);
        }
        adopt_legacy_best(&best)?;
        if exchange(&self.dir, &best)
            .with_context(|| format!("cannot swap {} and {}", self.dir.display(), best.display()))?
        {
            return dispose(results, &self.dir, BEST_DIR);
        }
        let old = results.path(BEST_OLD);
        rename(&best, &old)?;
        rename(&self.dir, &best)?;
        dispose(results, &old, BEST_DIR)
    }
}

/// Remove `best/` (no trial can win): moved to `.best.old/`, then disposed of.
pub fn retire_best(results: &ResultsDir) -> anyhow::Result<()> {
    tidy(results)?;
    let best = results.path(BEST_DIR);
    if !best.exists() {
        return Ok(());
    }
    adopt_legacy_best(&best)?;
    let old = results.path(BEST_OLD);
    rename(&best, &old)?;
    dispose(results, &old, BEST_DIR)
}

/// Finish what a killed swap left (see the module doc).
pub fn tidy(results: &ResultsDir) -> anyhow::Result<()> {
    let (best, old) = (results.path(BEST_DIR), results.path(BEST_OLD));
    if !best.exists() && old.exists() {
        rename(&old, &best)?;
    }
    dispose(results, &old, BEST_DIR)?;
    for name in [BEST_NEW, FINAL_NEW] {
        let staged = results.path(name);
        if staged.join(FOLDER_MANIFEST).is_file() {
            dispose(results, &staged, BEST_DIR)?;
        } else {
            remove_dir_if_present(&staged)?;
        }
    }
    remove_dir_if_present(&results.path(LEGACY_STAGING))
}

/// Give a `best/` from before manifests one, listing what gacha wrote there by name (and its
/// `weights/`, a copy gacha made), so that it is disposed of like any other.
fn adopt_legacy_best(best: &Path) -> anyhow::Result<()> {
    if best.join(FOLDER_MANIFEST).exists() {
        return Ok(());
    }
    legacy_listing(best)?.write(&best.join(FOLDER_MANIFEST))
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}
