//! The `gacha` binary: parse the command line, run, print any error chain once, exit.
//!
//! Exit codes: `gacha::cmd::Outcome` (0 all good; 1 finished but some trials failed; 2 an error;
//! 130 stopped by a signal after the current step).

use std::process::ExitCode;

use clap::Parser;
use gacha::cmd::Outcome;

/// candle 0.11 runs its own element-wise CPU ops (broadcast adds, casts, …) on a separate pool of
/// `CANDLE_NUM_THREADS` threads (default: `RAYON_NUM_THREADS`) whose caller waits for its workers
/// by spinning without bound: on a CPU shared with other work, a descheduled worker stalls every
/// op. Measured with `tools/bench_compare.sh` on a busy 2-core machine, 2-thread steps of the
/// `small` config took 120–450 ms with that pool against 135–140 ms with one thread in it. So it
/// gets one thread unless the user sets it; matmuls and gacha's fused ops still use
/// `RAYON_NUM_THREADS`. Set before any thread exists.
fn limit_candle_spin_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// glibc's malloc gives each freed block above its mmap threshold (128 KiB at first) back to the
/// OS and trims the heap's top above 128 KiB, so a training step, which frees and allocates the
/// same tensors every step, faulted its memory in again each time: the demo sweep took 6.3 M
/// minor page faults and 14 s of system time in 61 s. Blocks up to 32 MiB (glibc's largest
/// threshold) now come from the heap and freed memory stays for reuse (same run: 7 thousand
/// faults, 5.7 s system time; see docs/benchmarks.md, "Against PyTorch").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe (`gacha status DIR | head -1`) panicked
/// with "failed printing to stdout". With the default action restored, a closed stdout ends
/// gacha quietly by SIGPIPE, as it ends `cat` or `grep`. Set before any thread exists.
#[cfg(unix)]
fn die_quietly_on_closed_stdout() {
    // SAFETY: only resets a signal's disposition; called before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn die_quietly_on_closed_stdout() {}

fn main() -> ExitCode {
    keep_freed_memory();
    die_quietly_on_closed_stdout();
    limit_candle_spin_pool();
    gacha::device::flush_subnormals_to_zero();
    let cli = gacha::cli::Cli::parse();
    gacha::logging::init(cli.verbosity());
    match gacha::cmd::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("gacha: error: {err:#}");
            Outcome::Error.exit_code()
        }
    }
}
