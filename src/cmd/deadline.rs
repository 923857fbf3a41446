//! `--until HH:MM` and `--for DURATION` → the sweep's deadline (`results::budget::Deadline`).
//! Worker processes and Slurm tasks get it as `--until @SECONDS` (a Unix time), so every
//! process of one sweep stops at the same moment.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::cli::RunArgs;
use crate::clock::{local_hh_mm, next_local};
use crate::results::budget::Deadline;

/// The deadline `run` asks for, from `now`; `None` without `--until` or `--for`.
pub fn deadline(run: &RunArgs, now: SystemTime) -> anyhow::Result<Option<Deadline>> {
    let at = match (&run.until, &run.for_) {
        (Some(until), _) => until_time(until, now).with_context(|| format!("--until {until}"))?,
        (None, Some(span)) => now + duration(span).with_context(|| format!("--for {span}"))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Deadline { at, said: local_hh_mm(at, now) }))
}

/// `HH:MM` today or tomorrow, or `@SECONDS`.
fn until_time(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Some(secs) = text.strip_prefix('@') {
        let secs: u64 = secs.parse().context("expected @ and a Unix time in seconds")?;
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let Some((hour, minute)) = text.split_once(':') else {
        bail!("expected a local time of day HH:MM (e.g. 07:00)");
    };
    let (hour, minute): (u32, u32) = match (hour.parse(), minute.parse()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && minute.len() == 2 => (h, m),
        _ => bail!("expected a local time of day HH:MM, hours 0–23 and minutes 00–59 (e.g. 07:00)"),
    };
    Ok(next_local(hour, minute, now))
}

/// `8h`, `90m`, `1h30m`, `45s`: whole numbers with units h, m, s.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let mut secs: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' if !digits.is_empty() => {
                let n: u64 = digits.parse().context("a number too large")?;
                secs = secs.saturating_add(n.saturating_mul(match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                }));
                digits.clear();
            }
            _ => bail!("expected a duration such as 8h, 90m, 1h30m or 45s"),
        }
    }
    if !digits.is_empty() || secs == 0 {
        bail!("expected a duration such as 8h, 90m, 1h30m or 45s (a number needs its unit)");
    }
    Ok(Duration::from_secs(secs))
}

/// `run` with its deadline as a Unix time (`--until @SECONDS`), for the processes it starts.
pub fn absolute(run: &RunArgs, deadline: Option<&Deadline>) -> RunArgs {
    let until = deadline.map(|d| format!("@{}", d.at.duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs())));
    RunArgs { until, for_: None, ..run.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_hours_minutes_and_seconds() {
        assert_eq!(duration("8h").unwrap(), Duration::from_secs(8 * 3600));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("45s").unwrap(), Duration::from_secs(45));
        for bad in ["", "8", "h", "8x", "0m", "1.5h", "-1h"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn until_takes_a_time_of_day_or_a_unix_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_797_637_954);
        assert_eq!(until_time("@1797640000", now).unwrap(), UNIX_EPOCH + Duration::from_secs(1_797_640_000));
        let seven = until_time("07:00", now).unwrap();
        assert!(seven > now && seven <= now + Duration::from_secs(86_400 + 3600));
        for bad in ["7", "25:00", "07:60", "07:0", "seven", "@x"] {
            assert!(until_time(bad, now).is_err(), "{bad:?}");
        }
    }
}
