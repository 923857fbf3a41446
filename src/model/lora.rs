//! `LoraLinear`: a decoder Linear layer whose weight can be frozen, trained in place, or adapted by
//! a low-rank update `y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ` with A `[r, in]`, B `[out, r]` (PEFT's layout;
//! B starts at zero so the adapted model starts equal to the base).

use candle_core::{DType, Module, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::nn::{matmul_t, Linear};

/// The trainable low-rank pair of one layer.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub a: Var,
    pub b: Var,
    /// alpha / rank.
    pub scale: f64,
}

/// A Linear layer (no bias) of the language model, with its trainable state.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: Linear,
    adapter: Option<LoraAdapter>,
}

impl LoraLinear {
    pub fn new(base: Linear) -> LoraLinear {
        LoraLinear { base, adapter: None }
    }

    /// Drop any adapter and make the weight a plain tensor of `dtype` again (keeping its values).
    pub fn freeze(&mut self, dtype: DType) -> Result<()> {
        self.adapter = None;
        if self.base.weight().is_variable() {
            // A copy: the old `Var` may still be held (and stepped) by whoever trained it.
            let frozen = self.base.weight().detach().to_dtype(dtype)?.copy()?;
            self.base.set_weight(frozen)?;
        }
        Ok(())
    }

    /// Make the weight itself trainable: an f32 `Var` initialised from the current values.
    pub fn train_weight(&mut self) -> Result<Var> {
        let var = Var::from_tensor(&self.base.weight().to_dtype(DType::F32)?)?;
        self.base.set_weight(var.as_tensor().clone())?;
        Ok(var)
    }

    /// The weight `[out, in]` the layer applies, in f32: `W + (alpha/r)·B·A` with an adapter (the
    /// merged weight), else `W`.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let weight = self.base.weight().detach().to_dtype(DType::F32)?;
        match &self.adapter {
            None => Ok(weight),
            Some(adapter) => {
                let delta = adapter.b.as_tensor().detach().matmul(&adapter.a.as_tensor().detach())?;
                weight + (delta * adapter.scale)?
            }
        }
    }

    /// Attach a fresh adapter: A ~ U(±1/√in) (PEFT's `kaiming_uniform_(a=√5)`), B = 0, f32.
    pub fn attach_adapter(&mut self, rank: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Result<LoraAdapter> {
        let (out_dim, in_dim) = self.base.weight().dims2()?;
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a: Vec<f32> = (0..rank * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
        let device = self.base.weight().device();
        let a = Var::from_tensor(&Tensor::from_vec(a, (rank, in_dim), device)?)?;
        let b = Var::zeros((out_dim, rank), DType::F32, device)?;
        let adapter = LoraAdapter { a, b, scale: alpha / rank as f64 };
        self.adapter = Some(adapter.clone());
        Ok(adapter)
    }
}

impl Module for LoraLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.adapter {
            None => Ok(y),
            Some(adapter) => {
                let low = matmul_t(&matmul_t(x, adapter.a.as_tensor())?, adapter.b.as_tensor())?;
                y + (low * adapter.scale)?
            }
        }
    }
}
