//! Issue 12, beyond one process, with the scripted runner: workers that share a results folder
//! through claims (two sweeps at once, `--devices cpu,cpu`, `--worker`, `gacha trial --index`),
//! `gacha status`, and workers SIGKILLed at random moments. The real Slurm test is in
//! `slurm.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::sweep::{start_slow_sweep, sweep, write_dataset, write_spec, SPEC_4};
use crate::util::{assert_exit, leaderboard_sans_times, run, texts, TestDir};

/// Eight trials: enough for two workers to share.
const SPEC_8: &str = "seeds = [1, 2]\nvalid = [10]\nlearning_rate = [0.01, 0.1]\nprompt = [\"a?\", \"b?\"]\n";

/// The leaderboard of one uninterrupted single-process run of `spec` (into `alone/`).
fn reference_leaderboard(dir: &TestDir, spec: &str) -> Vec<BTreeMap<String, String>> {
    assert_exit(&run(&mut sweep(dir, spec, "alone", 0)), 0);
    leaderboard_sans_times(&dir.join("alone/leaderboard.csv"))
}

/// The trial ids of `spec` by index, from `gacha check SPEC --trials`.
fn trial_ids(dir: &TestDir, spec: &str) -> Vec<String> {
    let out = run(dir.gacha().args(["check", spec, "--trials"]));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    let listed = stdout.split_once("trials (index").expect("a trial list").1;
    listed.lines().skip(1).map(|line| line.split_whitespace().nth(1).unwrap().to_string()).collect()
}

