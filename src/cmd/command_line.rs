//! A run's arguments as the words of a command line: what a worker process is started with, the
//! resume hint a stopped sweep prints and the command of every Slurm task all come from
//! [`run_words`], so none of them forgets a flag.

use std::path::Path;

use crate::cli::RunArgs;
use crate::device::DeviceSpec;

/// `SPEC` and every flag of `run` that differs from its default, in `RunArgs` order, as
/// `gacha sweep` and `gacha trial` take them.
pub fn run_words(run: &RunArgs) -> Vec<String> {
    let mut words = vec![run.spec.display().to_string()];
    if let Some(results) = &run.results {
        words.extend(["--results".into(), results.display().to_string()]);
    }
    if run.device != DeviceSpec::Cpu {
        words.extend(["--device".into(), run.device.to_string()]);
    }
    if let Some(until) = &run.until {
        words.extend(["--until".into(), until.clone()]);
    }
    if let Some(span) = &run.for_ {
        words.extend(["--for".into(), span.clone()]);
    }
    let flags = [
        (run.retry_failed, "--retry-failed"),
        (run.prune, "--prune"),
        (run.no_memory_check, "--no-memory-check"),
        (run.debug_scripted_runner, "--debug-scripted-runner"),
    ];
    words.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, flag)| flag.to_string()));
    if run.debug_scripted_runner {
        words.push(format!("--debug-step-ms={}", run.debug_step_ms));
    }
    words
}

/// `gacha sweep …` that runs `run` again, quoted for a POSIX shell.
pub fn resume_command(run: &RunArgs) -> String {
    let words = ["gacha".to_string(), "sweep".to_string()].into_iter().chain(run_words(run));
    words.map(|word| shell_quote(&word)).collect::<Vec<_>>().join(" ")
}

/// `path` made absolute (against the current folder), or as given when that fails.
pub fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `word` as a POSIX shell reads it back: as is when it holds only characters no shell treats
/// specially, else in single quotes (a quote inside closes, escapes and reopens).
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(line: &[&str]) -> RunArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunArgs,
        }
        Wrap::try_parse_from(std::iter::once("gacha").chain(line.iter().copied())).unwrap().run
    }

    #[test]
    fn repeats_every_flag_that_was_given() {
        let line = [
            "s.toml",
            "--results",
            "r",
            "--device",
            "cuda:1",
            "--until",
            "07:00",
            "--retry-failed",
            "--prune",
            "--no-memory-check",
            "--debug-scripted-runner",
            "--debug-step-ms=7",
        ];
        assert_eq!(run_words(&run_args(&line)), line);
        assert_eq!(run_words(&run_args(&["s.toml"])), ["s.toml"]);
    }

    #[test]
    fn the_resume_command_survives_a_shell() {
        let run = run_args(&["my spec's.toml", "--results", "$HOME/r"]);
        assert_eq!(resume_command(&run), r"gacha sweep 'my spec'\''s.toml' --results '$HOME/r'");
        assert_eq!(shell_quote("sweeps/demo.toml"), "sweeps/demo.toml");
        assert_eq!(shell_quote(""), "''");
    }
}
