//! `gacha status DIR`: what the morning user types first. Each trial of the folder's spec is
//! finished, running (its worker's heartbeat is fresh), stale (its worker stopped sending
//! heartbeats: the next worker takes it over) or waiting; then the leader and the final model.
//! A race runs only the pulls its looks leave: its pulls are counted, not its trials, and its
//! state comes from `race.json` (the race line of the sweep's summary).

use std::fmt::Write;
use std::time::Duration;

use crate::cli::StatusArgs;
use crate::cmd::Outcome;
use crate::report::summary::race_line;
use crate::results::claim::{stale_after, ClaimState, Claims};
use crate::results::layout::ResultsDir;
use crate::results::race::{read_race, RaceFile};
use crate::results::rank::{metric_after, rank, winner};
use crate::results::record::TrialRecord;
use crate::spec::{Strategy, SweepSpec};
use crate::sweep::progress::Counts;

pub fn run(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let dir = ResultsDir::new(&args.dir);
    let spec = dir.read_spec()?;
    let records = dir.read_records(&spec)?;
    let claims = Claims::at(&args.dir).all()?;
    let race = match spec.search.strategy {
        Strategy::Race => Some(read_race(&dir)?),
        Strategy::Grid => None,
    };
    let name = args.dir.display().to_string();
    let mut text = status_text(&name, &spec, &records, &claims, race.as_ref(), stale_after());
    if let Some(record) = dir.read_final()? {
        let best = dir.path(crate::results::layout::BEST_DIR);
        let _ = writeln!(
            text,
            "final model: {} of config {} in {}",
            record.final_model,
            record.config,
            best.display()
        );
    }
    super::stdout::print(&text)?;
    Ok(Outcome::Success)
}

/// The status lines of a results folder named `name`; `race` is `Some` for a race (holding its
/// `race.json` once it has one).
fn status_text(
    name: &str,
    spec: &SweepSpec,
    records: &[TrialRecord],
    claims: &[(String, ClaimState)],
    race: Option<&Option<RaceFile>>,
    stale: Duration,
) -> String {
    let (mut running, mut stalled, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    let mut finished = Counts::default();
    for (index, trial) in spec.trials.iter().enumerate() {
        if let Some(record) = records.iter().find(|r| r.id() == &trial.id) {
            finished.add(record.outcome.status);
            continue;
        }
        match claims.iter().find(|(id, _)| id == trial.id.as_str()) {
            Some((_, state)) => {
                let worker = state
                    .info
                    .as_ref()
                    .map_or("(unreadable claim)".into(), |i| format!("{} since {}", i.worker, i.started_at));
                let line = format!(
                    "  {index:>4}  {}  {}  {worker}, heartbeat {:.0} s ago",
                    trial.id,
                    trial.label,
                    state.age.as_secs_f64()
                );
                if state.is_stale(stale) {
                    stalled.push(line)
                } else {
                    running.push(line)
                }
            }
            None => waiting.push(index),
        }
    }
    let done = finished.done + finished.diverged + finished.failed;
    let counts = format!(
        "finished ({} done, {} diverged, {} failed), {} running, {} stale",
        finished.done,
        finished.diverged,
        finished.failed,
        running.len(),
        stalled.len()
    );
    let mut text = match race {
        Some(_) => format!("{name}: a race, {done} pulls {counts}\n"),
        None => format!("{name}: {} trials: {done} {counts}, {} waiting\n", spec.trials.len(), waiting.len()),
    };
    let mut section = |title: &str, lines: &[String]| {
        if !lines.is_empty() {
            let _ = writeln!(text, "{title}\n{}", lines.join("\n"));
        }
    };
    section("running (index, trial, worker):", &running);
    section(
        &format!(
            "stale (no heartbeat for over {:.0} s: the worker is gone; the next worker takes it over):",
            stale.as_secs_f64()
        ),
        &stalled,
    );
    match race {
        Some(Some(race)) => {
            let _ = writeln!(text, "{}", race_line(race, done));
        }
        Some(None) => {
            let _ = writeln!(text, "race: no look yet (the first round is not finished)");
        }
        None => {}
    }
    if race.is_none() && !waiting.is_empty() {
        let shown: Vec<String> = waiting.iter().take(20).map(usize::to_string).collect();
        let more =
            if waiting.len() > 20 { format!(" … ({} more)", waiting.len() - 20) } else { String::new() };
        let _ = writeln!(text, "waiting (indices): {}{more}", shown.join(", "));
    }
    let metric = spec.select.metric;
    let ranked = rank(records, metric);
    if let Some(best) = winner(&ranked, metric) {
        let value = crate::eval::metrics::format_metric(metric_after(best, metric.split, metric.metric));
        let label = spec.trials.iter().find(|t| &t.id == best.id()).map_or("", |t| t.label.as_str());
        let _ = writeln!(text, "leader: {} ({metric} {value}) {label}", best.id());
    }
    text
}
