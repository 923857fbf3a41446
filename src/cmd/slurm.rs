//! `gacha slurm SPEC`: an sbatch job array over the trials of a spec that are not finished, each
//! task `gacha trial SPEC --index $SLURM_ARRAY_TASK_ID`. What is finished is read from the
//! results folder, never from job states (a task cancelled while pending leaves no record in
//! Slurm), so running it again after a partial array submits only what is missing. A trial a
//! live task still runs is listed again; its new task finds the claim held and ends at once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;

use super::command_line::{absolute, run_words, shell_quote};
use super::deadline::{absolute as deadline_absolute, deadline};
use super::part::{rerun_of, results_dir};
use super::Outcome;
use crate::cli::{RunArgs, SlurmArgs};
use crate::fsutil::write_atomic;
use crate::results::failure::reruns;
use crate::results::folder::ResultsFolder;
use crate::results::layout::OutcomeFile;
use crate::results::record::utc_timestamp;
use crate::spec::{load_spec, SweepSpec};

/// The folder of the scripts and task logs, in the results folder.
const SLURM_DIR: &str = "slurm";

/// Worker tasks of a race (or a screened sweep) without `--tasks` or `--max-parallel`.
const DEFAULT_TASKS: usize = 4;

pub fn run(args: &SlurmArgs) -> anyhow::Result<Outcome> {
    let spec = load_spec(&args.run.spec)?;
    let results = results_dir(&args.run, &spec);
    let folder = ResultsFolder::open(&results)?;
    if spec.search.is_adaptive() {
        return submit_workers(args, &spec, &results);
    }
    // The trials a sweep would run: unfinished ones and the failures it reruns.
    let rerun = rerun_of(&args.run);
    let mut left = Vec::new();
    for (index, trial) in spec.trials.iter().enumerate() {
        match folder.dir.trial(&trial.id).read_outcome_file()? {
            OutcomeFile::Finished(outcome) if !reruns(&outcome, rerun) => {}
            _ => left.push(index),
        }
    }
    if left.is_empty() {
        println!(
            "every trial of {} is finished in {}; nothing to submit",
            spec.file.display(),
            results.display()
        );
        return Ok(Outcome::Success);
    }
    let TaskSetup { logs, gacha, run } = task_setup(args, &spec, &results)?;
    let task = TaskCommand {
        gacha: &gacha,
        subcommand: "trial",
        run: &run,
        last: &["--index", "\"$SLURM_ARRAY_TASK_ID\""],
    };
    let about = format!(
        "the {} trials of {} not finished at the time. A task stopped by\n\
         # scancel or preemption (SIGTERM) leaves its trial unfinished and exits 130; run gacha slurm\n\
         # again to submit what is missing.",
        left.len(),
        spec.file.display()
    );
    let script = sbatch_script(args, &spec.name, &array_ranges(&left), &logs, &about, &task);
    let path = write_script(args, &logs, &script)?;
    println!(
        "{}: {} of {} trials not finished (array {})",
        path.display(),
        left.len(),
        spec.trials.len(),
        array_ranges(&left)
    );
    submit(args, &path, &results)
}

/// What every task of a job shares: the log folder (made), the gacha binary and the run's
/// arguments with absolute paths and an absolute deadline.
struct TaskSetup {
    logs: PathBuf,
    gacha: PathBuf,
    run: RunArgs,
}

fn task_setup(args: &SlurmArgs, spec: &SweepSpec, results: &Path) -> anyhow::Result<TaskSetup> {
    let logs = absolute(&results.join(SLURM_DIR));
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let gacha = match &args.gacha {
        Some(path) => absolute(path),
        None => std::env::current_exe().context("cannot find the gacha executable")?,
    };
    let deadline = deadline(&args.run, SystemTime::now())?;
    let run = RunArgs {
        spec: absolute(&spec.file),
        results: Some(absolute(results)),
        ..deadline_absolute(&args.run, deadline.as_ref())
    };
    Ok(TaskSetup { logs, gacha, run })
}

