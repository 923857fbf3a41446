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

use crate::cli::SlurmArgs;
use crate::device::DeviceSpec;
use crate::fsutil::write_atomic;
use crate::spec::load_spec;
use crate::sweep::failure::reruns;
use crate::sweep::folder::ResultsFolder;
use crate::sweep::layout::OutcomeFile;
use crate::sweep::record::utc_timestamp;
use crate::Outcome;

/// The folder of the scripts and task logs, in the results folder.
const SLURM_DIR: &str = "slurm";

pub fn run(args: &SlurmArgs) -> anyhow::Result<Outcome> {
    let spec = load_spec(&args.run.spec)?;
    let results = super::sweep::results_dir(&args.run, &spec);
    let folder = ResultsFolder::open(&results)?;
    // The trials a sweep would run: unfinished ones and the failures it reruns.
    let rerun = super::sweep::rerun_of(&args.run);
    let mut left = Vec::new();
    for (index, trial) in spec.trials.iter().enumerate() {
        match folder.dir.trial(&trial.id).read_outcome_file()? {
            OutcomeFile::Finished(outcome) if !reruns(&outcome, rerun) => {}
            _ => left.push(index),
        }
    }
    if left.is_empty() {
        println!("every trial of {} is finished in {}; nothing to submit", spec.file.display(), results.display());
        return Ok(Outcome::Success);
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let logs = absolute(&results.join(SLURM_DIR));
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let gacha = match &args.gacha {
        Some(path) => absolute(path),
        None => std::env::current_exe().context("cannot find the gacha executable")?,
    };
    let script = sbatch_script(args, &spec.name, &left, &gacha, &absolute(&spec.file), &absolute(&results), &logs);
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
        println!("submitted job {id}; `squeue -j {id}` shows its tasks, `gacha status {}` the trials", results.display());
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
    for (flag, value) in
        [("partition", &args.partition), ("gres", &args.gres), ("time", &args.time), ("account", &args.account)]
    {
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
    let mut command = vec![
        quote(&gacha.display().to_string()),
        "trial".into(),
        quote(&spec.display().to_string()),
        "--results".into(),
        quote(&results.display().to_string()),
        "--index".into(),
        "\"$SLURM_ARRAY_TASK_ID\"".into(),
    ];
    if args.run.device != DeviceSpec::Cpu {
        command.extend(["--device".into(), args.run.device.to_string()]);
    }
    if args.run.retry_failed {
        command.push("--retry-failed".into());
    }
    if args.run.no_memory_check {
        command.push("--no-memory-check".into());
    }
    if args.run.debug_scripted_runner {
        command.extend(["--debug-scripted-runner".into(), format!("--debug-step-ms={}", args.run.debug_step_ms)]);
    }
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

/// `word` in single quotes for bash (a quote inside closes, escapes and reopens).
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
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

    #[test]
    fn quote_survives_spaces_and_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
