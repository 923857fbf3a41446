//! `gacha sweep`, `gacha leaderboard`, `gacha report` with the scripted runner
//! (`--debug-scripted-runner`, see src/sweep/scripted.rs): results layout, resume after SIGKILL
//! and Ctrl-C, reseeds, failures, bad specs, determinism.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    assert_exit, kill_at_random_moments, leaderboard, leaderboard_sans_times, run, texts, TestDir,
};

/// A 40-image dataset, alternating yes/no (the scripted runner never opens the images).
pub fn write_dataset(dir: &TestDir) {
    let lines: String = (0..40)
        .map(|i| {
            format!(
                "{{\"prefix\": \"\", \"suffix\": \"{}\", \"image\": \"img/{i}.png\"}}\n",
                ["yes", "no"][i % 2]
            )
        })
        .collect();
    dir.write("data.jsonl", lines);
}

/// A spec over `sweep` axes (the `[sweep]` table's lines) and extra tables.
pub fn write_spec(dir: &TestDir, name: &str, sweep: &str, extra: &str) {
    let spec = format!(
        "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 12\nlog_every = 4\n{extra}[sweep]\n{sweep}"
    );
    dir.write(name, spec);
}

pub fn sweep(dir: &TestDir, spec: &str, results: &str, step_ms: u64) -> Command {
    let mut cmd = dir.gacha();
    cmd.args(["sweep", spec, "--results", results, "--debug-scripted-runner", "--debug-step-ms"])
        .arg(step_ms.to_string());
    cmd
}

fn by_id<'a>(rows: &'a [BTreeMap<String, String>], id: &str) -> &'a BTreeMap<String, String> {
    rows.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no row {id}"))
}

pub const SPEC_4: &str = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\n";

#[test]
fn multi_trial_sweep_writes_the_results_layout() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let out = run(&mut sweep(&dir, "s.toml", "res", 1));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains("4 of 4 trials finished (4 done, 0 diverged, 0 failed)"), "{stdout}");
    assert!(stderr.contains("step: 4/12   lr: 0.01000   loss: "), "{stderr}");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert_eq!(row["status"], "done");
        let trial = dir.join(&format!("res/trials/{}", row["id"]));
        for file in ["config.toml", "split.json", "metrics.jsonl", "outcome.json", "weights/scripted.json"] {
            assert!(trial.join(file).is_file(), "{}/{file} missing", trial.display());
        }
        // 40 images, 10 held out; the scripted base model says "no" to everything.
        assert_eq!(
            row["valid_tp"].parse::<u32>().unwrap()
                + row["valid_fn"].parse::<u32>().unwrap()
                + row["valid_tn"].parse::<u32>().unwrap()
                + row["valid_fp"].parse::<u32>().unwrap(),
            10
        );
        assert_eq!(
            (row["base_all_tp"].as_str(), row["base_all_tn"].as_str(), row["base_all_fn"].as_str()),
            ("0", "20", "20")
        );
        assert_eq!(row["base_valid_precision"], "");
    }
    // The split is seeded: the same seed gives the same membership.
    let split = |id: &str| std::fs::read_to_string(dir.join(&format!("res/trials/{id}/split.json"))).unwrap();
    let seed1: Vec<&BTreeMap<String, String>> = rows.iter().filter(|r| r["seed"] == "1").collect();
    assert_eq!(split(&seed1[0]["id"]), split(&seed1[1]["id"]));
    let best = std::fs::read_to_string(dir.join("res/best/outcome.json")).unwrap();
    assert!(best.contains(&format!("\"id\": \"{}\"", rows[0]["id"])), "{best}");
    assert!(dir.join("res/best/weights/scripted.json").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("res/spec.toml")).unwrap(),
        std::fs::read_to_string(dir.join("s.toml")).unwrap()
    );
    let html = std::fs::read_to_string(dir.join("res/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains(&rows[0]["id"]), "report lacks charts or the best id");
    // configs.csv: one row per learning rate, each pooling its two seeds' 10 validation images.
    let configs = leaderboard(&dir.join("res/configs.csv"));
    assert_eq!(configs.len(), 2);
    for config in &configs {
        let pooled: u32 = ["tp", "tn", "fp", "fn"].iter().map(|c| config[*c].parse::<u32>().unwrap()).sum();
        assert_eq!((config["pulls"].as_str(), config["done"].as_str(), pooled), ("2", "2", 20));
        let trials: Vec<&str> = config["trials"].split(' ').collect();
        assert!(trials.iter().all(|id| by_id(&rows, id)["config"] == config["config"]), "{config:?}");
    }
    assert_eq!((configs[0]["rank"].as_str(), configs[0]["vs_best"].as_str()), ("1", "best"));
}

#[test]
fn identical_runs_give_identical_leaderboards() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let sweep_axes =
        "seeds = [1, 2]\nvalid = [10, 0.3]\nlearning_rate = [0.01, 0.7, 2.0]\nprompt = [\"ok?\", \"FAIL\"]\n";
    write_spec(&dir, "s.toml", sweep_axes, "[stage2]\nwhen = \"train_not_perfect\"\nsteps = 4\n");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "a", 0)), 1);
    assert_exit(&run(&mut sweep(&dir, "s.toml", "b", 0)), 1);
    let a = leaderboard_sans_times(&dir.join("a/leaderboard.csv"));
    assert_eq!(a.len(), 24);
    assert_eq!(a, leaderboard_sans_times(&dir.join("b/leaderboard.csv")));
}

