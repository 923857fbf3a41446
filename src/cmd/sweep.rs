//! `gacha sweep SPEC`, the entrance: this process alone, or worker processes beside it
//! (`workers.rs`): one per device of `--devices`, or the CPU workers of `--workers`. `--worker`
//! is one of those: it runs its share and leaves. The work of a process is `part.rs`.

use super::part::{checked, results_dir, run_part};
use super::stop_signals::stop_flag;
use super::workers::run_workers;
use super::Outcome;
use crate::cli::SweepArgs;
use crate::device::DeviceSpec;
use crate::machine::cpu_workers::{plan, Plan, Room, WorkerSetting};
use crate::report::summary::ThisRun;
use crate::results::layout::ResultsDir;
use crate::spec::{load_spec, SweepSpec};
use crate::sweep::Part;

pub fn run(args: &SweepArgs) -> anyhow::Result<Outcome> {
    if args.worker {
        return run_part(&args.run, Part::Share, &stop_flag()?, ThisRun::Alone);
    }
    if !args.devices.is_empty() {
        let earlier = finished_earlier(args, &load_spec(&args.run.spec)?)?;
        return run_workers(args, &args.devices, None, "--devices", earlier);
    }
    match cpu_plan(args)? {
        Some((plan, earlier)) => {
            run_workers(args, &vec![DeviceSpec::Cpu; plan.workers], plan.threads, &plan.why, earlier)
        }
        None => run_part(&args.run, Part::All, &stop_flag()?, ThisRun::Alone),
    }
}

/// The workers `--workers` asks for on a CPU sweep, with the trials finished before them; `None`:
/// run the sweep in this process. `auto` is one for the scripted runner (tests), and `--workers`
/// is refused on a GPU.
fn cpu_plan(args: &SweepArgs) -> anyhow::Result<Option<(Plan, usize)>> {
    let run = &args.run;
    if run.device != DeviceSpec::Cpu {
        anyhow::ensure!(
            args.workers == WorkerSetting::Auto,
            "--workers is for CPU sweeps; to run one worker per GPU give --devices cuda:0,cuda:1,…"
        );
        return Ok(None);
    }
    if args.workers == WorkerSetting::Auto && run.debug_scripted_runner {
        return Ok(None);
    }
    let (room, earlier) = match args.workers {
        WorkerSetting::Count(_) => (Room::here(None, 0), finished_earlier(args, &load_spec(&run.spec)?)?),
        WorkerSetting::Auto => {
            let checked = checked(run)?;
            let earlier = finished_earlier(args, &checked.spec)?;
            let left = checked.spec.trials.len().saturating_sub(earlier);
            (Room::here(checked.fit.copies_that_fit(), left), earlier)
        }
    };
    let plan = plan(args.workers, room);
    Ok((plan.workers > 1).then_some((plan, earlier)))
}

/// Trials of `spec` finished before the workers start, to tell the workers' part in the summary.
fn finished_earlier(args: &SweepArgs, spec: &SweepSpec) -> anyhow::Result<usize> {
    let results = results_dir(&args.run, spec);
    Ok(ResultsDir::new(&results).read_records(spec)?.len())
}
