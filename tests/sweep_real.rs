//! `gacha sweep` with the real runner on the built-in tiny model and eleven images of the demo
//! dataset (two of them animated GIFs): every trial trains, scores and saves; image features are
//! computed once per sweep; the saved adapters reproduce the recorded scores (through `gacha eval`
//! and through `ModelRunner::answers`); reseeds on divergence; resume after SIGKILL; determinism.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gacha::data::jsonl::load_dataset;
use gacha::data::split::SplitIndices;
use gacha::device::DeviceSpec;
use gacha::eval::Confusion;
use gacha::spec::load_spec;
use gacha::sweep::model_runner::ModelRunner;
use gacha::sweep::runner::TrialRunner;
use gacha::sweep::{Control, LossLine, StepObserver, TrialJob};

use crate::util::{
    assert_exit, kill_at_random_moments, leaderboard, leaderboard_sans_times, run, texts, TestDir,
};

/// The first eleven images of the committed demo dataset: 6 PNG, 3 JPEG and 2 animated GIFs
/// (NG_003.gif: 5 frames, OK_011.gif: 4 frames), so 9 + 5 + 4 = 18 frames with GIF frames `all`.
const IMAGES: usize = 11;
const FRAMES: usize = 18;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/demo")
}

/// Copy the first `IMAGES` examples of the demo dataset (lines and image files) into `dir`.
fn write_dataset(dir: &TestDir) {
    let text = std::fs::read_to_string(demo().join("data.jsonl")).expect("the committed demo dataset");
    let lines: Vec<&str> = text.lines().take(IMAGES).collect();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let image = value["image"].as_str().unwrap();
        dir.write(image, std::fs::read(demo().join(image)).unwrap());
    }
    dir.write("data.jsonl", lines.join("\n") + "\n");
}

/// A spec on `builtin:tiny` with short training and the given `[sweep]` lines and extra tables.
fn write_spec(dir: &TestDir, sweep: &str, extra: &str) {
    let spec = format!(
        "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 6\nbatch_size = 4\nlog_every = 3\nlora_rank = 2\n{extra}[sweep]\n{sweep}"
    );
    dir.write("s.toml", spec);
}

fn sweep(dir: &TestDir, results: &str) -> Command {
    let mut cmd = dir.gacha();
    cmd.args(["sweep", "s.toml", "--results", results]);
    cmd
}

const FOUR_BY_TWO: &str =
    "seeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.03]\ntrainable = [\"lora\", \"attention\"]\n";

#[test]
fn every_trial_trains_scores_and_saves_and_features_are_computed_once() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, FOUR_BY_TWO, "");
    let out = run(&mut sweep(&dir, "res"));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains("8 of 8 trials finished (8 done, 0 diverged, 0 failed)"), "{stdout}");
    // 18 frames, 8 per pass: 3 passes of the vision tower for 8 trials (each scores twice and
    // trains 6 steps of 4 frames).
    assert!(
        stderr.contains(&format!("vision tower: {FRAMES} frames in 3 forward passes for the whole sweep")),
        "{stderr}"
    );
    assert!(stderr.contains("step: 3/6   lr: "), "{stderr}");

    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let trial = dir.join(&format!("res/trials/{}", row["id"]));
        let files: &[&str] = match row["trainable"].as_str() {
            "lora" => &["adapter_config.json", "adapter_model.safetensors", "gacha_adapter.json"],
            _ => &["attention.safetensors", "gacha_adapter.json"],
        };
        for file in files {
            assert!(trial.join("weights").join(file).is_file(), "{}: weights/{file} missing", row["id"]);
        }
        let log = std::fs::read_to_string(trial.join("metrics.jsonl")).unwrap();
        let steps: Vec<u64> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
            .collect();
        // Step 1 (the untrained loss) and every log_every = 3.
        assert_eq!(steps, [1, 3, 6], "logged steps of {}", row["id"]);
        let total = |prefix: &str| -> u32 {
            ["tp", "tn", "fp", "fn"]
                .iter()
                .map(|c| row[&format!("{prefix}_{c}")].parse::<u32>().unwrap())
                .sum()
        };
        assert_eq!(total("valid"), 4);
        assert_eq!(total("base_all"), IMAGES as u32);
    }
    // The untrained model is the same for every trial: its counts depend on the split only.
    for seed in ["1", "2"] {
        let base: Vec<&String> =
            rows.iter().filter(|r| r["seed"] == seed).map(|r| &r["base_valid_tn"]).collect();
        assert!(base.iter().all(|b| *b == base[0]), "seed {seed}: {base:?}");
    }
    assert!(dir.join("res/best/weights/gacha_adapter.json").is_file());
}

