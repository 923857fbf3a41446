//! How many worker processes a CPU sweep runs at once (`gacha sweep --workers N|auto`), and how
//! many threads each gets.
//!
//! A small model's step is too small to share among threads: on 2 cores the demo sweep took 27.8
//! s at 2 threads and 17.8 s at one, while two one-thread processes, each taking the next
//! unclaimed trial, took 10.2 s (docs/benchmarks.md, "CPU workers"). So by default a CPU sweep
//! runs one worker per core, as many as the memory check says fit side by side, each with
//! `cores / workers` threads.
//! A thread count the user set (`RAYON_NUM_THREADS`) is kept: it divides the cores instead.

use std::{num::NonZeroUsize, str::FromStr};

/// `--workers`: a number, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerSetting {
    #[default]
    Auto,
    Count(NonZeroUsize),
}

impl FromStr for WorkerSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(WorkerSetting::Auto),
            _ => match s.parse::<usize>().ok().and_then(NonZeroUsize::new) {
                Some(n) => Ok(WorkerSetting::Count(n)),
                None => Err(format!("expected a number of workers of at least 1, or auto; got {s:?}")),
            },
        }
    }
}

/// What the machine and the spec allow, the inputs of [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// CPUs this process may run on (`std::thread::available_parallelism`).
    pub cores: usize,
    /// `RAYON_NUM_THREADS` when the user set it.
    pub user_threads: Option<usize>,
    /// How many copies of the hungriest trial's estimated peak fit the available memory; `None`
    /// when memory is not checked.
    pub copies_that_fit: Option<u64>,
    /// Trials left to run.
    pub trials: usize,
}

impl Room {
    /// This machine's cores and the user's `RAYON_NUM_THREADS`, with the spec's numbers.
    pub fn here(copies_that_fit: Option<u64>, trials: usize) -> Room {
        Room {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            user_threads: std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .filter(|&t| t > 0),
            copies_that_fit,
            trials,
        }
    }
}

/// Workers to start and threads for each (`None`: leave the thread count as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub workers: usize,
    pub threads: Option<usize>,
    /// Why this many, for the log.
    pub why: String,
}

/// The number of workers for `setting` in `room`. `auto` takes the least of the cores (divided by
/// the user's thread count), the memory's room and the trials, and is one where memory is not
/// checked; a number is taken as given.
pub fn plan(setting: WorkerSetting, room: Room) -> Plan {
    let threads_each = room.user_threads.unwrap_or(1);
    let (workers, why) = match setting {
        WorkerSetting::Count(n) => (n.get(), "--workers".to_string()),
        WorkerSetting::Auto => match room.copies_that_fit {
            None => (1, "auto: one, as memory is not checked".to_string()),
            Some(copies) => {
                let by_cores = (room.cores / threads_each).max(1);
                let by_memory = usize::try_from(copies).unwrap_or(usize::MAX).max(1);
                let workers = by_cores.min(by_memory).min(room.trials.max(1));
                let cores = match room.user_threads {
                    Some(t) => format!("{} cores at {t} thread(s) each", room.cores),
                    None => format!("{} cores", room.cores),
                };
                (workers, format!("auto: {cores}, memory for {copies}, {} trials to run", room.trials))
            }
        },
    };
    let threads = match room.user_threads {
        Some(_) => None,
        None => Some((room.cores / workers).max(1)),
    };
    Plan { workers, threads, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(cores: usize, user_threads: Option<usize>, copies: Option<u64>, trials: usize) -> Room {
        Room { cores, user_threads, copies_that_fit: copies, trials }
    }

    #[test]
    fn auto_takes_the_least_of_cores_memory_and_trials() {
        let p = plan(WorkerSetting::Auto, room(2, None, Some(400), 36));
        assert_eq!((p.workers, p.threads), (2, Some(1)));
        assert_eq!(p.why, "auto: 2 cores, memory for 400, 36 trials to run");
        // 16 cores, room for 9 copies of a 3B trial: 9 workers, one thread each (16 / 9).
        assert_eq!(plan(WorkerSetting::Auto, room(16, None, Some(9), 36)).workers, 9);
        assert_eq!(plan(WorkerSetting::Auto, room(16, None, Some(9), 36)).threads, Some(1));
        // Room for one: one worker with every core.
        assert_eq!(plan(WorkerSetting::Auto, room(16, None, Some(1), 36)).threads, Some(16));
        assert_eq!(plan(WorkerSetting::Auto, room(8, None, Some(0), 36)).workers, 1);
        assert_eq!(plan(WorkerSetting::Auto, room(8, None, Some(50), 3)).workers, 3);
        assert_eq!(plan(WorkerSetting::Auto, room(8, None, Some(50), 3)).threads, Some(2));
        assert_eq!(plan(WorkerSetting::Auto, room(8, None, None, 36)).workers, 1);
    }

    #[test]
    fn a_thread_count_the_user_set_divides_the_cores_and_is_kept() {
        let p = plan(WorkerSetting::Auto, room(8, Some(2), Some(50), 36));
        assert_eq!((p.workers, p.threads), (4, None));
        assert_eq!(plan(WorkerSetting::Auto, room(2, Some(4), Some(50), 36)).workers, 1);
    }

    #[test]
    fn a_number_is_taken_as_given() {
        let three = WorkerSetting::from_str("3").unwrap();
        let p = plan(three, room(2, None, Some(1), 1));
        assert_eq!((p.workers, p.threads), (3, Some(1)));
        assert_eq!("auto".parse::<WorkerSetting>(), Ok(WorkerSetting::Auto));
        assert!("0".parse::<WorkerSetting>().unwrap_err().contains("at least 1"));
        assert!("two".parse::<WorkerSetting>().is_err());
    }
}
