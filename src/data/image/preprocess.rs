//! Steps 1–4 of the preprocessing recipe (see the parent module): decoded samples to RGBA on a
//! 0..255 scale, alpha over white, the resize (the triangle filter here, PIL's bicubic in
//! `bicubic`), and the normalisation, in CHW order.

use image::DynamicImage;

use super::bicubic::resize_rgb8;
use crate::data::{Pixels, Preprocessing, Resize};

/// Preprocess one RGBA frame (0..255 scale, interleaved, `width`×`height`): steps 2–4 above.
pub fn preprocess_rgba(width: usize, height: usize, rgba: &[f32], prep: &Preprocessing) -> Pixels {
    assert_eq!(rgba.len(), width * height * 4, "preprocess_rgba: buffer is not width×height RGBA");
    let size = prep.size;
    // Alpha over white, into three planes.
    let mut planes = vec![0f32; 3 * width * height];
    for (p, px) in rgba.chunks_exact(4).enumerate() {
        let t = px[3] / 255.0;
        for c in 0..3 {
            planes[c * width * height + p] = px[c] * t + 255.0 * (1.0 - t);
        }
    }
    let resized = match prep.resize {
        Resize::Bilinear => triangle(width, height, &planes, size),
        Resize::Bicubic => bicubic(width, height, &planes, size),
    };
    let plane = size * size;
    let chw = resized.iter().enumerate().map(|(i, &x)| prep.normalize.apply(i / plane, x)).collect();
    Pixels { size, chw }
}

/// Three `width`×`height` planes → three `size`×`size` planes, triangle filter (step 3 above).
fn triangle(width: usize, height: usize, planes: &[f32], size: usize) -> Vec<f32> {
    let horizontal = axis_weights(width, size);
    let vertical = axis_weights(height, size);
    let mut out = Vec::with_capacity(3 * size * size);
    let mut rows = vec![0f32; height * size];
    for plane in planes.chunks_exact(width * height) {
        for (y, row) in plane.chunks_exact(width).enumerate() {
            for (x, taps) in horizontal.iter().enumerate() {
                rows[y * size + x] = taps.apply(|j| row[j]);
            }
        }
        for taps in &vertical {
            for x in 0..size {
                out.push(taps.apply(|j| rows[j * size + x]));
            }
        }
    }
    out
}

/// Three planes → PIL's bicubic on the samples rounded to 8 bits (PIL resizes 8-bit images).
fn bicubic(width: usize, height: usize, planes: &[f32], size: usize) -> Vec<f32> {
    let pixels = width * height;
    let rgb: Vec<u8> =
        (0..pixels * 3).map(|i| planes[(i % 3) * pixels + i / 3].round().clamp(0.0, 255.0) as u8).collect();
    let resized = resize_rgb8(width, height, &rgb, size, size);
    (0..3 * size * size).map(|i| f32::from(resized[(i % (size * size)) * 3 + i / (size * size)])).collect()
}

/// The inputs `left..left + weights.len()` that make one output of a triangle resize.
struct Taps {
    left: usize,
    weights: Vec<f32>,
}

impl Taps {
    /// Σ w_j·in_j / Σ w_j, summed in input order.
    fn apply(&self, input: impl Fn(usize) -> f32) -> f32 {
        let (mut sum, mut norm) = (0f32, 0f32);
        for (k, &w) in self.weights.iter().enumerate() {
            sum += w * input(self.left + k);
            norm += w;
        }
        sum / norm
    }
}

/// Triangle-filter taps for resizing one axis from `n` to `m` samples (step 3 above).
fn axis_weights(n: usize, m: usize) -> Vec<Taps> {
    let scale = n as f32 / m as f32;
    let support = scale.max(1.0);
    (0..m)
        .map(|i| {
            let center = (i as f32 + 0.5) * scale;
            let left = (center - support).floor().max(0.0) as usize;
            let right = ((center + support).ceil() as usize).min(n);
            let weights =
                (left..right).map(|j| (1.0 - ((j as f32 + 0.5 - center) / support).abs()).max(0.0)).collect();
            Taps { left, weights }
        })
        .collect()
}

/// RGBA on a 0..255 scale: 8-bit v → v, 16-bit v → v/257; grey replicated; missing alpha = 255.
pub fn rgba_samples(image: &DynamicImage) -> Option<Vec<f32>> {
    let from8 = f32::from;
    let from16 = |v: u16| f32::from(v) / 257.0;
    Some(match image {
        DynamicImage::ImageLuma8(b) => expand(b.as_raw(), 1, from8),
        DynamicImage::ImageLumaA8(b) => expand(b.as_raw(), 2, from8),
        DynamicImage::ImageRgb8(b) => expand(b.as_raw(), 3, from8),
        DynamicImage::ImageRgba8(b) => expand(b.as_raw(), 4, from8),
        DynamicImage::ImageLuma16(b) => expand(b.as_raw(), 1, from16),
        DynamicImage::ImageLumaA16(b) => expand(b.as_raw(), 2, from16),
        DynamicImage::ImageRgb16(b) => expand(b.as_raw(), 3, from16),
        DynamicImage::ImageRgba16(b) => expand(b.as_raw(), 4, from16),
        _ => return None,
    })
}

