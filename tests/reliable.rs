//! Issue 11, "nothing lost, ever", with the scripted runner: stop signals, full disks, folders
//! gacha did not make, the lock, damaged trial folders. Each test is one of the issue's cases.
//! Issue 29 (gacha touches only what it wrote, `best/` is what the sweep says, nothing hangs):
//! `reliable/`, one file per group of its cases.

mod best;
mod hang;
mod owned;
mod smaller;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::sweep::{start_slow_sweep, sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, leaderboard, leaderboard_sans_times, run, texts, TestDir};

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

/// `outcome.json` of trial `id` in `res`, rewritten as a failure with `error` (and `failure`,
/// when given), its weights removed: what a trial that ran out of space leaves.
fn record_failure(dir: &TestDir, id: &str, error: &str, failure: Option<&str>) {
    let path = dir.join(&format!("res/trials/{id}/outcome.json"));
    let mut outcome: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let fields = outcome.as_object_mut().unwrap();
    fields.insert("status".into(), "failed".into());
    fields.insert("after".into(), serde_json::Value::Null);
    fields.insert("error".into(), error.into());
    fields.remove("valid_answers");
    if let Some(failure) = failure {
        fields.insert("failure".into(), failure.into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&outcome).unwrap()).unwrap();
    std::fs::remove_dir_all(dir.join(&format!("res/trials/{id}/weights"))).unwrap();
}

/// Case 1: a trial that failed for lack of space is retried by the same command; one that failed
/// on its input stays failed until `--retry-failed`.
#[test]
fn issue_11_environment_failures_are_retried_and_input_failures_on_request() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\nprompt = [\"ok?\", \"FAIL now\"]\n";
    write_spec(&dir, "s.toml", axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 1);
    let calm = leaderboard_sans_times(&dir.join("res/leaderboard.csv"));
    let done: Vec<&str> = calm.iter().filter(|r| r["status"] == "done").map(|r| r["id"].as_str()).collect();
    assert_eq!(done.len(), 2);
    let enospc = "weights/scripted.json: cannot write: No space left on device (os error 28)";
    record_failure(&dir, done[0], enospc, Some("environment"));
    // Written before failures had kinds: the message says it.
    record_failure(&dir, done[1], enospc, None);

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 1);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 2 trials, 2 skipped"), "{stdout}");
    assert_eq!(leaderboard_sans_times(&dir.join("res/leaderboard.csv")), calm);
    let best = std::fs::read_to_string(dir.join("res/best/outcome.json")).unwrap();
    assert!(best.contains(&format!("\"id\": \"{}\"", calm[0]["id"])), "{best}");

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 1);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 0 trials, 4 skipped"), "{stdout}");
    assert!(
        stdout.contains(
            "2 failed trial(s) would fail again as they are (see their error); --retry-failed reruns them"
        ),
        "{stdout}"
    );
    let out = run(sweep(&dir, "s.toml", "res", 0).arg("--retry-failed"));
    assert_exit(&out, 1);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 2 trials, 2 skipped"), "{stdout}");
}

/// Case 1 end to end: whenever the disk fills (a pretend disk of N bytes), the same command run
/// after space is freed finishes every trial, with the leaderboard and `best/` of a calm run.
#[test]
fn issue_11_after_a_full_disk_the_same_command_finishes_with_the_real_winner() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01, 0.1, 0.03]\n";
    write_spec(&dir, "s.toml", axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "calm", 0)), 0);
    let calm = leaderboard_sans_times(&dir.join("calm/leaderboard.csv"));
    let best = |root: &str| std::fs::read_to_string(dir.join(&format!("{root}/best/outcome.json"))).unwrap();
    let best_id = |root: &str| best(root).lines().nth(1).map(String::from);
    let mut stopped = 0;
    for budget in [0, 400, 1_500, 3_000, 5_000, 8_000, 12_000, 20_000] {
        let results = format!("full{budget}");
        let mut first = sweep(&dir, "s.toml", &results, 0);
        let out = run(first.env("GACHA_DEBUG_DISK_BYTES", budget.to_string()));
        let (_, stderr) = texts(&out);
        if out.status.code() == Some(2) {
            stopped += 1;
            assert!(stderr.contains("No space left on device"), "{budget}: {stderr}");
            assert!(stderr.contains("free some space and run the same command again"), "{budget}: {stderr}");
        }
        let out = run(&mut sweep(&dir, "s.toml", &results, 0));
        assert_exit(&out, 0);
        assert_eq!(
            leaderboard_sans_times(&dir.join(&format!("{results}/leaderboard.csv"))),
            calm,
            "{budget}"
        );
        assert_eq!(best_id(&results), best_id("calm"), "{budget}");
    }
    assert!(stopped >= 4, "the pretend disk filled in only {stopped} of 8 runs");
}

