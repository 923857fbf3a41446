//! The sweep drawn on a terminal while workers run it (`workers.rs`): a sweep line and one line
//! per worker, as `sweep_view.rs` writes them, redrawn at each progress event of a worker; every
//! other line a worker prints (trials started and finished, warnings, errors) goes above them,
//! tagged with the worker as off a terminal.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::sweep_view::SweepView;
use crate::results::progress_event::Event;

/// The view and its lines on the terminal.
pub struct Screen {
    view: SweepView,
    tags: Vec<String>,
    multi: MultiProgress,
    /// The sweep's line, then one per worker.
    lines: Vec<ProgressBar>,
    started: Instant,
}

/// A screen shared by the threads that read the workers' stderr.
pub type Shared = Arc<Mutex<Screen>>;

impl Screen {
    /// A screen for workers tagged `tags` (`[1 cpu]`), `earlier` trials finished before them.
    pub fn shared(tags: Vec<String>, earlier: usize) -> Shared {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg}").expect("a valid template");
        let lines =
            (0..=tags.len()).map(|_| multi.add(ProgressBar::no_length().with_style(style.clone()))).collect();
        let view = SweepView::new(tags.clone(), earlier);
        let screen = Screen { view, tags, multi, lines, started: Instant::now() };
        screen.draw();
        Arc::new(Mutex::new(screen))
    }

    /// A line that worker `n` wrote on its stderr.
    pub fn line(shared: &Shared, n: usize, line: &str) {
        let mut screen = shared.lock().unwrap_or_else(PoisonError::into_inner);
        match Event::parse(line) {
            Some(event) => {
                screen.view.apply(n, event);
                screen.draw();
            }
            None => {
                let _ = screen.multi.println(format!("{} {line}", screen.tags[n]));
            }
        }
    }

    fn draw(&self) {
        let texts =
            std::iter::once(self.view.sweep_line(self.started.elapsed())).chain(self.view.worker_lines());
        for (line, text) in self.lines.iter().zip(texts) {
            line.set_message(text);
        }
    }

    /// Take the lines off the terminal, once the workers have ended.
    pub fn finish(shared: &Shared) {
        let screen = shared.lock().unwrap_or_else(PoisonError::into_inner);
        screen.lines.iter().for_each(ProgressBar::finish_and_clear);
    }
}
