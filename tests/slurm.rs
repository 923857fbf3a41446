//! Issue 12 on a real single-node Slurm (Debian's slurmctld, slurmd and munge, started by
//! `tools/slurm-local.sh` in a fresh state folder): a 6-trial array of a builtin:tiny spec
//! through `gacha slurm --submit`, one running task cancelled (`scancel`: SIGTERM), then
//! `gacha slurm --submit` again, which submits only the missing trial; the leaderboard ends equal
//! to a single-process run's. Slurm is installed by `.ci/run` (and by `bash tools/slurm-local.sh
//! install`, as root). `GACHA_TEST_SLURM` says what to do without it: unset, the test is skipped
//! and says so on the terminal (a new user's `cargo test --release` passes); `require` (CI) fails
//! it, so CI can never skip it silently; `skip` leaves it out even where Slurm is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::util::{assert_exit, leaderboard_sans_times, run, texts, TestDir};

/// The variable that says whether this test may be skipped (see the module doc).
const SLURM_VAR: &str = "GACHA_TEST_SLURM";

/// What `GACHA_TEST_SLURM` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// Unset: run where Slurm is installed, else skip and say so.
    IfInstalled,
    /// `require`: run, or fail.
    Required,
    /// `skip`: leave it out.
    Skipped,
}

fn wanted() -> Wanted {
    match std::env::var(SLURM_VAR).as_deref() {
        Err(_) | Ok("") => Wanted::IfInstalled,
        Ok("require") => Wanted::Required,
        Ok("skip") => Wanted::Skipped,
        Ok(other) => panic!("{SLURM_VAR}={other:?}: expected require, skip, or unset"),
    }
}

/// A line on the test's stderr that `cargo test` shows even when the test passes (its capture
/// takes only `print!`/`eprint!`).
fn say_loudly(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** {line} ***\n");
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/slurm-local.sh")
}