/// Case 3: `--results u` where `u/best/model.bin` is the user's: refused, the file kept.
#[test]
fn issue_11_a_folder_gacha_did_not_make_is_refused_and_left_as_it_is() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    dir.write("u/best/model.bin", "x");
    let out = run(&mut sweep(&dir, "s.toml", "u", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains(
            "gacha: error: u: not a gacha results folder (no gacha-results.txt) and not empty (holds best)"
        ),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("u/best/model.bin")).unwrap(), "x");
    assert_eq!(std::fs::read_dir(dir.join("u")).unwrap().count(), 1, "nothing was added to u/");

    // A best/ in gacha's own folder that is not gacha's.
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    std::fs::remove_dir_all(dir.join("res/best")).unwrap();
    dir.write("res/best/model.bin", "mine");
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("res/best: not made by gacha (no files.sha256, outcome.json or final.json)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("res/best/model.bin")).unwrap(), "mine");

    // Case 10: trials/ that is a file says so.
    std::fs::remove_dir_all(dir.join("res/best")).unwrap();
    std::fs::rename(dir.join("res/trials"), dir.join("saved-trials")).unwrap();
    dir.write("res/trials", "not a folder");
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("res/trials: not a folder (gacha keeps its trial folders there); move it away"),
        "{stderr}"
    );

    // A folder from before the marker (spec.toml and trials/) is gacha's: adopted, nothing redone.
    std::fs::remove_file(dir.join("res/trials")).unwrap();
    std::fs::rename(dir.join("saved-trials"), dir.join("res/trials")).unwrap();
    std::fs::remove_file(dir.join("res/gacha-results.txt")).unwrap();
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 0 trials, 4 skipped"), "{stdout}");
    assert!(dir.join("res/gacha-results.txt").is_file());
}

/// Case 6: a half-truncated `outcome.json` and a garbage `metrics.jsonl` line: leaderboard and
/// report go on with warnings naming the files; the sweep moves the damaged folder aside (never
/// deleting it) and runs that trial again.
#[test]
fn issue_11_a_damaged_trial_folder_is_reported_moved_aside_and_run_again() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let calm = leaderboard_sans_times(&dir.join("res/leaderboard.csv"));
    let (damaged, garbled) = (calm[1]["id"].as_str(), calm[2]["id"].as_str());
    let outcome = dir.join(&format!("res/trials/{damaged}/outcome.json"));
    let bytes = std::fs::read(&outcome).unwrap();
    std::fs::write(&outcome, &bytes[..bytes.len() / 2]).unwrap();
    let metrics = dir.join(&format!("res/trials/{garbled}/metrics.jsonl"));
    let mut lines = std::fs::read_to_string(&metrics).unwrap();
    // 12 steps logged every 4: steps 1, 4, 8 and 12, so the garbage is line 5.
    assert_eq!(lines.lines().count(), 4);
    lines.push_str("garbage\n");
    std::fs::write(&metrics, lines).unwrap();

    let out = run(dir.gacha().args(["leaderboard", "res"]));
    assert_exit(&out, 0);
    let (table, stderr) = texts(&out);
    assert!(
        stderr.contains(&format!("res/trials/{damaged}/outcome.json: not a trial outcome (EOF")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("trial {damaged} counts as unfinished")), "{stderr}");
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
    let out = run(dir.gacha().args(["report", "res"]));
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains(&format!("res/trials/{garbled}/metrics.jsonl:5: not a loss line")), "{stderr}");

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(
        stderr.contains(&format!("moved the trial folder to res/trials/.damaged/{damaged}-")),
        "{stderr}"
    );
    assert!(stdout.contains("this run: 1 trials, 3 skipped"), "{stdout}");
    assert_eq!(leaderboard_sans_times(&dir.join("res/leaderboard.csv")), calm);
    let aside: Vec<_> =
        std::fs::read_dir(dir.join("res/trials/.damaged")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].join("outcome.json")).unwrap(), &bytes[..bytes.len() / 2]);
}

/// Case 7: an exploratory spec with a better config does not cost the weights that the original
/// spec's `keep` kept; `--prune` removes them.
#[test]
fn issue_11_keep_spares_what_an_earlier_spec_kept_until_prune() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let select = "[select]\nkeep = 1\n";
    let original = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01]\nprompt = [\"accuracy=0.6\", \"accuracy=0.8\"]\n";
    write_spec(&dir, "s.toml", original, select);
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let with_weights = || {
        let rows = leaderboard(&dir.join("res/leaderboard.csv"));
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| r["id"].clone())
            .filter(|id| dir.join(&format!("res/trials/{id}/weights")).exists())
            .collect();
        ids.sort();
        ids
    };
    let kept_first = with_weights();
    assert!(kept_first.len() >= 2 && kept_first.len() < 4, "{kept_first:?}");

    // A third prompt, right 99% of the time: its config wins, and keep = 1 now points at it.
    let explored = original.replace("\"accuracy=0.8\"]", "\"accuracy=0.8\", \"accuracy=0.99\"]");
    write_spec(&dir, "s.toml", &explored, select);
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let winners: Vec<String> =
        rows.iter().filter(|r| r["prompt"] == "accuracy=0.99").map(|r| r["id"].clone()).collect();
    let spared: Vec<&String> =
        kept_first.iter().filter(|id| *id != &rows[0]["id"] && !winners.contains(id)).collect();
    assert!(!spared.is_empty(), "the new config should make some earlier picks removable");
    for id in &spared {
        assert!(dir.join(&format!("res/trials/{id}/weights")).exists(), "{id} lost its weights");
        assert!(stderr.contains(id.as_str()), "{id} not named: {stderr}");
    }
    assert!(stderr.contains("gacha sweep --prune removes them"), "{stderr}");

    let out = run(sweep(&dir, "s.toml", "res", 0).arg("--prune"));
    assert_exit(&out, 0);
    for id in &spared {
        assert!(!dir.join(&format!("res/trials/{id}/weights")).exists(), "{id} kept despite --prune");
    }
}

