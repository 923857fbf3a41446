//! Progress as one-line records on stderr, for a parent process to draw: a worker started by
//! `gacha sweep` on a terminal (`cmd/workers.rs`) gets [`EVENTS_ENV`] and, instead of drawing
//! bars or printing step lines, writes each change as `gacha-progress: {json}`; the parent parses
//! them back ([`Event::parse`]) into one view of the whole sweep. Every other line stays as text.

use serde::{Deserialize, Serialize};

use super::record::Status;

/// Set (to anything) in a worker's environment: write progress as events.
pub const EVENTS_ENV: &str = "GACHA_PROGRESS_EVENTS";

/// What starts an event line; no other line of gacha starts so.
const PREFIX: &str = "gacha-progress: ";

/// One change of a worker's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase", deny_unknown_fields)]
pub enum Event {
    /// The worker starts on a sweep of `total` trials.
    Sweep { total: usize },
    /// An attempt at a trial begins (again, after a reseed) with `steps` steps.
    Started { id: String, label: String, steps: usize },
    /// A recorded training step of a trial.
    Step { id: String, step: usize, steps: usize, loss: f64 },
    /// A trial is recorded: its status, the sweep's select metric (`valid.precision`) and its value
    /// when defined, and the trial's time.
    Finished { id: String, status: Status, metric: String, value: Option<f64>, secs: f64 },
}

impl Event {
    /// The event as one line (without its newline).
    pub fn line(&self) -> String {
        format!("{PREFIX}{}", serde_json::to_string(self).expect("an event is plain data"))
    }

    /// The event a line carries; `None` for any other line (text to show as it is).
    pub fn parse(line: &str) -> Option<Event> {
        serde_json::from_str(line.strip_prefix(PREFIX)?).ok()
    }

    /// Write the event on stderr, for the parent.
    pub fn emit(&self) {
        eprintln!("{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_as_documented() {
        let step = Event::Step { id: "t003".into(), step: 20, steps: 100, loss: 0.25 };
        assert_eq!(
            step.line(),
            r#"gacha-progress: {"event":"step","id":"t003","step":20,"steps":100,"loss":0.25}"#
        );
        let finished = Event::Finished {
            id: "t003".into(),
            status: Status::Diverged,
            metric: "valid.precision".into(),
            value: None,
            secs: 1.5,
        };
        assert_eq!(
            finished.line(),
            r#"gacha-progress: {"event":"finished","id":"t003","status":"diverged","metric":"valid.precision","value":null,"secs":1.5}"#
        );
    }

    #[test]
    fn every_event_comes_back_from_its_line() {
        let events = [
            Event::Sweep { total: 96 },
            Event::Started { id: "t001".into(), label: "lr=1e-4 seed=2 \"quoted\"".into(), steps: 64 },
            Event::Step { id: "t001".into(), step: 1, steps: 64, loss: std::f64::consts::LN_2 },
            Event::Finished {
                id: "t001".into(),
                status: Status::Done,
                metric: "valid.f1".into(),
                value: Some(0.8125),
                secs: 12.25,
            },
        ];
        for event in events {
            assert_eq!(Event::parse(&event.line()), Some(event));
        }
    }

    #[test]
    fn other_lines_are_not_events() {
        for line in [
            "trial 3/96 t003: lr=1e-4",
            "gacha: warning: gacha-progress: {\"event\":\"sweep\",\"total\":1}",
            "gacha-progress: not json",
            "gacha-progress: {\"event\":\"sweep\",\"total\":1,\"extra\":2}",
            "",
        ] {
            assert_eq!(Event::parse(line), None, "{line}");
        }
        assert_eq!(
            Event::parse(r#"gacha-progress: {"event":"sweep","total":7}"#),
            Some(Event::Sweep { total: 7 })
        );
    }
}
