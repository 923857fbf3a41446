//! The config rule against the naive pick, over many simulated sweeps on the scripted runner.
//!
//! Each sweep has configs of known quality: a prompt `accuracy=a` makes every pull of the config
//! answer each image right with probability `a`, independently per pull and image (a hash of
//! seed, prompt and image), so with a fraction π of positive images the config's true precision
//! is πa / (πa + (1−π)(1−a)). Half the configs use learning rate 0.6, from which the scripted
//! runner diverges on odd seeds. Every sweep draws fresh seeds, hence fresh answers and
//! hold-outs. The test compares, over the sweeps, the true precision of the config that ranks
//! first in configs.csv with that of the naive pick (the single pull with the highest valid
//! precision, ties broken at random, i.e. averaged), and counts how often the configs' Wilson
//! 95% intervals contain the truth.

use std::collections::BTreeMap;

use crate::sweep::sweep;
use crate::util::{assert_exit, leaderboard, run, TestDir};

/// The dataset: 96 images of which 54 positive (the users' 54 OK / 42 NG).
const IMAGES: usize = 96;
const POSITIVES: usize = 54;
/// The configs' accuracies, each at two learning rates.
const ACCURACIES: [f64; 4] = [0.80, 0.85, 0.89, 0.93];
const RATES: [&str; 2] = ["0.01", "0.6"];

fn true_precision(accuracy: f64) -> f64 {
    let pi = POSITIVES as f64 / IMAGES as f64;
    pi * accuracy / (pi * accuracy + (1.0 - pi) * (1.0 - accuracy))
}

fn write_data(dir: &TestDir) {
    let lines: String = (0..IMAGES)
        .map(|i| {
            format!(
                "{{\"prefix\": \"\", \"suffix\": \"{}\", \"image\": \"img/{i}.png\"}}\n",
                if i < POSITIVES { "yes" } else { "no" }
            )
        })
        .collect();
    dir.write("data.jsonl", lines);
}

/// The accuracy a `prompt` column names.
fn accuracy(prompt: &str) -> f64 {
    prompt
        .split("accuracy=")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("prompt {prompt:?}"))
}

/// What one simulated sweep gave.
struct Sweep {
    /// True precision of configs.csv's rank 1 and of the naive pick (averaged over its ties).
    chosen: f64,
    naive: f64,
    /// Non-diverging configs whose interval holds the truth, of those with an interval.
    covered: usize,
    intervals: usize,
}

fn simulate(dir: &TestDir, index: usize, (validation, axes): (&str, &str), seeds: usize) -> Sweep {
    let seed_list: Vec<String> = (1..=seeds).map(|s| (index * seeds + s).to_string()).collect();
    let prompts: Vec<String> = ACCURACIES.iter().map(|a| format!("\"is it ok accuracy={a}\"")).collect();
    let spec = format!(
        "name = \"sim\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 4\nlog_every = 4\n{validation}[sweep]\n{axes}seeds = [{}]\nlearning_rate = [{}]\nprompt = [{}]\n",
        seed_list.join(", "),
        RATES.join(", "),
        prompts.join(", ")
    );
    let name = format!("sim{index}.toml");
    dir.write(&name, spec);
    let results = format!("res{index}");
    assert_exit(&run(&mut sweep(dir, &name, &results, 0)), 0);

    let configs = leaderboard(&dir.join(&format!("{results}/configs.csv")));
    let first = configs.iter().find(|r| r["rank"] == "1").expect("a config ranked 1");
    let chosen = true_precision(accuracy(&first["prompt"]));
    let (mut covered, mut intervals) = (0, 0);
    for row in configs.iter().filter(|r| r["learning_rate"] == RATES[0] && !r["precision_low"].is_empty()) {
        let truth = true_precision(accuracy(&row["prompt"]));
        let (low, high): (f64, f64) =
            (row["precision_low"].parse().unwrap(), row["precision_high"].parse().unwrap());
        intervals += 1;
        covered += usize::from(low <= truth && truth <= high);
    }

    let trials = leaderboard(&dir.join(&format!("{results}/leaderboard.csv")));
    let precision = |r: &BTreeMap<String, String>| r["valid_precision"].parse::<f64>().ok();
    let done: Vec<_> = trials.iter().filter(|r| r["status"] == "done" && precision(r).is_some()).collect();
    let top = done.iter().filter_map(|r| precision(r)).fold(f64::MIN, f64::max);
    let tied: Vec<f64> = done
        .iter()
        .filter(|r| precision(r) == Some(top))
        .map(|r| true_precision(accuracy(&r["prompt"])))
        .collect();
    let naive = tied.iter().sum::<f64>() / tied.len() as f64;
    Sweep { chosen, naive, covered, intervals }
}

/// Runs `sweeps` simulated sweeps; prints and returns (chosen mean, naive mean, coverage).
fn field(scheme: (&str, &str), seeds: usize, sweeps: usize) -> (f64, f64, f64) {
    let dir = TestDir::in_memory();
    write_data(&dir);
    let runs: Vec<Sweep> = (0..sweeps).map(|i| simulate(&dir, i, scheme, seeds)).collect();
    let mean = |f: fn(&Sweep) -> f64| runs.iter().map(f).sum::<f64>() / sweeps as f64;
    let (chosen, naive) = (mean(|s| s.chosen), mean(|s| s.naive));
    let covered: usize = runs.iter().map(|s| s.covered).sum();
    let intervals: usize = runs.iter().map(|s| s.intervals).sum();
    let coverage = covered as f64 / intervals as f64;
    let best = true_precision(ACCURACIES[ACCURACIES.len() - 1]);
    eprintln!(
        "{sweeps} sweeps, {}: mean true precision of the chosen config {chosen:.4}, of the naive pick \
         {naive:.4} (best config {best:.4}); Wilson 95% coverage {covered}/{intervals} = {coverage:.3}",
        format!("{}{}", scheme.0, scheme.1).trim().replace('\n', "; ")
    );
    (chosen, naive, coverage)
}

/// The users' style: 5 seeds of a 10-image hold-out per config.
#[test]
fn configs_judged_over_their_pulls_choose_better_than_the_best_single_pull() {
    let (chosen, naive, coverage) = field(("", "valid = [10]\n"), 5, 60);
    assert!(chosen > naive + 0.01, "chosen {chosen:.4} vs naive {naive:.4}");
    assert!((0.90..=0.99).contains(&coverage), "coverage {coverage:.3}");
}

/// 5-fold cross-validation, 2 seeds: every image predicted out of fold twice per config.
#[test]
fn kfold_configs_choose_better_than_the_best_single_fold() {
    let (chosen, naive, coverage) = field(("[validation]\nscheme = \"kfold\"\nfolds = 5\n", ""), 2, 30);
    assert!(chosen > naive + 0.01, "chosen {chosen:.4} vs naive {naive:.4}");
    assert!((0.90..=0.99).contains(&coverage), "coverage {coverage:.3}");
}
