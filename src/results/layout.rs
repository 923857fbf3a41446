//! The results folder: its layout, and reading it (`folder.rs` opens it for writing, `claim.rs`
//! shares it between workers).
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
//!   claims/.export-lock  locked while a worker rebuilds what follows
//!   leaderboard.csv      rebuilt from the trial folders after a trial, at most about once
//!                        a second, and at the start and end of every run (`ledger.rs`)
//!   configs.csv          one row per config (its pulls pooled, ranked), rebuilt with it
//!   race.json            a race's state as the finished trials decide it, rebuilt with it
//!                        (`race.rs`)
//!   screen.json, .csv    the prompts scored on the untrained model, and which of them run
//!                        (`[search] screen_prompts`; `screen.rs`)
//!   report.html          written at the end of a run
//!   slurm/               `gacha slurm`'s sbatch scripts and the tasks' logs
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
//!   trials/.damaged/<id>-<time>/   a trial folder whose outcome.json could not be read, moved
//!                        aside (never deleted) by the sweep that found it, which reruns the trial
//! ```
//! A trial folder without `outcome.json` is unfinished (the process died) and is wiped by the
//! worker that claims the trial next, before it runs it again.
//!
//! gacha deletes and overwrites only what it made: it writes into a new folder, an empty one, or
//! one with its marker (or, from before the marker, with `spec.toml` and `trials/`); a `best/`
//! that holds neither `outcome.json` nor `final.json` is not its own and is refused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::record::{FinalRecord, TrialOutcome, TrialRecord};
use crate::spec::{SweepSpec, TrialId};

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
const DAMAGED_DIR: &str = ".damaged";
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
        Ok(match serde_json::from_slice(&bytes) {
            Ok(outcome) => OutcomeFile::Finished(Box::new(outcome)),
            Err(err) => OutcomeFile::Damaged(format!("not a trial outcome ({err})")),
        })
    }
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
        let digests = read_json_if_present(&self.path(DIGESTS_FILE), "a record of input digests")?;
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
        self.root.join(TRIALS_DIR).join(DAMAGED_DIR)
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
