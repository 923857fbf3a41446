//! Issue 29, cases 10 and 11: nothing hangs. An input that is not a regular file (a FIFO, a
//! symbolic link to `/dev/zero`) is refused before it is read or hashed; a wait on a held lock
//! says so, gives up naming the holder once the holder is stale, and ends on SIGTERM.
//!
//! Each command runs under `run_bounded`: a hang ends the test as a failure after the bound
//! instead of stalling the suite. The bound only detects a hang; what is asserted is the message.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::sweep::{sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, run, run_bounded, texts, wait_until, TestDir};

/// Far longer than any of these commands takes (milliseconds), far shorter than a hang.
const BOUND: Duration = Duration::from_secs(10);

/// Case 10 (and the device messages of case 20): a dataset whose images include a FIFO (no
/// writer: reading it waits for ever), a symbolic link to `/dev/zero` (never ends) and a sparse
/// 3 GiB file (hashed in full before the size cap refused it) is refused line by line, at once,
/// by `gacha check` and `gacha sweep`; a spec whose `data.path` is `/dev/zero` says what it is.
#[test]
fn issue_29_case_10_a_fifo_or_device_in_the_dataset_is_refused_without_reading_it() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let made = Command::new("mkfifo").arg(dir.join("img/3.png")).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", dir.join("img/4.png")).unwrap();
    std::fs::File::create(dir.join("img/5.png")).unwrap().set_len(3 << 30).unwrap();

    let check = run_bounded(dir.gacha().args(["check", "s.toml"]), BOUND).expect("gacha check hung");
    let ran = run_bounded(&mut sweep(&dir, "s.toml", "res", 0), BOUND).expect("gacha sweep hung");
    for out in [check, ran] {
        assert_exit(&out, 2);
        let (_, stderr) = texts(&out);
        assert!(
            stderr
                .contains("data.jsonl:4: image path \"img/3.png\" is a named pipe (FIFO), not an image file"),
            "{stderr}"
        );
        assert!(
            stderr
                .contains("data.jsonl:5: image path \"img/4.png\" is a character device, not an image file"),
            "{stderr}"
        );
    }
    // With the FIFO and the device gone, the 3 GiB file is refused by its size, unread.
    let lines = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
    dir.write("data.jsonl", lines.replace("img/3.png", "img/30.png").replace("img/4.png", "img/31.png"));
    let out = run_bounded(dir.gacha().args(["check", "s.toml"]), BOUND).expect("gacha check hung");
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("data.jsonl:6: img/5.png: a file of 3221225472 bytes exceeds the cap"),
        "{stderr}"
    );

    dir.write(
        "z.toml",
        std::fs::read_to_string(dir.join("s.toml")).unwrap().replace("data.jsonl", "/dev/zero"),
    );
    let out = run_bounded(dir.gacha().args(["check", "z.toml"]), BOUND).expect("gacha check hung");
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("data.path: dataset file /dev/zero is a character device, not a regular file"),
        "{stderr}"
    );
}

/// A finished sweep in `res`, and its export lock held by this test process: what `flock
/// res/claims/.export-lock sleep 40` does, or a gacha worker stopped with Ctrl-Z.
fn held_export_lock(dir: &TestDir) -> std::fs::File {
    write_dataset(dir);
    write_spec(dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(dir, "s.toml", "res", 0)), 0);
    let lock = std::fs::File::options().write(true).open(dir.join("res/claims/.export-lock")).unwrap();
    lock.lock().unwrap();
    lock
}

/// Case 11: a sweep waiting for a held export lock says so and who holds it, and once the
/// holder has not refreshed the lock for the stale period (injected: 1 s) it stops with an
/// error that names the holder, instead of waiting silently for ever.
#[test]
fn issue_29_case_11_a_held_lock_is_reported_and_a_stale_holder_named() {
    let dir = TestDir::new();
    let _held = held_export_lock(&dir);
    let out = run_bounded(sweep(&dir, "s.toml", "res", 0).env("GACHA_CLAIM_STALE_SECS", "1"), BOUND)
        .expect("the sweep waited on the lock without end");
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    let holder = format!("held by process {} (", std::process::id());
    assert!(
        stderr.contains(&format!("waiting for the export lock (res/claims/.export-lock), {holder}")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("the export lock (res/claims/.export-lock) is {holder}")), "{stderr}");
    assert!(stderr.contains("it is stopped (Ctrl-Z), frozen or not gacha"), "{stderr}");
}

/// Case 11: SIGTERM (`timeout`, `scancel`) ends a sweep that waits for the lock at once, as
/// interrupted (exit 130, with the resume command), not when the lock frees.
#[test]
fn issue_29_case_11_sigterm_ends_a_wait_for_the_lock() {
    let dir = TestDir::new();
    let held = held_export_lock(&dir);
    let child =
        sweep(&dir, "s.toml", "res", 0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // It waits once it has opened the lock file: SIGTERM then finds its handler installed.
    let fds = format!("/proc/{}/fd", child.id());
    let opened = || {
        std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.ends_with("claims/.export-lock")))
    };
    assert!(wait_until(BOUND, opened), "the sweep never opened the lock file");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Ended: a zombie until reaped. Then the lock is let go either way, so that a sweep that
    // did not end is not waited for without end.
    let status = format!("/proc/{pid}/status");
    let ended = wait_until(BOUND, || std::fs::read_to_string(&status).is_ok_and(|s| s.contains("State:\tZ")));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(ended, "SIGTERM did not end the wait for the lock");
    assert_exit(&out, 130);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("stopped while waiting for the export lock (res/claims/.export-lock)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("to resume, run the same command again: gacha sweep s.toml --results res"),
        "{stderr}"
    );
}
