//! Issue 28 with the scripted runner (`--debug-scripted-runner`, src/sweep/scripted.rs): a race
//! drops a hopeless config at its first look and runs the rest to the end of the keys; a budget
//! (`max_pulls`, `--until`) stops it with `best/` written and a later run goes on to the same
//! decisions; a killed race and a race shared by two workers end where an uninterrupted one
//! does; prompts are screened before the race; a sampled axis keeps its values and trial ids.
//!
//! The scripted runner answers each image right with the probability a prompt sets
//! (`accuracy=0.95`), so configs have known qualities: a config at 0.55 beside two at 0.95 is
//! worse by far more than any level the race uses (on 40 images, about 16 wrong answers against
//! 2), while the two at 0.95 are equal in truth.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sweep::{sweep, write_dataset};
use crate::util::{
    assert_exit, kill_at_random_moments, leaderboard, leaderboard_sans_times, run, texts, TestDir,
};

/// Three configs: one hopeless, two good and equal.
const PROMPTS: &str = "prompt = [\"a accuracy=0.55\", \"b accuracy=0.95\", \"c accuracy=0.95\"]\n";

/// A race spec over 5 folds × 3 seeds (15 keys, 45 pulls in the grid) with `search` lines added
/// to its `[search]` table.
pub fn write_race(dir: &TestDir, name: &str, search: &str) {
    dir.write(
        name,
        format!(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
             [train]\nsteps = 4\nlog_every = 4\n[validation]\nscheme = \"kfold\"\nfolds = 5\n\
             [search]\nstrategy = \"race\"\n{search}[sweep]\nseeds = [1, 2, 3]\nlearning_rate = [0.01]\n{PROMPTS}"
        ),
    );
}

fn read(dir: &TestDir, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(dir: &TestDir, path: &str) -> serde_json::Value {
    serde_json::from_str(&read(dir, path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `configs.csv` by prompt.
fn configs_by_prompt(dir: &TestDir, results: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    leaderboard(&dir.join(&format!("{results}/configs.csv")))
        .into_iter()
        .map(|row| (row["prompt"].clone(), row))
        .collect()
}

/// An uninterrupted race into `calm/`.
fn calm_race(dir: &TestDir) {
    write_dataset(dir);
    write_race(dir, "r.toml", "");
    assert_exit(&run(&mut sweep(dir, "r.toml", "calm", 0)), 0);
}

#[test]
fn issue_28_a_race_drops_the_hopeless_config_at_its_first_look() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_race(&dir, "r.toml", "");
    let out = run(&mut sweep(&dir, "r.toml", "calm", 0));
    assert_exit(&out, 0);
    let configs = configs_by_prompt(&dir, "calm");
    let hopeless = &configs["a accuracy=0.55"];
    // The first round is the 5 folds of the first seed; the first look drops it.
    assert_eq!(hopeless["standing"], "dropped at look 1");
    assert_eq!(hopeless["pulls"], "5");
    for good in ["b accuracy=0.95", "c accuracy=0.95"] {
        assert_ne!(configs[good]["standing"], "racing", "the race is decided");
        assert!(!configs[good]["standing"].starts_with("dropped at look 1"), "{good}: {:?}", configs[good]);
    }
    let pulls: usize = configs.values().map(|c| c["pulls"].parse::<usize>().unwrap()).sum();
    assert_eq!(leaderboard(&dir.join("calm/leaderboard.csv")).len(), pulls);
    assert!(pulls < 45, "fewer pulls than the grid's 45: {pulls}");

    // race.json says the same as configs.csv, config by config.
    let race = json(&dir, "calm/race.json");
    assert_eq!(race["grid_keys"], 15);
    assert!(race["end"].is_string(), "decided: {race}");
    for entry in race["configs"].as_array().unwrap() {
        let row = configs.values().find(|c| c["config"] == entry["config"].as_str().unwrap()).unwrap();
        let state = entry["state"].as_str().unwrap();
        match state {
            "dropped" => assert_eq!(row["standing"], format!("dropped at look {}", entry["look"])),
            other => assert_eq!(row["standing"], other),
        }
    }
    let stdout = texts(&out).0;
    assert!(
        stdout.contains(&format!("; {pulls} pulls of the grid's 45 (")),
        "the race line counts the pulls: {stdout}"
    );
    // The final model is a pull of a good config.
    let best = json(&dir, "calm/best/final.json");
    assert_ne!(best["config"], hopeless["config"].as_str());
}

#[test]
fn issue_28_max_pulls_stops_the_race_with_best_written_and_a_larger_budget_goes_on() {
    let dir = TestDir::new();
    calm_race(&dir);
    write_race(&dir, "r8.toml", "max_pulls = 8\n");
    let out = run(&mut sweep(&dir, "r8.toml", "res", 0));
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("stopped on its budget: max_pulls = 8 reached"), "{}", texts(&out).0);
    assert_eq!(leaderboard(&dir.join("res/leaderboard.csv")).len(), 8);
    assert_eq!(json(&dir, "res/best/final.json")["budget"], "max_pulls = 8 reached");
    assert!(json(&dir, "res/race.json")["end"].is_null(), "not decided after 8 pulls");
    let status = texts(&run(dir.gacha().args(["status", "res"]))).0;
    assert!(status.starts_with("res: a race, 8 pulls finished (8 done"), "{status}");
    // 8 pulls are not yet the first round (3 configs × 5 folds): no look.
    assert!(
        status.contains(
            "race: 3 configs over 15 keys and 15 more to confirm the survivors, not decided after 0 look(s)"
        ),
        "{status}"
    );

    // Without the budget the same race goes on to the decisions of an uninterrupted one.
    assert_exit(&run(&mut sweep(&dir, "r.toml", "res", 0)), 0);
    assert_eq!(read(&dir, "res/race.json"), read(&dir, "calm/race.json"));
    assert_eq!(
        leaderboard_sans_times(&dir.join("res/leaderboard.csv")),
        leaderboard_sans_times(&dir.join("calm/leaderboard.csv"))
    );
    assert_eq!(json(&dir, "res/best/final.json"), json(&dir, "calm/best/final.json"));

    // With a budget past the grid's keys, the survivors go on over the extra seeds' keys (three
    // more seeds: 15 more keys), and the dropped config gets no pull.
    let calm_pulls = leaderboard(&dir.join("calm/leaderboard.csv")).len();
    write_race(&dir, "r50.toml", &format!("max_pulls = {}\n", calm_pulls + 6));
    let out = run(&mut sweep(&dir, "r50.toml", "res", 0));
    assert_exit(&out, 0);
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), calm_pulls + 6);
    let hopeless = rows.iter().filter(|r| r["prompt"] == "a accuracy=0.55").count();
    assert_eq!(hopeless, 5, "the dropped config got no more pulls");
    assert!(rows.iter().any(|r| r["seed"].parse::<u64>().unwrap() > 3), "extra seeds ran");
}

