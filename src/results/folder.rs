//! Opening a results folder for writing: the marker that says gacha made it (gacha writes into
//! no other folder), its claims (`claim.rs`: how several workers share it), the sweep it is
//! bound to (`binding.rs`) and the checks on what gacha would replace (`best/`).
//!
//! A folder without the marker is gacha's only when it is new or empty, or when it is one from
//! before the marker: a `spec.toml` that is a gacha spec and a `trials/` that holds only trial
//! folders. A `spec.toml` and a `trials/` alone are not enough (issue 29, case 4): gacha would
//! overwrite a user's `spec.toml` and `report.html`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use super::binding::{bind, Binding};
use super::claim::{Claims, CLAIMS_DIR};
use super::layout::{
    names_in, ResultsDir, TrialPaths, BEST_DIR, DAMAGED_NAME, FINAL_FILE, MARKER_FILE, SPEC_FILE, TRIALS_DIR,
};
use super::owned::{clear_trial, FOLDER_MANIFEST};
use crate::fsutil::{host_name, write_atomic};
use crate::spec::{SweepSpec, TrialId};

/// The marker's text, for whoever finds it.
const MARKER_TEXT: &str =
    "This folder is written by `gacha sweep`; gacha deletes and overwrites files here.\n";

/// A results folder this worker writes to, beside any number of others (see `claim.rs`).
#[derive(Debug)]
pub struct ResultsFolder {
    pub dir: ResultsDir,
    pub claims: Claims,
    /// Held while this process runs trials of its sweep here.
    _binding: Option<Binding>,
}

impl ResultsFolder {
    /// Create the folder if needed (refusing one gacha did not make) and its claims folder.
    pub fn open(root: &Path) -> anyhow::Result<ResultsFolder> {
        adopt_folder(root)?;
        let claims = Claims::open(root)?;
        remove_stale_temporaries(root)?;
        let dir = ResultsDir::new(root);
        refuse_foreign_best(&dir)?;
        Ok(ResultsFolder { dir, claims, _binding: None })
    }

    /// `open`, to run trials of `spec` there: bound to its sweep (another sweep running there is
    /// refused), with waits for its locks ended by `stop` (a stop request).
    pub fn open_to_run(
        root: &Path,
        spec: &SweepSpec,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<ResultsFolder> {
        let folder = ResultsFolder::open(root)?;
        let binding = bind(root, spec, &stop)?;
        Ok(ResultsFolder { claims: folder.claims.stopping_on(stop), _binding: Some(binding), ..folder })
    }

    /// `paths`' folder cleared of what gacha wrote there (an unfinished attempt's leftovers, or
    /// a failure that is run again; other files stay: `owned::clear_trial`).
    pub fn fresh(&self, paths: TrialPaths) -> anyhow::Result<TrialPaths> {
        self.dir.check_still_there()?;
        clear_trial(&self.dir, &paths)?;
        std::fs::create_dir_all(&paths.dir)
            .with_context(|| format!("{}: cannot create", paths.dir.display()))?;
        Ok(paths)
    }
}

/// Make `root` a results folder of gacha's: create it with its marker and `trials/`, or check
/// that it is one (a folder from before the marker gets it: `is_legacy_folder`).
fn adopt_folder(root: &Path) -> anyhow::Result<()> {
    let marker = root.join(MARKER_FILE);
    let trials = root.join(TRIALS_DIR);
    if root.exists() && !root.is_dir() {
        bail!("{}: not a folder; pass --results DIR with a folder path", root.display());
    }
    if !marker.exists() {
        let legacy = is_legacy_folder(root)?;
        // What a worker starting at the same moment may have made already is not foreign.
        let ours = [MARKER_FILE, TRIALS_DIR, CLAIMS_DIR];
        let foreign: Vec<_> = names_in(root)?
            .into_iter()
            .filter(|n| !ours.contains(&n.as_str()) && !n.starts_with(&format!(".{MARKER_FILE}.tmp-")))
            .collect();
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
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&trials) {
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            made => made.with_context(|| format!("{}: cannot create", trials.display())),
        },
        Err(err) => Err(err).with_context(|| format!("{}: cannot read", trials.display())),
    }
}

/// Whether `root` (without the marker) is a results folder from before the marker: a
/// `spec.toml` that parses as a gacha spec and a `trials/` holding only trial folders.
fn is_legacy_folder(root: &Path) -> anyhow::Result<bool> {
    let (spec, trials) = (root.join(SPEC_FILE), root.join(TRIALS_DIR));
    if !spec.is_file() || !trials.is_dir() {
        return Ok(false);
    }
    let is_spec =
        std::fs::read_to_string(&spec).is_ok_and(|text| crate::spec::parse_spec(&text, &spec).is_ok());
    let only_trials = names_in(&trials)?
        .iter()
        .all(|name| (TrialId::parse(name).is_some() || name == DAMAGED_NAME) && trials.join(name).is_dir());
    Ok(is_spec && only_trials)
}

/// Refuse to go on when `path` is a symbolic link: gacha never writes through one.
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{}: is a symbolic link, and gacha writes this file itself; remove the link", path.display());
    }
    Ok(())
}

/// Refuse a `best/` that gacha did not make: one with neither `outcome.json` (a trial's copy)
/// nor `final.json` (a soup or refit), since updating it would remove what is there.
fn refuse_foreign_best(dir: &ResultsDir) -> anyhow::Result<()> {
    let best = dir.path(BEST_DIR);
    let Ok(meta) = std::fs::symlink_metadata(&best) else { return Ok(()) };
    let ours = meta.is_dir()
        && (best.join(FOLDER_MANIFEST).is_file()
            || TrialPaths { dir: best.clone() }.outcome().is_file()
            || best.join(FINAL_FILE).is_file());
    if !ours {
        bail!(
            "{}: not made by gacha (no {FOLDER_MANIFEST}, outcome.json or {FINAL_FILE}), and gacha replaces \
             best/; move it away and run again",
            best.display()
        );
    }
    Ok(())
}

/// How old another host's temporary must be to count as a dead process's: the files written at
/// the top of a results folder take milliseconds.
const FOREIGN_TEMPORARY_AGE: Duration = Duration::from_secs(3600);

/// Remove the temporary files (`.NAME.tmp-HOST-PID`, see `fsutil::write_atomic`) of processes
/// that died while writing here: this host's whose pid is gone, other hosts' after an hour.
fn remove_stale_temporaries(root: &Path) -> anyhow::Result<()> {
    let own_prefix = format!("{}-", host_name());
    for entry in std::fs::read_dir(root).with_context(|| format!("{}: cannot list", root.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, writer)) = name.split_once(".tmp-") else { continue };
        if !name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        let dead = match writer.strip_prefix(&own_prefix).map(str::parse::<u32>) {
            Some(Ok(pid)) => !Path::new(&format!("/proc/{pid}")).exists(),
            _ => entry
                .metadata()?
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > FOREIGN_TEMPORARY_AGE),
        };
        if dead {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("{}: cannot remove", entry.path().display()))?;
        }
    }
    Ok(())
}