/// `gacha eval` with a trial's saved adapter on its validation images gives the counts the sweep
/// recorded from cached features: the adapter holds what was trained, and scoring from the cache
/// equals scoring from pixels.
#[test]
fn saved_adapters_reproduce_the_recorded_valid_counts() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(
        &dir,
        "seeds = [3]\nvalid = [5]\nlearning_rate = [0.05]\ntrainable = [\"lora\", \"attention\"]\n",
        "",
    );
    assert_exit(&run(&mut sweep(&dir, "res")), 0);
    let data = std::fs::read_to_string(dir.join("data.jsonl")).unwrap();
    for row in leaderboard(&dir.join("res/leaderboard.csv")) {
        let trial = dir.join(&format!("res/trials/{}", row["id"]));
        let split: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(trial.join("split.json")).unwrap()).unwrap();
        let valid: Vec<&str> =
            split["valid"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let lines: String = data
            .lines()
            .filter(|l| valid.iter().any(|v| l.contains(&format!("\"{v}\""))))
            .map(|l| format!("{l}\n"))
            .collect();
        dir.write("valid.jsonl", lines);
        let weights = trial.join("weights");
        let out = run(dir
            .gacha()
            .args(["eval", "--model", "builtin:tiny", "--adapter"])
            .arg(&weights)
            .arg("valid.jsonl"));
        assert_exit(&out, 0);
        let want = format!(
            "tp={} tn={} fp={} fn={}",
            row["valid_tp"], row["valid_tn"], row["valid_fp"], row["valid_fn"]
        );
        assert!(texts(&out).0.contains(&want), "{}: want {want}, eval says\n{}", row["id"], texts(&out).0);
    }
}

/// An observer that never stops a run and logs nothing.
struct Quiet;

impl StepObserver for Quiet {
    fn after_step(&mut self) -> Control {
        Control::Continue
    }

    fn logged(&mut self, _: &LossLine) {}
}

/// `ModelRunner::answers` of an attempt's saved weights on its valid images (NG_003.gif among them)
/// give exactly the valid counts the attempt reported.
#[test]
fn answers_of_saved_weights_give_the_reported_valid_counts() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(
        &dir,
        "seeds = [3]\nvalid = [7]\nlearning_rate = [0.05]\ntrainable = [\"lora\", \"attention\"]\n",
        "",
    );
    let spec = load_spec(&dir.join("s.toml")).unwrap();
    let dataset = load_dataset(&spec.data_path(), &spec.data.options()).unwrap();
    let mut runner = ModelRunner::new(&spec, &dataset, DeviceSpec::Cpu).unwrap();
    // Train on the four "yes" images (OK_011.gif among them), validate on the seven "no" ones: the
    // untrained model answers no to all seven, the trained ones yes to some, so the counts show
    // whether the weights were loaded.
    let train = vec![0, 1, 7, 10];
    let split = SplitIndices { valid: (0..IMAGES).filter(|i| !train.contains(i)).collect(), train };
    assert_eq!(spec.trials.len(), 2);
    for trial in &spec.trials {
        let weights = dir.join(&format!("weights-{}", trial.id.as_str()));
        std::fs::create_dir_all(&weights).unwrap();
        let job = TrialJob {
            id: &trial.id,
            params: &trial.params,
            train: trial.params.train_config(trial.params.seed),
            attempt: 0,
            split: &split,
            weights_dir: &weights,
        };
        let run = runner.run(&job, &mut Quiet).unwrap();
        assert!(run.end.is_finished(), "{}: {:?}", trial.label, run.end);
        let answers = runner.answers(&weights, &trial.params.prompt, &split.valid).unwrap();
        let labels = split.valid.iter().map(|&i| dataset.examples[i].label);
        let got = Confusion::from_pairs(labels.zip(answers.iter().map(|a| a.answer())));
        assert_eq!(got, run.after.unwrap().valid, "{}", trial.label);
        // The weights saved give the logits the trial recorded, bit for bit.
        assert_eq!(answers, run.valid_answers, "{}", trial.label);
        assert_ne!(got, run.before.valid, "{}: training must change some answer", trial.label);
        let err = runner.answers(&weights, &trial.params.prompt, &[IMAGES]).unwrap_err().to_string();
        assert!(err.contains("example index 11 is out of range"), "{err}");
    }
}

