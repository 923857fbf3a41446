//! Issue 11: a closed stdout (`gacha status DIR | head -1`) ends gacha quietly, killed by SIGPIPE
//! as `cat` or `grep` would be, instead of panicking with "failed printing to stdout".

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use crate::sweep::{sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, run, texts, TestDir};

#[test]
fn issue_11_status_and_leaderboard_into_a_closed_pipe_end_by_sigpipe_without_a_panic() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    for command in [["status", "res"], ["leaderboard", "res"]] {
        // The reader is closed before gacha starts, so its first write to stdout fails: no race.
        let (reader, writer) = std::io::pipe().expect("make a pipe");
        drop(reader);
        let out =
            dir.gacha().args(command).stdout(writer).stderr(Stdio::piped()).output().expect("start gacha");
        let (_, stderr) = texts(&out);
        assert!(!stderr.contains("panicked"), "gacha {command:?} panicked:\n{stderr}");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "gacha {command:?}: {:?}\n{stderr}", out.status);
    }
}
