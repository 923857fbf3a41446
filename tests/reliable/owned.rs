//! Issue 29, cases 1–5: gacha removes and replaces only files it wrote; the user's files in a
//! results folder are left where they are, or moved to `set-aside/` with a message.

use std::io::Write;

use crate::sweep::{sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, leaderboard, run, texts, TestDir};

/// The id in `RESULTS/best/outcome.json`, if any.
fn best_id(dir: &TestDir, results: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(&format!("{results}/best/outcome.json"))).ok()?;
    let outcome: serde_json::Value = serde_json::from_str(&text).unwrap();
    Some(outcome["id"].as_str().unwrap().to_string())
}

/// Every file under `RESULTS/set-aside/`, relative to it.
fn set_aside(dir: &TestDir, results: &str) -> Vec<String> {
    let root = dir.join(&format!("{results}/set-aside"));
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                found.push(entry.path().strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// Case 1: the README suggests scoring beside `best/` (`--out R/best/scores.csv`); when the
/// winner changes, the user's files in `best/` are moved to `set-aside/best-<time>/`, with a
/// warning naming them, never deleted.
#[test]
fn issue_29_case_1_user_files_in_best_are_moved_aside_when_best_changes() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01]\nprompt = [\"accuracy=0.6\"]\n";
    write_spec(&dir, "s.toml", axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let first = best_id(&dir, "res").unwrap();
    dir.write("res/best/scores.csv", "image,label,p_yes\n");
    dir.write("res/best/NOTES.txt", "my notes");
    dir.write("res/best/myeval/run.txt", "an evaluation");

    // A better config: the winner, so best/ is replaced.
    write_spec(
        &dir,
        "s.toml",
        &axes.replace("\"accuracy=0.6\"]", "\"accuracy=0.6\", \"accuracy=0.99\"]"),
        "",
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    assert_ne!(best_id(&dir, "res").unwrap(), first);
    assert!(!dir.join("res/best/scores.csv").exists(), "best/ holds only the new winner's files");
    let aside = set_aside(&dir, "res");
    let names: Vec<&str> = aside.iter().map(|p| p.split_once('/').unwrap().1).collect();
    assert_eq!(names, ["NOTES.txt", "myeval/run.txt", "scores.csv"], "{aside:?}");
    assert!(aside.iter().all(|p| p.starts_with("best-")), "{aside:?}");
    let kept = dir.join(&format!("res/set-aside/{}", aside[2]));
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "image,label,p_yes\n");
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("held 3 files (NOTES.txt, myeval/run.txt, scores.csv) that gacha did not write: moved to res/set-aside/best-"), "{stderr}");
}

/// Case 2: `keep` removes the weights a trial's `weights.sha256` lists, not the user's files in
/// `weights/`; `--prune` neither.
#[test]
fn issue_29_case_2_keep_removes_only_the_listed_weights() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01, 0.1, 0.03]\n";
    write_spec(&dir, "s.toml", axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let ids: Vec<String> =
        leaderboard(&dir.join("res/leaderboard.csv")).into_iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids.len(), 6);
    for id in &ids {
        dir.write(&format!("res/trials/{id}/weights/user-notes.txt"), id);
    }
    let with_weights = || {
        ids.iter().filter(|id| dir.join(&format!("res/trials/{id}/weights/scripted.json")).exists()).count()
    };
    let notes = || {
        ids.iter().filter(|id| dir.join(&format!("res/trials/{id}/weights/user-notes.txt")).exists()).count()
    };

    write_spec(&dir, "s.toml", axes, "[select]\nkeep = 1\n");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    assert!(with_weights() < 6, "keep = 1 removed no weights");
    assert_eq!(notes(), 6, "user files in weights/ were removed");

    write_spec(&dir, "s.toml", axes, "[select]\nkeep = 0\n");
    assert_exit(&run(sweep(&dir, "s.toml", "res", 0).arg("--prune")), 0);
    assert_eq!(with_weights(), 1, "keep = 0 --prune keeps the top trial's only");
    assert_eq!(notes(), 6, "user files in weights/ were removed by --prune");
}

/// Case 3: a trial folder without `outcome.json` is run again; the user's files and folders in
/// it stay as they are.
#[test]
fn issue_29_case_3_an_unfinished_trial_is_rerun_beside_the_users_files() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let id = leaderboard(&dir.join("res/leaderboard.csv"))[1]["id"].clone();
    std::fs::remove_file(dir.join(&format!("res/trials/{id}/outcome.json"))).unwrap();
    dir.write(&format!("res/trials/{id}/user.txt"), "u");
    dir.write(&format!("res/trials/{id}/plots/loss.png"), "a plot");

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 1 trials, 3 skipped"), "{stdout}");
    assert!(dir.join(&format!("res/trials/{id}/outcome.json")).is_file());
    assert_eq!(std::fs::read_to_string(dir.join(&format!("res/trials/{id}/user.txt"))).unwrap(), "u");
    assert_eq!(
        std::fs::read_to_string(dir.join(&format!("res/trials/{id}/plots/loss.png"))).unwrap(),
        "a plot"
    );
}

/// Case 4: a folder with a `spec.toml` and a `trials/` is not adopted unless the `spec.toml` is
/// a spec (and `trials/` holds trial folders): the user's files are left as they are.
#[test]
fn issue_29_case_4_a_spec_toml_and_trials_folder_alone_are_not_adopted() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    dir.write("u/spec.toml", "my notes about specs, not TOML at all");
    dir.write("u/report.html", "<p>my report</p>");
    std::fs::create_dir(dir.join("u/trials")).unwrap();
    let out = run(&mut sweep(&dir, "s.toml", "u", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("u: not a gacha results folder (no gacha-results.txt)"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("u/spec.toml")).unwrap(),
        "my notes about specs, not TOML at all"
    );
    assert_eq!(std::fs::read_to_string(dir.join("u/report.html")).unwrap(), "<p>my report</p>");
    assert!(!dir.join("u/gacha-results.txt").exists());
}

/// Case 5: `best/` is a copy: writing into its files in place (an editor, `>>`) leaves the
/// trial's own record as it was.
#[test]
fn issue_29_case_5_best_is_a_copy_not_links_into_the_trial() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let id = best_id(&dir, "res").unwrap();
    for file in ["config.toml", "weights/scripted.json"] {
        let trial = dir.join(&format!("res/trials/{id}/{file}"));
        let before = std::fs::read(&trial).unwrap();
        let mut best =
            std::fs::OpenOptions::new().append(true).open(dir.join(&format!("res/best/{file}"))).unwrap();
        best.write_all(b"\n# edited in place\n").unwrap();
        drop(best);
        assert_eq!(std::fs::read(&trial).unwrap(), before, "{file}: the trial's record changed with best/");
    }
}
