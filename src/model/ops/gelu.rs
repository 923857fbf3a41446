//! Fused tanh-GELU for f32 on CPU, forward and backward.
//!
//! With `u = √(2/π)·(x + 0.044715·x³)`, `0.5·(1 + tanh(u)) = σ(2u)`, so
//! `gelu(x) = x·σ(2u)` and `gelu'(x) = σ(2u) + 2·x·σ(2u)·(1 − σ(2u))·u'(x)`:
//! one vectorisable exp per element instead of a scalar tanh.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;

/// `(σ(2u), u')` at `x`.
#[inline(always)]
fn gate_and_slope(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * x * (1.0 + CUBIC * x2);
    let gate = 1.0 / (1.0 + cpu::exp(-2.0 * u));
    (gate, SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x2))
}

/// The forward op; its `bwd` applies [`GeluTanhBackward`].
pub(super) struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_data(storage, layout, self.name())?;
        let y = cpu::map(x, |x| x * gate_and_slope(x).0);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluTanhBackward)?))
    }
}

/// `grad · gelu'(x)` from `(x, grad)`.
struct GeluTanhBackward;

impl CustomOp2 for GeluTanhBackward {
    fn name(&self) -> &'static str {
        "gelu-tanh-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_data(xs, xl, self.name())?;
        let g = cpu::f32_data(gs, gl, self.name())?;
        let dx = cpu::zip_map(x, g, |x, g| {
            let (gate, slope) = gate_and_slope(x);
            g * (gate + 2.0 * x * gate * (1.0 - gate) * slope)
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, gelu_tanh, testing};
    use candle_core::{Device, Result, Tensor};

    /// The definition spelled out in primitive ops, independent of candle's `gelu`.
    fn by_formula(x: &Tensor) -> Result<Tensor> {
        let inner = ((x + (x.sqr()? * x)?.affine(0.044715, 0.0)?)? * (2.0 / std::f64::consts::PI).sqrt())?;
        (x * 0.5)? * (inner.tanh()? + 1.0)?
    }

    #[test]
    fn known_values() -> Result<()> {
        // gelu_tanh(1) = 0.5·(1 + tanh(0.7978846·1.044715)) = 0.8411920; gelu_tanh(-2) = -0.0454023.
        let x = Tensor::new(&[0f32, 1.0, -2.0, 30.0, -30.0], &Device::Cpu)?;
        let got = gelu_tanh(&x)?.to_vec1::<f32>()?;
        let want = [0.0, 0.841_192, -0.045_402_3, 30.0, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_formula_and_composed() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let x = (testing::random(dims, seed as u64)? * 2.0)?;
            testing::assert_same_as(std::slice::from_ref(&x), |t| gelu_tanh(&t[0]), |t| by_formula(&t[0]))?;
            testing::assert_same_as(&[x], |t| gelu_tanh(&t[0]), |t| composed::gelu_tanh(&t[0]))?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        testing::assert_finite_differences(&[testing::random(&[3, 7], 7)?], |t| gelu_tanh(&t[0]))
    }

    #[test]
    fn non_contiguous_input() -> Result<()> {
        let x = testing::random(&[5, 4, 6], 3)?.transpose(0, 2)?;
        testing::assert_same_as(&[x], |t| gelu_tanh(&t[0]), |t| by_formula(&t[0]))
    }
}