#[test]
fn sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1, 2, 3]\nvalid = [10]\nlearning_rate = [0.01, 0.1, 0.7]\n";
    write_spec(&dir, "s.toml", axes, "[select]\nkeep = 2\n");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "calm", 1)), 0);

    kill_at_random_moments(|| sweep(&dir, "s.toml", "killed", 3), 6, 15, 100);
    let out = run(&mut sweep(&dir, "s.toml", "killed", 1));
    assert_exit(&out, 0);
    let calm = leaderboard_sans_times(&dir.join("calm/leaderboard.csv"));
    assert_eq!(calm.len(), 9);
    assert_eq!(calm, leaderboard_sans_times(&dir.join("killed/leaderboard.csv")));
    let best_id =
        |root: &str| std::fs::read_to_string(dir.join(&format!("{root}/best/outcome.json"))).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&best_id("calm")).unwrap()["id"],
        calm[0]["id"].as_str()
    );
    assert_eq!(best_id("calm").lines().nth(1), best_id("killed").lines().nth(1));
    let configs = std::fs::read_to_string(dir.join("calm/configs.csv")).unwrap();
    assert_eq!(configs, std::fs::read_to_string(dir.join("killed/configs.csv")).unwrap());
    // keep = 2: every done pull of the two best configs keeps its weights, and so does the top
    // trial (here a lucky pull of the third config), in both folders; no other trial does.
    let configs = leaderboard(&dir.join("calm/configs.csv"));
    assert_eq!(configs.len(), 3);
    let kept: Vec<&str> = configs[..2].iter().flat_map(|c| c["trials"].split(' ')).collect();
    let expected: Vec<&str> = calm
        .iter()
        .filter(|r| r["status"] == "done" && (kept.contains(&r["id"].as_str()) || r["id"] == calm[0]["id"]))
        .map(|r| r["id"].as_str())
        .collect();
    assert!(expected.len() < calm.iter().filter(|r| r["status"] == "done").count(), "nothing was removed");
    for root in ["calm", "killed"] {
        let with_weights: Vec<&str> = calm
            .iter()
            .map(|r| r["id"].as_str())
            .filter(|id| dir.join(&format!("{root}/trials/{id}/weights")).exists())
            .collect();
        assert_eq!(with_weights, expected, "{root}");
    }
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.join("killed")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        leftovers.iter().all(|n| !n.to_string_lossy().starts_with('.')),
        "temporary files left: {leftovers:?}"
    );
}

