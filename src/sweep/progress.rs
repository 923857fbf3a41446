//! Progress on stderr: on a terminal, two indicatif bars (the sweep: trials done, diverged,
//! failed, ETA; the trial: step, loss, learning rate); elsewhere (a log file, a pipe), plain
//! lines in the users' `step: 32/256   lr: 0.02995   loss: 0.3417` format. `-q` silences both.
//! A worker whose parent draws the sweep (`progress_event.rs`) writes events instead of bars and
//! its step lines only with `-v`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::runner::{Control, StepObserver};
use super::stop::StopFlag;
use crate::logging::{self, Verbosity};
use crate::results::progress_event::{Event, EVENTS_ENV};
use crate::results::record::LossLine;
use crate::results::record::{Status, TrialOutcome};
use crate::spec::{SelectMetric, Trial};

/// Trials finished in this run, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub done: usize,
    pub diverged: usize,
    pub failed: usize,
}

impl Counts {
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Done => self.done += 1,
            Status::Diverged => self.diverged += 1,
            Status::Failed => self.failed += 1,
        }
    }
}

struct Bars {
    multi: MultiProgress,
    sweep: ProgressBar,
    trial: ProgressBar,
}

/// Where progress goes.
pub struct Progress {
    bars: Option<Bars>,
    /// Progress goes to the parent as events (`progress_event.rs`).
    events: bool,
    total: usize,
}

const SWEEP_TEMPLATE: &str = "sweep [{bar:30}] {pos}/{len} trials · {msg} · ETA {eta}";
const TRIAL_TEMPLATE: &str = "{prefix} [{bar:30}] step {pos}/{len} · {msg}";

impl Progress {
    /// `finished` of `total` trials are already done (a resumed sweep).
    pub fn new(total: usize, finished: usize) -> Progress {
        let events = std::env::var_os(EVENTS_ENV).is_some();
        if events {
            Event::Sweep { total }.emit();
        }
        let drawn = std::io::stderr().is_terminal() && !events && logging::enabled(Verbosity::Normal);
        let bars = drawn.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = |template| {
                ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ")
            };
            let sweep = multi.add(ProgressBar::new(total as u64).with_style(style(SWEEP_TEMPLATE)));
            sweep.set_position(finished as u64);
            sweep.set_message("done 0 · diverged 0 · failed 0");
            sweep.reset_eta();
            let trial = multi.add(ProgressBar::new(0).with_style(style(TRIAL_TEMPLATE)));
            Bars { multi, sweep, trial }
        });
        Progress { bars, events, total }
    }

    /// A line of information above the bars (or on its own).
    pub fn say(&self, line: &str) {
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| eprintln!("{line}")),
            None => crate::logging::info!("{line}"),
        }
    }

    pub fn trial_started(&self, number: usize, trial: &Trial) {
        self.say(&format!("trial {number}/{} {}: {}", self.total, trial.id, trial.label));
    }

    /// An attempt begins; `packed`: it trains beside others, so its lines name it.
    pub fn attempt_started(&self, trial: &Trial, attempt: u32, seed: u64, packed: bool) {
        if attempt > 0 {
            self.say(&format!(
                "  {}reseed {attempt} of {}: training seed {seed}",
                who(trial, packed),
                trial.params.abort.max_reseeds
            ));
        }
        if let Some(bars) = &self.bars {
            bars.trial.set_prefix(trial.id.to_string());
            bars.trial.set_length(trial.params.train.steps as u64);
            bars.trial.set_position(0);
            bars.trial.set_message("");
        }
        if self.events {
            let (id, label) = (trial.id.to_string(), trial.label.clone());
            Event::Started { id, label, steps: trial.params.train.steps }.emit();
        }
    }

    /// A recorded step; `packed`: of this trial among others.
    pub fn step(&self, line: &LossLine, trial: &Trial, packed: bool) {
        let log = &line.log;
        let stage = if line.stage > 1 { format!("   stage: {}", line.stage) } else { String::new() };
        match &self.bars {
            Some(bars) => {
                bars.trial.set_position(log.step as u64);
                bars.trial.set_length(log.steps as u64);
                bars.trial.set_message(format!("loss {:.4} · lr {:.5}{stage}", log.loss, log.learning_rate));
            }
            None if self.events => {
                Event::Step { id: trial.id.to_string(), step: log.step, steps: log.steps, loss: log.loss }
                    .emit();
                crate::logging::debug!("{}{log}{stage}", who(trial, packed));
            }
            None => crate::logging::info!("{}{log}{stage}", who(trial, packed)),
        }
    }

    pub fn attempt_diverged(
        &self,
        trial: &Trial,
        packed: bool,
        stage: u8,
        step: usize,
        loss: f64,
        will_reseed: bool,
    ) {
        let next = if will_reseed { "reseeding" } else { "no reseeds left" };
        self.say(&format!(
            "  {}diverged at stage {stage} step {step} (loss {loss}); {next}",
            who(trial, packed)
        ));
    }

    /// After a trial is recorded: its one-line result, and the sweep bar moved on; `select`:
    /// the metric that picks the best.
    pub fn trial_finished(
        &self,
        outcome: &TrialOutcome,
        result: &str,
        counts: &Counts,
        select: SelectMetric,
    ) {
        self.say(&format!("  {}: {result} ({:.1} s)", outcome.status, outcome.trial_secs));
        if self.events {
            Event::Finished {
                id: outcome.id.to_string(),
                status: outcome.status,
                metric: select.to_string(),
                value: outcome.after.and_then(|a| a.get(select.split).value(select.metric)),
                secs: outcome.trial_secs,
            }
            .emit();
        }
        if let Some(bars) = &self.bars {
            bars.sweep.inc(1);
            bars.sweep.set_message(format!(
                "done {} · diverged {} · failed {}",
                counts.done, counts.diverged, counts.failed
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.trial.finish_and_clear();
            bars.sweep.finish_and_clear();
        }
    }
}

/// `"trial ID: "` before a packed trial's lines, nothing for a trial alone.
fn who(trial: &Trial, packed: bool) -> String {
    if packed {
        format!("trial {}: ", trial.id)
    } else {
        String::new()
    }
}

/// The driver's `StepObserver` for one attempt.
pub struct TrialObserver<'a> {
    pub trial: &'a Trial,
    /// Trained in a pack beside other trials.
    pub packed: bool,
    pub progress: &'a Progress,
    pub stop: &'a StopFlag,
    /// Set when the trial's claim is lost to another worker (`claim.rs`): stop too.
    pub lost: Option<Arc<AtomicBool>>,
}

impl StepObserver for TrialObserver<'_> {
    fn after_step(&mut self) -> Control {
        let lost = self.lost.as_ref().is_some_and(|lost| lost.load(Ordering::SeqCst));
        if self.stop.is_requested() || lost {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn logged(&mut self, line: &LossLine) {
        self.progress.step(line, self.trial, self.packed);
    }
}