#[test]
fn two_identical_runs_give_identical_leaderboards() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, FOUR_BY_TWO, "[stage2]\nwhen = \"always\"\nsteps = 3\n");
    assert_exit(&run(&mut sweep(&dir, "a")), 0);
    assert_exit(&run(&mut sweep(&dir, "b")), 0);
    let a = leaderboard_sans_times(&dir.join("a/leaderboard.csv"));
    assert_eq!(a.len(), 8);
    assert!(a.iter().all(|r| r["stage2"] == "ran"), "{a:?}");
    assert_eq!(a, leaderboard_sans_times(&dir.join("b/leaderboard.csv")));
    for row in &a {
        let adapter = |root: &str| {
            let weights = dir.join(&format!("{root}/trials/{}/weights", row["id"]));
            let file = if row["trainable"] == "lora" {
                "adapter_model.safetensors"
            } else {
                "attention.safetensors"
            };
            std::fs::read(weights.join(file)).unwrap()
        };
        assert!(adapter("a") == adapter("b"), "{}: the saved weights differ", row["id"]);
    }
}

#[test]
fn an_absurd_learning_rate_diverges_is_reseeded_and_the_sweep_goes_on() {
    let dir = TestDir::new();
    write_dataset(&dir);
    // SGD at lr 1e30 overflows the attention scores at step 2: the loss is NaN (caught at any
    // step, not only logged ones).
    write_spec(
        &dir,
        "seeds = [1]\nvalid = [4]\nlearning_rate = [1e30, 0.01]\n",
        "[abort]\nmax_reseeds = 1\n",
    );
    let out = run(&mut sweep(&dir, "res"));
    assert_exit(&out, 0);
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("diverged at stage 1 step 2 (loss NaN); reseeding"), "{stderr}");
    // SHA-256("gacha reseed 1 1"), first 8 bytes little-endian (see sweep::runner::reseed).
    assert!(stderr.contains("reseed 1 of 1: training seed 17806329684731702236"), "{stderr}");
    assert!(stderr.contains("diverged at stage 1 step 2 (loss NaN); no reseeds left"), "{stderr}");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    let absurd = rows.iter().find(|r| r["learning_rate"] == "1e+30").unwrap();
    assert_eq!((absurd["status"].as_str(), absurd["reseeds"].as_str()), ("diverged", "1"));
    assert_eq!((absurd["diverged_step"].as_str(), absurd["final_loss"].as_str()), ("2", "NaN"));
    assert!(!dir.join(&format!("res/trials/{}/weights", absurd["id"])).exists());
    let sane = rows.iter().find(|r| r["learning_rate"] == "0.01").unwrap();
    assert_eq!((sane["status"].as_str(), sane["reseeds"].as_str()), ("done", "0"));

    // A threshold below the untrained loss (about ln 384 ≈ 6) trips at the first logged step,
    // step 3, with a finite loss.
    write_spec(
        &dir,
        "seeds = [1]\nvalid = [4]\nlearning_rate = [0.01]\n",
        "[abort]\nloss_above = 3.0\nmax_reseeds = 0\n",
    );
    let out = run(&mut sweep(&dir, "res2"));
    assert_exit(&out, 0);
    let row = &leaderboard(&dir.join("res2/leaderboard.csv"))[0];
    assert_eq!((row["status"].as_str(), row["diverged_step"].as_str()), ("diverged", "3"));
    let loss: f64 = row["final_loss"].parse().unwrap();
    assert!(loss > 3.0 && loss.is_finite(), "{loss}");
}

