//! `best/` (a copy of the winning trial's folder) and the checkpoint budget (`keep`).
//!
//! `best/` is staged beside the results and swapped in (`staging.rs`): a copy, never hard
//! links into the trial, with its own manifest; what it replaces is disposed of, a user's files
//! in it moved aside, never deleted (`owned.rs`).
//!
//! `keep = K` counts configs: every pull of the best K configs (`configs.csv` order, counting
//! only configs with a done pull) keeps its weights, since a soup averages all of them, and so
//! does the leaderboard's top trial; the other trials' weights (the files their `weights.sha256`
//! lists, nothing else) are removed. Nothing is removed
//! until every trial of the spec has finished: before that a config's rank can still change, and
//! weights removed early would be missing from the config that wins in the end (and a resumed
//! sweep would remove different ones than an uninterrupted run). Weights that the `keep` of an
//! earlier spec of the folder kept (`kept.json`) are not removed without `--prune`: an
//! exploratory edit of the spec must not cost the weights of the original's top configs.

use std::collections::{BTreeSet, HashSet};

use anyhow::Context;

use super::judge::ConfigSummary;
use super::layout::{OutcomeFile, ResultsDir, TrialPaths, BEST_DIR};
use super::owned::{remove_weights, WeightsRemoval};
use super::record::TrialRecord;
use super::staging::{retire_best, tidy, Staged, BEST_NEW};
use crate::fsutil::write_atomic;
use crate::spec::{ConfigId, SweepSpec};

/// The trials whose weights `keep` kept in some run (see `prune_weights`).
const KEPT_FILE: &str = "kept.json";

/// Make `best/` hold `winner`'s folder; remove it when there is no winner.
pub fn update_best(dir: &ResultsDir, winner: Option<&TrialRecord>) -> anyhow::Result<()> {
    tidy(dir)?;
    // A damaged copy counts as none: it is rebuilt from the trial folder.
    let current = match (TrialPaths { dir: dir.path(BEST_DIR) }).read_outcome_file()? {
        OutcomeFile::Finished(outcome) => Some(outcome.id),
        OutcomeFile::Unfinished | OutcomeFile::Damaged(_) => None,
    };
    if current.as_ref() == winner.map(TrialRecord::id) {
        return Ok(());
    }
    let Some(winner) = winner else { return retire_best(dir) };
    let source = dir.trial(winner.id());
    if !source.has_weights() {
        crate::logging::warn!(
            "trial {} wins but its folder has no weights (removed by [select] keep, or by hand); best/ has its metrics only",
            winner.id()
        );
    }
    let mut staged = Staged::new(dir, BEST_NEW)?;
    staged.copy_trial(&source)?;
    staged.install(dir)
}

/// Whether `keep` may remove weights that an earlier spec of the folder kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Spare them and say which (the default).
    SpareEarlierPicks,
    /// Remove them too (`gacha sweep --prune`).
    EarlierPicksToo,
}

/// Apply `[select] keep` (see the module doc) once `ranked` holds every trial of `spec`.
pub fn prune_weights(
    dir: &ResultsDir,
    spec: &SweepSpec,
    ranked: &[&TrialRecord],
    configs: &[ConfigSummary],
    prune: Prune,
) -> anyhow::Result<()> {
    let Some(keep) = spec.select.keep else { return Ok(()) };
    if ranked.len() < spec.trials.len() {
        return Ok(());
    }
    let kept: HashSet<&ConfigId> = configs.iter().filter(|c| c.done > 0).take(keep).map(|c| &c.id).collect();
    let with_weights =
        || ranked.iter().filter(|r| r.outcome.has_weights() && dir.trial(r.id()).has_weights());
    let top = with_weights().next().map(|r| r.id());
    let mut history = read_kept(dir)?;
    let (mut spared, mut unlisted) = (Vec::new(), Vec::new());
    for record in with_weights() {
        let id = record.id().as_str();
        if Some(record.id()) == top || kept.contains(&record.config) {
            history.insert(id.to_string());
        } else if history.contains(id) && prune == Prune::SpareEarlierPicks {
            spared.push(id);
        } else {
            match remove_weights(&dir.trial(record.id()))? {
                WeightsRemoval::Removed => {
                    history.remove(id);
                }
                WeightsRemoval::Unlisted => unlisted.push(id),
            }
        }
    }
    if !unlisted.is_empty() {
        crate::logging::info!(
            "keep: {} trial(s) finished before gacha listed weights (no weights.sha256) keep theirs, \
             since gacha cannot tell its files from others there ({}); remove their weights/ by hand",
            unlisted.len(),
            unlisted.join(" ")
        );
    }
    if !spared.is_empty() {
        crate::logging::info!(
            "keep: not removing the weights of {} trial(s) that an earlier spec of this folder kept \
             ({}); gacha sweep --prune removes them",
            spared.len(),
            spared.join(" ")
        );
    }
    write_kept(dir, &history)
}

