//! File-system helpers shared by every module that writes results.
//!
//! Testing aid: with `GACHA_DEBUG_DISK_BYTES=N` in the environment, files written through
//! [`write_atomic_with`] share N bytes of pretend disk; one that does not fit fails with "No
//! space left on device", as on a full disk (the only global state here: one counter).
//!
//! Reading inputs (datasets, images, specs, model files) goes through `input`: a regular file,
//! checked before it is opened.

pub mod input;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::Context;

/// Write `bytes` to `path` so that readers see the old file or the whole new one, never a part
/// (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |file| Ok(file.write_all(bytes)?))
}

/// Write `path` with `write` so that readers see the old file or the whole new one, never a part:
/// `write` fills a temporary file in the same folder (same file system), which is flushed to disk
/// and renamed over `path`. The temporary file is removed if anything fails. For files too big to
/// build in memory first (a model checkpoint).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("{}: not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-{}", host_name(), std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> anyhow::Result<()> {
        let mut file = create_new(&tmp)?;
        write(&mut file)?;
        charge_disk_budget(file.metadata()?.len())?;
        file.sync_all()?;
        Ok(std::fs::rename(&tmp, path)?)
    })();
    if result.is_err() {
        // Best effort: the error below is what matters.
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// Swap the folders (or files) `a` and `b` in one step, so that no reader ever finds `b` missing
/// (`renameat2` with `RENAME_EXCHANGE`, Linux 3.15+). `Ok(false)` where the file system or the
/// OS cannot (NFS, other systems): the caller then renames in two steps.
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))
        };
        let (a, b) = (c(a)?, c(b)?);
        // SAFETY: two valid NUL-terminated paths, relative to the current folder (AT_FDCWD).
        let done = unsafe {
            libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
        };
        if done == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => Ok(false),
            _ => Err(err),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Open `path` for writing, created if missing, its bytes kept (a lock file, a partial download).
pub fn open_keeping(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`): with the
/// pid it names a process among the hosts that share a results folder.
pub fn host_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
    .clone()
}

/// A new file at `path`, never through a symbolic link (`O_CREAT | O_EXCL`); a leftover file of
/// that name (a dead process's temporary, same pid) is removed first.
fn create_new(path: &Path) -> std::io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()
        }
        result => result,
    }
}

/// The environment variable of the full-disk testing aid (see the module doc).
pub const DISK_BYTES_VAR: &str = "GACHA_DEBUG_DISK_BYTES";

/// Count `bytes` against `GACHA_DEBUG_DISK_BYTES` like a disk of that size that nothing is
/// ever removed from: a file that does not fit in what is left fails as on a full disk (and
/// takes no space), smaller ones may still fit.
fn charge_disk_budget(bytes: u64) -> std::io::Result<()> {
    static BUDGET: OnceLock<Option<u64>> = OnceLock::new();
    static USED: AtomicU64 = AtomicU64::new(0);
    let budget = BUDGET.get_or_init(|| std::env::var(DISK_BYTES_VAR).ok().and_then(|v| v.parse().ok()));
    let Some(budget) = *budget else { return Ok(()) };
    let fits = |used: u64| (used + bytes <= budget).then_some(used + bytes);
    match USED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, fits) {
        Ok(_) => Ok(()),
        // ENOSPC (28 on Linux and macOS): the error a full disk gives, message and all.
        Err(_) => Err(std::io::Error::from_raw_os_error(28)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out.csv"]);
    }

    #[test]
    fn names_the_path_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder/out.csv");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(format!("{err:#}").contains("missing-folder/out.csv: cannot write"), "{err:#}");
    }

    #[test]
    fn exchange_swaps_two_folders_or_says_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), "from a").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(std::fs::read_to_string(b.join("x")).unwrap(), "from a");
            assert!(!a.join("x").exists());
        }
    }

    #[cfg(unix)]
    #[test]
    fn never_writes_through_a_symlink_at_the_temporary_path() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let tmp = dir.path().join(format!(".out.tmp-{}-{}", host_name(), std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&dir.path().join("out"), b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"new");
        assert!(!tmp.exists());
    }
}
