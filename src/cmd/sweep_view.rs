//! The parent's view of a sweep run by workers, drawn on a terminal (`workers.rs`): the workers'
//! progress events (`results/progress_event.rs`) folded into counts (done, running, left,
//! diverged, failed), the best value of the select metric so far, an ETA from this run's pace,
//! and each worker's current trial; rendered as plain text lines, so that what is drawn is tested
//! here and the drawing stays a thin layer.

use std::time::Duration;

use super::plan::hours;
use crate::results::progress_event::Event;
use crate::results::record::Status;

/// The width of the sweep's bar, in characters.
const BAR: usize = 24;

/// A trial a worker is training.
#[derive(Debug, Clone, PartialEq)]
struct Running {
    id: String,
    label: String,
    step: usize,
    steps: usize,
    loss: Option<f64>,
}

/// The best value of the select metric among this run's finished trials.
#[derive(Debug, Clone, PartialEq)]
struct Best {
    metric: String,
    value: f64,
    id: String,
}

/// The whole sweep as the workers' events tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepView {
    /// From the first worker's `sweep` event; unknown before.
    total: Option<usize>,
    /// Trials finished before the workers started.
    earlier: usize,
    done: usize,
    diverged: usize,
    failed: usize,
    best: Option<Best>,
    /// Per worker (in the order started): its tag (`[1 cpu]`) and the trials it trains.
    workers: Vec<(String, Vec<Running>)>,
}

impl SweepView {
    /// A view of workers tagged `tags`, `earlier` trials finished before them.
    pub fn new(tags: Vec<String>, earlier: usize) -> SweepView {
        let workers = tags.into_iter().map(|tag| (tag, Vec::new())).collect();
        SweepView { total: None, earlier, done: 0, diverged: 0, failed: 0, best: None, workers }
    }

    /// Trials finished in this run.
    fn finished(&self) -> usize {
        self.done + self.diverged + self.failed
    }

    fn running(&self) -> usize {
        self.workers.iter().map(|(_, trials)| trials.len()).sum()
    }

    /// Fold in an event from worker `worker` (an index into the tags).
    pub fn apply(&mut self, worker: usize, event: Event) {
        let Some((_, trials)) = self.workers.get_mut(worker) else { return };
        match event {
            Event::Sweep { total } => {
                self.total.get_or_insert(total);
            }
            Event::Started { id, label, steps } => {
                trials.retain(|t| t.id != id);
                trials.push(Running { id, label, step: 0, steps, loss: None });
            }
            Event::Step { id, step, steps, loss } => {
                if let Some(trial) = trials.iter_mut().find(|t| t.id == id) {
                    (trial.step, trial.steps, trial.loss) = (step, steps, Some(loss));
                }
            }
            Event::Finished { id, status, metric, value, .. } => {
                trials.retain(|t| t.id != id);
                match status {
                    Status::Done => self.done += 1,
                    Status::Diverged => self.diverged += 1,
                    Status::Failed => self.failed += 1,
                }
                if let Some(value) = value.filter(|v| self.best.as_ref().is_none_or(|b| *v > b.value)) {
                    self.best = Some(Best { metric, value, id });
                }
            }
        }
    }

    /// The sweep's line, `elapsed` since the workers started: the bar, the counts, the best so
    /// far and the ETA at this run's pace (trials finished per second so far).
    pub fn sweep_line(&self, elapsed: Duration) -> String {
        let Some(total) = self.total else { return "sweep: waiting for the workers".to_string() };
        let settled = (self.earlier + self.finished()).min(total);
        let running = self.running().min(total - settled);
        let filled = (settled * BAR).checked_div(total).unwrap_or(BAR);
        let bar = match filled {
            BAR => "=".repeat(BAR),
            n => format!("{}>{}", "=".repeat(n), " ".repeat(BAR - n - 1)),
        };
        let mut line = format!(
            "sweep [{bar}] {settled}/{total} trials · running {running} · left {} · diverged {} · failed {}",
            total - settled - running,
            self.diverged,
            self.failed
        );
        if let Some(best) = &self.best {
            line += &format!(" · best {} {:.4} ({})", best.metric, best.value, best.id);
        }
        let eta = match self.finished() {
            0 => "…".to_string(),
            n => hours(elapsed.mul_f64((total - settled) as f64 / n as f64)),
        };
        line + &format!(" · ETA {eta}")
    }

