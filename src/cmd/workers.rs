//! `gacha sweep SPEC --devices cuda:0,cuda:1,…`: one worker process per device (`gacha sweep
//! --worker --device D`), each loading the model and computing the image features once, sharing
//! the results folder through claims. Their output lines are prefixed with the device; a stop
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
use crate::sweep::stop::{StopFlag, EXIT_INTERRUPTED};
use crate::sweep::Part;
use crate::Outcome;

pub fn run(args: &SweepArgs) -> anyhow::Result<Outcome> {
    let stop = StopFlag::on_stop_signals()?;
    let exe = std::env::current_exe().context("cannot find the gacha executable to start workers")?;
    let mut children = Vec::new();
    for (n, device) in args.devices.iter().enumerate() {
        let tag = format!("[{} {device}] ", n + 1);
        let mut child = worker_command(&exe, args, *device)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start a worker on {device}"))?;
        let out = child.stdout.take().map(|s| relay(s, tag.clone(), false));
        let err = child.stderr.take().map(|s| relay(s, tag, true));
        children.push((*device, child, [out, err]));
    }
    crate::info!("{} workers started: {}", children.len(), list(&args.devices));
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
                    let (device, _, relays) = children.remove(i);
                    relays.into_iter().flatten().for_each(|relay| {
                        let _ = relay.join();
                    });
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
    super::sweep::run_part(&args.run, Part::All, &stop)
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
    if run.debug_scripted_runner {
        command.arg("--debug-scripted-runner").arg(format!("--debug-step-ms={}", run.debug_step_ms));
    }
    command
}

/// Copy a worker's output to ours, line by line, each prefixed with `tag`.
fn relay(from: impl Read + Send + 'static, tag: String, to_stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let line = format!("{tag}{line}\n");
            let _ = if to_stderr {
                std::io::stderr().lock().write_all(line.as_bytes())
            } else {
                std::io::stdout().lock().write_all(line.as_bytes())
            };
        }
    })
}

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
