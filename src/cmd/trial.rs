//! `gacha trial SPEC --index N`: one trial of a spec, by its index in the expanded grid, as a
//! Slurm array task or a Kubernetes indexed job runs it (the index defaults to the scheduler's
//! variable). It claims the trial like any worker; once every trial is finished, the task that
//! finished last makes the final model.

use super::part::run_part;
use super::stop_signals::stop_flag;
use super::Outcome;
use crate::cli::TrialArgs;
use crate::report::summary::ThisRun;
use crate::sweep::Part;

/// The environment variables a scheduler sets to a task's index, in the order they are read.
pub const INDEX_VARS: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

pub fn run(args: &TrialArgs) -> anyhow::Result<Outcome> {
    let index = match args.index {
        Some(index) => index,
        None => index_from_env(|name| std::env::var(name).ok())?,
    };
    run_part(&args.run, Part::One(index), &stop_flag()?, ThisRun::Alone)
}

/// The index in the first of [`INDEX_VARS`] that is set.
fn index_from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<usize> {
    for name in INDEX_VARS {
        if let Some(value) = var(name) {
            return value.trim().parse().map_err(|_| {
                anyhow::anyhow!("${name} is {value:?}, not a trial index (a whole number from 0)")
            });
        }
    }
    anyhow::bail!(
        "which trial? pass --index N (from 0; `gacha check SPEC --trials` lists them), or run as a \
         Slurm array task ($SLURM_ARRAY_TASK_ID) or a Kubernetes indexed job ($JOB_COMPLETION_INDEX)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slurm_first_then_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            index_from_env(env(&[("SLURM_ARRAY_TASK_ID", "3"), ("JOB_COMPLETION_INDEX", "5")])).unwrap(),
            3
        );
        assert_eq!(index_from_env(env(&[("JOB_COMPLETION_INDEX", "5")])).unwrap(), 5);
        let err = index_from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err().to_string();
        assert!(err.contains("$SLURM_ARRAY_TASK_ID is \"x\""), "{err}");
        assert!(index_from_env(env(&[])).unwrap_err().to_string().contains("pass --index N"));
    }
}
