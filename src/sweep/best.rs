//! `best/` (a copy of the winning trial's folder) and the checkpoint budget (`keep`).
//!
//! `best/` is built beside the results as `.best.tmp/`, then swapped in with two renames; the
//! next export repairs the rare crash between them. Weight files are hard-linked when the file
//! system allows (they never change once written), else copied.

use std::path::Path;

use anyhow::Context;

use super::layout::{remove_dir_if_present, ResultsDir, TrialPaths, BEST_DIR};
use super::record::TrialRecord;

const BEST_TMP: &str = ".best.tmp";
const BEST_OLD: &str = ".best.old";

/// Make `best/` hold `winner`'s folder; remove it when there is no winner.
pub fn update_best(dir: &ResultsDir, winner: Option<&TrialRecord>) -> anyhow::Result<()> {
    let best = TrialPaths { dir: dir.path(BEST_DIR) };
    let (tmp, old) = (dir.path(BEST_TMP), dir.path(BEST_OLD));
    remove_dir_if_present(&tmp)?;
    let current = if best.dir.exists() { best.read_outcome()?.map(|o| o.id) } else { None };
    if current.as_ref() == winner.map(TrialRecord::id) && !old.exists() {
        return Ok(());
    }
    match winner {
        Some(winner) => {
            let source = dir.trial(winner.id());
            if !source.weights().exists() {
                crate::warn!(
                    "trial {} wins but its weights were removed (keep); best/ has its metrics only",
                    winner.id()
                );
            }
            copy_tree(&source.dir, &tmp)?;
            install_best(dir, &tmp)
        }
        None => {
            if best.dir.exists() {
                rename(&best.dir, &old)?;
            }
            remove_dir_if_present(&old)
        }
    }
}

/// Make the folder `built` (beside `best/`) the new `best/`, with two renames; the next export
/// repairs the rare crash between them.
pub fn install_best(dir: &ResultsDir, built: &Path) -> anyhow::Result<()> {
    let (best, old) = (dir.path(BEST_DIR), dir.path(BEST_OLD));
    remove_dir_if_present(&old)?;
    if best.exists() {
        rename(&best, &old)?;
    }
    rename(built, &best)?;
    remove_dir_if_present(&old)
}

/// Remove the weights of every trial ranked below the first `keep` trials that have weights.
pub fn prune_weights(dir: &ResultsDir, ranked: &[&TrialRecord], keep: Option<usize>) -> anyhow::Result<()> {
    let Some(keep) = keep else { return Ok(()) };
    for record in ranked.iter().filter(|r| r.outcome.has_weights()).skip(keep) {
        remove_dir_if_present(&dir.trial(record.id()).weights())?;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

/// Recreate `from` at `to`, hard-linking files (copying where links are not possible).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("{}: cannot create", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("{}: cannot list", from.display()))? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&source, &target)?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)
                .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::record::Status;
    use crate::sweep::test_records::record;

    /// A results folder with finished trials that have weights.
    fn results_with(records: &[&TrialRecord]) -> (tempfile::TempDir, ResultsDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ResultsDir::new(tmp.path());
        for r in records {
            let paths = dir.trial(r.id());
            std::fs::create_dir_all(paths.weights()).unwrap();
            std::fs::write(paths.weights().join("w.bin"), r.id().as_str()).unwrap();
            std::fs::write(paths.outcome(), serde_json::to_vec(&r.outcome).unwrap()).unwrap();
        }
        (tmp, dir)
    }

    fn best_id(dir: &ResultsDir) -> Option<String> {
        TrialPaths { dir: dir.path(BEST_DIR) }.read_outcome().unwrap().map(|o| o.id.to_string())
    }

    #[test]
    fn best_follows_the_winner_and_leaves_no_temporaries() {
        let a = record("aaaaaaaaaaaa", Status::Done, [3, 4, 1, 2], Some(0.1));
        let b = record("bbbbbbbbbbbb", Status::Done, [4, 4, 0, 2], Some(0.1));
        let (_tmp, dir) = results_with(&[&a, &b]);
        update_best(&dir, Some(&a)).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("aaaaaaaaaaaa"));
        update_best(&dir, Some(&b)).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("bbbbbbbbbbbb"));
        let weights = std::fs::read_to_string(dir.path(BEST_DIR).join("weights/w.bin")).unwrap();
        assert_eq!(weights, "bbbbbbbbbbbb");
        // A crash between the two renames leaves best/ absent and .best.old behind: repaired.
        std::fs::rename(dir.path(BEST_DIR), dir.path(BEST_OLD)).unwrap();
        update_best(&dir, Some(&b)).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("bbbbbbbbbbbb"));
        assert!(!dir.path(BEST_OLD).exists() && !dir.path(BEST_TMP).exists());
        update_best(&dir, None).unwrap();
        assert!(!dir.path(BEST_DIR).exists());
    }

    #[test]
    fn keep_removes_weights_below_the_budget_only() {
        let a = record("aaaaaaaaaaaa", Status::Done, [3, 4, 1, 2], Some(0.1));
        let b = record("bbbbbbbbbbbb", Status::Done, [4, 4, 0, 2], Some(0.1));
        let c = record("cccccccccccc", Status::Diverged, [0, 0, 0, 0], None);
        let (_tmp, dir) = results_with(&[&a, &b, &c]);
        let has_weights = |r: &TrialRecord| dir.trial(r.id()).weights().exists();
        prune_weights(&dir, &[&b, &c, &a], None).unwrap();
        assert!(has_weights(&a) && has_weights(&b));
        prune_weights(&dir, &[&b, &c, &a], Some(1)).unwrap();
        assert!(has_weights(&b) && !has_weights(&a));
        prune_weights(&dir, &[&b, &c, &a], Some(0)).unwrap();
        assert!(!has_weights(&b));
    }
}
