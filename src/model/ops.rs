//! Fused, differentiable versions of the element-wise and normalisation ops the model uses, and
//! a matmul for frozen weights that builds no weight gradient.
//!
//! Why: candle's fused `softmax_last_dim`, `rms_norm` and `layer_norm` have no backward pass and
//! silently cut gradients; the differentiable compositions are slow on CPU (scalar tanh, many
//! element-wise passes); matmul's backward also builds the gradient of a frozen weight
//! (docs/design.md §10.1, §10.2, §10.5).
//!
//! Which code runs:
//! - `gelu_tanh`, `softcap`, `softmax_last_dim`, `rms_norm_one_plus`, `layer_norm`: when every input is f32
//!   on the CPU, a `CustomOp` with hand-written forward and backward kernels (rayon over rows,
//!   deterministic for any thread count). Otherwise (CUDA, bf16, f16) the reference definition in
//!   [`composed`], differentiable through candle's autograd; softmax and the norms compute in f32
//!   there and return the input dtype.
//! - `frozen_linear`: one `CustomOp` on every device and dtype (CPU and CUDA), through the
//!   backend's matmul.
//!
//! Non-contiguous inputs are made contiguous first. No second-order gradients.

pub mod composed;
mod cpu;
mod gelu;
mod layer_norm;
mod linear;
mod rms_norm;
mod softcap;
mod softmax;
#[cfg(test)]
mod testing;

use candle_core::{bail, DType, Result, Tensor};

/// Whether the CPU kernels handle these inputs: all f32 and on the CPU.
fn cpu_kernels_apply(inputs: &[&Tensor]) -> bool {
    inputs.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// A norm weight or bias must be a vector as long as x's rows.
fn check_norm_param(op: &str, what: &str, x: &Tensor, param: &Tensor) -> Result<()> {
    match x.dims().last() {
        Some(&d) if param.dims() == [d] => Ok(()),
        _ => bail!(
            "{op}: {what} has shape {:?}, expected one value per element of x's last dimension (x: {:?})",
            param.dims(),
            x.dims()
        ),
    }
}

/// tanh-approximated GELU, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (docs/design.md §2).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    match cpu_kernels_apply(&[x]) {
        true => x.contiguous()?.apply_op1(gelu::GeluTanh),
        false => composed::gelu_tanh(x),
    }
}

/// Logit soft-capping `cap·tanh(x/cap)` (Gemma 2), element-wise, in x's dtype.
pub fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    match cpu_kernels_apply(&[x]) {
        true => x.contiguous()?.apply_op1(softcap::Softcap { cap: cap as f32 }),
        false => composed::softcap(x, cap),
    }
}

/// Softmax over the last dimension, computed in f32, returned in x's dtype.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match cpu_kernels_apply(&[x]) {
        true => x.contiguous()?.apply_op1(softmax::SoftmaxLastDim),
        false => composed::softmax_last_dim(x),
    }
}

/// Gemma's RMSNorm over the last dimension, `x · rsqrt(mean(x²) + eps) · (1 + w)`, in f32,
/// returned in x's dtype; w is `[D]`. Gradients flow to x and w (each only if it is tracked).
pub fn rms_norm_one_plus(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    check_norm_param("rms_norm_one_plus", "weight", x, w)?;
    match cpu_kernels_apply(&[x, w]) {
        true => x.contiguous()?.apply_op2(&w.contiguous()?, rms_norm::RmsNormOnePlus { eps: eps as f32 }),
        false => composed::rms_norm_one_plus(x, w, eps),
    }
}

/// LayerNorm over the last dimension, `(x − mean) · rsqrt(var + eps) · w + b` (biased variance),
/// in f32, returned in x's dtype; w and b are `[D]`. Gradients flow to x, w and b (each only if
/// it is tracked).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    check_norm_param("layer_norm", "weight", x, w)?;
    check_norm_param("layer_norm", "bias", x, b)?;
    match cpu_kernels_apply(&[x, w, b]) {
        true => x.contiguous()?.apply_op3(
            &w.contiguous()?,
            &b.contiguous()?,
            layer_norm::LayerNorm { eps: eps as f32 },
        ),
        false => composed::layer_norm(x, w, b, eps),
    }
}

/// `x · Wᵀ (+ b)` for a frozen W `[out, in]` (and b `[out]`), x `[..., in]`: the backward pass
/// hands back only x's gradient, so no weight-sized gradient is ever built or stored.
///
/// W and b must not be tracked (a `Var` or computed from one): their gradient would be dropped
/// silently, so that is an error. Freeze a `Var` with `w.detach()`.
pub fn frozen_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (out_features, in_features) = w.dims2()?;
    if x.dims().last() != Some(&in_features) {
        bail!(
            "frozen_linear: x has shape {:?}, W has shape {:?}: x's last dimension must be W's second",
            x.dims(),
            w.dims()
        );
    }
    for (what, t) in std::iter::once(("weight", w)).chain(b.map(|b| ("bias", b))) {
        if t.track_op() {
            bail!("frozen_linear: the {what} is trainable (a Var or computed from one) and would get no gradient; use a matmul, or pass .detach() to freeze it");
        }
        if t.dtype() != x.dtype() {
            bail!("frozen_linear: x is {:?} but the {what} is {:?}; cast one of them", x.dtype(), t.dtype());
        }
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        None => x.apply_op2(&w, linear::FrozenLinear),
        Some(b) => {
            if b.dims() != [out_features] {
                bail!("frozen_linear: bias has shape {:?}, expected [{out_features}]", b.dims());
            }
            x.apply_op3(&w, &b.contiguous()?, linear::FrozenLinear)
        }
    }
}
