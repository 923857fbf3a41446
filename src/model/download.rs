//! A hub model not in the local cache, downloaded into it in huggingface_hub's layout, so that
//! Python tools find it there too:
//!
//! ```text
//! models--owner--name/blobs/<etag>              each file once, named by its ETag (SHA-256 of a large file)
//! models--owner--name/blobs/<etag>.incomplete   a download under way, resumed with an HTTP Range
//! models--owner--name/snapshots/<sha>/<file>    relative links to the blobs
//! models--owner--name/refs/<revision>           the commit sha, written last
//! .locks/models--owner--name/<etag>.lock        held while a blob downloads (huggingface_hub's too)
//! ```
//!
//! What is fetched is what gacha and transformers' `from_pretrained` read: the config, tokenizer
//! and processor files present, and the safetensors weights (the shard index and its shards, or
//! `model.safetensors`); other weight formats are left. A large file's SHA-256 is checked against
//! its ETag. `HF_HUB_OFFLINE` keeps all of this off the network; a snapshot already complete in the
//! cache is used without a request.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::hub::{self, HubId, Snapshot};
use super::hub_env::{HubAccess, HubEnv};
use super::hub_http::{FileMeta, HubClient, HubError};
use super::load::{weight_files, INDEX_FILE, SINGLE_FILE};
use crate::fsutil::open_keeping;
use crate::logging::{self, Verbosity};

/// The files fetched when the repository has them, in this order; the weights follow.
const MODEL_FILES: [&str; 10] = [
    "config.json",
    "tokenizer.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "generation_config.json",
    "chat_template.json",
];

/// The files gacha cannot do without (and the weights).
const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

/// Tries at one file's body; a try that adds no byte counts towards `MAX_STALLS`.
const MAX_TRIES: usize = 100;

/// Tries in a row that add no byte before a download gives up.
const MAX_STALLS: usize = 5;

/// The wait before trying again after a try that failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long another process's download of the same blob may add no byte before gacha stops
/// waiting for its lock.
const LOCK_STALL: Duration = Duration::from_secs(600);

/// How often a held lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(500);

/// `id` from the cache when it is there whole (no request), else downloaded into it; under
/// `HF_HUB_OFFLINE` or `HubAccess::CacheOnly`, from the cache or an error saying where it looked.
pub fn find_or_fetch(id: &HubId, env: &HubEnv, access: HubAccess) -> anyhow::Result<Snapshot> {
    let why_not = if env.offline {
        Some("HF_HUB_OFFLINE is set, so gacha does not download it; unset HF_HUB_OFFLINE,")
    } else if access == HubAccess::CacheOnly {
        Some("reading a results folder never downloads its model; run `gacha check` on the spec,")
    } else {
        None
    };
    match (hub::resolve(id, &env.cache), why_not) {
        (Ok(snapshot), Some(_)) => Ok(snapshot),
        (Ok(snapshot), None) if is_complete(&snapshot.dir) => Ok(snapshot),
        (Err(not_found), Some(why_not)) => {
            bail!("{not_found}\n{why_not} or download it with: {}", id.download_command())
        }
        _ => download(id, env).with_context(|| {
            format!(
                "hub model {id} is not (whole) in the local Hugging Face cache {} ({}); downloading it from {} failed",
                env.cache.dir.display(),
                env.cache.chosen_by,
                env.endpoint
            )
        }),
    }
}

/// Whether a snapshot folder holds what loading reads.
fn is_complete(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|file| dir.join(file).is_file()) && weight_files(dir).is_ok()
}

/// Download `id` at its revision into the cache.
fn download(id: &HubId, env: &HubEnv) -> anyhow::Result<Snapshot> {
    let client = HubClient::new(env, &id.repo);
    let (sha, files) = client.revision(id.revision())?;
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the hub gave {sha:?} as the commit of {id}, not a commit sha");
    }
    let repo = Repo::new(env, id, &sha);
    let present = |name: &str| files.iter().any(|file| file == name);
    if let Some(missing) = REQUIRED_FILES.iter().find(|name| !present(name)) {
        bail!("{id} at commit {sha} has no {missing}: not a transformers checkpoint gacha can read");
    }
    let mut fetched = Vec::new();
    for name in MODEL_FILES.iter().filter(|name| present(name)) {
        fetched.push((name.to_string(), repo.fetch(&client, name)?));
    }
    let shards = if present(INDEX_FILE) {
        let index = repo.fetch(&client, INDEX_FILE)?;
        fetched.push((INDEX_FILE.to_string(), index.clone()));
        shard_names(&index)?
    } else if present(SINGLE_FILE) {
        vec![SINGLE_FILE.to_string()]
    } else {
        bail!("{id} at commit {sha} has neither {SINGLE_FILE} nor {INDEX_FILE}: gacha reads safetensors weights only");
    };
    for shard in shards {
        if !present(&shard) {
            bail!("{id} at commit {sha}: {INDEX_FILE} names {shard}, which the repository does not have");
        }
        fetched.push((shard.clone(), repo.fetch(&client, &shard)?));
    }
    for (name, blob) in &fetched {
        repo.link(name, blob)?;
    }
    if !id.revision().eq_ignore_ascii_case(&sha) {
        let reference = repo.dir.join("refs").join(id.revision());
        std::fs::create_dir_all(reference.parent().expect("refs/<revision> has a parent"))
            .with_context(|| format!("{}: cannot create", reference.display()))?;
        crate::fsutil::write_atomic(&reference, sha.as_bytes())?;
    }
    Ok(Snapshot { id: id.clone(), sha: sha.clone(), dir: repo.snapshot })
}

