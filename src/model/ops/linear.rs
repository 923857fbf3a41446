//! `x · Wᵀ (+ b)` for a frozen weight: the backward pass returns only the input gradient.
//!
//! candle's matmul backward also builds the weight's gradient, kept in the `GradStore` under the
//! transposed view's id (docs/design.md §10.2); for a frozen weight that is wasted memory and
//! half the backward FLOPs. The forward here calls the backend's own matmul (and broadcast add for
//! the bias) on the storages, so one generic function serves CPU and CUDA, for every dtype the
//! backend's matmul takes; the backward is `grad · W` with ordinary tensor ops.

use candle_core::backend::BackendStorage;
use candle_core::op::Add;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor};

/// `(x · Wᵀ + b, output shape)` on any backend; x `[..., in]` contiguous, W `[out, in]`, b `[out]`.
fn forward<S: BackendStorage>(
    x: &S,
    xl: &Layout,
    w: &S,
    wl: &Layout,
    bias: Option<(&S, &Layout)>,
) -> Result<(S, Shape)> {
    let (out_features, in_features) = wl.shape().dims2()?;
    let rows = xl.shape().elem_count() / in_features;
    let x2 = match xl.is_contiguous() {
        true => Layout::contiguous_with_offset((rows, in_features), xl.start_offset()),
        false => return Err(Error::RequiresContiguous { op: "frozen-linear" }),
    };
    let y_layout = Layout::contiguous((rows, out_features));
    let mut y = x.matmul(w, (1, rows, out_features, in_features), &x2, &wl.transpose(0, 1)?)?;
    if let Some((b, bl)) = bias {
        y = y.binary_impl::<Add>(b, &y_layout, &bl.broadcast_as((rows, out_features))?)?;
    }
    let mut dims = xl.dims().to_vec();
    *dims.last_mut().expect("x was checked to have a last dimension") = out_features;
    Ok((y, Shape::from(dims)))
}

/// `grad · W`, reshaped like x: the only gradient this op hands back.
fn input_grad(x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let (out_features, _) = w.dims2()?;
    grad.reshape(((), out_features))?.matmul(w)?.reshape(x.shape())
}

/// The op, as a `CustomOp2` on `(x, W)` and a `CustomOp3` on `(x, W, b)`.
pub(super) struct FrozenLinear;

impl CustomOp2 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(xs, xl, ws, wl, None)
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        forward(xs, xl, ws, wl, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(input_grad(x, w, grad)?), None))
    }
}

impl CustomOp3 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear-bias"
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
        forward(xs, xl, ws, wl, Some((bs, bl)))
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
        bs: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        forward(xs, xl, ws, wl, Some((bs, bl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((Some(input_grad(x, w, grad)?), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{composed, frozen_linear, testing};
    use candle_core::{backprop::GradStore, DType, Result, Tensor, Var};

    /// GradStore has no length; its Debug output lists one `TensorId(..)` per entry.
    fn entries(grads: &GradStore) -> usize {
        format!("{grads:?}").matches("TensorId(").count()
    }

    #[test]
    fn forward_and_input_gradient_match_matmul() -> Result<()> {
        for (seed, dims) in testing::SHAPES.iter().enumerate() {
            let seed = seed as u64;
            let in_features = dims[dims.len() - 1];
            let x = testing::random(dims, seed)?;
            let w = testing::random(&[11, in_features], 10 + seed)?;
            let b = testing::random(&[11], 20 + seed)?;
            // Only x is an input of the comparison: W and b stay frozen constants.
            testing::assert_same_as(
                std::slice::from_ref(&x),
                |t| frozen_linear(&t[0], &w, None),
                |t| composed::linear(&t[0], &w, None),
            )?;
            testing::assert_same_as(
                &[x],
                |t| frozen_linear(&t[0], &w, Some(&b)),
                |t| composed::linear(&t[0], &w, Some(&b)),
            )?;
        }
        Ok(())
    }

    #[test]
    fn backward_matches_finite_differences() -> Result<()> {
        let (w, b) = (testing::random(&[5, 7], 8)?, testing::random(&[5], 9)?);
        testing::assert_finite_differences(&[testing::random(&[2, 3, 7], 7)?], |t| {
            frozen_linear(&t[0], &w, Some(&b))
        })
    }

    #[test]
    fn builds_no_weight_gradient() -> Result<()> {
        let x = Var::from_tensor(&testing::random(&[2, 3, 8], 1)?)?;
        let (w, b) = (testing::random(&[4, 8], 2)?, testing::random(&[4], 3)?);
        let loss = |y: Tensor| -> Result<GradStore> { y.sqr()?.sum_all()?.backward() };

        let fused = loss(frozen_linear(x.as_tensor(), &w, Some(&b))?)?;
        let plain = loss(composed::linear(x.as_tensor(), &w, Some(&b))?)?;
        assert!(fused.get(&w).is_none() && fused.get(&b).is_none());
        assert!(entries(&fused) < entries(&plain), "fused {fused:?}\nplain {plain:?}");
        testing::assert_close(
            fused.get(x.as_tensor()).expect("x gradient"),
            plain.get(x.as_tensor()).expect("x gradient"),
            testing::FWD_TOL,
        )
    }

    #[test]
    fn trainable_weight_is_an_error() -> Result<()> {
        let x = testing::random(&[3, 8], 1)?;
        let w = Var::from_tensor(&testing::random(&[4, 8], 2)?)?;
        let err = frozen_linear(&x, w.as_tensor(), None).unwrap_err();
        assert!(err.to_string().contains("trainable"), "{err}");
        assert!(frozen_linear(&x, &w.as_tensor().detach(), None).is_ok());
        Ok(())
    }

    #[test]
    fn shape_and_dtype_mismatches_are_errors() -> Result<()> {
        let x = testing::random(&[3, 8], 1)?;
        let w = testing::random(&[4, 8], 2)?;
        assert!(frozen_linear(&x, &w.t()?, None).is_err());
        assert!(frozen_linear(&x, &w, Some(&testing::random(&[5], 3)?)).is_err());
        assert!(frozen_linear(&x, &w.to_dtype(DType::BF16)?, None).is_err());
        Ok(())
    }

    #[test]
    fn non_contiguous_input_and_half_precision() -> Result<()> {
        let w = testing::random(&[4, 6], 2)?;
        let x = testing::random(&[6, 3], 1)?.t()?;
        testing::assert_close(
            &frozen_linear(&x, &w, None)?,
            &composed::linear(&x, &w, None)?,
            testing::FWD_TOL,
        )?;
        // Within one unit of the output's last place: f16 keeps 11 significant bits, bf16 8.
        for (dtype, tol) in [(DType::F16, 2e-3), (DType::BF16, 8e-3)] {
            let (xh, wh) = (x.to_dtype(dtype)?, w.to_dtype(dtype)?);
            let y = frozen_linear(&xh, &wh, None)?;
            assert_eq!(y.dtype(), dtype);
            testing::assert_close(&y, &composed::linear(&xh, &wh, None)?, tol)?;
        }
        Ok(())
    }
}
