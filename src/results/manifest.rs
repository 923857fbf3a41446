//! Manifests: the files gacha wrote in a folder, each with its SHA-256, one line each as
//! `sha256sum` prints them (`<64 hex digits>  <path relative to the folder>`), so `sha256sum -c`
//! run in the folder checks them too. Lines starting with `#` are comments.
//!
//! Two kinds (`owned.rs` says where): a trial's `weights.sha256`, written as soon as its runner
//! saved the weights, before `outcome.json`; and `best/files.sha256`, every file gacha put in
//! `best/`, written last. A manifest is how gacha knows which files are its own (it removes or
//! replaces nothing else) and what its weights held (checked before a soup, a refit's soup or
//! `best/` uses them: issue 29, cases 1, 2 and 9).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::data::digest::sha256_file;
use crate::fsutil::write_atomic;

/// Read size while copying a file and hashing it.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The files of a folder that gacha wrote: path relative to the folder → SHA-256 (lowercase hex).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
    /// A comment line written first (why the list is empty, say).
    pub note: Option<String>,
}

impl Manifest {
    /// The manifest of the files `rels` (relative to `root`) as they are now.
    pub fn of(root: &Path, rels: impl IntoIterator<Item = String>) -> anyhow::Result<Manifest> {
        let mut files = BTreeMap::new();
        for rel in rels {
            let path = root.join(&rel);
            let hash =
                sha256_file(&path, u64::MAX).with_context(|| format!("{}: cannot hash", path.display()))?;
            files.insert(rel, hash);
        }
        Ok(Manifest { files, note: None })
    }

    /// The manifest at `path`, or `None` when there is none; a line that is not `HASH  PATH` is
    /// an error naming it.
    pub fn read(path: &Path) -> anyhow::Result<Option<Manifest>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("{}: cannot read", path.display())),
        };
        let mut manifest = Manifest::default();
        for (index, line) in text.lines().enumerate() {
            if let Some(comment) = line.strip_prefix('#') {
                manifest.note.get_or_insert_with(|| comment.trim().to_string());
                continue;
            }
            let parsed = line.split_once("  ").filter(|(hash, rel)| is_sha256(hash) && is_relative(rel));
            let Some((hash, rel)) = parsed else {
                bail!(
                    "{}:{}: not a line of sha256sum output (64 hex digits, two spaces, a path inside the folder)",
                    path.display(),
                    index + 1
                );
            };
            manifest.files.insert(rel.to_string(), hash.to_string());
        }
        Ok(Some(manifest))
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = String::new();
        if let Some(note) = &self.note {
            text.push_str(&format!("# {note}\n"));
        }
        for (rel, hash) in &self.files {
            text.push_str(&format!("{hash}  {rel}\n"));
        }
        write_atomic(path, text.as_bytes())
    }

    /// Whether the file `rel` of `root` is listed and still holds what was listed.
    pub fn holds(&self, root: &Path, rel: &str) -> bool {
        self.files
            .get(rel)
            .is_some_and(|hash| sha256_file(&root.join(rel), u64::MAX).is_ok_and(|h| &h == hash))
    }

    /// Check that every listed file of `root` holds what was listed; the error names the file,
    /// the manifest (`listed_in`) and both digests.
    pub fn verify(&self, root: &Path, listed_in: &Path) -> anyhow::Result<()> {
        for (rel, hash) in &self.files {
            let path = root.join(rel);
            let now = sha256_file(&path, u64::MAX).map_err(|err| anyhow::anyhow!("{err}"));
            match now {
                Ok(now) if &now == hash => {}
                Ok(now) => bail!(
                    "{}: changed since gacha wrote it (sha256 {now}, {} lists {hash})",
                    path.display(),
                    listed_in.display()
                ),
                Err(err) => bail!("{}: {err} ({} lists it)", path.display(), listed_in.display()),
            }
        }
        Ok(())
    }
}

/// Copy the file `from` to the new file `to` (never through a link at `to`), checking on the way
/// that it holds `expected` (a SHA-256) when given; its SHA-256. On a mismatch `to` is removed
/// and the error names `from`.
pub fn copy_checked(from: &Path, to: &Path, expected: Option<&str>) -> anyhow::Result<String> {
    let copied = (|| -> anyhow::Result<String> {
        let mut source = File::open(from).with_context(|| format!("{}: cannot read", from.display()))?;
        let mut target = File::options()
            .write(true)
            .create_new(true)
            .open(to)
            .with_context(|| format!("{}: cannot create", to.display()))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
        loop {
            let n = source.read(&mut buffer).with_context(|| format!("{}: cannot read", from.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            target.write_all(&buffer[..n]).with_context(|| format!("{}: cannot write", to.display()))?;
        }
        target.sync_all().with_context(|| format!("{}: cannot write", to.display()))?;
        let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        match expected {
            Some(expected) if expected != hash => {
                bail!("{}: changed since gacha wrote it (sha256 {hash}, listed {expected})", from.display())
            }
            _ => Ok(hash),
        }
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Every regular file under `dir`, as paths relative to `root` (sorted); symbolic links and other
/// kinds are left out. None when `dir` does not exist.
pub fn files_under(root: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let entries = match std::fs::read_dir(&at) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            entries => entries.with_context(|| format!("{}: cannot list", at.display()))?,
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("{}: cannot list", at.display()))?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A path inside the folder: relative, no `..`.
fn is_relative(rel: &str) -> bool {
    let path = Path::new(rel);
    !rel.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn a_manifest_is_sha256sum_output_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("weights")).unwrap();
        std::fs::write(dir.path().join("weights/w.bin"), "abc").unwrap();
        let manifest = Manifest::of(dir.path(), ["weights/w.bin".to_string()]).unwrap();
        let path = dir.path().join("weights.sha256");
        manifest.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{SHA256_ABC}  weights/w.bin\n"));
        assert_eq!(Manifest::read(&path).unwrap(), Some(manifest.clone()));
        assert!(manifest.holds(dir.path(), "weights/w.bin"));
        manifest.verify(dir.path(), &path).unwrap();
        // Edited in place: no longer what gacha wrote.
        std::fs::write(dir.path().join("weights/w.bin"), "abd").unwrap();
        assert!(!manifest.holds(dir.path(), "weights/w.bin"));
        let err = manifest.verify(dir.path(), &path).unwrap_err().to_string();
        assert!(err.contains("weights/w.bin: changed since gacha wrote it"), "{err}");
        for bad in ["xyz  a", &format!("{SHA256_ABC}  ../a"), &format!("{SHA256_ABC} a")] {
            std::fs::write(&path, format!("{bad}\n")).unwrap();
            let err = Manifest::read(&path).unwrap_err().to_string();
            assert!(err.ends_with("weights.sha256:1: not a line of sha256sum output (64 hex digits, two spaces, a path inside the folder)"), "{err}");
        }
        assert_eq!(Manifest::read(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn a_checked_copy_refuses_a_file_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&from, "abc").unwrap();
        assert_eq!(copy_checked(&from, &to, Some(SHA256_ABC)).unwrap(), SHA256_ABC);
        assert_eq!(std::fs::read(&to).unwrap(), b"abc");
        std::fs::remove_file(&to).unwrap();
        std::fs::write(&from, "abd").unwrap();
        assert!(copy_checked(&from, &to, Some(SHA256_ABC)).is_err());
        assert!(!to.exists(), "a failed copy leaves nothing");
    }
}