/// The shard files a `model.safetensors.index.json` names, in order.
fn shard_names(index: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).with_context(|| format!("{}: cannot read", index.display()))?;
    let parsed: Index =
        serde_json::from_str(&text).with_context(|| format!("{INDEX_FILE} ({})", index.display()))?;
    let shards: std::collections::BTreeSet<String> = parsed.weight_map.into_values().collect();
    Ok(shards.into_iter().collect())
}

/// One repository's folders in the cache, at one commit.
struct Repo {
    /// `models--owner--name`.
    dir: PathBuf,
    snapshot: PathBuf,
    locks: PathBuf,
    label: String,
}

impl Repo {
    fn new(env: &HubEnv, id: &HubId, sha: &str) -> Repo {
        let folder = id.folder_name();
        let dir = env.cache.dir.join(&folder);
        Repo {
            snapshot: dir.join("snapshots").join(sha),
            locks: env.cache.dir.join(".locks").join(&folder),
            label: format!("{}@{}", id.repo, &sha[..sha.len().min(12)]),
            dir,
        }
    }

    /// `name`'s blob, from the cache when its snapshot already has it (no request), else
    /// downloaded (or finished, if an earlier download was cut).
    fn fetch(&self, client: &HubClient, name: &str) -> anyhow::Result<PathBuf> {
        if name.split('/').any(|part| part.is_empty() || part == "." || part == "..") || name.starts_with('/')
        {
            bail!("the hub lists a file named {name:?}, which is no path inside a snapshot");
        }
        let pointer = self.snapshot.join(name);
        if pointer.is_file() {
            return Ok(pointer);
        }
        let sha = self.snapshot.file_name().expect("snapshots/<sha>").to_string_lossy().into_owned();
        let meta = client.file_meta(&sha, name)?;
        let blobs = self.dir.join("blobs");
        let blob = blobs.join(&meta.etag);
        if blob.is_file() {
            return Ok(blob);
        }
        for dir in [&blobs, &self.locks] {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let lock = self.lock(&meta.etag, name)?;
        if !blob.is_file() {
            let incomplete = blobs.join(format!("{}.incomplete", meta.etag));
            let bar = progress_bar(&format!("{} {name}", self.label), meta.size);
            let result = download_resuming(client, &meta, &incomplete, &bar);
            bar.finish_and_clear();
            result.with_context(|| format!("{name} ({})", client.file_url(&sha, name)))?;
            verify(&incomplete, &meta).with_context(|| format!("{name}: {}", incomplete.display()))?;
            std::fs::rename(&incomplete, &blob)
                .with_context(|| format!("{}: cannot rename", incomplete.display()))?;
        }
        drop(lock);
        Ok(blob)
    }

    /// The lock on blob `etag`, waited for while another process's download of it moves.
    fn lock(&self, etag: &str, name: &str) -> anyhow::Result<File> {
        let path = self.locks.join(format!("{etag}.lock"));
        let file = open_keeping(&path)?;
        let mut seen = (partial_bytes(&self.dir.join("blobs"), etag), Instant::now());
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("{}: cannot lock", path.display()))
                }
            }
            if !said {
                logging::info!(
                    "{}: waiting for another process downloading {name} ({})",
                    self.label,
                    path.display()
                );
                said = true;
            }
            let bytes = partial_bytes(&self.dir.join("blobs"), etag);
            if bytes != seen.0 {
                seen = (bytes, Instant::now());
            } else if seen.1.elapsed() > LOCK_STALL {
                bail!(
                    "{name}: another process has held {} for {} s without downloading a byte; if no \
                     download is running, delete that file",
                    path.display(),
                    LOCK_STALL.as_secs()
                );
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// `snapshots/<sha>/<name>` → `blob`, as a relative link.
    fn link(&self, name: &str, blob: &Path) -> anyhow::Result<()> {
        let pointer = self.snapshot.join(name);
        if pointer.is_file() {
            return Ok(());
        }
        let parent = pointer.parent().expect("a file in a snapshot has a parent");
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
        let ups = "../".repeat(name.split('/').count() + 1);
        let target = PathBuf::from(ups).join("blobs").join(blob.file_name().expect("a blob has a name"));
        // A dangling link left by something else: replaced.
        let _ = std::fs::remove_file(&pointer);
        std::os::unix::fs::symlink(&target, &pointer)
            .with_context(|| format!("{}: cannot link to {}", pointer.display(), target.display()))
    }
}

