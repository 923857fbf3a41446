//! The results folder: its layout, and reading it (`folder.rs` opens it for writing, `claim.rs`
//! shares it between workers, `owned.rs` says what gacha may remove or replace in it).
//!
//! ```text
//! results/<name>/
//!   gacha-results.txt    the marker: gacha made this folder (it writes into no other)
//!   spec.toml            the spec of the latest run, byte for byte
//!   preprocessing.json   the model's own preprocessing as that run resolved it (trial ids
//!                        depend on it, and the copy's model path no longer resolves)
//!   digests.json         the SHA-256 of the dataset and model files as that run read them
//!                        (trial ids depend on them too; absent: a folder from before gacha
//!                        hashed its inputs, whose ids hold none)
//!   claims/<id>          the claim of the worker running trial <id> (host, pid, heartbeat);
//!   claims/.export-lock  locked while a worker rebuilds what follows (its holder written in it)
//!   claims/.sweep-lock, claims/.sweep   which sweep the running workers run (`binding.rs`)
//!   leaderboard.csv      rebuilt from the trial folders after a trial, at most about once
//!                        a second, and at the start and end of every run (`ledger.rs`)
//!   configs.csv          one row per config (its pulls pooled, ranked), rebuilt with it
//!   race.json            a race's state as the finished trials decide it, rebuilt with it
//!                        (`race.rs`)
//!   screen.json, .csv    the prompts scored on the untrained model, and which of them run
//!                        (`[search] screen_prompts`; `screen.rs`)
//!   report.html          written at the end of a run
//!   kept.json            the trials whose weights a run's `keep` kept
//!   slurm/               `gacha slurm`'s sbatch scripts and the tasks' logs
//!   best/                the final model: a copy of the winning trial's folder, or a soup of
//!                        the winning config's pulls or refits; final.json says which, and its
//!                        test scores; files.sha256 lists every file gacha put there
//!   refit/<id>/          final = "refit": the winning config trained on every non-test image
//!                        (the same files as a trial folder)
//!   set-aside/<what>-<time>/   files gacha found where it had to write and did not write
//!                        itself (a user's file in a replaced best/), moved there, never deleted
//!   trials/<id>/
//!     config.toml        the resolved parameters
//!     split.json         which images were train and which valid
//!     metrics.jsonl      every logged step of every attempt
//!     weights/           the trained weights (removed for trials outside `keep`)
//!     weights.sha256     the weights' files with their SHA-256, written when they are saved
//!     outcome.json       written last, atomically: present = finished
//!   trials/.damaged/<id>-<time>/   a trial folder whose outcome.json could not be read, or lied
//!                        (another trial's, counts the split cannot hold), moved aside (never
//!                        deleted) by the sweep that found it, which reruns the trial
//! ```
//! A trial folder without `outcome.json` is unfinished (the process died) and is cleared of
//! gacha's files by the worker that claims the trial next, before it runs it again.
//!
//! gacha removes and replaces only what it wrote (`owned.rs`): it writes into a new folder, an
//! empty one, or one with its marker (or, from before the marker, one that holds only what
//! gacha writes, with a `spec.toml` that is a spec); a `best/` that holds neither its manifest
//! nor `outcome.json` nor `final.json` is not its own and is refused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::manifest::{is_sha256, Manifest};
use super::record::{FinalRecord, TrialOutcome, TrialRecord};
use crate::spec::{ContentDigests, SweepSpec, TrialId};

/// The marker of a results folder: gacha made it.
pub const MARKER_FILE: &str = "gacha-results.txt";
pub const SPEC_FILE: &str = "spec.toml";
pub const PREPROCESSING_FILE: &str = "preprocessing.json";
pub const DIGESTS_FILE: &str = "digests.json";
pub const LEADERBOARD_FILE: &str = "leaderboard.csv";
pub const CONFIGS_FILE: &str = "configs.csv";
pub const RACE_FILE: &str = "race.json";
pub const SCREEN_FILE: &str = "screen.json";
pub const SCREEN_CSV: &str = "screen.csv";
pub const REPORT_FILE: &str = "report.html";
pub const TRIALS_DIR: &str = "trials";
const REFIT_DIR: &str = "refit";
/// In `trials/`: where damaged trial folders are moved.
pub const DAMAGED_NAME: &str = ".damaged";
pub const BEST_DIR: &str = "best";
/// In `best/`: what the final model is and its test counts (`FinalRecord`).
pub const FINAL_FILE: &str = "final.json";
/// In a trial folder: the weights' files and their SHA-256.
pub const WEIGHTS_MANIFEST: &str = "weights.sha256";
/// The files of a trial folder that gacha writes by name (`weights/` holds what its manifest
/// lists).
pub const TRIAL_FILES: [&str; 5] =
    ["config.toml", "split.json", "metrics.jsonl", WEIGHTS_MANIFEST, "outcome.json"];

