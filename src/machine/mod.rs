//! What this machine can give a run: the host memory available to this process, which the memory
//! guard (`spec::fits`) compares a sweep's estimated peak against.
//!
//! Available memory is the least of:
//! - `MemAvailable` in `/proc/meminfo` (what the kernel can hand out without swapping);
//! - the room left under this process's cgroup limit, `memory.max − memory.current` (cgroup v2)
//!   or `memory.limit_in_bytes − memory.usage_in_bytes` (v1), where one is set.
//!
//! [`MEMORY_LIMIT_ENV`] replaces all of that with a number (tests; machines whose limits are
//! enforced elsewhere, as a batch scheduler's). A GPU's memory is `gpu`'s; how many CPU workers
//! a sweep runs side by side, `cpu_workers`'.

use std::fmt;
use std::path::Path;

pub mod cpu_workers;
pub mod gpu;

/// Bytes a run may use, overriding what the machine reports.
pub const MEMORY_LIMIT_ENV: &str = "GACHA_MEMORY_LIMIT_BYTES";

/// A number of bytes and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: String,
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", Bytes(self.bytes), self.source)
    }
}

/// Bytes for people: `512 B`, `3.2 MiB`, `24.0 GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// The host memory this process may still use: [`MEMORY_LIMIT_ENV`] if set, else the least of
/// `MemAvailable` and the cgroup's room; `None` where neither can be read (not Linux).
pub fn available_memory() -> Result<Option<MemoryLimit>, String> {
    if let Some(limit) = limit_from_env(MEMORY_LIMIT_ENV)? {
        return Ok(Some(limit));
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let host = meminfo
        .as_deref()
        .and_then(mem_available)
        .map(|bytes| MemoryLimit { bytes, source: "MemAvailable in /proc/meminfo".into() });
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|text| cgroup_room(&text));
    Ok(match (host, cgroup) {
        (Some(host), Some(cgroup)) => Some(if cgroup.bytes < host.bytes { cgroup } else { host }),
        (host, cgroup) => host.or(cgroup),
    })
}

/// The whole number of bytes in the environment variable `name`, if it is set.
fn limit_from_env(name: &str) -> Result<Option<MemoryLimit>, String> {
    let Some(value) = std::env::var_os(name) else { return Ok(None) };
    let text = value.to_string_lossy();
    let bytes = text
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{name}={text:?}: expected a whole number of bytes"))?;
    Ok(Some(MemoryLimit { bytes, source: name.to_string() }))
}

/// `MemAvailable:  123456 kB` → bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    proc_kilobytes(meminfo, "MemAvailable")
}

/// The value of the line `KEY:   123456 kB` of a `/proc` file (`meminfo`, `self/status`) in
/// bytes; `None` when the line is missing or not in kB.
pub fn proc_kilobytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// The room under this process's cgroup memory limit, if one is set, from `/proc/self/cgroup`
/// (`0::/path` for v2, `N:memory:/path` for v1). A container often sees its own cgroup at the
/// mount's root, so the root is read where the path is not there.
fn cgroup_room(proc_cgroup: &str) -> Option<MemoryLimit> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let (mount, limit, usage) = match controllers {
            "" => ("/sys/fs/cgroup", "memory.max", "memory.current"),
            c if c.split(',').any(|c| c == "memory") => {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
            }
            _ => continue,
        };
        let mount = Path::new(mount);
        for dir in [mount.join(path), mount.to_path_buf()] {
            let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
            // "max" (v2) or a huge number (v1, 2⁶³ rounded to pages) when no limit is set.
            let Some(max) = read(limit).and_then(|t| t.trim().parse::<u64>().ok()) else { continue };
            let used = read(usage).and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
            if max < u64::MAX / 4 {
                let source = format!("cgroup {} − {}", dir.join(limit).display(), usage);
                return Some(MemoryLimit { bytes: max.saturating_sub(used), source });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_kilobytes() {
        let meminfo = "MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
    }

    #[test]
    fn a_cgroup_line_without_memory_gives_no_limit() {
        assert_eq!(cgroup_room("3:cpuset:/\n"), None);
    }
}
