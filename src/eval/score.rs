//! Scoring a dataset: p_yes, the two answer logits and the loss of every image, a batch of frames
//! at a time, from pixels (`score_dataset`) or from cached features (`score_cached`, the sweep);
//! and the CSV `gacha score` writes. Both go through one batch function, `score_batch`.
//!
//! An image with several frames (GIF policy `all`) is judged by its worst frame (docs/design.md
//! §7): its row is the frame with the lowest p_yes, logits and loss included.

use candle_core::{Device, Tensor};

use crate::data::{Answers, Dataset, Example, ImageOptions, Label};
use crate::features::cache::FeatureCache;
use crate::features::frames::for_each_frame_batch;
use crate::model::{LoadedModel, PromptItem};

/// Frames per forward pass when no `--batch-size` is given.
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// The CSV columns, in order.
pub const COLUMNS: [&str; 6] = ["image", "label", "p_yes", "logit_yes", "logit_no", "loss"];

/// One scored image.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The `image` value exactly as written in the JSONL.
    pub image: String,
    pub label: Label,
    /// `sigmoid(logit_yes − logit_no)`, the positive answer's probability against the negative one.
    pub p_yes: f32,
    pub logit_yes: f32,
    pub logit_no: f32,
    /// Cross-entropy of the expected answer and `<eos>` (docs/design.md §7).
    pub loss: f32,
}

/// How to score.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// The prompt given with every image; `None`: each example's own `prefix`.
    pub prompt: Option<String>,
    pub images: ImageOptions,
    /// Frames per forward pass.
    pub batch_size: usize,
}

/// Score every example of `dataset`, in dataset order, computing image features as it goes.
pub fn score_dataset(
    loaded: &LoadedModel,
    device: &Device,
    dataset: &Dataset,
    opts: &ScoreOptions,
) -> anyhow::Result<Vec<ScoreRow>> {
    let examples: Vec<&Example> = dataset.examples.iter().collect();
    let mut worst: Vec<Option<ScoreRow>> = vec![None; examples.len()];
    for_each_frame_batch(loaded, device, dataset, opts.images, opts.batch_size, |frames| {
        score_batch(loaded, &frames.features, &frames.example_of_row, &examples, opts, &mut worst)
    })?;
    rows_of(worst, &examples, dataset)
}

/// Score the examples of `dataset` at `indices`, in that order, from features in `cache`.
pub fn score_cached(
    loaded: &LoadedModel,
    cache: &FeatureCache,
    dataset: &Dataset,
    indices: &[usize],
    opts: &ScoreOptions,
) -> anyhow::Result<Vec<ScoreRow>> {
    anyhow::ensure!(opts.batch_size > 0, "batch size must be at least 1");
    let examples: Vec<&Example> = indices.iter().map(|&i| &dataset.examples[i]).collect();
    let mut frames: Vec<(usize, &Tensor)> = Vec::new();
    for (position, example) in examples.iter().enumerate() {
        frames.extend(cache.frames(example, opts.images)?.iter().map(|f| (position, f)));
    }
    let mut worst: Vec<Option<ScoreRow>> = vec![None; examples.len()];
    for batch in frames.chunks(opts.batch_size) {
        let (example_of_row, features): (Vec<usize>, Vec<&Tensor>) = batch.iter().copied().unzip();
        let features = Tensor::stack(&features, 0)?;
        score_batch(loaded, &features, &example_of_row, &examples, opts, &mut worst)?;
    }
    rows_of(worst, &examples, dataset)
}

/// Score one batch of frames (row r belongs to `examples[example_of_row[r]]`), keeping each
/// example's worst frame in `worst`. The one batch function of scoring, evaluation and sweeps.
fn score_batch(
    loaded: &LoadedModel,
    features: &Tensor,
    example_of_row: &[usize],
    examples: &[&Example],
    opts: &ScoreOptions,
    worst: &mut [Option<ScoreRow>],
) -> anyhow::Result<()> {
    let items: Vec<PromptItem> = example_of_row
        .iter()
        .map(|&i| PromptItem {
            prompt: opts.prompt.as_deref().unwrap_or(&examples[i].prefix),
            answer: examples[i].label,
        })
        .collect();
    let scores = loaded.model.score(features, &loaded.tokenizer.batch(&items)?)?;
    let p_yes = scores.p_yes()?;
    let logit_yes = scores.logit_yes.to_vec1::<f32>()?;
    let logit_no = scores.logit_no.to_vec1::<f32>()?;
    let loss = scores.loss.to_vec1::<f32>()?;
    for (row, &i) in example_of_row.iter().enumerate() {
        if worst[i].as_ref().is_none_or(|w| p_yes[row] < w.p_yes) {
            worst[i] = Some(ScoreRow {
                image: examples[i].image.clone(),
                label: examples[i].label,
                p_yes: p_yes[row],
                logit_yes: logit_yes[row],
                logit_no: logit_no[row],
                loss: loss[row],
            });
        }
    }
    Ok(())
}

/// Every example's row, or an error naming the first example without a scored frame.
fn rows_of(
    worst: Vec<Option<ScoreRow>>,
    examples: &[&Example],
    dataset: &Dataset,
) -> anyhow::Result<Vec<ScoreRow>> {
    worst
        .into_iter()
        .zip(examples)
        .map(|(row, example)| {
            row.ok_or_else(|| {
                anyhow::anyhow!("{}:{}: image has no frame to score", dataset.path.display(), example.line)
            })
        })
        .collect()
}

/// The CSV text: a header of [`COLUMNS`], then one row per image; the label as its answer word,
/// numbers in the shortest form that reads back to the same f32.
pub fn csv_bytes(rows: &[ScoreRow], answers: &Answers) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for row in rows {
        writer.write_record([
            row.image.clone(),
            answers.word(row.label).to_string(),
            row.p_yes.to_string(),
            row.logit_yes.to_string(),
            row.logit_no.to_string(),
            row.loss.to_string(),
        ])?;
    }
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_header_and_quotes_awkward_image_names() {
        let rows = [
            ScoreRow {
                image: "images/a,b.png".into(),
                label: Label::Positive,
                p_yes: 0.25,
                logit_yes: -1.5,
                logit_no: 0.5,
                loss: 2.0,
            },
            ScoreRow {
                image: "x.gif".into(),
                label: Label::Negative,
                p_yes: 1.0,
                logit_yes: 3.0,
                logit_no: -3.0,
                loss: 0.125,
            },
        ];
        let text = String::from_utf8(csv_bytes(&rows, &Answers::default()).unwrap()).unwrap();
        assert_eq!(
            text,
            "image,label,p_yes,logit_yes,logit_no,loss\n\"images/a,b.png\",yes,0.25,-1.5,0.5,2\nx.gif,no,1,3,-3,0.125\n"
        );
    }
}