#[test]
fn divergence_is_reseeded_and_recorded_and_the_sweep_goes_on() {
    let dir = TestDir::new();
    write_dataset(&dir);
    // lr 2.0 diverges on every attempt; lr 0.7 on odd seeds only: seed 1 diverges, its first
    // reseed is 17806329684731702236 (SHA-256 of "gacha reseed 1 1", computed in Python), even.
    write_spec(
        &dir,
        "s.toml",
        "seeds = [1]\nvalid = [10]\nlearning_rate = [2.0, 0.7, 0.01]\n",
        "[abort]\nmax_reseeds = 2\n",
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("diverged at stage 1 step 3 (loss NaN); reseeding"), "{stderr}");
    assert!(stderr.contains("reseed 1 of 2: training seed 17806329684731702236"), "{stderr}");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let row = |lr: &str| rows.iter().find(|r| r["learning_rate"] == lr).unwrap();
    let always = row("2.0");
    assert_eq!((always["status"].as_str(), always["reseeds"].as_str()), ("diverged", "2"));
    assert_eq!((always["diverged_step"].as_str(), always["final_loss"].as_str()), ("3", "NaN"));
    assert_eq!(always["valid_precision"], "");
    let once = row("0.7");
    assert_eq!((once["status"].as_str(), once["reseeds"].as_str()), ("done", "1"));
    assert_eq!(row("0.01")["reseeds"], "0");
    assert!(
        !dir.join(&format!("res/trials/{}/weights", always["id"])).exists(),
        "a diverged trial keeps no weights"
    );
    let log =
        std::fs::read_to_string(dir.join(&format!("res/trials/{}/metrics.jsonl", always["id"]))).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"loss\":\"NaN\"")).count(), 3, "{log}");
}

#[test]
fn a_failing_trial_is_recorded_and_the_exit_code_is_1() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(
        &dir,
        "s.toml",
        "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01]\nprompt = [\"FAIL now\", \"ok?\"]\n",
        "",
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 1);
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 2);
    let failed = rows.iter().find(|r| r["prompt"] == "FAIL now").unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "scripted failure at step 6: the prompt contains FAIL");
    assert_eq!(rows.iter().find(|r| r["prompt"] == "ok?").unwrap()["status"], "done");
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("(1 done, 0 diverged, 1 failed)"), "{stdout}");
}

/// Start a slow sweep and wait until it holds a trial's claim (a file in res/claims).
pub fn start_slow_sweep(dir: &TestDir) -> Child {
    let child = sweep(dir, "s.toml", "res", 40).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !crate::util::holds_a_claim(&dir.join("res")) {
        assert!(Instant::now() < deadline, "the sweep never claimed a trial");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn ctrl_c_stops_after_the_current_step_and_says_how_to_resume() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let child = start_slow_sweep(&dir);
    std::thread::sleep(Duration::from_millis(100));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("stopping after the current step"), "{stderr}");
    assert!(
        stderr
            .contains("interrupted; to resume, run the same command again: gacha sweep s.toml --results res"),
        "{stderr}"
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    assert_eq!(leaderboard(&dir.join("res/leaderboard.csv")).len(), 4);
}

#[test]
fn editing_the_spec_keeps_finished_trials() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\n", "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let before = leaderboard(&dir.join("res/leaderboard.csv"));
    write_spec(&dir, "s.toml", "learning_rate = [0.1, 0.01]\nvalid = [10]\nseeds = [2, 1]\n", "");
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("this run: 2 trials, 2 skipped"), "{stdout}");
    let after = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(after.len(), 4);
    for row in &before {
        assert_eq!(
            by_id(&after, &row["id"])["started_at"],
            row["started_at"],
            "trial {} was redone",
            row["id"]
        );
    }
}

