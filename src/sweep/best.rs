//! `best/` (a copy of the winning trial's folder) and the checkpoint budget (`keep`).
//!
//! `best/` is built beside the results as `.best.tmp/`, then swapped in with two renames; the
//! next export repairs the rare crash between them. Weight files are hard-linked when the file
//! system allows (they never change once written), else copied.
//!
//! `keep = K` counts configs: every pull of the best K configs (`configs.csv` order, counting
//! only configs with a done pull) keeps its weights, since a soup averages all of them, and so
//! does the leaderboard's top trial; the other trials' weights are removed. Nothing is removed
//! until every trial of the spec has finished: before that a config's rank can still change, and
//! weights removed early would be missing from the config that wins in the end (and a resumed
//! sweep would remove different ones than an uninterrupted run). Weights that the `keep` of an
//! earlier spec of the folder kept (`kept.json`) are not removed without `--prune`: an
//! exploratory edit of the spec must not cost the weights of the original's top configs.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use anyhow::Context;

use crate::fsutil::write_atomic;
use crate::results::judge::ConfigSummary;
use crate::results::layout::{remove_dir_if_present, OutcomeFile, ResultsDir, TrialPaths, BEST_DIR};
use crate::results::record::TrialRecord;
use crate::spec::{ConfigId, SweepSpec};

/// The trials whose weights `keep` kept in some run (see `prune_weights`).
const KEPT_FILE: &str = "kept.json";
const BEST_TMP: &str = ".best.tmp";
const BEST_OLD: &str = ".best.old";

/// Make `best/` hold `winner`'s folder; remove it when there is no winner.
pub fn update_best(dir: &ResultsDir, winner: Option<&TrialRecord>) -> anyhow::Result<()> {
    let best = TrialPaths { dir: dir.path(BEST_DIR) };
    let (tmp, old) = (dir.path(BEST_TMP), dir.path(BEST_OLD));
    remove_dir_if_present(&tmp)?;
    // A damaged copy counts as none: it is rebuilt from the trial folder.
    let current = match best.read_outcome_file()? {
        OutcomeFile::Finished(outcome) => Some(outcome.id),
        OutcomeFile::Unfinished | OutcomeFile::Damaged(_) => None,
    };
    if current.as_ref() == winner.map(TrialRecord::id) && !old.exists() {
        return Ok(());
    }
    match winner {
        Some(winner) => {
            let source = dir.trial(winner.id());
            if !source.weights().exists() {
                crate::logging::warn!(
                    "trial {} wins but its folder has no weights/ (removed by [select] keep, or by hand); best/ has its metrics only",
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
        || ranked.iter().filter(|r| r.outcome.has_weights() && dir.trial(r.id()).weights().exists());
    let top = with_weights().next().map(|r| r.id());
    let mut history = read_kept(dir)?;
    let mut spared = Vec::new();
    for record in with_weights() {
        let id = record.id().as_str();
        if Some(record.id()) == top || kept.contains(&record.config) {
            history.insert(id.to_string());
        } else if history.contains(id) && prune == Prune::SpareEarlierPicks {
            spared.push(id);
        } else {
            remove_dir_if_present(&dir.trial(record.id()).weights())?;
            history.remove(id);
        }
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
    use crate::results::record::Status;
    use crate::results::test_records::{pull, record};

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
    fn keep_counts_configs_and_waits_for_the_last_trial() {
        let text = "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"d.jsonl\"\n\
                    [train]\nsteps = 4\n[sweep]\nseeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.1, 1.0]\n";
        let mut spec = crate::spec::parse_spec(text, Path::new("s.toml")).unwrap();
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
                .filter(|r| dir.trial(r.id()).weights().exists())
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
