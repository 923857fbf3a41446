//! Test harness: a temp dir per test and a command for the built `gacha` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch folder that is removed when the test ends.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir { dir: tempfile::tempdir().expect("create temp dir") }
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

    /// A `gacha` command running in this folder.
    pub fn gacha(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gacha"));
        cmd.current_dir(self.path());
        cmd
    }
}

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
