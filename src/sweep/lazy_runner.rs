//! A runner made on first use: a worker that finds every trial finished or held by other
//! workers never loads the model, and one that claims a trial loads it after the claim (the
//! results folder is taken before the model is loaded).

use std::path::{Path, PathBuf};

use super::runner::{StepObserver, TrialJob, TrialRun, TrialRunner};
use crate::data::Label;
use crate::eval::answer_logits::AnswerLogits;

type Make<'a> = Box<dyn FnOnce() -> anyhow::Result<Box<dyn TrialRunner + 'a>> + 'a>;

/// A [`TrialRunner`] built by `make` the first time it is needed.
pub struct LazyRunner<'a> {
    make: Option<Make<'a>>,
    runner: Option<Box<dyn TrialRunner + 'a>>,
}

impl<'a> LazyRunner<'a> {
    pub fn new(make: impl FnOnce() -> anyhow::Result<Box<dyn TrialRunner + 'a>> + 'a) -> LazyRunner<'a> {
        LazyRunner { make: Some(Box::new(make)), runner: None }
    }

    fn get(&mut self) -> anyhow::Result<&mut (dyn TrialRunner + 'a)> {
        if let Some(make) = self.make.take() {
            self.runner = Some(make()?);
        }
        Ok(self.runner.as_deref_mut().expect("made above or before"))
    }
}

impl TrialRunner for LazyRunner<'_> {
    fn prepare(&mut self) -> anyhow::Result<()> {
        self.get().map(|_| ())
    }

    fn run(&mut self, job: &TrialJob, observer: &mut dyn StepObserver) -> anyhow::Result<TrialRun> {
        self.get()?.run(job, observer)
    }

    fn run_pack(
        &mut self,
        jobs: &[TrialJob],
        observers: &mut [&mut dyn StepObserver],
    ) -> anyhow::Result<Vec<anyhow::Result<TrialRun>>> {
        self.get()?.run_pack(jobs, observers)
    }

    fn answers(
        &mut self,
        weights: &Path,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<AnswerLogits>> {
        self.get()?.answers(weights, prompt, indices)
    }

    fn untrained_answers(
        &mut self,
        prompt: &Option<String>,
        indices: &[usize],
    ) -> anyhow::Result<Vec<Label>> {
        self.get()?.untrained_answers(prompt, indices)
    }

    fn soup(&mut self, members: &[PathBuf], out: &Path) -> anyhow::Result<()> {
        self.get()?.soup(members, out)
    }

    fn summary(&self) -> Option<String> {
        self.runner.as_ref().and_then(|r| r.summary())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::sweep::scripted::ScriptedRunner;

    #[test]
    fn makes_the_runner_once_and_only_when_asked() {
        let made = Cell::new(0);
        let mut lazy = LazyRunner::new(|| {
            made.set(made.get() + 1);
            Ok(Box::new(ScriptedRunner::new(vec![], std::time::Duration::ZERO)) as Box<dyn TrialRunner>)
        });
        assert_eq!(lazy.summary(), None);
        assert_eq!(made.get(), 0);
        lazy.prepare().unwrap();
        lazy.prepare().unwrap();
        assert_eq!(made.get(), 1);
    }

    #[test]
    fn a_failure_to_make_it_is_an_error_of_the_caller() {
        let mut lazy = LazyRunner::new(|| anyhow::bail!("no model here"));
        assert_eq!(lazy.prepare().unwrap_err().to_string(), "no model here");
    }
}