/// `kept.json`: the trials whose weights some run's `keep` kept, sorted.
fn read_kept(dir: &ResultsDir) -> anyhow::Result<BTreeSet<String>> {
    let path = dir.path(KEPT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a list of trial ids", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(err) => Err(err).with_context(|| format!("{}: cannot read", path.display())),
    }
}

fn write_kept(dir: &ResultsDir, kept: &BTreeSet<String>) -> anyhow::Result<()> {
    if read_kept(dir)? == *kept {
        return Ok(());
    }
    write_atomic(&dir.path(KEPT_FILE), &serde_json::to_vec_pretty(kept)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::record::Status;
    use crate::results::test_records::{pull, record, write_trial_folder};

    /// A results folder with finished trials that have weights.
    fn results_with(records: &[&TrialRecord]) -> (tempfile::TempDir, ResultsDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ResultsDir::new(tmp.path());
        for r in records {
            write_trial_folder(&dir, r);
        }
        (tmp, dir)
    }

    fn best_id(dir: &ResultsDir) -> Option<String> {
        TrialPaths { dir: dir.path(BEST_DIR) }.read_outcome().unwrap().map(|o| o.id.to_string())
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn best_follows_the_winner_and_leaves_no_temporaries() {
        let a = record("aaaaaaaaaaaa", Status::Done, [3, 4, 1, 2], Some(0.1));
        let b = record("bbbbbbbbbbbb", Status::Done, [4, 4, 0, 2], Some(0.1));
        let (tmp, dir) = results_with(&[&a, &b]);
        update_best(&dir, Some(&a)).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("aaaaaaaaaaaa"));
        update_best(&dir, Some(&b)).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("bbbbbbbbbbbb"));
        let weights = std::fs::read_to_string(dir.path(BEST_DIR).join("weights/w.bin")).unwrap();
        assert_eq!(weights, "bbbbbbbbbbbb");
        // A copy, not links: writing into best/ leaves the trial's record as it was.
        std::fs::write(dir.path(BEST_DIR).join("weights/w.bin"), "edited").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.trial(b.id()).weights().join("w.bin")).unwrap(),
            "bbbbbbbbbbbb"
        );
        assert_eq!(names(tmp.path()), ["best", "trials"]);
        update_best(&dir, None).unwrap();
        assert!(!dir.path(BEST_DIR).exists());
        // The edited file was not gacha's any more: set aside, not deleted.
        assert_eq!(names(tmp.path()), ["set-aside", "trials"]);
    }

    /// Issue 29, case 12: a results folder removed while the sweep runs (`rm -rf R`) is not
    /// made again around a `best/` (a rerun would find gacha's leftovers without the marker).
    #[test]
    fn best_is_not_made_in_a_removed_results_folder() {
        let a = record("aaaaaaaaaaaa", Status::Done, [3, 4, 1, 2], Some(0.1));
        let (tmp, dir) = results_with(&[&a]);
        std::fs::remove_dir_all(tmp.path()).unwrap();
        assert!(update_best(&dir, Some(&a)).is_err());
        assert!(!tmp.path().exists());
    }

    #[test]
    fn a_kill_between_the_two_renames_is_repaired_before_best_is_next_read() {
        let a = record("aaaaaaaaaaaa", Status::Done, [3, 4, 1, 2], Some(0.1));
        let (tmp, dir) = results_with(&[&a]);
        update_best(&dir, Some(&a)).unwrap();
        // What a file system without a one-step swap leaves when killed between its renames.
        std::fs::rename(dir.path(BEST_DIR), tmp.path().join(".best.old")).unwrap();
        tidy(&dir).unwrap();
        assert_eq!(best_id(&dir).as_deref(), Some("aaaaaaaaaaaa"));
        assert_eq!(names(tmp.path()), ["best", "trials"]);
    }

    #[test]
    fn keep_counts_configs_and_waits_for_the_last_trial() {
        let text = "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
                    [train]\nsteps = 4\n[sweep]\nseeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.1, 1.0]\n";
        let mut spec = crate::spec::parse_spec(text, std::path::Path::new("s.toml")).unwrap();
        let trial = |seed: u64, lr: f64| {
            let found =
                spec.trials.iter().find(|t| t.params.seed == seed && t.params.train.learning_rate == lr);
            found.unwrap().clone()
        };
        // Config lr 0.01 pools 4/4 and ranks first; lr 0.1 pools 4/5 but has the top trial (3/3);
        // lr 1.0 pools 1/3 (its second pull diverged and has no weights).
        let records = vec![
            pull(&trial(1, 0.01), Status::Done, &["yy", "yy", "nn", "nn"], Some(0.1)),
            pull(&trial(2, 0.01), Status::Done, &["yy", "yy", "nn", "nn"], Some(0.1)),
            pull(&trial(1, 0.1), Status::Done, &["yy", "yy", "yy", "nn"], Some(0.1)),
            pull(&trial(2, 0.1), Status::Done, &["yy", "ny", "nn", "nn"], Some(0.1)),
            pull(&trial(1, 1.0), Status::Done, &["yy", "nn", "nn", "nn"], Some(0.1)),
            pull(&trial(2, 1.0), Status::Diverged, &["yn", "yn", "nn", "nn"], None),
        ];
        let done: Vec<&TrialRecord> = records.iter().filter(|r| r.outcome.has_weights()).collect();
        let (_tmp, dir) = results_with(&done);
        let ranked = crate::results::rank::rank(&records, spec.select.metric);
        let configs = crate::results::judge::summarize_configs(&records, &spec, &Default::default());
        let [a1, a2, b1, b2, c1] = done[..] else { unreachable!("five done pulls") };
        assert_eq!((ranked[0].id(), &configs[0].id), (b1.id(), &a1.config));
        let with_weights = || {
            done.iter()
                .filter(|r| dir.trial(r.id()).has_weights())
                .map(|r| r.id().clone())
                .collect::<Vec<_>>()
        };
        let ids = |rs: &[&TrialRecord]| rs.iter().map(|r| r.id().clone()).collect::<Vec<_>>();
        let all = Prune::EarlierPicksToo;
        spec.select.keep = None;
        prune_weights(&dir, &spec, &ranked, &configs, all).unwrap();
        assert_eq!(with_weights(), ids(&[a1, a2, b1, b2, c1]));
        // One trial short of the spec: nothing is removed yet.
        spec.select.keep = Some(0);
        prune_weights(&dir, &spec, &ranked[..5], &configs, all).unwrap();
        assert_eq!(with_weights(), ids(&[a1, a2, b1, b2, c1]));
        // keep = 2 then keep = 1: b2, kept by the first, is spared without --prune.
        for keep in [2, 1] {
            spec.select.keep = Some(keep);
            prune_weights(&dir, &spec, &ranked, &configs, Prune::SpareEarlierPicks).unwrap();
            assert_eq!(with_weights(), ids(&[a1, a2, b1, b2]), "keep = {keep}, sparing");
        }
        for (keep, kept) in [(2, vec![a1, a2, b1, b2]), (1, vec![a1, a2, b1]), (0, vec![b1])] {
            spec.select.keep = Some(keep);
            prune_weights(&dir, &spec, &ranked, &configs, all).unwrap();
            assert_eq!(with_weights(), ids(&kept), "keep = {keep}");
        }
    }
}