/// A race's (or a screened sweep's) worker tasks: each `gacha sweep --worker` takes the next
/// pulls through the claims, as workers on one machine do.
fn submit_workers(args: &SlurmArgs, spec: &SweepSpec, results: &Path) -> anyhow::Result<Outcome> {
    let tasks = args.tasks.or(args.max_parallel).unwrap_or(DEFAULT_TASKS).max(1);
    let TaskSetup { logs, gacha, run } = task_setup(args, spec, results)?;
    let task = TaskCommand { gacha: &gacha, subcommand: "sweep", run: &run, last: &["--worker"] };
    let about = format!(
        "{tasks} worker tasks of {}, each taking the sweep's next pulls until\n\
         # none is left; the last makes the final model. A task stopped by scancel or preemption\n\
         # (SIGTERM) leaves its pull unfinished; run gacha slurm again to go on.",
        spec.file.display()
    );
    let script = sbatch_script(args, &spec.name, &format!("0-{}", tasks - 1), &logs, &about, &task);
    let path = write_script(args, &logs, &script)?;
    println!(
        "{}: {tasks} worker tasks for the {} of {}",
        path.display(),
        spec.search.strategy.name(),
        spec.file.display()
    );
    submit(args, &path, results)
}

/// The script at `--out`, or in the logs folder named by the time.
fn write_script(args: &SlurmArgs, logs: &Path, script: &str) -> anyhow::Result<PathBuf> {
    let stamp = utc_timestamp(SystemTime::now()).replace(':', "");
    let path = args.out.clone().unwrap_or_else(|| logs.join(format!("array-{stamp}.sbatch")));
    write_atomic(&path, script.as_bytes())?;
    Ok(path)
}

/// `sbatch` the script when `--submit` asks for it.
fn submit(args: &SlurmArgs, path: &Path, results: &Path) -> anyhow::Result<Outcome> {
    if args.submit {
        let output = Command::new("sbatch")
            .arg("--parsable")
            .arg(path)
            .output()
            .context("cannot run sbatch (is Slurm's client installed and on PATH?)")?;
        anyhow::ensure!(
            output.status.success(),
            "sbatch {} failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let id = String::from_utf8_lossy(&output.stdout);
        let id = id.trim().split(';').next().unwrap_or_default();
        println!(
            "submitted job {id}; `squeue -j {id}` shows its tasks, `gacha status {}` the trials",
            results.display()
        );
    }
    Ok(Outcome::Success)
}

/// What every task runs: `GACHA SUBCOMMAND <run's words> LAST…`.
struct TaskCommand<'a> {
    gacha: &'a Path,
    subcommand: &'a str,
    run: &'a RunArgs,
    /// Words after the run's, written as given (`--index "$SLURM_ARRAY_TASK_ID"`).
    last: &'a [&'a str],
}

/// The sbatch script: #SBATCH lines, a comment `about` the tasks, then the one command of every
/// task.
fn sbatch_script(
    args: &SlurmArgs,
    name: &str,
    array: &str,
    logs: &Path,
    about: &str,
    task: &TaskCommand,
) -> String {
    let mut array = array.to_string();
    if let Some(k) = args.max_parallel {
        write!(array, "%{k}").expect("a String takes writes");
    }
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name=gacha-{name}"),
        format!("#SBATCH --array={array}"),
        format!("#SBATCH --output={}/%A_%a.out", logs.display()),
    ];
    for (flag, value) in [
        ("partition", &args.partition),
        ("gres", &args.gres),
        ("time", &args.time),
        ("account", &args.account),
    ] {
        if let Some(value) = value {
            lines.push(format!("#SBATCH --{flag}={value}"));
        }
    }
    lines.extend(args.extra.iter().map(|option| format!("#SBATCH {option}")));
    lines.push(format!("# Written by gacha slurm: {about}"));
    let mut command: Vec<String> = [task.gacha.display().to_string(), task.subcommand.to_string()]
        .into_iter()
        .chain(run_words(task.run))
        .map(|word| shell_quote(&word))
        .collect();
    command.extend(task.last.iter().map(|word| word.to_string()));
    lines.push(format!("exec {}", command.join(" ")));
    lines.join("\n") + "\n"
}

/// `0-3,5,7-9`: sorted indices as Slurm's --array ranges.
fn array_ranges(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        while i + 1 < indices.len() && indices[i + 1] == indices[i] + 1 {
            i += 1;
        }
        parts.push(if indices[i] == start { start.to_string() } else { format!("{start}-{}", indices[i]) });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_compress_runs() {
        assert_eq!(array_ranges(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(array_ranges(&[4]), "4");
        assert_eq!(array_ranges(&[]), "");
    }
}
