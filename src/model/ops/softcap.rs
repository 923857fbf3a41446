//! Fused logit soft-capping `y = cap·tanh(x/cap)` for f32 on CPU, forward and backward (Gemma 2's
//! `attn_logit_softcapping` and `final_logit_softcapping`).
//!
//! Backward from the saved output: `dy/dx = 1 − tanh²(x/cap) = 1 − (y/cap)²`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;

/// The forward op; its `bwd` applies [`SoftcapBackward`] to the output it saved.
pub(super) struct Softcap {
    pub(super) cap: f32,
}

impl CustomOp1 for Softcap {
    fn name(&self) -> &'static str {
        "softcap"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_data(storage, layout, self.name())?;
        let cap = self.cap;
        // x / cap, not x · (1/cap): the rounding transformers gets.
        let y = cpu::map(x, |x| (x / cap).tanh() * cap);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SoftcapBackward { cap: self.cap })?))
    }
}

/// `grad · (1 − (y/cap)²)` from `(y, grad)`.
struct SoftcapBackward {
    cap: f32,
}

impl CustomOp2 for SoftcapBackward {
    fn name(&self) -> &'static str {
        "softcap-backward"
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
        let cap = self.cap;
        let dx = cpu::zip_map(y, g, |y, g| {
            let t = y / cap;
            g * (1.0 - t * t)
        });
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, softcap, testing};
    use candle_core::{Device, Result, Tensor};

    #[test]
    fn known_values() -> Result<()> {
        // 2·tanh(1/2) = 0.9242343; 50·tanh(100/50) = 48.201379; odd, 0 ↦ 0.
        let x = Tensor::new(&[0f32, 1.0, -1.0], &Device::Cpu)?;
        let got = softcap(&x, 2.0)?.to_vec1::<f32>()?;
        for (g, w) in got.iter().zip([0.0, 0.924_234_3, -0.924_234_3]) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        let big = softcap(&Tensor::new(&[100f32], &Device::Cpu)?, 50.0)?.to_vec1::<f32>()?;
        assert!((big[0] - 48.201_38).abs() < 1e-4, "{big:?}");
        Ok(())
    }

    #[test]
    fn matches_composed() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let x = (testing::random(dims, seed as u64)? * 3.0)?;
            testing::assert_same_as(&[x], |t| softcap(&t[0], 1.5), |t| composed::softcap(&t[0], 1.5))?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        // cap 1.5 on inputs within ±2 is far from linear; cap 50 on inputs within ±100 likewise.
        testing::assert_finite_differences(&[testing::random(&[3, 7], 11)?], |t| softcap(&t[0], 1.5))?;
        let wide = (testing::random(&[2, 9], 12)? * 50.0)?;
        testing::assert_finite_differences(&[wide], |t| softcap(&t[0], 50.0))
    }

    #[test]
    fn non_contiguous_input() -> Result<()> {
        let x = testing::random(&[5, 4, 6], 3)?.transpose(0, 2)?;
        testing::assert_same_as(&[x], |t| softcap(&t[0], 1.5), |t| composed::softcap(&t[0], 1.5))
    }
}
