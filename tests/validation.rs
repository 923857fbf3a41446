//! `[validation]` schemes, test images and the final model (`[select] final`), with the scripted
//! runner on the 40-image dataset of `sweep.rs`: which images each trial sees, what `best/`
//! holds, and that refits resume after SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::sweep::{sweep, write_dataset, write_spec};
use crate::util::{assert_exit, leaderboard, run, texts, TestDir};

/// Every trial's `split.json` (train and valid images), by trial id.
fn splits(
    dir: &TestDir,
    results: &str,
    ids: impl Iterator<Item = String>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    ids.map(|id| {
        let path = dir.join(&format!("{results}/{id}/split.json"));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let list = |key: &str| {
            json[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        (id, (list("train"), list("valid")))
    })
    .collect()
}

fn final_json(dir: &TestDir, results: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(&format!("{results}/best/final.json"))).unwrap())
        .unwrap()
}

const KFOLD: &str = "[validation]\nscheme = \"repeated_kfold\"\nfolds = 4\nrepeats = 2\ntest = 8\n";

#[test]
fn kfold_validates_each_non_test_image_once_per_repeat_and_never_shows_the_test_images() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", "seeds = [1]\nlearning_rate = [0.01, 0.1]\n", KFOLD);
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    // 2 configs × 4 folds × 2 repeats.
    assert!(stdout.contains("16 of 16 trials finished"), "{stdout}");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let all = splits(&dir, "res/trials", rows.iter().map(|r| r["id"].clone()));
    let seen: BTreeSet<&String> = all.values().flat_map(|(train, valid)| train.iter().chain(valid)).collect();
    // 40 images, 8 of them test: no trial trains or validates on those.
    assert_eq!(seen.len(), 32);
    for config in rows.iter().map(|r| &r["config"]).collect::<BTreeSet<_>>() {
        let mut times: BTreeMap<&String, usize> = BTreeMap::new();
        for row in rows.iter().filter(|r| &r["config"] == config) {
            let (train, valid) = &all[&row["id"]];
            assert_eq!((train.len(), valid.len()), (24, 8), "trial {}", row["id"]);
            valid.iter().for_each(|image| *times.entry(image).or_default() += 1);
        }
        assert_eq!(times.len(), 32);
        assert!(times.values().all(|&n| n == 2), "config {config}: {times:?}");
    }
    // Configs are compared on the same folds: fold 1 of repeat 1 holds the same images for both.
    let fold_1: BTreeSet<&Vec<String>> =
        rows.iter().filter(|r| r["repeat"] == "1" && r["fold"] == "1/4").map(|r| &all[&r["id"]].1).collect();
    assert_eq!(fold_1.len(), 1);
    // The final model (best_trial by default) answered the 8 test images.
    let record = final_json(&dir, "res");
    let test = &record["test"];
    let total: u64 = ["tp", "tn", "fp", "fn"].iter().map(|k| test[k].as_u64().unwrap()).sum();
    assert_eq!(total, 8);
    assert!(stdout.contains("on 8 test images"), "{stdout}");
}

#[test]
fn soup_averages_every_done_pull_of_the_winning_config() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let select = format!("{KFOLD}[select]\nfinal = \"soup\"\n");
    write_spec(&dir, "s.toml", "seeds = [1, 2]\nlearning_rate = [0.01, 0.1]\n", &select);
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let record = final_json(&dir, "res");
    assert_eq!(record["final"], "soup");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let pulls: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["config"] == record["config"].as_str().unwrap() && r["status"] == "done")
        .map(|r| format!("trials/{}", r["id"]))
        .collect();
    // 2 seeds × 2 repeats × 4 folds.
    assert_eq!(pulls.len(), 16);
    let members: BTreeSet<String> =
        record["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    assert_eq!(members, pulls);
    let weights: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("res/best/weights/scripted.json")).unwrap())
            .unwrap();
    assert_eq!(weights["models"].as_array().unwrap().len(), 16);
    // A second run changes nothing: the soup is not rebuilt.
    let made = std::fs::metadata(dir.join("res/best/final.json")).unwrap().modified().unwrap();
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    assert_eq!(std::fs::metadata(dir.join("res/best/final.json")).unwrap().modified().unwrap(), made);
}

#[test]
fn refits_train_on_every_non_test_image_and_resume_after_sigkill() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let select = format!("{KFOLD}[select]\nfinal = \"refit\"\nrefit_seeds = [3, 4, 5]\n");
    write_spec(&dir, "s.toml", "seeds = [1]\nlearning_rate = [0.01, 0.1]\n", &select);
    // Kill the sweep while its first refit runs (12 steps of 30 ms).
    let mut child =
        sweep(&dir, "s.toml", "res", 30).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("res/refit").exists() {
        assert!(Instant::now() < deadline, "no refit started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join("res/best/final.json").exists());

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 0 trials, 16 skipped"), "{stdout}");
    assert!(stdout.contains("final model: refit of 3 models"), "{stdout}");
    let record = final_json(&dir, "res");
    let members: Vec<String> =
        record["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    assert_eq!(members.len(), 3);
    let ids = members.iter().map(|m| m.trim_start_matches("refit/").to_string());
    for (id, (train, valid)) in splits(&dir, "res/refit", ids) {
        assert_eq!((train.len(), valid.len()), (32, 0), "refit {id}");
        let outcome = std::fs::read_to_string(dir.join(&format!("res/refit/{id}/outcome.json"))).unwrap();
        assert!(outcome.contains("\"status\": \"done\""), "{outcome}");
    }
    // Refit seeds, not trial seeds: the refit configs say so.
    let config = std::fs::read_to_string(dir.join(&format!("res/{}/config.toml", members[0]))).unwrap();
    assert!(config.contains("seed = 3"), "{config}");
}

#[test]
fn validation_mistakes_are_reported_at_their_line() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(
        &dir,
        "s.toml",
        "seeds = [1]\nlearning_rate = [0.01]\n",
        "[validation]\nscheme = \"kfold\"\nfolds = 50\n",
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("s.toml: line 11: validation.folds: 50 folds of 40 images"), "{stderr}");
}