/// Case 9: trial ids hold what the dataset's files hold, not only its path. `write_dataset`'s 40
/// lines, each image a small file of its own (the scripted runner never decodes them).
fn write_dataset_with_images(dir: &TestDir) {
    write_dataset(dir);
    for i in 0..40 {
        dir.write(&format!("img/{i}.png"), format!("image {i:02}"));
    }
}

/// Run the SPEC_4 sweep into `res`: its exit must be 0; the ids on the leaderboard and stdout.
fn sweep_ids(dir: &TestDir) -> (BTreeSet<String>, String) {
    let out = run(&mut sweep(dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let ids = leaderboard(&dir.join("res/leaderboard.csv")).into_iter().map(|r| r["id"].clone()).collect();
    (ids, texts(&out).0)
}

/// The images a trial's split.json lists, train and valid together.
fn split_images(dir: &TestDir, id: &str) -> usize {
    let path = dir.join(&format!("res/trials/{id}/split.json"));
    let split: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    ["train", "valid"].iter().map(|side| split[side].as_array().unwrap().len()).sum()
}

/// A fresh sweep of 4 trials over `write_dataset_with_images`, then `change` to the files: the
/// rerun must run 4 new trials (none "finished earlier"), keep the old folders, and rank only
/// the new ones. The folder, and the ids before and after.
fn assert_change_runs_new_trials(
    change: impl FnOnce(&TestDir),
) -> (TestDir, BTreeSet<String>, BTreeSet<String>) {
    let dir = TestDir::new();
    write_dataset_with_images(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let (before, _) = sweep_ids(&dir);
    assert_eq!(before.len(), 4);
    change(&dir);
    let (after, stdout) = sweep_ids(&dir);
    assert!(stdout.contains("this run: 4 trials, 0 skipped"), "{stdout}");
    assert_eq!(after.len(), 4);
    assert!(before.is_disjoint(&after), "ids reused: {before:?} {after:?}");
    for id in &before {
        assert!(dir.join(&format!("res/trials/{id}/outcome.json")).is_file(), "{id} was removed");
    }
    // `gacha status` rebuilds the ids from the folder's spec copy and digests: the new ones.
    let out = run(dir.gacha().args(["status", "res"]));
    assert_exit(&out, 0);
    let (status, _) = texts(&out);
    assert!(status.starts_with("res: 4 trials: 4 finished (4 done"), "{status}");
    (dir, before, after)
}

#[test]
fn issue_11_appending_a_line_to_the_dataset_runs_new_trials_on_all_its_images() {
    let (dir, before, after) = assert_change_runs_new_trials(|dir| {
        dir.write("img/40.png", "image 40");
        let mut lines = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
        lines.push_str("{\"prefix\": \"\", \"suffix\": \"yes\", \"image\": \"img/40.png\"}\n");
        dir.write("data.jsonl", lines);
    });
    assert!(before.iter().all(|id| split_images(&dir, id) == 40));
    assert!(after.iter().all(|id| split_images(&dir, id) == 41));
}

#[test]
fn issue_11_flipping_one_label_in_place_changes_the_trial_ids() {
    assert_change_runs_new_trials(|dir| {
        let lines = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
        let flipped = lines.replacen("\"suffix\": \"yes\"", "\"suffix\": \"no\"", 1);
        assert_ne!(flipped, lines);
        dir.write("data.jsonl", flipped);
    });
}

#[test]
fn issue_11_rewriting_an_image_in_place_changes_the_trial_ids() {
    // Same name, same length, other bytes.
    assert_change_runs_new_trials(|dir| {
        dir.write("img/7.png", "IMAGE 07");
    });
}

#[test]
fn issue_11_rewriting_the_same_bytes_or_touching_mtimes_keeps_every_trial() {
    let dir = TestDir::new();
    write_dataset_with_images(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let (before, _) = sweep_ids(&dir);
    let (again, stdout) = sweep_ids(&dir);
    assert!(stdout.contains("this run: 0 trials, 4 skipped"), "{stdout}");
    assert_eq!(again, before);
    // The same bytes written again, and modification times an hour back: nothing changed.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in ["data.jsonl", "img/3.png"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        dir.write(name, &bytes);
        std::fs::File::options().write(true).open(dir.join(name)).unwrap().set_modified(an_hour_ago).unwrap();
    }
    let (touched, stdout) = sweep_ids(&dir);
    assert!(stdout.contains("this run: 0 trials, 4 skipped"), "{stdout}");
    assert_eq!(touched, before);
}
