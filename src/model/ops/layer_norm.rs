//! Fused LayerNorm with weight and bias, for f32 on CPU, forward and backward.
//!
//! Per row, with `μ = mean(x)`, `r = 1/√(mean((x − μ)²) + eps)`, `x̂ = (x − μ)·r`, `g' = g·w`:
//! `y = x̂·w + b`, `dx = r·(g' − mean(g') − x̂·mean(g'·x̂))`, `dw = Σ_rows g·x̂`, `db = Σ_rows g`.
//! Statistics are recomputed in the backward pass instead of being stored.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu;

/// `(μ, r)` of one row.
#[inline(always)]
fn mean_and_inv_std(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = cpu::sum_map(x, |v| v) / n;
    let var = cpu::sum_map(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The forward op on `(x, w, b)`.
pub(super) struct LayerNorm {
    pub eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_data(xs, xl, self.name())?;
        let w = cpu::f32_data(ws, wl, self.name())?;
        let b = cpu::f32_data(bs, bl, self.name())?;
        let dim = cpu::last_dim(xl, self.name())?;
        let y = cpu::build_rows(x.len() / dim, dim, |i, out| {
            let x = &x[i * dim..(i + 1) * dim];
            let (mean, r) = mean_and_inv_std(x, self.eps);
            for (((o, &x), &w), &b) in out.iter_mut().zip(x).zip(w).zip(b) {
                *o = (x - mean) * r * w + b;
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let eps = self.eps;
        let dx = match x.track_op() {
            true => Some(x.apply_op3_no_bwd(w, &grad, &LayerNormInputGrad { eps })?),
            false => None,
        };
        if !w.track_op() && !b.track_op() {
            return Ok((dx, None, None));
        }
        // Row 0 holds dw, row 1 db.
        let dwb = x.apply_op2_no_bwd(&grad, &LayerNormParamGrads { eps })?;
        let dw = w.track_op().then(|| dwb.get(0)).transpose()?;
        let db = b.track_op().then(|| dwb.get(1)).transpose()?;
        Ok((dx, dw, db))
    }
}

/// `dx` from `(x, w, grad)`.
struct LayerNormInputGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormInputGrad {
    fn name(&self) -> &'static str {
        "layer-norm-input-grad"
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
        let x = cpu::f32_data(xs, xl, self.name())?;
        let w = cpu::f32_data(ws, wl, self.name())?;
        let g = cpu::f32_data(gs, gl, self.name())?;
        let dim = cpu::last_dim(xl, self.name())?;
        let n = dim as f32;
        let dx = cpu::build_rows(x.len() / dim, dim, |i, out| {
            let (x, g) = (&x[i * dim..(i + 1) * dim], &g[i * dim..(i + 1) * dim]);
            let (mean, r) = mean_and_inv_std(x, self.eps);
            for ((o, &g), &w) in out.iter_mut().zip(g).zip(w) {
                *o = g * w;
            }
            let mean_g = cpu::sum_map(out, |gw| gw) / n;
            let mean_gx = cpu::sum_zip(out, x, |gw, x| gw * (x - mean)) * r / n;
            for (o, &x) in out.iter_mut().zip(x) {
                *o = r * (*o - mean_g - (x - mean) * r * mean_gx);
            }
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

/// `[dw; db]` as a `[2, D]` tensor, from `(x, grad)`.
struct LayerNormParamGrads {
    eps: f32,
}

impl CustomOp2 for LayerNormParamGrads {
    fn name(&self) -> &'static str {
        "layer-norm-param-grads"
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
        let sums = cpu::sum_over_rows(x.len() / dim, dim, 2 * dim, |i, acc| {
            let (x, g) = (&x[i * dim..(i + 1) * dim], &g[i * dim..(i + 1) * dim]);
            let (mean, r) = mean_and_inv_std(x, self.eps);
            let (dw, db) = acc.split_at_mut(dim);
            for (((dw, db), &x), &g) in dw.iter_mut().zip(db).zip(x).zip(g) {
                *dw += g * (x - mean) * r;
                *db += g;
            }
        });
        Ok((CpuStorage::F32(sums), Shape::from((2, dim))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, layer_norm, testing};
    use candle_core::{Device, Result, Tensor};

    const EPS: f64 = 1e-6;

    #[test]
    fn known_values() -> Result<()> {
        // Row [1, 2, 3, 6]: mean 3, var (4 + 1 + 0 + 9)/4 = 3.5, x̂ = [-2, -1, 0, 3]/1.8708287.
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 6.0]], &Device::Cpu)?;
        let w = Tensor::new(&[1f32, 2.0, 1.0, 1.0], &Device::Cpu)?;
        let b = Tensor::new(&[0f32, 0.0, 5.0, 0.0], &Device::Cpu)?;
        let got = layer_norm(&x, &w, &b, EPS)?.to_vec2::<f32>()?;
        let want = [-1.069_045, -1.069_045, 5.0, 1.603_567_5];
        for (g, w) in got[0].iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_composed() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let d = &dims[dims.len() - 1..];
            let x = (testing::random(dims, seed as u64)? + 1.5)?;
            let w = testing::random(d, 10 + seed as u64)?;
            let b = testing::random(d, 20 + seed as u64)?;
            testing::assert_same_as(
                &[x, w, b],
                |t| layer_norm(&t[0], &t[1], &t[2], EPS),
                |t| composed::layer_norm(&t[0], &t[1], &t[2], EPS),
            )?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        let inputs = [testing::random(&[3, 7], 7)?, testing::random(&[7], 8)?, testing::random(&[7], 9)?];
        testing::assert_finite_differences(&inputs, |t| layer_norm(&t[0], &t[1], &t[2], EPS))
    }

    #[test]
    fn only_tracked_inputs_get_gradients() -> Result<()> {
        let x = candle_core::Var::from_tensor(&testing::random(&[4, 8], 1)?)?;
        let w = testing::random(&[8], 2)?;
        let b = candle_core::Var::from_tensor(&testing::random(&[8], 3)?)?;
        let grads = layer_norm(x.as_tensor(), &w, b.as_tensor(), EPS)?.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none());
        // d(Σy)/db = number of rows.
        assert_eq!(grads.get(b.as_tensor()).expect("bias gradient").to_vec1::<f32>()?, vec![4.0; 8]);
        assert!(grads.get(x.as_tensor()).is_some());
        Ok(())
    }

    #[test]
    fn gradients_are_bitwise_equal_for_any_thread_count() -> Result<()> {
        // 600 rows of 64 span several blocks of the cross-row sums.
        let grads_with = |threads: usize| -> Result<Vec<Vec<u32>>> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            pool.install(|| {
                let inputs =
                    [testing::random(&[600, 64], 1)?, testing::random(&[64], 2)?, testing::random(&[64], 3)?];
                let (_, grads) = testing::grads_of(&inputs, |t| layer_norm(&t[0], &t[1], &t[2], EPS))?;
                grads
                    .iter()
                    .map(|g| Ok(g.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect()))
                    .collect()
            })
        };
        assert!(grads_with(1)? == grads_with(3)?);
        Ok(())
    }

    #[test]
    fn non_contiguous_input() -> Result<()> {
        let x = testing::random(&[6, 3, 5], 3)?.transpose(0, 2)?;
        let (w, b) = (testing::random(&[6], 4)?, testing::random(&[6], 5)?);
        testing::assert_same_as(
            &[x, w, b],
            |t| layer_norm(&t[0], &t[1], &t[2], EPS),
            |t| composed::layer_norm(&t[0], &t[1], &t[2], EPS),
        )
    }
}