#[test]
fn sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run() {
    let dir = TestDir::new();
    write_dataset(&dir);
    let axes = "seeds = [1, 2]\nvalid = [4]\nlearning_rate = [0.01, 0.03, 1e30]\n";
    // Ranked by valid accuracy, defined even when a short run answers "no" to every image.
    let extra = "[abort]\nmax_reseeds = 1\n[select]\nmetric = \"valid.accuracy\"\nkeep = 2\n";
    write_spec(&dir, axes, extra);
    assert_exit(&run(&mut sweep(&dir, "calm")), 0);

    kill_at_random_moments(|| sweep(&dir, "killed"), 6, 20, 250);
    assert_exit(&run(&mut sweep(&dir, "killed")), 0);
    let calm = leaderboard_sans_times(&dir.join("calm/leaderboard.csv"));
    assert_eq!(calm.len(), 6);
    assert_eq!(calm, leaderboard_sans_times(&dir.join("killed/leaderboard.csv")));
    let best = |root: &str| {
        let text = std::fs::read_to_string(dir.join(&format!("{root}/best/outcome.json"))).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"].clone()
    };
    assert_eq!(best("calm"), calm[0]["id"].as_str());
    assert_eq!(best("killed"), best("calm"));
    let best_weights =
        |root: &str| std::fs::read(dir.join(&format!("{root}/best/weights/adapter_model.safetensors")));
    assert_eq!(best_weights("killed").unwrap(), best_weights("calm").unwrap());
}

/// The same sweep on a PaliGemma 2 checkpoint folder (the committed tiny-paligemma2 fixture and
/// its six images): the spec names the folder, the generation comes from its config.json.
#[test]
fn a_sweep_runs_on_a_paligemma2_checkpoint() {
    let dir = TestDir::new();
    let fixture = crate::util::fixtures().join("tiny-paligemma2");
    let data = std::fs::read_to_string(fixture.join("data.jsonl")).unwrap();
    for line in data.lines() {
        let image =
            serde_json::from_str::<serde_json::Value>(line).unwrap()["image"].as_str().unwrap().to_string();
        dir.write(&image, std::fs::read(fixture.join(&image)).unwrap());
    }
    dir.write("data.jsonl", &data);
    let spec = format!(
        "name = \"pg2\"\n[model]\npath = {:?}\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 4\nbatch_size = 2\nlog_every = 2\nlora_rank = 2\n[sweep]\n\
         seeds = [1]\nvalid = [2]\nlearning_rate = [0.05]\ntrainable = [\"lora\", \"attention\"]\n",
        fixture.to_str().unwrap()
    );
    dir.write("s.toml", spec);
    let out = run(&mut sweep(&dir, "res"));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("2 of 2 trials finished (2 done, 0 diverged, 0 failed)"), "{stdout}");
    let rows = leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let valid: u32 =
            ["tp", "tn", "fp", "fn"].iter().map(|c| row[&format!("valid_{c}")].parse::<u32>().unwrap()).sum();
        assert_eq!(valid, 2, "{}", row["id"]);
    }
}

