//! Chroma upsampling as libjpeg-turbo does it by default ("fancy" upsampling, `jdsample.c`): a
//! component at half the width, height or both is stretched with a triangle filter (each output
//! sample 3/4 of the nearer input and 1/4 of the next, per direction, with libjpeg's alternating
//! rounding biases); other whole ratios, and half-width components only 1 or 2 samples wide,
//! repeat samples. Edges repeat the first or last row and column.

use super::markers::{Component, Frame};
use super::JpegError;

/// One component's samples after the inverse DCT: `width`×`height` valid, rows `stride` apart.
pub struct Plane {
    pub samples: Vec<u8>,
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl Plane {
    fn row(&self, y: usize) -> &[u8] {
        &self.samples[y * self.stride..y * self.stride + self.width]
    }
}

/// How one component becomes full size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Full,
    /// Triangle filter across (half width).
    FancyH2V1,
    /// Triangle filter down (half height).
    FancyH1V2,
    /// Triangle filter both ways (half width and height).
    FancyH2V2,
    /// Each sample repeated `h`×`v` times.
    Repeat {
        h: usize,
        v: usize,
    },
}

impl Method {
    /// libjpeg-turbo's choice (`jinit_upsampler`) for `component` of `frame`.
    pub fn of(component: &Component, frame: &Frame) -> Result<Method, JpegError> {
        let (h, v) = (component.h, component.v);
        let (h_max, v_max) = (frame.h_max, frame.v_max);
        if h_max % h != 0 || v_max % v != 0 {
            return Err(JpegError::Unsupported(format!(
                "component {} sampled {h}×{v} in a frame of {h_max}×{v_max} (not a whole ratio)",
                component.id
            )));
        }
        let narrow = component.width <= 2;
        Ok(match (h_max / h, v_max / v) {
            (1, 1) => Method::Full,
            (2, 1) if !narrow => Method::FancyH2V1,
            (1, 2) => Method::FancyH1V2,
            (2, 2) if !narrow => Method::FancyH2V2,
            (h, v) => Method::Repeat { h, v },
        })
    }
}

/// Output row `y` of `plane` upsampled by `method` into `out` (the image's width).
pub fn upsample_row(plane: &Plane, method: Method, y: usize, out: &mut [u8]) {
    match method {
        Method::Full => out.copy_from_slice(&plane.row(y)[..out.len()]),
        Method::Repeat { h, v } => {
            let row = plane.row(y / v);
            for (x, value) in out.iter_mut().enumerate() {
                *value = row[x / h];
            }
        }
        Method::FancyH2V1 => {
            let row = plane.row(y);
            triangle_across(out, |i| i32::from(row[i]), row.len(), 2, [1, 2]);
        }
        Method::FancyH1V2 => {
            let (near, far, bias) = vertical_neighbours(plane, y);
            for ((value, &near), &far) in out.iter_mut().zip(near).zip(far) {
                *value = ((3 * i32::from(near) + i32::from(far) + bias) >> 2) as u8;
            }
        }
        Method::FancyH2V2 => {
            let (near, far, _) = vertical_neighbours(plane, y);
            // Column sums weighted 3:1 down, then 3:1 across: 16ths.
            let column = |i: usize| 3 * i32::from(near[i]) + i32::from(far[i]);
            triangle_across(out, column, near.len(), 4, [8, 7]);
        }
    }
}

/// For output row `y` of a half-height component: the nearer input row, the next nearer (above
/// for even rows, below for odd ones; the edge row repeats), and libjpeg's rounding bias for
/// the vertical-only filter.
fn vertical_neighbours(plane: &Plane, y: usize) -> (&[u8], &[u8], i32) {
    let near = y / 2;
    if y.is_multiple_of(2) {
        (plane.row(near), plane.row(near.saturating_sub(1)), 1)
    } else {
        (plane.row(near), plane.row((near + 1).min(plane.height - 1)), 2)
    }
}

/// Double `n` input values across: output 2i is (3·in[i] + in[i−1]) and output 2i+1 is
/// (3·in[i] + in[i+1]), each plus its bias and shifted down by `shift`, the edge values
/// repeating. `shift` is 2 for a plain row (quarters), 4 for column sums already weighted 3:1
/// (16ths).
fn triangle_across(out: &mut [u8], input: impl Fn(usize) -> i32, n: usize, shift: u32, bias: [i32; 2]) {
    let mut previous = input(0);
    let mut current = previous;
    for (i, pair) in out.chunks_mut(2).enumerate() {
        let next = if i + 1 < n { input(i + 1) } else { current };
        pair[0] = ((3 * current + previous + bias[0]) >> shift) as u8;
        if let Some(second) = pair.get_mut(1) {
            *second = ((3 * current + next + bias[1]) >> shift) as u8;
        }
        (previous, current) = (current, next);
    }
}
