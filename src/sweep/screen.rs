//! Prompts screened before the sweep (`[search] screen_prompts = K`): the first worker scores
//! every prompt of the `prompt` axis on the untrained model over the non-test images (a forward
//! pass each, no training) and writes `screen.json` and `screen.csv` under the export lock;
//! every other worker, and every later run of the same screen, reads them.

use super::runner::TrialRunner;
use crate::data::{Dataset, Label};
use crate::eval::Confusion;
use crate::fsutil::write_atomic;
use crate::results::folder::ResultsFolder;
use crate::results::layout::{SCREEN_CSV, SCREEN_FILE};
use crate::results::screen::{same_screen, ScreenFile};
use crate::spec::partition::Partition;
use crate::spec::SweepSpec;

/// The screen of `spec`'s prompts, made or read; `None` when the spec screens none.
pub fn screen_prompts(
    spec: &SweepSpec,
    dataset: &Dataset,
    folder: &ResultsFolder,
    partition: &Partition,
    runner: &mut dyn TrialRunner,
) -> anyhow::Result<Option<ScreenFile>> {
    let Some(keep) = spec.search.screen_prompts else { return Ok(None) };
    let mut prompts: Vec<String> = Vec::new();
    for prompt in spec.trials.iter().filter_map(|t| t.params.prompt.as_ref()) {
        if !prompts.contains(prompt) {
            prompts.push(prompt.clone());
        }
    }
    let metric = spec.select.metric.metric;
    let images = partition.pool();
    let path = folder.dir.path(SCREEN_FILE);
    let _lock = folder.claims.export_lock()?;
    if let Ok(text) = std::fs::read(&path) {
        if let Ok(earlier) = serde_json::from_slice::<ScreenFile>(&text) {
            if same_screen(&earlier, &prompts, keep, metric, images.len()) {
                return Ok(Some(earlier));
            }
        }
    }
    runner.prepare()?;
    crate::logging::info!(
        "screening {} prompts on the untrained model over {} images",
        prompts.len(),
        images.len()
    );
    let mut scored = Vec::with_capacity(prompts.len());
    for prompt in &prompts {
        let answers = runner.untrained_answers(&Some(prompt.clone()), images)?;
        let counts = Confusion::from_pairs(images.iter().zip(answers).map(|(&i, a)| (label(dataset, i), a)));
        scored.push((prompt.clone(), counts));
    }
    let screen = ScreenFile::rank(scored, metric, keep, images.len());
    write_atomic(&folder.dir.path(SCREEN_CSV), &screen.csv())?;
    write_atomic(&path, &serde_json::to_vec_pretty(&screen)?)?;
    let left = screen.prompts.iter().filter(|p| !p.enters).count();
    crate::logging::info!("screened: the best {keep} prompts run, {left} left out (screen.csv)");
    Ok(Some(screen))
}

fn label(dataset: &Dataset, i: usize) -> Label {
    dataset.examples[i].label
}