/// Where files gacha had to move out of its way go (`owned.rs`), inside the results folder.
pub const SET_ASIDE_DIR: &str = "set-aside";

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
    pub fn weights_manifest(&self) -> PathBuf {
        self.dir.join(WEIGHTS_MANIFEST)
    }

    /// The folder's name: a trial id, or `best` for `best/`.
    pub fn id(&self) -> String {
        self.dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Whether the trial's weights are on disk: its manifest lists some (they may have changed
    /// since: `Manifest::verify` tells), or, in a folder from before manifests, `weights/` is.
    pub fn has_weights(&self) -> bool {
        match Manifest::read(&self.weights_manifest()) {
            Ok(Some(listed)) => !listed.files.is_empty(),
            Ok(None) => self.weights().is_dir(),
            Err(_) => false,
        }
    }

    /// Check that the weights hold what their manifest lists (a folder from before manifests
    /// is not checked); the error says which trial folder to move away to run the trial again.
    pub fn verify_weights(&self) -> anyhow::Result<()> {
        let Some(listed) = Manifest::read(&self.weights_manifest())? else { return Ok(()) };
        listed.verify(&self.dir, &self.weights_manifest()).with_context(|| {
            format!(
                "the weights of {} are not what its trial wrote; move that folder away (or delete its \
                 outcome.json) and run the sweep again to train it anew",
                self.dir.display()
            )
        })
    }

    /// The outcome, or `None` when the trial has not finished; a damaged one is an error.
    pub fn read_outcome(&self) -> anyhow::Result<Option<TrialOutcome>> {
        match self.read_outcome_file()? {
            OutcomeFile::Unfinished => Ok(None),
            OutcomeFile::Finished(outcome) => Ok(Some(*outcome)),
            OutcomeFile::Damaged(why) => bail!("{}: {why}", self.outcome().display()),
        }
    }

    /// What `outcome.json` holds; an error only when it exists but cannot be read at all.
    pub fn read_outcome_file(&self) -> anyhow::Result<OutcomeFile> {
        let path = self.outcome();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(OutcomeFile::Unfinished),
            Err(err) => return Err(err).with_context(|| format!("{}: cannot read", path.display())),
        };
        let outcome: TrialOutcome = match serde_json::from_slice(&bytes) {
            Ok(outcome) => outcome,
            Err(err) => return Ok(OutcomeFile::Damaged(format!("not a trial outcome ({err})"))),
        };
        Ok(match self.lie_in(&outcome) {
            Some(lie) => OutcomeFile::Damaged(lie),
            None => OutcomeFile::Finished(Box::new(outcome)),
        })
    }

    /// What in a well-formed `outcome` its folder contradicts: another trial's id (in a trial
    /// folder), or counts that are not the sizes of the split in `split.json`.
    fn lie_in(&self, outcome: &TrialOutcome) -> Option<String> {
        let folder = self.id();
        if TrialId::parse(&folder).is_some() && outcome.id.as_str() != folder {
            return Some(format!("the outcome of trial {}, not of {folder}", outcome.id));
        }
        let split = match std::fs::read(self.split()).map(|b| serde_json::from_slice::<SplitSizes>(&b)) {
            Ok(Ok(split)) => split,
            Ok(Err(err)) => return Some(format!("{} is not a split ({err})", self.split().display())),
            Err(err) => {
                return Some(format!(
                    "{}: cannot read ({err}), so its counts cannot be checked",
                    self.split().display()
                ))
            }
        };
        let sizes = (split.train.len() as u64, split.valid.len() as u64);
        for (when, scores) in [("before", outcome.before), ("after", outcome.after)] {
            let Some(scores) = scores else { continue };
            let counted = (scores.train.total(), scores.valid.total());
            if counted != sizes {
                return Some(format!(
                    "counts {counted:?} train/valid images {when} training, but split.json has {sizes:?}"
                ));
            }
        }
        let answers = outcome.valid_answers.len() as u64;
        if answers != 0 && answers != sizes.1 {
            return Some(format!(
                "{answers} validation answers, but split.json has {} validation images",
                sizes.1
            ));
        }
        None
    }
}

