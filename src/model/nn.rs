//! Differentiable building blocks shared by both towers: a Linear layer over a frozen or trainable
//! weight, the norms, softmax, RoPE, tanh-GELU and multi-head attention.
//!
//! Activations are f32 everywhere; a frozen weight stored in another dtype (bf16/f16 on GPU) is used
//! in its own dtype and the product cast back to f32. The element-wise ops and the frozen matmul are
//! the fused kernels of [`super::ops`] (own backward passes; a frozen weight gets no gradient);
//! RoPE is candle's differentiable `rope_slow` (its fused `rope` has no backward).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::ops;

/// Whether a Linear layer has a bias vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    With,
    Without,
}

/// `y = x·Wᵀ (+ b)` with W `[out, in]` as PyTorch stores it.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Read `{vb}.weight` `[out, in]` (and `{vb}.bias` `[out]`).
    pub fn new(in_dim: usize, out_dim: usize, bias: Bias, vb: VarBuilder) -> Result<Linear> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = match bias {
            Bias::With => Some(vb.get(out_dim, "bias")?),
            Bias::Without => None,
        };
        Ok(Linear { weight, bias })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Replace the weight (same shape), e.g. by a trainable `Var`'s tensor.
    pub fn set_weight(&mut self, weight: Tensor) -> Result<()> {
        if weight.shape() != self.weight.shape() {
            candle_core::bail!("set_weight: shape {:?} != {:?}", weight.shape(), self.weight.shape())
        }
        self.weight = weight;
        Ok(())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.weight.is_variable() {
            let y = matmul_t(x, &self.weight)?;
            match &self.bias {
                Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
                None => Ok(y),
            }
        } else {
            frozen_linear(x, &self.weight, self.bias.as_ref())
        }
    }
}

/// `x·Wᵀ` over the last dimension of `x` (any leading dims), in `x`'s dtype, with gradients for both.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out_dim, in_dim) = w.dims2()?;
    let mut out_shape = x.dims().to_vec();
    let rows = x.elem_count() / in_dim;
    *out_shape.last_mut().expect("matmul_t: x has at least one dimension") = out_dim;
    x.reshape((rows, in_dim))?.matmul(&w.t()?)?.reshape(out_shape)
}

/// `x·Wᵀ (+ b)` for a frozen W (and b, same dtype): computed in W's dtype, returned in `x`'s dtype;
/// the backward pass builds only `x`'s gradient.
pub fn frozen_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    ops::frozen_linear(&x.to_dtype(w.dtype())?, w, b)?.to_dtype(x.dtype())
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    ops::softmax_last_dim(x)
}

/// Log-softmax over the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(x, D::Minus1)
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (transformers' `gelu_pytorch_tanh`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    ops::gelu_tanh(x)
}

/// Gemma's RMSNorm over the last dim with the zero-centred weight: `x·rsqrt(mean(x²)+eps)·(1+w)`,
/// all in f32.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    ops::rms_norm_one_plus(&x.to_dtype(DType::F32)?, &weight.to_dtype(DType::F32)?, eps)
}

/// LayerNorm over the last dim with scale and bias, in f32.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    ops::layer_norm(&f32(x)?, &f32(weight)?, &f32(bias)?, eps)
}

/// Rotary position embedding, halves layout: `x` `[B, H, T, hd]`; `cos`/`sin` `[T, hd/2]` or any
/// shape broadcasting to `[B, H, T, hd/2]`: `(x1·cos − x2·sin, x2·cos + x1·sin)` for the halves
/// x1, x2 (the same as candle's `rope_slow`, whose fused `rope` has no backward).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let (x1, x2) = (x.narrow(D::Minus1, 0, half)?, x.narrow(D::Minus1, half, half)?);
    let first = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let second = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[first, second], D::Minus1)
}

/// The cos/sin tables `[T, head_dim/2]` for positions `0..len`, computed in f32:
/// angle(p, i) = p / θ^(2i/head_dim).
pub fn rope_tables(
    len: usize,
    head_dim: usize,
    theta: f64,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let theta = theta as f32;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
    let angles: Vec<f32> = (0..len).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f)).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    Ok((Tensor::from_vec(cos, (len, half), device)?, Tensor::from_vec(sin, (len, half), device)?))
}