/// Issue 16: 3 seeds × 3 rates (1e30 diverges at once and is reseeded) × stage 2, one prompt,
/// so every trial shares one pack key.
const PACKABLE: &str = "seeds = [1, 2, 3]\nvalid = [4]\nlearning_rate = [0.01, 0.03, 1e30]\n\
                        prompt = [\"Is this ad acceptable?\"]\n";
const PACKABLE_EXTRA: &str = "[abort]\nmax_reseeds = 1\n[stage2]\nwhen = \"always\"\nsteps = 3\n\
                              [select]\nmetric = \"valid.accuracy\"\n";

/// The spec above with `pack` written into its `[sweep]` table.
fn write_packed_spec(dir: &TestDir, pack: &str) {
    write_spec(dir, &format!("pack = {pack}\n{PACKABLE}"), PACKABLE_EXTRA);
}

#[test]
fn a_packed_sweep_records_what_the_unpacked_one_does() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_packed_spec(&dir, "1");
    let alone = run(&mut sweep(&dir, "alone"));
    assert_exit(&alone, 0);
    write_packed_spec(&dir, "4");
    let packed = run(&mut sweep(&dir, "packed"));
    assert_exit(&packed, 0);
    let (stdout, stderr) = texts(&packed);
    assert!(stderr.contains("pack: 4 trials trained in each pass"), "{stderr}");
    // Packed trials name themselves on their step lines.
    assert!(stderr.contains(": step: 3/6   lr: "), "{stderr}");
    assert!(stdout.contains("9 of 9 trials finished (6 done, 3 diverged, 0 failed)"), "{stdout}");
    let rows = leaderboard_sans_times(&dir.join("alone/leaderboard.csv"));
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().any(|r| r["stage2"] == "ran"), "{rows:?}");
    assert!(rows.iter().any(|r| r["reseeds"] == "1"), "{rows:?}");
    // Every column equal, the final loss within 1e-5 relative (the tolerance).
    fn sans_loss(rows: &[BTreeMap<String, String>]) -> Vec<BTreeMap<String, String>> {
        let mut rows = rows.to_vec();
        rows.iter_mut().for_each(|r| {
            r.remove("final_loss");
        });
        rows
    }
    let packed_rows = leaderboard_sans_times(&dir.join("packed/leaderboard.csv"));
    assert_eq!(sans_loss(&rows), sans_loss(&packed_rows));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan());
    for (a, p) in rows.iter().zip(&packed_rows) {
        let (a, p) =
            (a["final_loss"].parse::<f64>().unwrap_or(f64::NAN), p["final_loss"].parse().unwrap_or(f64::NAN));
        assert!(close(a, p), "final loss {a} vs {p}");
    }
    // Each trial's loss log, step by step, is the same.
    for row in &rows {
        let log = |root: &str| {
            let path = dir.join(&format!("{root}/trials/{}/metrics.jsonl", row["id"]));
            let text = std::fs::read_to_string(path).unwrap();
            text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
        };
        let (a, p) = (log("alone"), log("packed"));
        assert_eq!(a.len(), p.len(), "trial {}", row["id"]);
        for (a, p) in a.iter().zip(&p) {
            for key in ["attempt", "stage", "step", "learning_rate"] {
                assert_eq!(a[key], p[key], "trial {}", row["id"]);
            }
            let loss = |l: &serde_json::Value| l["loss"].as_f64().unwrap_or(f64::NAN);
            assert!(close(loss(a), loss(p)), "trial {}: loss {a} vs {p}", row["id"]);
        }
    }
}

#[test]
fn sigkill_during_packed_trials_then_resume_matches_an_uninterrupted_run() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_packed_spec(&dir, "\"auto\"");
    assert_exit(&run(&mut sweep(&dir, "calm")), 0);
    kill_at_random_moments(|| sweep(&dir, "killed"), 6, 20, 250);
    assert_exit(&run(&mut sweep(&dir, "killed")), 0);
    let calm = leaderboard_sans_times(&dir.join("calm/leaderboard.csv"));
    assert_eq!(calm.len(), 9);
    assert_eq!(calm, leaderboard_sans_times(&dir.join("killed/leaderboard.csv")));
}