fn expand<T: Copy>(samples: &[T], channels: usize, to_f32: impl Fn(T) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples.len() / channels * 4);
    for px in samples.chunks_exact(channels) {
        let v = |i: usize| to_f32(px[i]);
        out.extend_from_slice(&match channels {
            1 => [v(0), v(0), v(0), 255.0],
            2 => [v(0), v(0), v(0), v(1)],
            3 => [v(0), v(1), v(2), 255.0],
            _ => [v(0), v(1), v(2), v(3)],
        });
    }
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    /// Values on the 0..255 scale → the normalised values §1.4 gives.
    pub fn norm(values: &[f32]) -> Vec<f32> {
        values.iter().map(|v| v / 127.5 - 1.0).collect()
    }

    #[test]
    fn identity_when_size_matches() {
        // 2×2 opaque grey levels 0, 51, 204, 255 → CHW planes equal, values v/127.5 − 1.
        let rgba: Vec<f32> = [0.0, 51.0, 204.0, 255.0].iter().flat_map(|&v| [v, v, v, 255.0]).collect();
        let pixels = preprocess_rgba(2, 2, &rgba, &Preprocessing::big_vision(2));
        let plane = norm(&[0.0, 51.0, 204.0, 255.0]);
        close(&pixels.chw, &plane.repeat(3));
    }

    #[test]
    fn chw_layout_keeps_channels_apart() {
        let pixels = preprocess_rgba(1, 1, &[255.0, 0.0, 127.5, 255.0], &Preprocessing::big_vision(1));
        close(&pixels.chw, &[1.0, -1.0, 0.0]);
    }

    #[test]
    fn half_transparent_black_over_white_is_mid_grey() {
        // 0·0.5 + 255·(1 − 0.5) = 127.5 → 0.0 after normalising.
        let pixels = preprocess_rgba(1, 1, &[0.0, 0.0, 0.0, 127.5], &Preprocessing::big_vision(1));
        close(&pixels.chw, &[0.0, 0.0, 0.0]);
        // Fully transparent red is white.
        close(
            &preprocess_rgba(1, 1, &[255.0, 0.0, 0.0, 0.0], &Preprocessing::big_vision(1)).chw,
            &[1.0, 1.0, 1.0],
        );
    }

    #[test]
    fn two_to_one_downscale_averages() {
        // n=2, m=1: scale 2, support 2, center 1, taps j=0,1 with weight 1 − 0.5/2 = 0.75 each.
        let rgba = [0.0, 0.0, 0.0, 255.0, 255.0, 102.0, 51.0, 255.0];
        close(&preprocess_rgba(2, 1, &rgba, &Preprocessing::big_vision(1)).chw, &norm(&[127.5, 51.0, 25.5]));
    }

    #[test]
    fn three_to_two_downscale_by_hand() {
        // n=3, m=2: scale 1.5, support 1.5. Output 0: center 0.75, weights (5/6, 1/2, 0):
        // (0·5/6 + 30·1/2) / (4/3) = 11.25. Output 1: center 2.25, weights (0, 1/2, 5/6):
        // (30·1/2 + 90·5/6) / (4/3) = 67.5. Height 1 → 2 copies the row (weight 0.75 on one tap).
        let rgba: Vec<f32> = [0.0, 30.0, 90.0].iter().flat_map(|&v| [v, v, v, 255.0]).collect();
        let plane = norm(&[11.25, 67.5, 11.25, 67.5]);
        close(&preprocess_rgba(3, 1, &rgba, &Preprocessing::big_vision(2)).chw, &plane.repeat(3));
    }

    #[test]
    fn upscale_interpolates_linearly() {
        // n=2, m=4: scale 0.5, support 1; centers 0.25, 0.75, 1.25, 1.75 give weights
        // (0.75, 0), (0.75, 0.25), (0.25, 0.75), (0, 0.75) on inputs (0, 255).
        let rgba = [0.0, 0.0, 0.0, 255.0, 255.0, 255.0, 255.0, 255.0];
        let pixels = preprocess_rgba(2, 1, &rgba, &Preprocessing::big_vision(4));
        let row = norm(&[0.0, 63.75, 191.25, 255.0]);
        close(&pixels.chw[..4], &row);
        close(&pixels.chw[12..16], &row);
    }
}
