//! From examples to image features: decode a chunk of images in parallel, then run the frozen
//! vision tower and projector over their frames, `batch_size` frames at a time.
//!
//! Shared by scoring and training (training computes each frame's features once, before step 1).

use candle_core::{Device, Tensor};

use crate::data::jsonl::load_images;
use crate::data::{Dataset, ImageOptions, Pixels};
use crate::model::LoadedModel;

/// Images decoded at once: bounds the pixels held in memory (64 × 224² × 3 × 4 B ≈ 39 MB per frame
/// kept), while leaving the decoder enough files to spread over the cores.
const DECODE_CHUNK_IMAGES: usize = 64;

/// A batch of frames and their features.
pub struct FrameBatch {
    /// For each row of `features`, the index of its example in the dataset.
    pub example_of_row: Vec<usize>,
    /// `[B, N, D]` f32.
    pub features: Tensor,
}

/// Call `f` on every frame batch of `dataset`, in example order (an image's frames in file order).
pub fn for_each_frame_batch(
    loaded: &LoadedModel,
    device: &Device,
    dataset: &Dataset,
    images: ImageOptions,
    batch_size: usize,
    mut f: impl FnMut(FrameBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(batch_size > 0, "batch size must be at least 1");
    let prep = loaded.preprocessing.own.with_resize(images.resize);
    let mut pending: Vec<(usize, Pixels)> = Vec::new();
    for (chunk_index, chunk) in dataset.examples.chunks(DECODE_CHUNK_IMAGES).enumerate() {
        let first = chunk_index * DECODE_CHUNK_IMAGES;
        let part = Dataset { path: dataset.path.clone(), examples: chunk.to_vec() };
        for (offset, image) in load_images(&part, images, &prep)?.into_iter().enumerate() {
            pending.extend(image.frames.into_iter().map(|pixels| (first + offset, pixels)));
        }
        while pending.len() >= batch_size {
            let rest = pending.split_off(batch_size);
            f(features_of(loaded, device, std::mem::replace(&mut pending, rest))?)?;
        }
    }
    if !pending.is_empty() {
        f(features_of(loaded, device, pending)?)?;
    }
    Ok(())
}

fn features_of(
    loaded: &LoadedModel,
    device: &Device,
    frames: Vec<(usize, Pixels)>,
) -> anyhow::Result<FrameBatch> {
    let size = loaded.config.vision_config.image_size;
    let mut chw = Vec::with_capacity(frames.len() * 3 * size * size);
    let mut example_of_row = Vec::with_capacity(frames.len());
    for (example, pixels) in frames {
        anyhow::ensure!(pixels.size == size, "frame of size {} for a model of size {size}", pixels.size);
        chw.extend_from_slice(&pixels.chw);
        example_of_row.push(example);
    }
    let pixels = Tensor::from_vec(chw, (example_of_row.len(), 3, size, size), device)?;
    Ok(FrameBatch { example_of_row, features: loaded.model.image_features(&pixels)? })
}