/// How many times each trial was run to the end, over the stderr texts of several runs: a
/// `trial n/N ID: …` line followed by the result line (`  done: …`, `  diverged: …`, `  failed: …`).
fn completions(stderrs: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for stderr in stderrs {
        // By worker: `--devices` interleaves the lines of its workers, each `[n device] `-tagged.
        let mut current: BTreeMap<&str, String> = BTreeMap::new();
        for line in stderr.lines() {
            let (worker, line) = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
                Some((worker, rest)) => (worker, rest),
                None => ("", line),
            };
            let started = line
                .strip_prefix("trial ")
                .filter(|rest| rest.split_whitespace().next().is_some_and(|n| n.contains('/')));
            if let Some(rest) = started {
                if let Some(id) = rest.split_whitespace().nth(1) {
                    current.insert(worker, id.trim_end_matches(':').to_string());
                }
            } else if ["  done:", "  diverged:", "  failed:"].iter().any(|p| line.starts_with(p)) {
                if let Some(id) = current.remove(worker) {
                    *counts.entry(id).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn issue_12_two_sweeps_on_one_folder_share_the_trials() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let first = start_slow_sweep(&dir);
    let second = run(&mut sweep(&dir, "s.toml", "res", 40));
    let first = first.wait_with_output().unwrap();
    assert_exit(&first, 0);
    assert_exit(&second, 0);
    let stderrs = [texts(&first).1, texts(&second).1];
    let counts = completions(&stderrs);
    assert_eq!(counts.len(), 4, "every trial ran: {counts:?}\n{stderrs:#?}");
    assert!(counts.values().all(|&n| n == 1), "no trial ran twice: {counts:?}");
    assert!(counts.len() > completions(&stderrs[..1]).len(), "the second sweep ran some: {stderrs:#?}");
    let shared = leaderboard_sans_times(&dir.join("res/leaderboard.csv"));
    assert_eq!(shared, reference_leaderboard(&dir, "s.toml"));
}

#[test]
fn issue_12_devices_cpu_cpu_runs_two_workers_to_the_single_process_leaderboard() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_8, "");
    let mut cmd = sweep(&dir, "s.toml", "res", 20);
    let out = run(cmd.args(["--devices", "cpu,cpu"]));
    assert_exit(&out, 0);
    let (stdout, stderr) = texts(&out);
    let counts = completions(std::slice::from_ref(&stderr));
    assert_eq!(counts.len(), 8, "{counts:?}\n{stderr}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    for tag in ["[1 cpu] trial ", "[2 cpu] trial "] {
        assert!(stderr.contains(tag), "both workers ran trials ({tag}):\n{stderr}");
    }
    assert!(stdout.contains("8 of 8 trials finished"), "{stdout}");
    assert_eq!(
        leaderboard_sans_times(&dir.join("res/leaderboard.csv")),
        reference_leaderboard(&dir, "s.toml")
    );
}

/// The pids of live `gacha sweep --worker` processes started in `dir`, from /proc.
fn workers_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<String> =
                raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            !zombie && args.iter().any(|a| a == "--worker") && cwd.as_deref() == Some(dir)
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn sigkill_of_the_sweep_stops_its_workers_and_the_same_command_resumes() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_8, "");
    let reference = reference_leaderboard(&dir, "s.toml");
    // Quiet, so that a worker is not ended by writing into the pipe of a dead parent instead.
    let mut child = sweep(&dir, "s.toml", "res", 200)
        .args(["--workers", "2", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers_in(dir.path()).len() < 2 || !crate::util::holds_a_claim(&dir.join("res")) {
        assert!(Instant::now() < deadline, "two workers never started and claimed a trial");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // They stop after their current step (200 ms); left running, they would take seconds more.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !workers_in(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "workers still run after their sweep was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(sweep(&dir, "s.toml", "res", 0).args(["--workers", "2"]));
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("8 of 8 trials finished"), "{:?}", texts(&out));
    assert_eq!(leaderboard_sans_times(&dir.join("res/leaderboard.csv")), reference);
}

#[test]
fn issue_12_trial_by_index_runs_exactly_that_trial() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let ids = trial_ids(&dir, "s.toml");
    assert_eq!(ids.len(), 4);
    let trial = |index: Option<&str>, env: Option<(&str, &str)>| {
        let mut cmd = dir.gacha();
        cmd.args(["trial", "s.toml", "--results", "res", "--debug-scripted-runner"]);
        if let Some(index) = index {
            cmd.args(["--index", index]);
        }
        for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
            cmd.env_remove(name);
        }
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        run(&mut cmd)
    };
    assert_exit(&trial(Some("2"), None), 0);
    assert_exit(&trial(None, Some(("SLURM_ARRAY_TASK_ID", "0"))), 0);
    let rows = crate::util::leaderboard(&dir.join("res/leaderboard.csv"));
    let mut got: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    got.sort();
    let mut want = vec![ids[0].as_str(), ids[2].as_str()];
    want.sort();
    assert_eq!(got, want);

    let out = trial(Some("4"), None);
    assert_exit(&out, 2);
    assert!(
        texts(&out).1.contains("trial index 4 is out of range: s.toml has 4 trials (0–3)"),
        "{}",
        texts(&out).1
    );
    let out = trial(None, None);
    assert_exit(&out, 2);
    assert!(texts(&out).1.contains("pass --index N"), "{}", texts(&out).1);

    // The last two by the Kubernetes variable and by flag; the last one makes the final model.
    assert_exit(&trial(None, Some(("JOB_COMPLETION_INDEX", "1"))), 0);
    let out = trial(Some("3"), None);
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("4 of 4 trials finished"), "{}", texts(&out).0);
    assert!(dir.join("res/best/outcome.json").is_file());
    assert_eq!(
        leaderboard_sans_times(&dir.join("res/leaderboard.csv")),
        reference_leaderboard(&dir, "s.toml")
    );
}

