//! `gacha sweep SPEC --devices cuda:0,cuda:1,…`, and a CPU sweep's `--workers`: one worker process
//! per device (`gacha sweep --worker --device D`), each loading the model and computing the image
//! features once, sharing the results folder through claims. Their progress lines are prefixed
//! with the device (their leaderboards are left out: this process prints the final one); a stop
//! signal is passed on to each once (they run in their own process group, so Ctrl-C reaches them
//! only through this process). When they have all ended, this process finishes what is left
//! like `gacha sweep` (nothing, normally) and prints the leaderboard.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::cli::SweepArgs;
use crate::device::DeviceSpec;
use crate::machine::cpu_workers::{plan, Plan, Room, WorkerSetting};
use crate::spec::{load_spec, SweepSpec};
use crate::sweep::layout::ResultsDir;
use crate::sweep::stop::{StopFlag, EXIT_INTERRUPTED};
use crate::sweep::Part;
use crate::Outcome;

/// `gacha sweep`: one worker per device of `--devices`, the CPU workers of `--workers`, or this
/// process alone (`sweep.rs`).
pub fn run_sweep(args: &SweepArgs) -> anyhow::Result<Outcome> {
    if args.worker {
        return super::sweep::run(args);
    }
    if !args.devices.is_empty() {
        let earlier = finished_earlier(args, &load_spec(&args.run.spec)?)?;
        return run(args, &args.devices, None, "--devices", earlier);
    }
    match cpu_plan(args)? {
        Some((plan, earlier)) => run(args, &vec![DeviceSpec::Cpu; plan.workers], plan.threads, &plan.why, earlier),
        None => super::sweep::run(args),
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
            let checked = super::sweep::checked(run)?;
            let earlier = finished_earlier(args, &checked.spec)?;
            let left = checked.spec.trials.len().saturating_sub(earlier);
            (Room::here(checked.fit.copies_that_fit(), left), earlier)
        }
    };
    let plan = plan(args.workers, room);
    Ok((plan.workers > 1).then_some((plan, earlier)))
}

/// Run one worker per device in `devices`, each with `threads` CPU threads when given; `why`
/// says how their number was chosen, `earlier` how many trials were finished before them.
fn run(
    args: &SweepArgs,
    devices: &[DeviceSpec],
    threads: Option<usize>,
    why: &str,
    earlier: usize,
) -> anyhow::Result<Outcome> {
    let stop = StopFlag::on_stop_signals()?;
    let exe = std::env::current_exe().context("cannot find the gacha executable to start workers")?;
    let mut children = Vec::new();
    for (n, device) in devices.iter().enumerate() {
        let tag = format!("[{} {device}] ", n + 1);
        let mut command = worker_command(&exe, args, *device);
        if let Some(threads) = threads {
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        stop_with_this_process(&mut command);
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start a worker on {device}"))?;
        let err = child.stderr.take().map(|s| relay(s, tag));
        children.push((*device, child, err));
    }
    let each = threads.map_or(String::new(), |t| format!(", {t} thread(s) each"));
    crate::info!("{} workers started: {}{each} ({why})", children.len(), list(devices));
    let mut forwarded = false;
    let mut codes = Vec::new();
    while !children.is_empty() {
        if stop.is_requested() && !forwarded {
            forwarded = true;
            children.iter().for_each(|(_, child, _)| signal(child));
        }
        let mut i = 0;
        while i < children.len() {
            match children[i].1.try_wait()? {
                Some(status) => {
                    let (device, _, relay) = children.remove(i);
                    if let Some(relay) = relay {
                        let _ = relay.join();
                    }
                    codes.push((device, status));
                }
                None => i += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = codes.iter().any(|(_, status)| status.code() == Some(i32::from(EXIT_INTERRUPTED)));
    for (device, status) in &codes {
        if !status.success() && status.code() != Some(i32::from(EXIT_INTERRUPTED)) {
            crate::warn!("the worker on {device} ended with {status}");
        }
    }
    if interrupted || stop.is_requested() {
        crate::warn!("interrupted; to resume, run the same command again");
        return Ok(Outcome::Interrupted);
    }
    super::sweep::run_part(&args.run, Part::All, &stop, Some(earlier))
}

/// Trials of `spec` finished before the workers start, to tell the workers' part in the summary.
fn finished_earlier(args: &SweepArgs, spec: &SweepSpec) -> anyhow::Result<usize> {
    let results = super::sweep::results_dir(&args.run, spec);
    Ok(ResultsDir::new(&results).read_records(spec)?.len())
}

/// `gacha sweep SPEC --worker --device D` with this run's other flags.
fn worker_command(exe: &std::path::Path, args: &SweepArgs, device: DeviceSpec) -> Command {
    let run = &args.run;
    let mut command = Command::new(exe);
    command.arg("sweep").arg(&run.spec).arg("--worker").arg("--device").arg(device.to_string());
    if let Some(results) = &run.results {
        command.arg("--results").arg(results);
    }
    let flags = [
        (run.retry_failed, "--retry-failed"),
        (run.prune, "--prune"),
        (run.no_memory_check, "--no-memory-check"),
    ];
    for (on, flag) in flags {
        if on {
            command.arg(flag);
        }
    }
    use crate::logging::{enabled, Verbosity};
    if !enabled(Verbosity::Normal) {
        command.arg("--quiet");
    } else if enabled(Verbosity::Verbose) {
        command.arg("--verbose");
    }
    if run.debug_scripted_runner {
        command.arg("--debug-scripted-runner").arg(format!("--debug-step-ms={}", run.debug_step_ms));
    }
    command
}

/// Copy a worker's stderr to ours, line by line, each prefixed with `tag`.
fn relay(from: impl Read + Send + 'static, tag: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let _ = std::io::stderr().lock().write_all(format!("{tag}{line}\n").as_bytes());
        }
    })
}

/// A worker gets SIGTERM (stops after its step, its trial left unfinished) when this process
/// dies, even by SIGKILL, so a killed sweep stops as a whole and the same command resumes it.
#[cfg(target_os = "linux")]
fn stop_with_this_process(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the child between fork and exec and calls only the async-signal-safe
    // prctl(2) and getppid(2).
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            match libc::getppid() == parent {
                true => Ok(()),
                false => Err(std::io::Error::other("the sweep that started this worker has ended")),
            }
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_this_process(_: &mut Command) {}

/// Ask a worker to stop after its current step (SIGTERM), as a signal to us would have.
fn signal(child: &Child) {
    // SAFETY: kill(2) with a pid we started and have not reaped, and a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

fn list(devices: &[DeviceSpec]) -> String {
    devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
