//! `gacha slurm SPEC`: an sbatch job array over the trials of a spec that are not finished, each
//! task `gacha trial SPEC --index $SLURM_ARRAY_TASK_ID`. What is finished is read from the
//! results folder, never from job states (a task cancelled while pending leaves no record in
//! Slurm), so running it again after a partial array submits only what is missing. A trial a
//! live task still runs is listed again; its new task finds the claim held and ends at once.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context;

use super::command_line::{absolute, run_words, shell_quote};
use super::part::{rerun_of, results_dir};
use super::Outcome;
use crate::cli::{RunArgs, SlurmArgs};
use crate::fsutil::write_atomic;
use crate::results::failure::reruns;
use crate::results::folder::ResultsFolder;
use crate::results::layout::OutcomeFile;
use crate::results::record::utc_timestamp;
use crate::spec::load_spec;

/// The folder of the scripts and task logs, in the results folder.
const SLURM_DIR: &str = "slurm";

pub fn run(args: &SlurmArgs) -> anyhow::Result<Outcome> {
    let spec = load_spec(&args.run.spec)?;
    let results = results_dir(&args.run, &spec);
    let folder = ResultsFolder::open(&results)?;
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
    let logs = absolute(&results.join(SLURM_DIR));
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let gacha = match &args.gacha {
        Some(path) => absolute(path),
        None => std::env::current_exe().context("cannot find the gacha executable")?,
    };
    let script =
        sbatch_script(args, &spec.name, &left, &gacha, &absolute(&spec.file), &absolute(&results), &logs);
    let stamp = utc_timestamp(SystemTime::now()).replace(':', "");
    let path = args.out.clone().unwrap_or_else(|| logs.join(format!("array-{stamp}.sbatch")));
    write_atomic(&path, script.as_bytes())?;
    println!(
        "{}: {} of {} trials not finished (array {})",
        path.display(),
        left.len(),
        spec.trials.len(),
        array_ranges(&left)
    );
    if args.submit {
        let output = Command::new("sbatch")
            .arg("--parsable")
            .arg(&path)
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

/// The sbatch script: #SBATCH lines, then the one command of every task.
fn sbatch_script(
    args: &SlurmArgs,
    name: &str,
    indices: &[usize],
    gacha: &Path,
    spec: &Path,
    results: &Path,
    logs: &Path,
) -> String {
    let mut array = array_ranges(indices);
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
    lines.push(format!(
        "# Written by gacha slurm: the {} trials of {} not finished at the time. A task stopped by\n\
         # scancel or preemption (SIGTERM) leaves its trial unfinished and exits 130; run gacha slurm\n\
         # again to submit what is missing.",
        indices.len(),
        spec.display()
    ));
    let run = RunArgs { spec: spec.to_path_buf(), results: Some(results.to_path_buf()), ..args.run.clone() };
    let mut command: Vec<String> = std::iter::once(gacha.display().to_string())
        .chain(std::iter::once("trial".to_string()))
        .chain(run_words(&run))
        .map(|word| shell_quote(&word))
        .collect();
    command.extend(["--index".into(), "\"$SLURM_ARRAY_TASK_ID\"".into()]);
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