/// `split.json` as far as checking an outcome needs: how many images on each side.
#[derive(serde::Deserialize)]
struct SplitSizes {
    train: Vec<serde::de::IgnoredAny>,
    valid: Vec<serde::de::IgnoredAny>,
}

/// A trial folder's `outcome.json`: absent, a finished trial's, or damaged (truncated, edited).
#[derive(Debug)]
pub enum OutcomeFile {
    Unfinished,
    Finished(Box<TrialOutcome>),
    /// Why it is not an outcome.
    Damaged(String),
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

    /// An error unless the folder still has its marker: it was removed (or emptied) while a
    /// sweep ran, and nothing more is written there, so that no folder without the marker is
    /// left behind (issue 29, case 12).
    pub fn check_still_there(&self) -> anyhow::Result<()> {
        if !self.root.join(MARKER_FILE).is_file() {
            bail!(
                "{}: the results folder was removed (or emptied) while the sweep ran; nothing more is \
                 written there: run the same command again to start afresh",
                self.root.display()
            );
        }
        Ok(())
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
        let own = read_json_if_present(&self.path(PREPROCESSING_FILE), "a preprocessing record")?;
        let digests_path = self.path(DIGESTS_FILE);
        let digests: Option<ContentDigests> =
            read_json_if_present(&digests_path, "a record of input digests")?;
        if let Some(digests) = &digests {
            for (key, digest) in
                [("data_sha256", &digests.data_sha256), ("model_sha256", &digests.model_sha256)]
            {
                if let Some(digest) = digest.as_deref().filter(|d| !is_sha256(d)) {
                    bail!(
                        "{}: {key} {digest:?} is not a SHA-256 (64 hex digits): the trial ids of this folder \
                         cannot be rebuilt from it; run gacha sweep with the spec again to rewrite it",
                        digests_path.display()
                    );
                }
            }
        }
        let access = crate::model::hub_env::HubAccess::CacheOnly;
        Ok(crate::spec::parse_spec_with(&text, &path, own, digests.unwrap_or_default(), access)?)
    }

    /// `best/final.json`, or `None` before the final model is made.
    pub fn read_final(&self) -> anyhow::Result<Option<FinalRecord>> {
        read_json_if_present(&self.path(BEST_DIR).join(FINAL_FILE), "a final-model record")
    }

    /// Every finished trial of `spec`, in spec order. A damaged `outcome.json` is reported and
    /// its trial counted as unfinished (`gacha sweep` moves such folders aside).
    pub fn read_records(&self, spec: &SweepSpec) -> anyhow::Result<Vec<TrialRecord>> {
        let mut records = Vec::new();
        for trial in &spec.trials {
            let paths = self.trial(&trial.id);
            match paths.read_outcome_file()? {
                OutcomeFile::Unfinished => {}
                OutcomeFile::Finished(outcome) => records.push(TrialRecord::new(trial, *outcome)),
                OutcomeFile::Damaged(why) => {
                    crate::logging::warn!(
                        "{}: {why}; trial {} counts as unfinished (the next gacha sweep moves its \
                         folder to {}/ and runs it again)",
                        paths.outcome().display(),
                        trial.id,
                        self.damaged_dir().display()
                    );
                }
            }
        }
        Ok(records)
    }

    /// Where damaged trial folders are moved: `trials/.damaged/`.
    pub fn damaged_dir(&self) -> PathBuf {
        self.root.join(TRIALS_DIR).join(DAMAGED_NAME)
    }

    /// Trial folders that the spec does not name (left by an earlier version of the spec).
    pub fn unlisted_trials(&self, spec: &SweepSpec) -> anyhow::Result<Vec<String>> {
        let dir = self.root.join(TRIALS_DIR);
        let listed: std::collections::HashSet<&TrialId> = spec.trials.iter().map(|t| &t.id).collect();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if TrialId::parse(&name).is_some_and(|id| !listed.contains(&id)) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
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

/// The names in `dir`, sorted (none when it does not exist).
pub fn names_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries.with_context(|| format!("{}: cannot list", dir.display()))?,
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}
