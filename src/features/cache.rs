//! Image features computed once: the frozen vision tower and projector run over each frame of each
//! image a single time, and every later use (scoring before and after training, every training
//! step of every trial of a sweep) reads the cache. Entries are keyed by image file and image options
//! (frame policy, EXIF orientation), so an image listed twice is computed once.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use candle_core::{Device, Tensor};

use crate::data::{Dataset, Example, ImageOptions};
use crate::features::frames::for_each_frame_batch;
use crate::model::LoadedModel;

/// Projector outputs, `[N, D]` f32 per kept frame, by image and image options.
#[derive(Default)]
pub struct FeatureCache {
    frames: HashMap<(PathBuf, ImageOptions), Vec<Tensor>>,
    /// Frames run through the vision tower so far.
    vision_frames: usize,
    /// Forward passes of the vision tower so far (each over up to a batch of frames).
    vision_passes: usize,
}

impl FeatureCache {
    /// Compute the features of every image of `dataset` not cached yet under `images`,
    /// `batch_size` frames per vision-tower pass.
    pub fn fill(
        &mut self,
        loaded: &LoadedModel,
        device: &Device,
        dataset: &Dataset,
        images: ImageOptions,
        batch_size: usize,
    ) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let missing: Vec<Example> = dataset
            .examples
            .iter()
            .filter(|e| !self.frames.contains_key(&(e.image_path.clone(), images)))
            .filter(|e| seen.insert(e.image_path.clone()))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let part = Dataset { path: dataset.path.clone(), examples: missing };
        let mut computed: Vec<Vec<Tensor>> = vec![Vec::new(); part.examples.len()];
        for_each_frame_batch(loaded, device, &part, images, batch_size, |batch| {
            self.vision_passes += 1;
            self.vision_frames += batch.example_of_row.len();
            for (row, &i) in batch.example_of_row.iter().enumerate() {
                computed[i].push(batch.features.get(row)?);
            }
            Ok(())
        })?;
        for (example, frames) in part.examples.into_iter().zip(computed) {
            self.frames.insert((example.image_path, images), frames);
        }
        Ok(())
    }

    /// The features of each kept frame of `example`'s image (file order), if cached.
    pub fn frames(&self, example: &Example, images: ImageOptions) -> anyhow::Result<&[Tensor]> {
        self.frames.get(&(example.image_path.clone(), images)).map(Vec::as_slice).ok_or_else(|| {
            anyhow::anyhow!("{}: no cached image features ({images})", example.image_path.display())
        })
    }

    /// Frames run through the vision tower since the cache was made.
    pub fn vision_frames(&self) -> usize {
        self.vision_frames
    }

    /// Vision-tower forward passes since the cache was made.
    pub fn vision_passes(&self) -> usize {
        self.vision_passes
    }
}