/// A claim file of a worker on another host, its heartbeat `age` old.
fn foreign_claim(dir: &Path, id: &str, age: Duration) {
    let path = dir.join("claims").join(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        r#"{"worker":"node7:4242","host":"node7","pid":4242,"token":"0","started_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age).unwrap();
}

#[test]
fn issue_12_status_tells_finished_running_stale_and_waiting_and_a_stale_claim_is_taken_over() {
    let dir = TestDir::new();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_4, "");
    let ids = trial_ids(&dir, "s.toml");
    let trial = |index: usize| {
        let mut cmd = dir.gacha();
        cmd.args(["trial", "s.toml", "--results", "res", "--debug-scripted-runner", "--index"]);
        cmd.arg(index.to_string());
        cmd
    };
    assert_exit(&run(&mut trial(0)), 0);
    foreign_claim(&dir.join("res"), &ids[1], Duration::from_secs(3));
    foreign_claim(&dir.join("res"), &ids[2], Duration::from_secs(600));
    let out = run(dir.gacha().args(["status", "res"]));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.starts_with(
            "res: 4 trials: 1 finished (1 done, 0 diverged, 0 failed), 1 running, 1 stale, 1 waiting\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("     1  {}", ids[1])) && stdout.contains("node7:4242 since"),
        "{stdout}"
    );
    assert!(stdout.contains("waiting (indices): 3\n"), "{stdout}");
    assert!(stdout.contains(&format!("leader: {}", ids[0])), "{stdout}");

    // A live claim is left alone; a stale one is taken over.
    let out = run(&mut trial(1));
    assert_exit(&out, 0);
    assert!(
        texts(&out).1.contains(&format!("trial 2 ({}) is running in node7:4242", ids[1])),
        "{}",
        texts(&out).1
    );
    let out = run(&mut trial(2));
    assert_exit(&out, 0);
    assert!(texts(&out).1.contains(&format!("taking over {} from node7:4242", ids[2])), "{}", texts(&out).1);
    assert!(dir.join(&format!("res/trials/{}/outcome.json", ids[2])).is_file());
    assert!(!dir.join(&format!("res/claims/{}", ids[2])).exists(), "released after the trial");
}

/// Three workers, each started again and again and SIGKILLed at random moments, then one
/// uninterrupted run: the leaderboard of a single run, no trial run twice to completion.
#[test]
fn issue_12_workers_killed_at_random_end_with_the_single_process_leaderboard() {
    let dir = TestDir::in_memory();
    write_dataset(&dir);
    write_spec(&dir, "s.toml", SPEC_8, "");
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let seed = u64::from(clock.subsec_nanos()) ^ u64::from(std::process::id());
    eprintln!("kill schedule seed {seed}");
    let stderrs: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3u64)
            .map(|w| {
                let dir = &dir;
                s.spawn(move || {
                    let mut state = seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut logs = Vec::new();
                    for round in 0..5 {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        let wait = Duration::from_millis(150 + (state >> 33) % 900);
                        let log = dir.join(&format!("w{w}-{round}.err"));
                        let mut child = sweep(dir, "s.toml", "res", 10)
                            .arg("--worker")
                            .stdout(Stdio::null())
                            .stderr(std::fs::File::create(&log).unwrap())
                            .spawn()
                            .unwrap();
                        let started = Instant::now();
                        while started.elapsed() < wait && child.try_wait().unwrap().is_none() {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        let _ = child.kill();
                        child.wait().unwrap();
                        logs.push(std::fs::read_to_string(&log).unwrap());
                    }
                    logs
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let last = run(&mut sweep(&dir, "s.toml", "res", 0));
    assert_exit(&last, 0);
    let mut all = stderrs;
    all.push(texts(&last).1);
    let counts = completions(&all);
    assert!(!counts.is_empty(), "no completed trial found in the logs: {all:#?}");
    assert!(counts.values().all(|&n| n == 1), "a trial ran to completion twice: {counts:?}");
    assert_eq!(
        leaderboard_sans_times(&dir.join("res/leaderboard.csv")),
        reference_leaderboard(&dir, "s.toml")
    );
    let left: Vec<_> =
        std::fs::read_dir(dir.join("res/claims")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| n.to_string_lossy().starts_with('.')), "claims left behind: {left:?}");
}
