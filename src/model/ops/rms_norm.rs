//! Fused Gemma RMSNorm with a (1 + w) gain, for f32 on CPU, forward and backward.
//!
//! Per row, with `r = 1/√(mean(x²) + eps)`, `x̂ = x·r`, `g' = g·(1 + w)`:
//! `y = x̂·(1 + w)`, `dx = r·(g' − x̂·mean(g'·x̂))`, `dw = Σ_rows g·x̂`.
//! Statistics are recomputed in the backward pass instead of being stored.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor};

use super::cpu;

/// `1/√(mean(x²) + eps)` of one row.
#[inline(always)]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (cpu::sum_map(x, |v| v * v) / x.len() as f32 + eps).sqrt()
}

/// The rows of `x` and the norm weight, checked against each other.
fn rows_and_weight<'a>(
    op: &'static str,
    xs: &'a CpuStorage,
    xl: &Layout,
    ws: &'a CpuStorage,
    wl: &Layout,
) -> Result<(&'a [f32], &'a [f32], usize)> {
    let (x, w, dim) = (cpu::f32_data(xs, xl, op)?, cpu::f32_data(ws, wl, op)?, cpu::last_dim(xl, op)?);
    if w.len() != dim {
        return Err(Error::Msg(format!("{op}: weight has {} elements, rows have {dim}", w.len())));
    }
    Ok((x, w, dim))
}

/// The forward op on `(x, w)`.
pub(super) struct RmsNormOnePlus {
    pub eps: f32,
}

impl CustomOp2 for RmsNormOnePlus {
    fn name(&self) -> &'static str {
        "rms-norm-one-plus"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, dim) = rows_and_weight(self.name(), xs, xl, ws, wl)?;
        let y = cpu::build_rows(x.len() / dim, dim, |i, out| {
            let x = &x[i * dim..(i + 1) * dim];
            let r = inv_rms(x, self.eps);
            for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
                *o = x * r * (1.0 + w);
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let eps = self.eps;
        let dx = match x.track_op() {
            true => Some(x.apply_op3_no_bwd(w, &grad, &RmsNormInputGrad { eps })?),
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(x.apply_op2_no_bwd(&grad, &RmsNormWeightGrad { eps })?),
            false => None,
        };
        Ok((dx, dw))
    }
}

/// `dx` from `(x, w, grad)`.
struct RmsNormInputGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormInputGrad {
    fn name(&self) -> &'static str {
        "rms-norm-one-plus-input-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, dim) = rows_and_weight(self.name(), xs, xl, ws, wl)?;
        let g = cpu::f32_data(gs, gl, self.name())?;
        let dx = cpu::build_rows(x.len() / dim, dim, |i, out| {
            let (x, g) = (&x[i * dim..(i + 1) * dim], &g[i * dim..(i + 1) * dim]);
            let r = inv_rms(x, self.eps);
            for ((o, &g), &w) in out.iter_mut().zip(g).zip(w) {
                *o = g * (1.0 + w);
            }
            // mean(g'·x̂) · r, so that x̂·mean(g'·x̂) = x·c below.
            let c = cpu::sum_zip(out, x, |gw, x| gw * x) * r * r / dim as f32;
            for (o, &x) in out.iter_mut().zip(x) {
                *o = r * (*o - x * c);
            }
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

/// `dw = Σ_rows g·x̂` from `(x, grad)`.
struct RmsNormWeightGrad {
    eps: f32,
}

impl CustomOp2 for RmsNormWeightGrad {
    fn name(&self) -> &'static str {
        "rms-norm-one-plus-weight-grad"
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
        let dim = cpu::last_dim(xl, self.name())?;
        let dw = cpu::sum_over_rows(x.len() / dim, dim, dim, |i, acc| {
            let (x, g) = (&x[i * dim..(i + 1) * dim], &g[i * dim..(i + 1) * dim]);
            let r = inv_rms(x, self.eps);
            for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                *a += g * x * r;
            }
        });
        Ok((CpuStorage::F32(dw), Shape::from(dim)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, rms_norm_one_plus, testing};
    use candle_core::{Device, Result, Tensor};

    const EPS: f64 = 1e-6;

    #[test]
    fn known_values() -> Result<()> {
        // Row [3, 4]: mean(x²) = 12.5, rms = 3.5355339; gains 1 + [0, 1] → [0.8485281, 2.2627417].
        let x = Tensor::new(&[[3f32, 4.0]], &Device::Cpu)?;
        let w = Tensor::new(&[0f32, 1.0], &Device::Cpu)?;
        let got = rms_norm_one_plus(&x, &w, EPS)?.to_vec2::<f32>()?;
        assert!((got[0][0] - 0.848_528_1).abs() < 1e-6 && (got[0][1] - 2.262_741_7).abs() < 1e-6, "{got:?}");
        Ok(())
    }

    #[test]
    fn matches_composed() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let x = testing::random(dims, seed as u64)?;
            let w = (testing::random(&dims[dims.len() - 1..], 10 + seed as u64)? * 0.5)?;
            testing::assert_same_as(
                &[x, w],
                |t| rms_norm_one_plus(&t[0], &t[1], EPS),
                |t| composed::rms_norm_one_plus(&t[0], &t[1], EPS),
            )?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        let inputs = [testing::random(&[3, 7], 7)?, testing::random(&[7], 8)?];
        testing::assert_finite_differences(&inputs, |t| rms_norm_one_plus(&t[0], &t[1], EPS))
    }

    #[test]
    fn frozen_weight_gets_no_gradient_and_input_still_does() -> Result<()> {
        let x = candle_core::Var::from_tensor(&testing::random(&[4, 8], 1)?)?;
        let w = testing::random(&[8], 2)?;
        let grads = rms_norm_one_plus(x.as_tensor(), &w, EPS)?.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none());
        assert!(grads.get(x.as_tensor()).is_some());
        Ok(())
    }

    #[test]
    fn non_contiguous_input() -> Result<()> {
        let x = testing::random(&[6, 3, 5], 3)?.transpose(0, 2)?;
        let w = testing::random(&[6], 4)?;
        testing::assert_same_as(
            &[x, w],
            |t| rms_norm_one_plus(&t[0], &t[1], EPS),
            |t| composed::rms_norm_one_plus(&t[0], &t[1], EPS),
        )
    }

    #[test]
    fn wrong_weight_length_is_an_error() -> Result<()> {
        let err =
            rms_norm_one_plus(&testing::random(&[2, 4], 1)?, &testing::random(&[5], 2)?, EPS).unwrap_err();
        assert!(err.to_string().contains("weight"), "{err}");
        Ok(())
    }
}
