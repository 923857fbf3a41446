//! Worker processes for `gacha sweep SPEC --devices cuda:0,cuda:1,…` and a CPU sweep's
//! `--workers`: one per device (`gacha sweep --worker --device D`), each loading the model and computing the image
//! features once, sharing the results folder through claims. Their progress lines are prefixed
//! with the device (their leaderboards are left out: this process prints the final one); on a
//! terminal, they send their progress as events and this process draws the whole sweep
//! (`worker_screen.rs`), their step lines left to `-v`; a stop
//! signal is passed on to each once (they run in their own process group, so Ctrl-C reaches them
//! only through this process). When they have all ended, this process finishes what is left
//! like `gacha sweep` (nothing, normally) and prints the leaderboard.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::command_line::run_words;
use super::deadline::{absolute, deadline};
use super::part::run_part;
use super::stop_signals::stop_flag;
use super::worker_screen::{Screen, Shared};
use super::Outcome;
use crate::cli::SweepArgs;
use crate::device::DeviceSpec;
use crate::logging::{enabled, Verbosity};
use crate::report::summary::ThisRun;
use crate::results::budget::Deadline;
use crate::results::progress_event::EVENTS_ENV;
use crate::sweep::Part;

/// Run one worker per device in `devices`, each with `threads` CPU threads when given; `why`
/// says how their number was chosen, `earlier` how many trials were finished before them.
pub fn run_workers(
    args: &SweepArgs,
    devices: &[DeviceSpec],
    threads: Option<usize>,
    why: &str,
    earlier: usize,
) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let deadline = deadline(&args.run, SystemTime::now())?;
    let exe = std::env::current_exe().context("cannot find the gacha executable to start workers")?;
    let mut children = Vec::new();
    // Said before the first worker starts, so that it comes before any line a worker prints.
    let each = threads.map_or(String::new(), |t| format!(", {t} thread(s) each"));
    crate::logging::info!("{} workers started: {}{each} ({why})", devices.len(), list(devices));
    let tags: Vec<String> =
        devices.iter().enumerate().map(|(n, device)| format!("[{} {device}]", n + 1)).collect();
    let drawn = std::io::stderr().is_terminal() && enabled(Verbosity::Normal);
    let screen = drawn.then(|| Screen::shared(tags.clone(), earlier));
    for (n, (device, tag)) in devices.iter().zip(tags).enumerate() {
        let mut command = worker_command(&exe, args, *device, deadline.as_ref());
        if let Some(threads) = threads {
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        if screen.is_some() {
            command.env(EVENTS_ENV, "1");
        }
        stop_with_this_process(&mut command);
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start a worker on {device}"))?;
        let err = child.stderr.take().map(|s| relay(s, n, tag, screen.clone()));
        children.push((*device, child, err));
    }
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
    if let Some(screen) = &screen {
        Screen::finish(screen);
    }
    let interrupted_code = Some(i32::from(Outcome::Interrupted.code()));
    let interrupted = codes.iter().any(|(_, status)| status.code() == interrupted_code);
    for (device, status) in &codes {
        if !status.success() && status.code() != interrupted_code {
            crate::logging::warn!("the worker on {device} ended with {status}");
        }
    }
    if interrupted || stop.is_requested() {
        crate::logging::warn!("interrupted; to resume, run the same command again");
        return Ok(Outcome::Interrupted);
    }
    run_part(&absolute(&args.run, deadline.as_ref()), Part::All, &stop, ThisRun::WorkersAfter(earlier))
}

/// `gacha sweep SPEC --worker --device D` with this run's other flags.
fn worker_command(
    exe: &std::path::Path,
    args: &SweepArgs,
    device: DeviceSpec,
    deadline: Option<&Deadline>,
) -> Command {
    let run = crate::cli::RunArgs { device, ..absolute(&args.run, deadline) };
    let mut command = Command::new(exe);
    command.arg("sweep").args(run_words(&run)).arg("--worker");
    if !enabled(Verbosity::Normal) {
        command.arg("--quiet");
    } else if enabled(Verbosity::Verbose) {
        command.arg("--verbose");
    }
    command
}

/// Copy worker `n`'s stderr to ours, line by line, each prefixed with `tag`; with a screen, to
/// it (which draws the events and prints the other lines).
fn relay(
    from: impl Read + Send + 'static,
    n: usize,
    tag: String,
    screen: Option<Shared>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            match &screen {
                Some(screen) => Screen::line(screen, n, &line),
                None => {
                    let _ = std::io::stderr().lock().write_all(format!("{tag} {line}\n").as_bytes());
                }
            }
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