    /// One line per worker: its first trial in training (and how many more beside it), or idle.
    pub fn worker_lines(&self) -> Vec<String> {
        let line = |(tag, trials): &(String, Vec<Running>)| match trials.as_slice() {
            [] => format!("{tag} idle"),
            [trial, rest @ ..] => {
                let loss = trial.loss.map_or(String::new(), |l| format!(" · loss {l:.4}"));
                let more = match rest.len() {
                    0 => String::new(),
                    n => format!(" (+{n} beside it)"),
                };
                format!(
                    "{tag} {} {} · step {}/{}{loss}{more}",
                    trial.id, trial.label, trial.step, trial.steps
                )
            }
        };
        self.workers.iter().map(line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str, steps: usize) -> Event {
        Event::Started { id: id.into(), label: format!("lr {id}"), steps }
    }

    fn finished(id: &str, status: Status, value: Option<f64>) -> Event {
        Event::Finished { id: id.into(), status, metric: "valid.precision".into(), value, secs: 9.0 }
    }

    fn two_workers() -> SweepView {
        SweepView::new(vec!["[1 cpu]".into(), "[2 cpu]".into()], 2)
    }

    #[test]
    fn before_any_event_the_view_waits() {
        let view = two_workers();
        assert_eq!(view.sweep_line(Duration::ZERO), "sweep: waiting for the workers");
        assert_eq!(view.worker_lines(), ["[1 cpu] idle", "[2 cpu] idle"]);
    }

    #[test]
    fn a_started_trial_shows_on_its_workers_line_and_counts_as_running() {
        let mut view = two_workers();
        view.apply(0, Event::Sweep { total: 12 });
        view.apply(1, Event::Sweep { total: 99 });
        view.apply(1, started("t004", 100));
        view.apply(1, Event::Step { id: "t004".into(), step: 20, steps: 100, loss: 0.34171 });
        // 2 of 12 settled: 2 * 24 / 12 = 4 '=' then '>' and 19 spaces; the total is the first told.
        assert_eq!(
            view.sweep_line(Duration::from_secs(60)),
            "sweep [====>                   ] 2/12 trials · running 1 · left 9 · diverged 0 · failed 0 · ETA …"
        );
        assert_eq!(view.worker_lines(), ["[1 cpu] idle", "[2 cpu] t004 lr t004 · step 20/100 · loss 0.3417"]);
    }

    #[test]
    fn finished_trials_count_by_status_and_the_highest_value_is_best() {
        let mut view = two_workers();
        view.apply(0, Event::Sweep { total: 12 });
        for (worker, id, status, value) in [
            (0, "t001", Status::Done, Some(0.75)),
            (1, "t002", Status::Done, Some(0.875)),
            (0, "t003", Status::Diverged, None),
            (1, "t004", Status::Done, Some(0.8)),
        ] {
            view.apply(worker, started(id, 10));
            view.apply(worker, finished(id, status, value));
        }
        view.apply(0, started("t005", 10));
        view.apply(0, started("t006", 10));
        // 2 earlier + 4 now = 6 of 12: 12 '='; 1 worker trains 2 trials; 12 - 6 - 2 = 4 left.
        // 4 trials in 10 min: the 6 unsettled take 6 / 4 * 10 min = 15 min.
        assert_eq!(
            view.sweep_line(Duration::from_secs(600)),
            "sweep [============>           ] 6/12 trials · running 2 · left 4 · diverged 1 · failed 0 \
             · best valid.precision 0.8750 (t002) · ETA 15 min"
        );
        assert_eq!(view.worker_lines(), ["[1 cpu] t005 lr t005 · step 0/10 (+1 beside it)", "[2 cpu] idle"]);
    }

    #[test]
    fn a_reseeded_trial_starts_over_and_a_full_sweep_has_a_full_bar() {
        let mut view = SweepView::new(vec!["[1 cuda:0]".into()], 0);
        view.apply(0, Event::Sweep { total: 1 });
        view.apply(0, started("t001", 50));
        view.apply(0, Event::Step { id: "t001".into(), step: 30, steps: 50, loss: 9.0 });
        view.apply(0, started("t001", 50));
        assert_eq!(view.worker_lines(), ["[1 cuda:0] t001 lr t001 · step 0/50"]);
        view.apply(0, finished("t001", Status::Failed, None));
        assert_eq!(
            view.sweep_line(Duration::from_secs(5)),
            format!(
                "sweep [{}] 1/1 trials · running 0 · left 0 · diverged 0 · failed 1 · ETA 0 min",
                "=".repeat(24)
            )
        );
        // An event from a worker the view does not know changes nothing.
        let before = view.clone();
        view.apply(3, started("t009", 5));
        assert_eq!(view, before);
    }
}
