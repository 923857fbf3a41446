//! The frozen vision stage: pixels → image features, once per image. `frames` runs the frozen
//! vision tower and projector over every frame of a dataset's images; `cache` keeps the result,
//! so scoring, training, sweeps and `gacha train` read each image's features without recomputing
//! them.

pub mod cache;
pub mod frames;
