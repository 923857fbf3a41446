//! PIL's bicubic resize, bit for bit: what `Image.resize(size, Image.BICUBIC)` does to an 8-bit
//! RGB image, and so what the SigLIP image processor of transformers feeds PaliGemma.
//!
//! Ported from Pillow 13.0.0's `src/libImaging/Resample.c` (`precompute_coeffs`,
//! `normalize_coeffs_8bpc`, `ImagingResampleInner`): a separable convolution with the cubic
//! kernel of a = −0.5 and support 2, widened by the downscale factor (antialias); each output's
//! weights are normalised to sum 1 in f64, then turned into fixed point with 22 fraction bits
//! (rounded half away from zero); each pass sums in integers from ½, shifts and clamps to 0..255.
//! The horizontal pass runs first, then the vertical, except where the height shrinks by more than
//! twice as many pixels as the width (Pillow 13.0, the version tools/requirements.txt pins; Pillow
//! 12 and before always ran horizontal first, which differs there by a level here and there); a
//! pass whose size does not change is skipped. The f64 expressions keep Pillow's order of
//! operations, so the weights are the same.

/// Fraction bits of the fixed-point weights (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// The cubic kernel's support at scale 1.
const SUPPORT: f64 = 2.0;

/// The cubic convolution kernel with a = −0.5 (Resample.c `bicubic_filter`).
fn kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The fixed-point weights on inputs `first..first + weights.len()` of one output sample.
struct Taps {
    first: usize,
    weights: Vec<i64>,
}

/// Weights for resizing one axis from `n` to `m` samples (Resample.c `precompute_coeffs` and
/// `normalize_coeffs_8bpc`).
fn axis_taps(n: usize, m: usize) -> Vec<Taps> {
    let scale = n as f32 as f64 / m as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let inv_filterscale = 1.0 / filterscale;
    (0..m)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; negatives clamp to 0 either way.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let last = ((center + support + 0.5) as i64).min(n as i64) as usize;
            let raw: Vec<f64> =
                (first..last).map(|j| kernel((j as f64 - center + 0.5) * inv_filterscale)).collect();
            let sum: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if sum != 0.0 { w / sum } else { w };
                    let fixed = w * f64::from(1u32 << PRECISION_BITS);
                    (if w < 0.0 { -0.5 + fixed } else { 0.5 + fixed }) as i64
                })
                .collect();
            Taps { first, weights }
        })
        .collect()
}

