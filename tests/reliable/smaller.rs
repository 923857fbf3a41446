//! Issue 29, the smaller cases: stdout on a full disk, a split swept, symbolic links out of
//! the dataset, contradicting labels, control characters on the terminal, misleading messages.

use std::process::Stdio;

use crate::sweep::{start_slow_sweep, sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, run, texts, TestDir};

/// A finished sweep of `SPEC_4` in `res`.
fn swept(dir: &TestDir) {
    write_dataset(dir);
    write_spec(dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(dir, "s.toml", "res", 0)), 0);
}

/// Case 13: stdout on a full disk (`> /dev/full`) is an error that names stdout (exit 2), not a
/// panic (exit 101 with a backtrace), for `sweep`, `status` and `leaderboard`.
#[test]
fn issue_29_case_13_a_full_stdout_is_an_error_not_a_panic() {
    let dir = TestDir::new();
    swept(&dir);
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut rerun = sweep(&dir, "s.toml", "res", 0);
    let mut status = dir.gacha();
    status.args(["status", "res"]);
    let mut board = dir.gacha();
    board.args(["leaderboard", "res"]);
    for cmd in [&mut rerun, &mut status, &mut board] {
        let out = cmd.stdout(full()).stderr(Stdio::piped()).output().unwrap();
        assert_exit(&out, 2);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("gacha: error: cannot write to stdout: No space left on device"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Case 16: what `gacha split --out DIR` writes (image paths through `..`) can be swept, with
/// `allow_outside_paths = true` under `[data]`, the key its warning names.
#[test]
fn issue_29_case_16_a_split_can_be_swept_with_allow_outside_paths() {
    let dir = TestDir::new();
    write_dataset(&dir);
    std::fs::create_dir(dir.join("all")).unwrap();
    std::fs::rename(dir.join("data.jsonl"), dir.join("all/data.jsonl")).unwrap();
    let out = run(dir.gacha().args(["split", "all/data.jsonl", "--valid", "10", "--out", "parts"]));
    assert_exit(&out, 0);
    assert!(
        texts(&out).1.contains("(in a spec: allow_outside_paths = true under [data])"),
        "{}",
        texts(&out).1
    );
    let spec = |allow: &str| {
        format!(
            "name = \"p\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"parts/train.jsonl\"\n{allow}\
             [train]\nsteps = 12\nlog_every = 4\n[sweep]\nseeds = [1]\nvalid = [10]\nlearning_rate = [0.01]\n"
        )
    };
    dir.write("p.toml", spec(""));
    let out = run(&mut sweep(&dir, "p.toml", "res", 0));
    assert_exit(&out, 2);
    assert!(texts(&out).1.contains("leaves the dataset's folder (allow it with"), "{}", texts(&out).1);
    dir.write("p.toml", spec("allow_outside_paths = true\n"));
    let out = run(&mut sweep(&dir, "p.toml", "res", 0));
    assert_exit(&out, 0);
}

/// Case 17: an image that is a symbolic link out of the dataset's folder (to `/etc/passwd`)
/// is refused by its real path, before it is read: no byte of it is shown.
#[test]
fn issue_29_case_17_a_symbolic_link_out_of_the_folder_is_refused_unread() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    std::fs::create_dir(dir.join("img")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("img/0.png")).unwrap();
    let out = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains(
            "data.jsonl:1: image path \"img/0.png\" leads out of the dataset's folder through a symbolic link, to /etc/passwd"
        ),
        "{stderr}"
    );
    // "root:x" as the hex an unrecognised image's first bytes are shown in.
    assert!(!stderr.contains("72 6f 6f 74"), "{stderr}");
}

/// Case 18: the same image with the same prefix labelled `yes` on one line and `no` on another
/// is a problem of the later line, naming the earlier one.
#[test]
fn issue_29_case_18_an_image_labelled_both_ways_is_flagged() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let mut lines = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
    // Line 2 says img/1.png is "no".
    lines.push_str("{\"prefix\": \"\", \"suffix\": \"yes\", \"image\": \"img/1.png\"}\n");
    dir.write("data.jsonl", lines);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let out = run(dir.gacha().args(["check", "s.toml"]));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("data.jsonl:41: image \"img/1.png\" is labelled \"yes\" here and \"no\" on line 2, with the same prefix"),
        "{stderr}"
    );
}

/// Case 19: `gacha leaderboard` shows a prompt's control characters (ESC, NUL) escaped, as the
/// CSVs and `status` do, never raw to the terminal.
#[test]
fn issue_29_case_19_the_leaderboard_escapes_control_characters() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = format!("{SPEC_4}prompt = [\"\\u001b[31maccuracy=0.6\", \"accuracy=0.7\\u0000\"]\n");
    write_spec(&dir, "s.toml", &axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let out = run(dir.gacha().args(["leaderboard", "res"]));
    assert_exit(&out, 0);
    assert!(!out.stdout.iter().any(|&b| b == 0x1b || b == 0), "raw control bytes on stdout");
    let (table, _) = texts(&out);
    assert!(table.contains("\\u{1b}[31maccuracy=0.6"), "{table}");
    assert!(table.contains("accuracy=0.7\\0"), "{table}");
}

/// Case 20: the first line of the part a `--workers` sweep runs after its workers counts what
/// they ran as theirs, not as "finished earlier"; a claim removed under a running trial is
/// called removed, not "120 s without a heartbeat".
#[test]
fn issue_29_case_20_messages_say_what_happened() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let out = run(sweep(&dir, "s.toml", "w", 0).args(["--workers", "2"]));
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("4 trials (0 finished earlier, 4 by this command's workers) → w"), "{stderr}");

    let child = start_slow_sweep(&dir);
    for entry in std::fs::read_dir(dir.join("res/claims")).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            std::fs::remove_file(path).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("was removed, not by this worker; nothing recorded here"), "{stderr}");
    assert!(!stderr.contains("without a heartbeat"), "{stderr}");
}