/// Bytes of the partial downloads of blob `etag` in `blobs` (ours and huggingface_hub's).
fn partial_bytes(blobs: &Path, etag: &str) -> u64 {
    let prefix = format!("{etag}.");
    std::fs::read_dir(blobs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

/// Fill `incomplete` with the file `meta` describes, from what it already holds on, trying again
/// (with a Range) when the connection drops.
fn download_resuming(
    client: &HubClient,
    meta: &FileMeta,
    incomplete: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut stalls = 0;
    for _ in 0..MAX_TRIES {
        let have = std::fs::metadata(incomplete).map_or(0, |m| m.len());
        if meta.size.is_some_and(|size| have >= size) {
            return Ok(());
        }
        let (added, finished) = match client.get(&meta.location, have) {
            Ok(body) => append(incomplete, body, bar)?,
            Err(HubError::Unreachable { cause, .. }) => {
                logging::debug!("{}: {cause}; trying again", incomplete.display());
                (0, false)
            }
            Err(err) => return Err(err.into()),
        };
        if finished && meta.size.is_none() {
            return Ok(());
        }
        stalls = if added > 0 { 0 } else { stalls + 1 };
        if stalls >= MAX_STALLS {
            bail!("the download stopped: {MAX_STALLS} tries in a row brought no byte (the partial file is kept and resumed next time)");
        }
        if !finished {
            std::thread::sleep(RETRY_PAUSE);
        }
    }
    bail!("the download did not finish in {MAX_TRIES} tries (the partial file is kept and resumed next time)")
}

/// Write `body` into `incomplete` (appended at its start offset, the rest cut); the bytes added
/// and whether the body ended cleanly.
fn append(
    incomplete: &Path,
    mut body: super::hub_http::Body,
    bar: &ProgressBar,
) -> anyhow::Result<(u64, bool)> {
    let file = open_keeping(incomplete)?;
    file.set_len(body.start).with_context(|| format!("{}: cannot cut", incomplete.display()))?;
    let mut file = std::io::BufWriter::new(file);
    std::io::Seek::seek(file.get_mut(), std::io::SeekFrom::End(0))?;
    bar.set_position(body.start);
    let mut buffer = vec![0u8; 1 << 16];
    let mut added = 0u64;
    let finished = loop {
        match body.reader.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => {
                file.write_all(&buffer[..n])
                    .with_context(|| format!("{}: cannot write", incomplete.display()))?;
                added += n as u64;
                bar.inc(n as u64);
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                logging::debug!("{}: {err} after {added} bytes; resuming", incomplete.display());
                break false;
            }
        }
    };
    file.flush().with_context(|| format!("{}: cannot write", incomplete.display()))?;
    Ok((added, finished))
}

/// The downloaded file has the size the hub said and, when its ETag is a SHA-256, that digest;
/// a file that does not is removed.
fn verify(incomplete: &Path, meta: &FileMeta) -> anyhow::Result<()> {
    let size = std::fs::metadata(incomplete)?.len();
    let mut problem = meta.size.filter(|&want| want != size).map(|want| format!("{size} bytes, not {want}"));
    if problem.is_none() && meta.etag.len() == 64 && meta.etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut hasher = Sha256::new();
        std::io::copy(&mut File::open(incomplete)?, &mut hasher)?;
        let got = format!("{:x}", hasher.finalize());
        if !got.eq_ignore_ascii_case(&meta.etag) {
            problem = Some(format!("SHA-256 {got}, not {}", meta.etag));
        }
    }
    match problem {
        None => Ok(()),
        Some(problem) => {
            std::fs::remove_file(incomplete)?;
            bail!("the download is damaged ({problem}) and was removed; run again to download it anew")
        }
    }
}

/// A byte bar on stderr on a terminal (not under `-q`); elsewhere one line per file.
fn progress_bar(label: &str, size: Option<u64>) -> ProgressBar {
    let shown = std::io::stderr().is_terminal() && logging::enabled(Verbosity::Normal);
    if !shown {
        let size = size.map(|bytes| format!(" ({bytes} bytes)")).unwrap_or_default();
        logging::info!("downloading {label}{size}");
        return ProgressBar::hidden();
    }
    let template = "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
    ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr())
        .with_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "))
        .with_prefix(label.to_string())
}