/// One local cluster at a time: they share the machine's Slurm ports.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// A running local cluster, stopped when dropped.
struct LocalSlurm {
    state: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl LocalSlurm {
    /// Start it, or `None` when the test is left out on purpose; panics when it cannot start.
    fn start() -> Option<LocalSlurm> {
        let wanted = wanted();
        if wanted == Wanted::Skipped {
            say_loudly(&format!("{SLURM_VAR}=skip: the Slurm test is left out"));
            return None;
        }
        let missing: Vec<&str> = ["slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel"]
            .into_iter()
            .filter(|tool| {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .unwrap()
                    .status
                    .success()
            })
            .collect();
        let why = format!(
            "Slurm is not installed here ({} missing): `bash tools/slurm-local.sh install` (as root, \
             Debian) installs it, as .ci/run does",
            missing.join(", ")
        );
        match (missing.is_empty(), wanted) {
            (true, _) => {}
            (false, Wanted::Required) => panic!("{why}; {SLURM_VAR}=require asks for this test"),
            (false, _) => {
                say_loudly(&format!(
                    "SKIPPED the Slurm test: {why}; {SLURM_VAR}=require makes it fail instead"
                ));
                return None;
            }
        }
        let turn = ONE_CLUSTER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = tempfile::tempdir().unwrap();
        let slurm = LocalSlurm { state, _turn: turn };
        let out = slurm.script_command("start").env("SLURM_LOCAL_CPUS", "4").output().unwrap();
        assert!(
            out.status.success(),
            "the local Slurm did not start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(slurm)
    }

    fn script_command(&self, verb: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg(verb).env("SLURM_LOCAL_DIR", self.state.path());
        cmd
    }

    fn conf(&self) -> PathBuf {
        self.state.path().join("etc/slurm.conf")
    }

    /// A Slurm client command (squeue, scancel) on this cluster.
    fn client(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("SLURM_CONF", self.conf());
        cmd
    }

    fn squeue(&self, args: &[&str]) -> String {
        let out = self.client("squeue").args(args).output().unwrap();
        assert!(out.status.success(), "squeue: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until job `id` has no task left in the queue.
    fn wait_for(&self, id: &str, limit: Duration) {
        let started = Instant::now();
        while !self.squeue(&["-h", "-j", id]).trim().is_empty() {
            assert!(
                started.elapsed() < limit,
                "job {id} still queued after {limit:?}:\n{}",
                self.squeue(&["-j", id])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        let _ = self.script_command("stop").output();
    }
}

/// The first 11 images of the demo dataset and a 6-trial spec whose trials take a few seconds.
fn write_inputs(dir: &TestDir) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/demo");
    let text = std::fs::read_to_string(demo.join("data.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().take(11).collect();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let image = value["image"].as_str().unwrap();
        dir.write(image, std::fs::read(demo.join(image)).unwrap());
    }
    dir.write("data.jsonl", lines.join("\n") + "\n");
    dir.write(
        "s.toml",
        "name = \"t\"\n[model]\npath = \"builtin:tiny\"\n[data]\npath = \"data.jsonl\"\n\
         [train]\nsteps = 150\nbatch_size = 4\nlog_every = 50\nlora_rank = 2\n\
         [sweep]\nseeds = [1, 2, 3]\nvalid = [4]\nlearning_rate = [0.01, 0.03]\n",
    );
}

/// `gacha slurm SPEC --results res --submit` on `slurm`: its output and the job id.
fn submit(dir: &TestDir, slurm: &LocalSlurm, spec: &str, extra: &[&str]) -> (Output, String) {
    let out = run(dir
        .gacha()
        .args(["slurm", spec, "--results", "res", "--submit"])
        .args(extra)
        .env("SLURM_CONF", slurm.conf())
        .env("RAYON_NUM_THREADS", "1"));
    assert_exit(&out, 0);
    let (stdout, _) = texts(&out);
    let id = stdout
        .split("submitted job ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no job id in: {stdout}"))
        .trim()
        .to_string();
    (out, id)
}

#[test]
fn issue_12_a_slurm_array_with_a_cancelled_task_ends_like_one_process() {
    let Some(slurm) = LocalSlurm::start() else { return };
    let dir = TestDir::new();
    write_inputs(&dir);
    let started = Instant::now();
    let (out, job) = submit(&dir, &slurm, "s.toml", &["--max-parallel", "2"]);
    assert!(texts(&out).0.contains("6 of 6 trials not finished (array 0-5)"), "{}", texts(&out).0);

    // Cancel the first task seen running once it holds a trial's claim.
    let task = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no task started:\n{}",
            slurm.squeue(&["-j", &job])
        );
        let running = slurm.squeue(&["-h", "-j", &job, "-t", "R", "-o", "%i"]);
        if let (Some(task), true) =
            (running.split_whitespace().next(), crate::util::holds_a_claim(&dir.join("res")))
        {
            break task.to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = slurm.client("scancel").arg(&task).output().unwrap();
    assert!(out.status.success(), "scancel {task}: {}", String::from_utf8_lossy(&out.stderr));
    slurm.wait_for(&job, Duration::from_secs(300));
    let first_array = started.elapsed();
    let index = task.rsplit('_').next().unwrap().to_string();
    let log = std::fs::read_to_string(dir.join(&format!("res/slurm/{task}.out"))).unwrap_or_default();
    assert!(log.contains("stopping after the current step"), "task {task} was stopped by its signal:\n{log}");
    let rows = crate::util::leaderboard(&dir.join("res/leaderboard.csv"));
    assert_eq!(rows.len(), 5, "the cancelled task's trial is left unfinished, the rest done");

    let (out, again) = submit(&dir, &slurm, "s.toml", &[]);
    assert!(
        texts(&out).0.contains(&format!("1 of 6 trials not finished (array {index})")),
        "only the cancelled trial is submitted again: {}",
        texts(&out).0
    );
    slurm.wait_for(&again, Duration::from_secs(300));
    eprintln!(
        "array of 6 with one task cancelled: {first_array:.1?}; total with the resubmission {:.1?}",
        started.elapsed()
    );

    let out = run(dir.gacha().args(["slurm", "s.toml", "--results", "res"]).env("SLURM_CONF", slurm.conf()));
    assert_exit(&out, 0);
    assert!(texts(&out).0.contains("nothing to submit"), "{}", texts(&out).0);
    let status = run(dir.gacha().args(["status", "res"]));
    assert!(texts(&status).0.starts_with("res: 6 trials: 6 finished"), "{}", texts(&status).0);
    assert!(dir.join("res/best/outcome.json").is_file());

    let alone =
        run(dir.gacha().args(["sweep", "s.toml", "--results", "alone"]).env("RAYON_NUM_THREADS", "1"));
    assert_exit(&alone, 0);
    assert_eq!(
        leaderboard_sans_times(&dir.join("res/leaderboard.csv")),
        leaderboard_sans_times(&dir.join("alone/leaderboard.csv"))
    );
}

#[test]
fn issue_28_a_race_runs_as_worker_tasks_to_the_decisions_of_one_process() {
    let Some(slurm) = LocalSlurm::start() else { return };
    let dir = TestDir::new();
    crate::sweep::write_dataset(&dir);
    crate::race::write_race(&dir, "r.toml", "");
    let scripted = ["--debug-scripted-runner", "--debug-step-ms", "20"];
    let (out, job) = submit(&dir, &slurm, "r.toml", &[&["--tasks", "2"][..], &scripted].concat());
    assert!(texts(&out).0.contains("2 worker tasks for the race"), "{}", texts(&out).0);
    slurm.wait_for(&job, Duration::from_secs(300));
    let alone = run(dir.gacha().args(["sweep", "r.toml", "--results", "alone"]).args(scripted));
    assert_exit(&alone, 0);
    let read = |path: &str| std::fs::read_to_string(dir.join(path)).unwrap();
    assert_eq!(read("res/race.json"), read("alone/race.json"), "the tasks' race decided as one process");
    let final_config =
        |path: &str| serde_json::from_str::<serde_json::Value>(&read(path)).unwrap()["config"].clone();
    assert_eq!(final_config("res/best/final.json"), final_config("alone/best/final.json"));
    let logs: Vec<_> = std::fs::read_dir(dir.join("res/slurm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".out"))
        .collect();
    assert_eq!(logs.len(), 2, "two task logs: {logs:?}");
}
