//! Issue 29, cases 6–9: `best/` holds what the sweep says, and only records and weights that
//! are what their trials wrote are used.

use std::process::Stdio;
use std::time::Duration;

use crate::sweep::{sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, holds_a_claim, leaderboard, run, texts, wait_until, TestDir};

fn json(dir: &TestDir, path: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(path)).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// The id `best: ID (…)` on stdout.
fn printed_best(stdout: &str) -> String {
    let line =
        stdout.lines().find(|l| l.starts_with("best: ")).unwrap_or_else(|| panic!("no best line: {stdout}"));
    line["best: ".len()..].split_whitespace().next().unwrap().to_string()
}

/// Case 6: 3-fold k-fold, `keep = 1`, final soup; then the winning config is removed from the
/// spec. No soup can be made of the new winner (keep removed its weights), so `best/` must hold
/// the best trial, as printed, not the soup of a config the spec no longer has.
#[test]
fn issue_29_case_6_best_never_keeps_the_soup_of_a_removed_config() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let select =
        "[validation]\nscheme = \"kfold\"\nfolds = 3\ntest = 16\n[select]\nkeep = 1\nfinal = \"soup\"\n";
    let axes = "seeds = [1]\nlearning_rate = [0.01]\nprompt = [\"accuracy=0.6\", \"accuracy=0.99\", \"accuracy=0.7\"]\n";
    write_spec(&dir, "s.toml", axes, select);
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let soup = json(&dir, "res/best/final.json").unwrap();
    assert_eq!(soup["final"], "soup");

    write_spec(&dir, "s.toml", &axes.replace(", \"accuracy=0.99\"", ""), select);
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stderr.contains("no final model: soup: config"), "{stderr}");
    let printed = printed_best(&stdout);
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(printed, rows[0]["id"]);
    assert_eq!(
        json(&dir, "res/best/outcome.json").unwrap()["id"],
        printed.as_str(),
        "best/ is not the printed best"
    );
    if let Some(made) = json(&dir, "res/best/final.json") {
        assert!(rows.iter().any(|r| r["config"] == made["config"].as_str().unwrap()), "best/ holds {made}");
    }
    let status = run(dir.gacha().args(["status", "res"]));
    assert!(!texts(&status)
        .0
        .contains(&format!("final model: soup of config {}", soup["config"].as_str().unwrap())));
}

/// Case 7: while a sweep runs in a folder, another sweep (another spec, or the same spec whose
/// dataset changed since) is refused with both named and writes nothing; between runs, an
/// edited spec of the same name continues, one of another name is refused.
#[test]
fn issue_29_case_7_a_second_different_sweep_on_one_folder_is_refused() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    write_spec(&dir, "other.toml", "seeds = [1, 2, 3]\nvalid = [10]\nlearning_rate = [0.3]\n", "");
    let spec_text = std::fs::read_to_string(dir.join("s.toml")).unwrap();
    // The first sweep's stdout is read: it prints the best it made.
    let first =
        sweep(&dir, "s.toml", "res", 40).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || holds_a_claim(&dir.join("res"))),
        "the sweep never claimed a trial"
    );

    let out = run(&mut sweep(&dir, "other.toml", "res", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("res: sweep \"t\" (spec sha256 "), "{stderr}");
    assert!(stderr.contains("is running there (started by "), "{stderr}");
    assert!(stderr.contains("a results folder holds one sweep at a time"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("res/spec.toml")).unwrap(), spec_text);

    // The same spec, its dataset edited while the first runs: a worker joining is refused too.
    let data = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
    dir.write("data.jsonl", data.replacen("\"yes\"", "\"no\"", 1));
    let out = run(sweep(&dir, "s.toml", "res", 0).arg("--worker"));
    assert_exit(&out, 2);
    assert!(texts(&out).1.contains("the dataset changed since it started"), "{}", texts(&out).1);
    dir.write("data.jsonl", &data);

    let out = first.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 4);
    assert_eq!(json(&dir, "res/best/outcome.json").unwrap()["id"], printed_best(&stdout).as_str());

    // Between runs: more seeds is the same sweep continued; another name is another sweep.
    write_spec(&dir, "s.toml", &SPEC_4.replace("[1, 2]", "[1, 2, 3]"), "");
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("this run: 2 trials, 4 skipped"), "{}", texts(&out).0);
    dir.write(
        "renamed.toml",
        std::fs::read_to_string(dir.join("s.toml")).unwrap().replace("name = \"t\"", "name = \"u\""),
    );
    let out = run(&mut sweep(&dir, "renamed.toml", "res", 0));
    assert_exit(&out, 2);
    assert!(
        texts(&out).1.contains("res: holds sweep \"t\", and this spec (renamed.toml) is sweep \"u\""),
        "{}",
        texts(&out).1
    );
}

