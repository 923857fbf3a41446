//! Shared pieces of the CPU kernels: contiguous f32 views of storages, row-parallel loops,
//! lane-split reductions and an exp that the compiler can vectorise.
//!
//! Every loop here is deterministic for any thread count: a row is always handled by one thread
//! in a fixed order, and cross-row sums are taken over fixed blocks, then added in block order.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Error, Layout, Result};
use rayon::prelude::*;

/// Elements per parallel task for element-wise loops (small enough to spread over 2 threads,
/// large enough to hide rayon's scheduling cost).
const ELEMS_PER_TASK: usize = 16 * 1024;

/// Independent accumulators in reductions, so the compiler can keep them in one SIMD register.
const LANES: usize = 8;

/// The f32 data of a contiguous storage view, or an error naming the op.
pub(super) fn f32_data<'a>(storage: &'a CpuStorage, layout: &Layout, op: &'static str) -> Result<&'a [f32]> {
    let (start, end) = layout.contiguous_offsets().ok_or(Error::RequiresContiguous { op })?;
    match storage {
        CpuStorage::F32(data) => Ok(&data[start..end]),
        other => Err(Error::UnsupportedDTypeForOp(other.dtype(), op)),
    }
}

/// The size of the last dimension, which the row-wise ops reduce over.
pub(super) fn last_dim(layout: &Layout, op: &'static str) -> Result<usize> {
    match layout.dims().last() {
        Some(&dim) if dim > 0 => Ok(dim),
        _ => {
            Err(Error::Msg(format!("{op}: needs a non-empty last dimension, got shape {:?}", layout.shape())))
        }
    }
}

/// Rows per parallel task so that a task holds about `ELEMS_PER_TASK` elements.
fn rows_per_task(dim: usize) -> usize {
    ELEMS_PER_TASK.div_ceil(dim)
}

/// Whether to hand `tasks` tasks to rayon. With one thread, or one task, the loop runs inline:
/// handing work from the caller's thread to a sleeping pool thread costs a wake-up, which on a
/// loaded machine can exceed the work itself.
fn use_pool(tasks: usize) -> bool {
    tasks > 1 && rayon::current_num_threads() > 1
}

/// `f(task index, chunk)` over `chunk`-sized pieces of `out`, in parallel when worth it.
fn for_each_chunk(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    match use_pool(out.len().div_ceil(chunk)) {
        true => out.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c)),
        false => out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c)),
    }
}

/// `out[i] = f(x[i])`.
pub(super) fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for_each_chunk(&mut out, ELEMS_PER_TASK, |t, out| {
        for (o, &x) in out.iter_mut().zip(&x[t * ELEMS_PER_TASK..]) {
            *o = f(x);
        }
    });
    out
}

/// `out[i] = f(a[i], b[i])`.
pub(super) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    for_each_chunk(&mut out, ELEMS_PER_TASK, |t, out| {
        let start = t * ELEMS_PER_TASK;
        for ((o, &a), &b) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            *o = f(a, b);
        }
    });
    out
}

/// A new `[rows, dim]` buffer whose row `i` is written by `f(i, row)`.
pub(super) fn build_rows(rows: usize, dim: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; rows * dim];
    let per_task = rows_per_task(dim);
    for_each_chunk(&mut out, per_task * dim, |t, chunk| {
        for (i, row) in chunk.chunks_mut(dim).enumerate() {
            f(t * per_task + i, row);
        }
    });
    out
}

/// Sum over rows of per-row contributions: `f(i, acc)` adds row `i`'s share into `acc` (length
/// `width`). Fixed blocks of rows are summed (in parallel when worth it), then the block sums in
/// order.
pub(super) fn sum_over_rows(
    rows: usize,
    dim: usize,
    width: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let per_task = rows_per_task(dim);
    let tasks = rows.div_ceil(per_task);
    let block_sum = |t: usize| {
        let mut acc = vec![0f32; width];
        for i in t * per_task..((t + 1) * per_task).min(rows) {
            f(i, &mut acc);
        }
        acc
    };
    let partials: Vec<Vec<f32>> = match use_pool(tasks) {
        true => (0..tasks).into_par_iter().map(block_sum).collect(),
        false => (0..tasks).map(block_sum).collect(),
    };
    let mut total = vec![0f32; width];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

/// `Σ f(a[i], b[i])`, accumulated in `LANES` interleaved partial sums.
#[inline(always)]
pub(super) fn sum_zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (a_main, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_main, b_tail) = b.split_at(a_main.len());
    for (a, b) in a_main.chunks_exact(LANES).zip(b_main.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += f(a[l], b[l]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(&a, &b)| f(a, b)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `Σ f(a[i])`, accumulated like [`sum_zip`].
#[inline(always)]
pub(super) fn sum_map(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    sum_zip(a, a, |a, _| f(a))
}

/// The largest element, ignoring NaN (callers let NaN through their own arithmetic instead).
#[inline(always)]
pub(super) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let (main, tail) = a.split_at(a.len() - a.len() % LANES);
    for c in main.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    acc.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// e^x for f32 with under 2 ulp error on [-87, 88], written so that loops over it vectorise
/// (`f32::exp` is a scalar libm call). Cephes' `expf` scheme: x = n·ln2 + r, |r| ≤ ln2/2,
/// a degree-7 polynomial for e^r, 2^n from the exponent bits. Inputs are clamped to [-87, 88]
/// (so e^-100 gives 1.6e-38 instead of a subnormal, e^100 gives 1.7e38 instead of inf); NaN stays NaN.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to an integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((t.to_bits() as i32 - ROUND_BITS + 127) << 23) as u32);
    p * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_2_ulp_of_f64_exp() {
        let mut worst = 0f64;
        for i in 0..=350_000 {
            let x = (-87.0 + i as f64 * (175.0 / 350_000.0)) as f32;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        // 2 ulp of f32 is 2·2^-23 ≈ 2.4e-7 relative.
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn exp_clamps_extremes_and_keeps_nan() {
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 2e-38);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn max_finds_the_largest_in_body_and_tail() {
        let v: Vec<f32> = (0..13).map(|i| (i as f32 - 6.0).abs()).collect();
        assert_eq!(max(&v), 6.0);
        let mut tail_max = v.clone();
        tail_max[12] = 9.0;
        assert_eq!(max(&tail_max), 9.0);
        tail_max[3] = f32::NAN;
        assert_eq!(max(&tail_max), 9.0);
    }

    #[test]
    fn sums_match_plain_sums() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((sum_zip(&a, &b, |x, y| x * y) - want).abs() < 1e-4);
        assert_eq!(sum_map(&a, |x| x), 105.0);
    }

    #[test]
    fn sum_over_rows_adds_every_row_once() {
        // 3000 rows of width 2 span several blocks: column 0 counts rows, column 1 sums indices.
        let got = sum_over_rows(3000, 8, 2, |i, acc| {
            acc[0] += 1.0;
            acc[1] += i as f32;
        });
        assert_eq!(got, vec![3000.0, (2999 * 3000 / 2) as f32]);
    }
}
