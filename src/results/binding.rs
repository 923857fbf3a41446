//! Which sweep a results folder holds (issue 29, case 7). Every process that runs trials into a
//! folder (`gacha sweep`, its workers, `gacha trial`) holds a shared `flock` on
//! `claims/.sweep-lock` while it runs, and `claims/.sweep` says which sweep they run: its name,
//! the SHA-256 of its spec's text and the digests of its dataset and model. A process that
//! finds others running compares: the same sweep joins them; any other is refused before it
//! writes anything, naming both, since two sweeps in one folder would each rewrite `best/`,
//! `spec.toml` and the leaderboard for their own trials (a spec edited, or its dataset changed,
//! while workers run counts as another sweep: its trials are others).
//!
//! Between runs the folder keeps its sweep's name, not its digests: rerunning an edited spec
//! (more seeds, another learning rate) or a changed dataset is the same sweep continued, its
//! earlier trials kept; a spec of another name is another sweep, refused (its own folder is
//! `results/<name>`).
//!
//! Taking the binding: a process that gets the lock exclusively is alone, writes `.sweep` and
//! turns its lock shared; one that does not takes it shared (waiting, as `lock_wait.rs` does,
//! while a newcomer writes) and reads `.sweep`. Either then checks that `.sweep` is its sweep,
//! so of two different sweeps starting at once, exactly one goes on.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::claim::CLAIMS_DIR;
use super::layout::SPEC_FILE;
use super::lock_wait::{acquire, LockMode};
use super::record::utc_timestamp;
use crate::data::digest::short;
use crate::fsutil::{host_name, write_atomic};
use crate::spec::SweepSpec;

/// The lock the processes of the running sweep share.
const LOCK_FILE: &str = ".sweep-lock";
/// Which sweep they run.
const SWEEP_FILE: &str = ".sweep";

/// What makes a sweep the one it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepIdentity {
    pub name: String,
    /// The SHA-256 of the spec's text.
    pub spec_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

impl SweepIdentity {
    pub fn of(spec: &SweepSpec) -> SweepIdentity {
        let digest = Sha256::digest(spec.text.as_bytes());
        SweepIdentity {
            name: spec.name.clone(),
            spec_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
            data_sha256: spec.digests.data_sha256.clone(),
            model_sha256: spec.digests.model_sha256.clone(),
        }
    }

    /// `sweep "t" (spec sha256 1a2b…, dataset 3c4d…, model 5e6f…)`.
    fn describe(&self) -> String {
        let digest =
            |label: &str, d: &Option<String>| d.as_deref().map(|d| format!(", {label} {}", short(d)));
        format!(
            "sweep {:?} (spec sha256 {}{}{})",
            self.name,
            short(&self.spec_sha256),
            digest("dataset", &self.data_sha256).unwrap_or_default(),
            digest("model", &self.model_sha256).unwrap_or_default()
        )
    }
}

/// `claims/.sweep`: the running sweep, and who started it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Running {
    #[serde(flatten)]
    sweep: SweepIdentity,
    started_by: String,
    started_at: String,
}

/// This process's part in the sweep a folder holds, for as long as it is kept.
#[derive(Debug)]
pub struct Binding {
    _lock: File,
}

/// Bind this process to the folder `root` (its claims folder exists) for `spec`'s sweep, or
/// refuse (see the module doc).
pub fn bind(root: &Path, spec: &SweepSpec, stop: &AtomicBool) -> anyhow::Result<Binding> {
    let claims = root.join(CLAIMS_DIR);
    let (lock_path, sweep_path) = (claims.join(LOCK_FILE), claims.join(SWEEP_FILE));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("{}: cannot open", lock_path.display()))?;
    let ours = SweepIdentity::of(spec);
    if lock.try_lock().is_ok() {
        if let Some(earlier) = earlier_name(root, &sweep_path) {
            if earlier != ours.name {
                bail!(
                    "{}: holds sweep {earlier:?}, and this spec ({}) is sweep {:?}: a results folder holds one \
                     sweep; give this one its own folder (--results, or leave it out for results/{})",
                    root.display(),
                    spec.file.display(),
                    ours.name,
                    ours.name
                );
            }
        }
        let running = Running {
            sweep: ours.clone(),
            started_by: format!("{}:{}", host_name(), std::process::id()),
            started_at: utc_timestamp(SystemTime::now()),
        };
        write_atomic(&sweep_path, &serde_json::to_vec_pretty(&running)?)?;
    }
    acquire(&lock, &lock_path, LockMode::Shared, "the sweep's lock", stop)?;
    let running: Running = std::fs::read(&sweep_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .with_context(|| format!("{}: not a record of the running sweep", sweep_path.display()))?;
    if running.sweep != ours {
        bail!(
            "{}: {} is running there (started by {} at {}); this is {}{}: a results folder holds one sweep at \
             a time. Wait for it to end, or pass --results with another folder",
            root.display(),
            running.sweep.describe(),
            running.started_by,
            running.started_at,
            ours.describe(),
            what_differs(&running.sweep, &ours)
        );
    }
    Ok(Binding { _lock: lock })
}

/// `, whose spec was edited since …` for a sweep of the same name.
fn what_differs(theirs: &SweepIdentity, ours: &SweepIdentity) -> &'static str {
    if theirs.name != ours.name {
        ""
    } else if theirs.data_sha256 != ours.data_sha256 {
        " (the same spec name, but the dataset changed since it started: its trials would be others)"
    } else if theirs.model_sha256 != ours.model_sha256 {
        " (the same spec name, but the model's files changed since it started)"
    } else {
        " (the same spec name, but the spec was edited since it started)"
    }
}

/// The name of the sweep the folder held last: `claims/.sweep`, else its `spec.toml`'s `name`.
fn earlier_name(root: &Path, sweep_path: &Path) -> Option<String> {
    if let Some(running) =
        std::fs::read(sweep_path).ok().and_then(|b| serde_json::from_slice::<Running>(&b).ok())
    {
        return Some(running.sweep.name);
    }
    let text = std::fs::read_to_string(root.join(SPEC_FILE)).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("name")?.as_str().map(String::from)
}
