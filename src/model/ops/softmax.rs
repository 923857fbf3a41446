//! Fused softmax over the last dimension for f32 on CPU, forward and backward.
//!
//! Forward per row: `y = e^(x − max) / Σ e^(x − max)`. Backward from the saved output:
//! `dx = y · (g − Σ g·y)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;

/// The forward op; its `bwd` applies [`SoftmaxBackward`] to the output it saved.
pub(super) struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_data(storage, layout, self.name())?;
        let dim = cpu::last_dim(layout, self.name())?;
        let y = cpu::build_rows(x.len() / dim, dim, |i, out| {
            let row = &x[i * dim..(i + 1) * dim];
            let max = cpu::max(row);
            for (o, &x) in out.iter_mut().zip(row) {
                *o = cpu::exp(x - max);
            }
            let scale = 1.0 / cpu::sum_map(out, |e| e);
            for o in out.iter_mut() {
                *o *= scale;
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?))
    }
}

/// `y · (g − Σ g·y)` per row, from `(y, grad)`.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-last-dim-backward"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = cpu::f32_data(ys, yl, self.name())?;
        let g = cpu::f32_data(gs, gl, self.name())?;
        let dim = cpu::last_dim(yl, self.name())?;
        let dx = cpu::build_rows(y.len() / dim, dim, |i, out| {
            let (y, g) = (&y[i * dim..(i + 1) * dim], &g[i * dim..(i + 1) * dim]);
            let dot = cpu::sum_zip(g, y, |g, y| g * y);
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = y * (g - dot);
            }
        });
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, softmax_last_dim, testing};
    use candle_core::{DType, Device, Result, Tensor};

    #[test]
    fn known_values() -> Result<()> {
        // softmax([1, 2, 3]) = e^k / (e + e² + e³) = [0.0900306, 0.2447285, 0.6652410];
        // a shift by 1000 changes nothing (max subtraction); a masked entry gets 0.
        let x =
            Tensor::new(&[[1f32, 2.0, 3.0], [1001.0, 1002.0, 1003.0], [0.0, -3.0e38, 0.0]], &Device::Cpu)?;
        let got = softmax_last_dim(&x)?.to_vec2::<f32>()?;
        let want =
            [[0.090_030_6, 0.244_728_5, 0.665_241], [0.090_030_6, 0.244_728_5, 0.665_241], [0.5, 0.0, 0.5]];
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_composed() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let x = (testing::random(dims, seed as u64)? * 4.0)?;
            testing::assert_same_as(
                &[x],
                |t| softmax_last_dim(&t[0]),
                |t| composed::softmax_last_dim(&t[0]),
            )?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        testing::assert_finite_differences(&[testing::random(&[3, 7], 7)?], |t| softmax_last_dim(&t[0]))
    }

    #[test]
    fn non_contiguous_input() -> Result<()> {
        let x = testing::random(&[5, 4, 6], 3)?.transpose(1, 2)?;
        testing::assert_same_as(&[x], |t| softmax_last_dim(&t[0]), |t| composed::softmax_last_dim(&t[0]))
    }

    #[test]
    fn nan_reaches_the_output() -> Result<()> {
        let x = Tensor::new(&[[0f32, f32::NAN, 1.0]], &Device::Cpu)?;
        assert!(softmax_last_dim(&x)?.to_vec2::<f32>()?[0].iter().all(|v| v.is_nan()));
        Ok(())
    }

    #[test]
    fn bf16_input_computes_in_f32_and_keeps_its_dtype() -> Result<()> {
        let x = testing::random(&[4, 9], 5)?.to_dtype(DType::BF16)?;
        let y = softmax_last_dim(&x)?;
        assert_eq!(y.dtype(), DType::BF16);
        // Only the output is rounded to bf16 (8 significant bits): within 2^-8 of the f32 result.
        testing::assert_close(&y, &softmax_last_dim(&x.to_dtype(DType::F32)?)?, 4e-3)
    }
}
