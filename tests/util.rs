//! Test harness: a temp dir per test and a command for the built `gacha` binary.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A scratch folder that is removed when the test ends.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir { dir: tempfile::tempdir().expect("create temp dir") }
    }

    /// In memory (`/dev/shm`) where the machine has it, so that fsyncs cost nothing: for tests
    /// that run thousands of scripted trials.
    pub fn in_memory() -> TestDir {
        let shm = Path::new("/dev/shm");
        match shm.is_dir().then(|| tempfile::tempdir_in(shm).ok()).flatten() {
            Some(dir) => TestDir { dir },
            None => TestDir::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file (creating parent folders) and return its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// The built binary, run in this folder. The memory it checks specs against is injected
    /// ([`MEMORY_LIMIT_BYTES`]), so that no test depends on this machine's free memory; a test
    /// of the memory check sets its own. `HF_HUB_OFFLINE=1`: no test reaches the real hub (the
    /// download tests remove it and name their own local server).
    pub fn gacha(&self) -> Command {
        let mut cmd = Command::new(gacha_binary());
        cmd.current_dir(self.path())
            .env("GACHA_MEMORY_LIMIT_BYTES", MEMORY_LIMIT_BYTES.to_string())
            .env("HF_HUB_OFFLINE", "1");
        cmd
    }
}

/// The binary under test: this build's, or the one `GACHA_TEST_BIN` names (to run the CLI tests
/// against another build, such as the last release, and see which of them it fails).
pub fn gacha_binary() -> PathBuf {
    std::env::var_os("GACHA_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gacha")), PathBuf::from)
}

/// Run a command for at most `limit`: its output, or `None` when it was still running then (it
/// is killed). For tests of what must not hang.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start gacha");
    // Read both streams as they come, so a chatty child never blocks on a full pipe.
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let ready = wait_until(limit, || child.try_wait().expect("poll gacha").is_some());
    if !ready {
        let _ = child.kill();
    }
    let status = child.wait().expect("reap gacha");
    let (stdout, stderr) = (stdout.join().expect("read stdout"), stderr.join().expect("read stderr"));
    ready.then_some(Output { status, stdout, stderr })
}

/// Wait up to `limit` for `ready` to hold, polling; whether it did.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The memory every test's gacha sees as available unless the test sets its own: 8 GiB, far
/// above what the tiny models need and within what a CI machine has.
pub const MEMORY_LIMIT_BYTES: u64 = 8 << 30;

/// The repository's `tests/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Run a command and return its output; panics only if it could not be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("start gacha")
}

/// Text of stdout and stderr, for assertions and readable failure messages.
pub fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Assert an exit code, printing both streams in full when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    let (stdout, stderr) = texts(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit code\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// A leaderboard CSV as rows of column → cell.
pub fn leaderboard(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().expect("a header row").clone();
    reader
        .records()
        .map(|row| {
            headers.iter().map(String::from).zip(row.expect("a CSV row").iter().map(String::from)).collect()
        })
        .collect()
}

/// The leaderboard without the columns allowed to differ between runs (times: `_s`, `_at`).
pub fn leaderboard_sans_times(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut rows = leaderboard(path);
    for row in &mut rows {
        row.retain(|column, _| !column.ends_with("_s") && !column.ends_with("_at"));
    }
    rows
}

/// Start `command()` `times` times and SIGKILL each run after a pseudo-random wait of
/// `min_ms..min_ms + spread_ms` (unless it finished first). The wait schedule comes from a clock
/// seed, printed so a failure can be replayed. Returns how many kills landed.
pub fn kill_at_random_moments(
    mut command: impl FnMut() -> Command,
    times: usize,
    min_ms: u64,
    spread_ms: u64,
) -> usize {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let mut state = clock.subsec_nanos() as u64 ^ std::process::id() as u64;
    eprintln!("kill schedule seed {state}");
    let mut kills = 0;
    for _ in 0..times {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let wait = Duration::from_millis(min_ms + (state >> 33) % spread_ms);
        let mut child = command().stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start gacha");
        std::thread::sleep(wait);
        if child.try_wait().expect("poll gacha").is_none() {
            child.kill().expect("kill gacha");
            kills += 1;
        }
        child.wait().expect("reap gacha");
    }
    eprintln!("{kills} kills landed");
    kills
}

/// Whether a worker holds a trial's claim in the results folder `results` (a file in
/// `claims/` other than the dot-files).
pub fn holds_a_claim(results: &Path) -> bool {
    std::fs::read_dir(results.join("claims"))
        .map(|entries| entries.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.')))
        .unwrap_or(false)
}