#[test]
fn leaderboard_and_report_commands_read_a_results_folder() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01, 2.0]\n", "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "a", 0)), 0);
    write_spec(&dir, "s.toml", "seeds = [1]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\n", "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "b", 0)), 0);
    let rows = leaderboard(&dir.join("a/leaderboard.csv"));

    let out = run(dir.gacha().args(["leaderboard", "a"]));
    assert_exit(&out, 0);
    let (table, _) = texts(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("#  id") && lines[0].contains("learning_rate"), "{table}");
    assert!(lines[1].starts_with(&format!("1  {}  done", rows[0]["id"])), "{table}");
    assert!(lines[2].starts_with(&format!("2  {}  diverged", rows[1]["id"])), "{table}");

    let out = run(dir.gacha().args(["leaderboard", "a", "--configs"]));
    assert_exit(&out, 0);
    let (table, _) = texts(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("rank  config") && lines[0].contains("precision_low"), "{table}");
    assert!(lines[1].starts_with("1 ") && lines[1].contains("best"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");

    let out = run(dir.gacha().args(["leaderboard", "a", "b"]));
    assert_exit(&out, 0);
    let (diff, _) = texts(&out);
    let diverged = &rows[1]["id"];
    assert!(
        diff.lines().any(|l| l.starts_with(diverged.as_str()) && l.contains("diverged → (none)")),
        "{diff}"
    );
    assert!(diff.lines().any(|l| l.contains("(none) → done")), "{diff}");
    // The new 0.1 trial's precision 1 rests on more images than the 0.01 trial's, so it ranks
    // first and moves the other down, whose results are the same: one removed, one added, one
    // moved.
    assert!(
        diff.ends_with("0 trial(s) changed, 1 added, 1 removed, 1 moved in rank only, 0 unchanged\n"),
        "{diff}"
    );

    std::fs::remove_file(dir.join("a/report.html")).unwrap();
    let out = run(dir.gacha().args(["report", "a"]));
    assert_exit(&out, 0);
    let html = std::fs::read_to_string(dir.join("a/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("diverged (× where the guard stopped it)"), "{html}");
}

/// Each bad spec exits 2 with the file, line and key in one message.
#[test]
fn bad_specs_exit_2_naming_file_line_and_field() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let cases = [
        (
            "seeds = [1]\nvalid = [10]\nlearning_rate = [0.1]\nbatch = [2]\n",
            "",
            "line 13: sweep.batch: unknown field `batch`",
        ),
        (
            "seeds = [1]\nvalid = [10]\n",
            "learning_rate = \"fast\"\n",
            "line 9: train.learning_rate: expected a number (such as 0.03), found string \"fast\"",
        ),
        (
            "seeds = []\nvalid = [10]\nlearning_rate = [0.1]\n",
            "",
            "line 10: sweep.seeds: empty axis: give at least one value",
        ),
    ];
    for (axes, train_extra, expected) in cases {
        write_spec(&dir, "bad.toml", axes, train_extra);
        let out = run(&mut sweep(&dir, "bad.toml", "res", 0));
        assert_exit(&out, 2);
        let (_, stderr) = texts(&out);
        assert!(
            stderr.starts_with(&format!("gacha: error: bad.toml: {expected}")),
            "expected {expected}\ngot {stderr}"
        );
    }
    std::fs::remove_file(dir.join("data.jsonl")).unwrap();
    write_spec(&dir, "bad.toml", "seeds = [1]\nvalid = [10]\nlearning_rate = [0.1]\n", "");
    let out = run(&mut sweep(&dir, "bad.toml", "res", 0));
    assert_exit(&out, 2);
    let (_, stderr) = texts(&out);
    assert!(
        stderr
            .starts_with("gacha: error: bad.toml: line 5: data.path: dataset file data.jsonl does not exist"),
        "{stderr}"
    );
    assert!(!dir.join("res").exists(), "nothing is written before the checks pass");
}

/// Issue 11: trials that finish faster than the leaderboard is rewritten (scripted, no step
/// delay) leave the CSVs behind during the run, never at its end: the files a sweep leaves are
/// those a rebuild from the trial folders writes (a second run, which finds every trial
/// finished, rebuilds them), with a row for every trial.
#[test]
fn issue_11_a_fast_sweep_leaves_the_files_a_rebuild_writes() {
    let dir = TestDir::in_memory();
    write_dataset(&dir);
    let seeds: Vec<String> = (1..=100).map(|s| s.to_string()).collect();
    let axes = format!("seeds = [{}]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\n", seeds.join(", "));
    write_spec(&dir, "s.toml", &axes, "");
    assert_exit(&run(&mut sweep(&dir, "s.toml", "res", 0)), 0);
    let files = ["leaderboard.csv", "configs.csv", "report.html", "best/outcome.json"];
    let read = |name: &str| std::fs::read(dir.join("res").join(name)).expect(name);
    let left: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (200, 200), "one row per trial");
    let again = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&again, 0);
    assert!(texts(&again).1.contains("(200 finished earlier)"), "{}", texts(&again).1);
    for (name, before) in files.iter().zip(&left) {
        assert!(read(name) == *before, "{name}: the sweep's differs from the rebuild's");
    }
}