/// `cap·tanh(x/cap)` element-wise (Gemma 2's logit soft-capping).
pub fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    ops::softcap(x, cap)
}

/// How attention scores are formed from `q·kᵀ`: times `scale`, then soft-capped to
/// `cap·tanh(s/cap)` when `softcap` is set (Gemma 2), before the mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnLogits {
    pub scale: f64,
    pub softcap: Option<f64>,
}

impl AttnLogits {
    /// `1/√head_dim`, no soft-cap (SigLIP, Gemma 1).
    pub fn standard(head_dim: usize) -> AttnLogits {
        AttnLogits { scale: 1.0 / (head_dim as f64).sqrt(), softcap: None }
    }
}

/// Scaled dot-product attention with grouped key/value heads.
///
/// `q` `[B, H, Tq, hd]`, `k`/`v` `[B, KV, Tk, hd]` with `H = KV·G`: query head `h` uses key/value
/// head `h / G` (the same as repeating each KV head G times). `mask` is additive `[B, 1, Tq, Tk]`
/// (0 where allowed, a large negative number where not), added after `logits` shaped the scores.
/// Returns `[B, Tq, H·hd]` (index `h·hd + d`).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    logits: AttnLogits,
) -> Result<Tensor> {
    let (b, h, tq, hd) = q.dims4()?;
    let (kv, tk) = (k.dim(1)?, k.dim(2)?);
    let groups = h / kv;
    let q = q.contiguous()?.reshape((b, kv, groups * tq, hd))?;
    let scores = (q.matmul(&k.contiguous()?.t()?)? * logits.scale)?.reshape((b, h, tq, tk))?;
    let scores = match logits.softcap {
        Some(cap) => softcap(&scores, cap)?,
        None => scores,
    };
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let probs = softmax(&scores)?.reshape((b, kv, groups * tq, tk))?;
    let out = probs.matmul(&v.contiguous()?)?.reshape((b, h, tq, hd))?;
    out.transpose(1, 2)?.reshape((b, tq, h * hd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    #[test]
    fn rms_norm_uses_one_plus_weight() -> Result<()> {
        let x = Tensor::new(&[[3f32, 4.0]], &Device::Cpu)?;
        let w = Tensor::new(&[0f32, 1.0], &Device::Cpu)?;
        // mean(x²) = 12.5, so x/√12.5 = [0.8485, 1.1314]; gains (1+w) = [1, 2].
        let y = rms_norm(&x, &w, 0.0)?.to_vec2::<f32>()?;
        assert!((y[0][0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6);
        assert!((y[0][1] - 8.0 / 12.5f32.sqrt()).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn rope_rotates_halves_by_position_angles() -> Result<()> {
        // head_dim 4: pairs (x0, x2) and (x1, x3) rotate by p·1 and p·θ^(-1/2).
        let (cos, sin) = rope_tables(3, 4, 100.0, &Device::Cpu)?;
        let x = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &Device::Cpu)?.reshape((1, 1, 1, 4))?;
        let x = x.broadcast_as((1, 1, 3, 4))?;
        let y = rope(&x, &cos, &sin)?;
        let p = 2.0f32;
        let (a0, a1) = (p, p / 10.0);
        let want = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        let got = y.i((0, 0, 2))?.to_vec1::<f32>()?;
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn grouped_attention_equals_repeated_kv_heads() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 4, 5, 3), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, 2, 5, 3), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 2, 5, 3), &dev)?;
        let got = attention(&q, &k, &v, None, AttnLogits::standard(3))?;
        // Reference: repeat each KV head twice (head h uses kv head h / 2), plain per-head softmax.
        let rep = |t: &Tensor| -> Result<Tensor> {
            Tensor::cat(&[t.i((.., 0..1))?, t.i((.., 0..1))?, t.i((.., 1..2))?, t.i((.., 1..2))?], 1)
        };
        let (kr, vr) = (rep(&k)?, rep(&v)?);
        let scores = (q.matmul(&kr.t()?)? / 3f64.sqrt())?;
        let want = softmax(&scores)?.matmul(&vr)?.transpose(1, 2)?.reshape((2, 5, 12))?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "max diff {diff}");
        Ok(())
    }
}