#[test]
fn pack_is_a_count_or_auto() {
    let dir = TestDir::new();
    write_dataset(&dir);
    for bad in ["0", "65", "\"many\"", "[2, 4]"] {
        write_packed_spec(&dir, bad);
        let out = run(&mut sweep(&dir, "res"));
        assert_exit(&out, 2);
        let (_, stderr) = texts(&out);
        assert!(
            stderr.contains("s.toml: line 19: sweep.pack: expected a number of trials from 1 to 64"),
            "{bad}: {stderr}"
        );
    }
}

/// `--workers N` runs N worker processes of cores / N threads, which share the trials and record
/// what one process does; `auto` runs one process where memory has room for one trial only.
#[test]
fn cpu_workers_share_the_trials_and_record_what_one_process_does() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, FOUR_BY_TWO, "");
    let alone = run(sweep(&dir, "alone").args(["--workers", "1"]));
    assert_exit(&alone, 0);
    let (_, stderr) = texts(&alone);
    assert!(!stderr.contains("workers started"), "{stderr}");
    let cores = std::thread::available_parallelism().unwrap().get();
    let threads = (cores / 2).max(1);
    let two = run(sweep(&dir, "two").args(["--workers", "2"]).env_remove("RAYON_NUM_THREADS"));
    assert_exit(&two, 0);
    let (stdout, stderr) = texts(&two);
    assert!(
        stderr.starts_with(&format!("2 workers started: cpu, cpu, {threads} thread(s) each (--workers)\n")),
        "{stderr}"
    );
    for worker in ["[1 cpu]", "[2 cpu]"] {
        let model = format!("{worker} model builtin:tiny@0 on cpu, {threads} thread(s) (frozen weights F32)");
        assert!(stderr.contains(&model), "{model}\n{stderr}");
        assert!(stderr.contains(&format!("{worker} trial ")), "{worker} ran trials\n{stderr}");
    }
    // The workers' own leaderboards are left out: one, this process's, at the end.
    assert_eq!(stdout.matches("trials finished").count(), 1, "{stdout}");
    assert!(
        stdout
            .contains("8 of 8 trials finished (8 done, 0 diverged, 0 failed); this run: 8 trials, 0 skipped"),
        "{stdout}"
    );
    let rows = leaderboard_sans_times(&dir.join("alone/leaderboard.csv"));
    assert_eq!(rows.len(), 8);
    assert_eq!(rows, leaderboard_sans_times(&dir.join("two/leaderboard.csv")));

    // Room for one trial's estimate and not two: auto keeps to this process.
    let check = run(dir.gacha().args(["check", "s.toml"]));
    let (stdout, stderr) = texts(&check);
    let mib: f64 = format!("{stdout}{stderr}")
        .split_once("memory: peak about ")
        .and_then(|(_, rest)| rest.split_once(" MiB"))
        .and_then(|(number, _)| number.parse().ok())
        .expect("gacha check prints the peak estimate in MiB");
    let limit = (1.5 * mib * 1024.0 * 1024.0) as u64;
    let auto = run(sweep(&dir, "auto").env("GACHA_MEMORY_LIMIT_BYTES", limit.to_string()));
    assert_exit(&auto, 0);
    let (_, stderr) = texts(&auto);
    assert!(!stderr.contains("workers started"), "{stderr}");
    assert_eq!(rows, leaderboard_sans_times(&dir.join("auto/leaderboard.csv")));

    let gpu = run(sweep(&dir, "gpu").args(["--workers", "2", "--device", "cuda"]));
    assert_exit(&gpu, 2);
    assert!(texts(&gpu).1.contains("--workers is for CPU sweeps"), "{:?}", texts(&gpu));
}
