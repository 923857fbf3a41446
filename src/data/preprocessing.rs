//! How decoded pixels become model inputs: the resize filter, the size, and the rescale and
//! normalisation. A model has its own (`model::processor` reads a checkpoint's image-processor
//! settings; big_vision and built-in models use big_vision's recipe); `--resize` or
//! `[data] resize` replaces its filter.

use serde::{Deserialize, Serialize};

/// The resize filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// A triangle filter widened by the downscale factor (antialias), in f32 without rounding:
    /// big_vision's recipe, and the filter of PIL's bilinear less its rounding to 8 bits.
    #[default]
    Bilinear,
    /// PIL's bicubic on 8-bit pixels, bit for bit (`data::image::bicubic`): what the SigLIP
    /// image processor of transformers does.
    Bicubic,
}

impl std::fmt::Display for Resize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resize::Bilinear => "bilinear",
            Resize::Bicubic => "bicubic",
        })
    }
}

/// Per channel c: `v = x·rescale_factor` (in f64, kept as f32), then `(v − image_mean[c]) /
/// image_std[c]` in f32, as transformers' `rescale` and `normalize` compute it. The keys are
/// transformers' names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    pub rescale_factor: f64,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl Normalize {
    /// 0..255 to [−1, 1]: rescale 1/255, mean and std 0.5 (SigLIP's; big_vision's
    /// `value_range(-1, 1)`).
    pub const SIGLIP: Normalize =
        Normalize { rescale_factor: 1.0 / 255.0, image_mean: [0.5; 3], image_std: [0.5; 3] };

    /// Sample `x` (0..255 scale) of channel `c`, normalised.
    pub fn apply(&self, c: usize, x: f32) -> f32 {
        let v = (f64::from(x) * self.rescale_factor) as f32;
        (v - self.image_mean[c]) / self.image_std[c]
    }
}

/// Everything between a decoded frame and the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub resize: Resize,
    /// The model's input side, in pixels (images are resized to size×size).
    pub size: usize,
    #[serde(flatten)]
    pub normalize: Normalize,
}

impl Preprocessing {
    /// big_vision's recipe at `size`: bilinear with antialias, [−1, 1] (gacha's behaviour
    /// before it read image-processor settings).
    pub fn big_vision(size: usize) -> Preprocessing {
        Preprocessing { resize: Resize::Bilinear, size, normalize: Normalize::SIGLIP }
    }

    /// This, with the filter `resize` when one is asked for.
    pub fn with_resize(self, resize: Option<Resize>) -> Preprocessing {
        Preprocessing { resize: resize.unwrap_or(self.resize), ..self }
    }

    /// Whether a model fed this sees the pixels big_vision's recipe gives at the same size.
    pub fn is_big_vision(&self) -> bool {
        *self == Preprocessing::big_vision(self.size)
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Normalize { rescale_factor, image_mean, image_std } = self.normalize;
        write!(
            f,
            "{} to {}×{}, rescale {rescale_factor}, mean {image_mean:?}, std {image_std:?}",
            self.resize, self.size, self.size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siglip_normalisation_is_minus_one_to_one() {
        let n = Normalize::SIGLIP;
        assert_eq!((n.apply(0, 0.0), n.apply(1, 255.0)), (-1.0, 1.0));
        // 51/255 = 0.2 → (0.2 − 0.5)/0.5 = −0.6.
        assert!((n.apply(2, 51.0) + 0.6).abs() < 1e-7);
        // ImageNet-style settings: (0.2 − 0.485)/0.229.
        let imagenet =
            Normalize { rescale_factor: 1.0 / 255.0, image_mean: [0.485; 3], image_std: [0.229; 3] };
        assert!((imagenet.apply(0, 51.0) - (0.2 - 0.485) / 0.229).abs() < 1e-6);
    }

    #[test]
    fn a_resize_asked_for_replaces_the_models() {
        let own = Preprocessing { resize: Resize::Bicubic, ..Preprocessing::big_vision(224) };
        assert_eq!(own.with_resize(None), own);
        assert!(!own.is_big_vision());
        assert!(own.with_resize(Some(Resize::Bilinear)).is_big_vision());
    }
}
