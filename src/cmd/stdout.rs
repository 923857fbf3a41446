//! Writing a command's output to stdout without panicking: `print!` panics when stdout fails
//! (`gacha status DIR > /dev/full` ended with exit 101 and a backtrace, issue 29, case 13).
//! A closed pipe still ends gacha quietly by SIGPIPE (see `main.rs`); any other failure is an
//! error that names stdout, like any other (exit 2), and the results are left as they are.

use std::io::Write;

use anyhow::Context;

/// Write `text` to stdout and flush it.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")
}