/// Edit trial `id`'s `outcome.json` in `res` with `edit`.
fn edit_outcome(dir: &TestDir, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = format!("res/trials/{id}/outcome.json");
    let mut outcome = json(dir, &path).unwrap();
    edit(&mut outcome);
    dir.write(&path, serde_json::to_vec_pretty(&outcome).unwrap());
}

/// Case 8: an `outcome.json` that is valid JSON but lies (another trial's, counts its split
/// cannot hold) is damaged: reported, not ranked, moved aside and run again by the sweep; a
/// `digests.json` that holds no digest is an error, not an empty folder.
#[test]
fn issue_29_case_8_records_are_checked_against_their_folder_and_split() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let ids: Vec<String> =
        leaderboard(&dir.join("res/leaderboard.csv")).into_iter().map(|r| r["id"].clone()).collect();
    let (top, copied, inflated) = (&ids[0], &ids[3], &ids[2]);
    std::fs::copy(
        dir.join(&format!("res/trials/{top}/outcome.json")),
        dir.join(&format!("res/trials/{copied}/outcome.json")),
    )
    .unwrap();
    edit_outcome(&dir, inflated, |o| o["after"]["valid"]["tp"] = 1_000_000.into());

    let out = run(dir.gacha().args(["leaderboard", "res"]));
    assert_exit(&out, 0);
    let (table, stderr) = texts(&out);
    assert!(
        stderr
            .contains(&format!("trials/{copied}/outcome.json: the outcome of trial {top}, not of {copied}")),
        "{stderr}"
    );
    let lie = format!("trials/{inflated}/outcome.json: counts (30, 100000");
    assert!(stderr.contains(&lie), "{stderr}");
    assert!(stderr.contains(") train/valid images after training, but split.json has (30, 10)"), "{stderr}");
    assert_eq!(table.lines().count(), 1 + 2, "{table}");
    assert_eq!(table.matches(top.as_str()).count(), 1, "{table}");

    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("this run: 2 trials, 2 skipped"), "{}", texts(&out).0);
    let again: Vec<String> =
        leaderboard(&dir.join("res/leaderboard.csv")).into_iter().map(|r| r["id"].clone()).collect();
    assert_eq!(again, ids);
    assert_eq!(std::fs::read_dir(dir.join("res/trials/.damaged")).unwrap().count(), 2);

    let digests = std::fs::read_to_string(dir.join("res/digests.json")).unwrap();
    let sha = json(&dir, "res/digests.json").unwrap()["data_sha256"].as_str().unwrap().to_string();
    dir.write("res/digests.json", digests.replace(&sha, "not-a-digest"));
    let out = run(dir.gacha().args(["status", "res"]));
    assert_exit(&out, 2);
    assert!(
        texts(&out).1.contains("res/digests.json: data_sha256 \"not-a-digest\" is not a SHA-256"),
        "{}",
        texts(&out).1
    );
}

/// Case 9: the weights of a soup's member that changed since its trial wrote them (edited in
/// place, truncated) are refused, naming the trial folder and what to do, not averaged.
#[test]
fn issue_29_case_9_weights_are_checked_before_a_soup_uses_them() {
    for damage in ["edited", "truncated"] {
        let dir = TestDir::new();
        write_dataset(&dir);
        let axes = "seeds = [1, 2, 3]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\n";
        write_spec(&dir, "s.toml", axes, "");
        assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
        let configs = leaderboard(&dir.join("res/configs.csv"));
        let member = configs[0]["trials"].split(' ').next().unwrap().to_string();
        let weights = dir.join(&format!("res/trials/{member}/weights/scripted.json"));
        let text = std::fs::read_to_string(&weights).unwrap();
        let damaged = match damage {
            // Still scripted weights, another model: nothing but its checksum tells.
            "edited" => text.replacen("\"seed\":", "\"seed\":9", 1),
            _ => text[..text.len() / 2].to_string(),
        };
        std::fs::write(&weights, damaged).unwrap();
        // [select] is not part of any trial id: the same trials, now souped.
        write_spec(&dir, "s.toml", axes, "[select]\nfinal = \"soup\"\n");
        let out = run(&mut sweep(&dir, "s.toml", "res", 0));
        assert_exit(&out, 2);
        let (_, stderr) = texts(&out);
        assert!(
            stderr.contains(&format!(
                "res/trials/{member}/weights/scripted.json: changed since gacha wrote it"
            )),
            "{damage}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "the weights of res/trials/{member} are not what its trial wrote; move that folder away"
            )),
            "{damage}: {stderr}"
        );
        assert!(
            json(&dir, "res/best/final.json").is_none_or(|f| f["final"] != "soup"),
            "{damage}: a soup was made"
        );
    }
}
