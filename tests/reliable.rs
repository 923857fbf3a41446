//! Issue 11, "nothing lost, ever", with the scripted runner: stop signals, full disks, folders
//! gacha did not make, the lock, damaged trial folders. Each test is one of the issue's cases.

use std::process::Command;
use std::time::Duration;

use crate::sweep::{start_slow_sweep, sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, leaderboard, run, texts, TestDir};

/// Case 8: SIGTERM (`kill`, `scancel`) and SIGHUP (a closed terminal) stop like Ctrl-C.
#[test]
fn issue_11_sigterm_and_sighup_stop_after_the_step_and_say_how_to_resume() {
    for signal in ["TERM", "HUP"] {
        let dir = TestDir::new();
        write_dataset(&dir);
        write_spec(&dir, "s.toml", SPEC_4, "");
        let child = start_slow_sweep(&dir);
        // A trial is 12 steps of 40 ms: 100 ms in, the first one is midway.
        std::thread::sleep(Duration::from_millis(100));
        let sent = Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status();
        assert!(sent.unwrap().success());
        let out = child.wait_with_output().unwrap();
        assert_exit(&out, 130);
        let (_, stderr) = texts(&out);
        assert!(stderr.contains("stopping after the current step"), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(
                "interrupted; to resume, run the same command again: gacha sweep s.toml --results res"
            ),
            "SIG{signal}: {stderr}"
        );
        // The interrupted trial is left unfinished (no outcome.json), not recorded failed.
        let rows = leaderboard(&dir.join("res/leaderboard.csv"));
        assert!(rows.len() < 4 && rows.iter().all(|r| r["status"] == "done"), "SIG{signal}: {rows:?}");
        let unfinished = std::fs::read_dir(dir.join("res/trials"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.join("outcome.json").exists())
            .count();
        assert_eq!(unfinished, 1, "SIG{signal}");
        let out = run(&mut sweep(&dir, "s.toml", "res", 0));
        assert_exit(&out, 0);
        let rows = leaderboard(&dir.join("res/leaderboard.csv"));
        assert_eq!(rows.iter().filter(|r| r["status"] == "done").count(), 4, "SIG{signal}");
    }
}