#[test]
fn issue_28_a_killed_race_resumes_to_the_same_decisions() {
    let dir = TestDir::new();
    calm_race(&dir);
    kill_at_random_moments(|| sweep(&dir, "r.toml", "killed", 3), 6, 20, 150);
    assert_exit(&run(&mut sweep(&dir, "r.toml", "killed", 0)), 0);
    assert_eq!(read(&dir, "killed/race.json"), read(&dir, "calm/race.json"));
    assert_eq!(
        leaderboard_sans_times(&dir.join("killed/leaderboard.csv")),
        leaderboard_sans_times(&dir.join("calm/leaderboard.csv"))
    );
    assert_eq!(json(&dir, "killed/best/final.json"), json(&dir, "calm/best/final.json"));
}

#[test]
fn issue_28_two_workers_take_the_race_s_pulls_and_reach_the_same_decisions() {
    let dir = TestDir::new();
    calm_race(&dir);
    let out = run(sweep(&dir, "r.toml", "shared", 5).args(["--workers", "2"]));
    assert_exit(&out, 0);
    // No worker takes a pull past the next look: the decisions and the pulls are those of one
    // process.
    assert_eq!(read(&dir, "shared/race.json"), read(&dir, "calm/race.json"));
    assert_eq!(json(&dir, "shared/best/final.json")["config"], json(&dir, "calm/best/final.json")["config"]);
    let calm = leaderboard_sans_times(&dir.join("calm/leaderboard.csv"));
    let shared = leaderboard_sans_times(&dir.join("shared/leaderboard.csv"));
    let ids = |rows: &[BTreeMap<String, String>]| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    let (mut calm, mut shared) = (ids(&calm), ids(&shared));
    calm.sort();
    shared.sort();
    assert_eq!(shared, calm, "the same pulls as one process");
}

