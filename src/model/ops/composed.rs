//! Reference definitions of the fused ops, built from candle's differentiable primitives.
//!
//! They define what the fused kernels must compute, serve as the fallback on devices and dtypes
//! the kernels do not cover (CUDA, bf16, f16), and are the baseline in `benches/ops.rs`.
//! Softmax and the norms compute in f32 and cast back to the input dtype, as HF does.

use candle_core::{DType, Result, Tensor, D};

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` through candle's tanh GELU (not `gelu_erf`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.gelu()
}

/// `cap·tanh(x/cap)` through candle's differentiable `tanh`.
pub fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    (x / cap)?.tanh()? * cap
}

/// Softmax over the last dimension, max-subtracted, in f32.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(&x.to_dtype(DType::F32)?, D::Minus1)?.to_dtype(x.dtype())
}

/// Gemma's RMSNorm: `x · rsqrt(mean(x²) + eps) · (1 + w)` over the last dimension, in f32.
pub fn rms_norm_one_plus(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F32)?;
    let inv_rms = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    let gain = (w.to_dtype(DType::F32)? + 1.0)?;
    xf.broadcast_mul(&inv_rms)?.broadcast_mul(&gain)?.to_dtype(x.dtype())
}

/// LayerNorm over the last dimension: `(x − mean) · rsqrt(var + eps) · w + b`, biased variance, in f32.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F32)?;
    let centred = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let inv_std = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    centred
        .broadcast_mul(&inv_std)?
        .broadcast_mul(&w.to_dtype(DType::F32)?)?
        .broadcast_add(&b.to_dtype(DType::F32)?)?
        .to_dtype(x.dtype())
}

/// `x · Wᵀ (+ b)` with candle's matmul, W `[out, in]`, x `[..., in]`. Its backward also builds
/// the gradients of W and b, wanted or not (docs/design.md §10.2).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.broadcast_matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}