impl Taps {
    /// Σ w_j·in_j from ½ in fixed point, shifted back and clamped to 0..255.
    fn apply(&self, input: impl Fn(usize) -> u8) -> u8 {
        let mut sum: i64 = 1 << (PRECISION_BITS - 1);
        for (k, &w) in self.weights.iter().enumerate() {
            sum += i64::from(input(self.first + k)) * w;
        }
        (sum >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// Resize interleaved 8-bit RGB from `width`×`height` to `out_width`×`out_height`.
pub fn resize_rgb8(width: usize, height: usize, rgb: &[u8], out_width: usize, out_height: usize) -> Vec<u8> {
    assert_eq!(rgb.len(), width * height * 3, "resize_rgb8: buffer is not width×height RGB");
    // Pillow 13's order (Resample.c `ImagingResampleInner`): vertical first when the height
    // shrinks by more than twice as many pixels as the width does.
    let shrink = |from: usize, to: usize| from as i64 - to as i64;
    let vertical_first =
        shrink(height, out_height) > 0 && shrink(height, out_height) > shrink(width, out_width) * 2;
    if vertical_first {
        let once = vertical(width, height, rgb, out_height);
        horizontal(width, out_height, &once, out_width)
    } else {
        let once = horizontal(width, height, rgb, out_width);
        vertical(out_width, height, &once, out_height)
    }
}

/// The horizontal pass: each row from `width` to `out_width` samples (skipped when equal).
fn horizontal(width: usize, height: usize, rgb: &[u8], out_width: usize) -> Vec<u8> {
    if out_width == width {
        return rgb.to_vec();
    }
    let taps = axis_taps(width, out_width);
    let mut out = Vec::with_capacity(out_width * height * 3);
    for row in rgb.chunks_exact(width * 3) {
        for t in &taps {
            for c in 0..3 {
                out.push(t.apply(|x| row[x * 3 + c]));
            }
        }
    }
    out
}

/// The vertical pass: each column from `height` to `out_height` samples (skipped when equal).
fn vertical(width: usize, height: usize, rgb: &[u8], out_height: usize) -> Vec<u8> {
    if out_height == height {
        return rgb.to_vec();
    }
    let stride = width * 3;
    let mut out = Vec::with_capacity(out_height * stride);
    for t in &axis_taps(height, out_height) {
        for i in 0..stride {
            out.push(t.apply(|y| rgb[y * stride + i]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_values_by_hand() {
        // a = −0.5. At 0.5: (1.5·0.5 − 2.5)·0.25 + 1 = 0.5625. At 1.5: ((1.5 − 5)·1.5 + 8)·1.5 − 4
        // = 0.125, times −0.5 = −0.0625. 0 at 1 and from 2 on.
        assert_eq!(kernel(0.0), 1.0);
        assert_eq!(kernel(0.5), 0.5625);
        assert_eq!(kernel(-1.5), -0.0625);
        assert_eq!(kernel(1.0), 0.0);
        assert_eq!(kernel(2.5), 0.0);
    }

    #[test]
    fn same_size_is_the_identity_and_flat_stays_flat() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|v| (v * 7) as u8).collect();
        assert_eq!(resize_rgb8(4, 3, &rgb, 4, 3), rgb);
        // Weights sum to 1 (within a fixed-point unit), so a flat image stays flat either way.
        let flat = vec![200u8; 5 * 7 * 3];
        assert_eq!(resize_rgb8(5, 7, &flat, 3, 11), vec![200u8; 3 * 11 * 3]);
    }

    #[test]
    fn two_to_one_by_hand() {
        // n=2, m=1: scale 2, support 4, center 1; inputs 0 and 1 at distances −0.5 and 0.5 from
        // the center, scaled by 1/2: kernel(0.25) each, so equal weights ½: (10 + 30)/2 = 20.
        let rgb = [10, 0, 255, 30, 0, 0];
        assert_eq!(resize_rgb8(2, 1, &rgb, 1, 1), vec![20, 0, 128]);
    }

    /// Twin of `pattern` in tools/bicubic_fixture.py: hashed noise averaged with hard edges.
    fn pattern(width: usize, height: usize) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height as u64 {
            for x in 0..width as u64 {
                for c in 0..3u64 {
                    let noise = (((x * 7919 + y * 104729 + c * 31337) * 2654435761) % (1 << 32)) >> 24;
                    let edge = if (x / 5 + y / 3 + c) % 2 == 0 { 0 } else { 255 };
                    rgb.push(((noise + edge) / 2) as u8);
                }
            }
        }
        rgb
    }

    /// PIL's own outputs (tools/bicubic_fixture.py): every level equal, upsizing and downsizing.
    #[test]
    fn matches_pil_bicubic_on_the_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bicubic");
        let listing: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
        let cases = listing["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let side = |key: &str, i: usize| case[key][i].as_u64().unwrap() as usize;
            let (w, h, ow, oh) = (side("in", 0), side("in", 1), side("out", 0), side("out", 1));
            let want = image::open(dir.join(case["file"].as_str().unwrap())).unwrap().into_rgb8();
            assert_eq!((want.width() as usize, want.height() as usize), (ow, oh));
            let got = resize_rgb8(w, h, &pattern(w, h), ow, oh);
            let differing = got.iter().zip(want.as_raw()).filter(|(g, w)| g != w).count();
            assert_eq!(differing, 0, "{w}×{h} → {ow}×{oh}: {differing} of {} samples differ", got.len());
        }
    }
}