#[test]
fn issue_28_a_deadline_stops_before_it_with_best_written_and_a_later_run_goes_on() {
    let dir = TestDir::new();
    calm_race(&dir);
    // Each pull sleeps 4 steps × 100 ms: the 45 pulls of the grid need 18 s, far past the deadline.
    let deadline = SystemTime::now() + Duration::from_secs(4);
    let at = deadline.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let out = run(sweep(&dir, "r.toml", "res", 100).args(["--until", &format!("@{at}")]));
    assert_exit(&out, 0);
    let stdout = texts(&out).0;
    assert!(stdout.contains("stopped on its budget: deadline"), "{stdout}");
    assert!(json(&dir, "res/best/final.json")["budget"].as_str().unwrap().starts_with("deadline"));
    let trials: Vec<_> =
        std::fs::read_dir(dir.join("res/trials")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!trials.is_empty() && trials.len() < 45, "{} pulls", trials.len());
    for trial in &trials {
        let written = std::fs::metadata(trial.join("outcome.json")).unwrap().modified().unwrap();
        assert!(
            written <= UNIX_EPOCH + Duration::from_secs(at),
            "{} ended past the deadline",
            trial.display()
        );
    }

    assert_exit(&run(&mut sweep(&dir, "r.toml", "res", 0)), 0);
    assert_eq!(read(&dir, "res/race.json"), read(&dir, "calm/race.json"));
}

#[test]
fn issue_28_prompts_are_screened_on_the_untrained_model_before_the_race() {
    let dir = TestDir::new();
    write_dataset(&dir);
    // Untrained, prompt p is right on about half the images, q on 90%, r on 85%.
    dir.write(
        "s.toml",
        "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 4\nlog_every = 4\n[validation]\nscheme = \"kfold\"\nfolds = 5\n\
         [search]\nstrategy = \"race\"\nscreen_prompts = 2\n\
         [sweep]\nseeds = [1]\nlearning_rate = [0.01, 0.02]\nprompt = [\"p base=0.5\", \"q base=0.9\", \"r base=0.85\"]\n",
    );
    let out = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&out, 0);
    let screen = leaderboard(&dir.join("res/screen.csv"));
    assert_eq!(screen.len(), 3, "every prompt is in screen.csv");
    let enters: BTreeMap<&str, &str> =
        screen.iter().map(|r| (r["prompt"].as_str(), r["enters"].as_str())).collect();
    assert_eq!(enters, BTreeMap::from([("p base=0.5", "no"), ("q base=0.9", "yes"), ("r base=0.85", "yes")]));
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert!(rows.iter().all(|r| r["prompt"] != "p base=0.5"), "the screened-out prompt never trained");
    assert_eq!(rows.len(), 2 * 2 * 5, "two prompts × two rates × 5 folds");
}

#[test]
fn issue_28_a_sampled_axis_keeps_its_values_and_trial_ids() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let spec = |seed: u64| {
        format!(
            "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
             [train]\nsteps = 4\n[search]\nstrategy = \"race\"\nseed = {seed}\n\
             [sweep]\nseeds = [1]\nvalid = [10]\nlearning_rate = {{ log_uniform = [1e-3, 1e-1], count = 3 }}\n"
        )
    };
    let trials = |name: &str| {
        let out = run(dir.gacha().args(["check", name, "--trials"]));
        assert_exit(&out, 0);
        texts(&out).0
    };
    dir.write("a.toml", spec(7));
    dir.write("b.toml", spec(7));
    dir.write("c.toml", spec(8));
    let listed = trials("a.toml");
    assert_eq!(listed, trials("b.toml").replace("b.toml", "a.toml"));
    let rates = |listing: &str| -> Vec<f64> {
        let mut rates: Vec<f64> = listing
            .split("learning_rate=")
            .skip(1)
            .map(|rest| rest.split(|c: char| c.is_whitespace() || c == ')').next().unwrap().parse().unwrap())
            .collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        rates
    };
    let drawn = rates(&listed);
    assert_eq!(drawn.len(), 3, "three distinct rates: {listed}");
    assert!(drawn.iter().all(|r| (1e-3..=1e-1).contains(r)), "{drawn:?}");
    assert_ne!(drawn, rates(&trials("c.toml")), "another [search] seed draws other values");
}
