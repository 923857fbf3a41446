//! `LoraLinear`: a decoder Linear layer whose weight can be frozen, trained in place, or adapted by
//! a low-rank update `y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ` with A `[r, in]`, B `[out, r]` (PEFT's layout;
//! B starts at zero so the adapted model starts equal to the base).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Module, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

/// A decoder projection: a LoRA target, named after its PEFT module. Serialized by its short name
/// (`q`, as sweep specs write it); the PEFT name (`q_proj`) reads back too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraTarget {
    #[serde(alias = "q_proj")]
    Q,
    #[serde(alias = "k_proj")]
    K,
    #[serde(alias = "v_proj")]
    V,
    #[serde(alias = "o_proj")]
    O,
    #[serde(alias = "gate_proj")]
    Gate,
    #[serde(alias = "up_proj")]
    Up,
    #[serde(alias = "down_proj")]
    Down,
}

impl LoraTarget {
    /// Every target, in the order adapters are created and listed.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The attention projections (the demo recipe's trainable set).
    pub const ATTENTION: [LoraTarget; 4] = [LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O];

    /// PEFT's module name (`q_proj`, …, `down_proj`).
    pub fn module_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }

    /// Module path inside a decoder layer (`self_attn.q_proj`, `mlp.gate_proj`, …).
    pub fn module_path(self) -> &'static str {
        match self {
            LoraTarget::Q => "self_attn.q_proj",
            LoraTarget::K => "self_attn.k_proj",
            LoraTarget::V => "self_attn.v_proj",
            LoraTarget::O => "self_attn.o_proj",
            LoraTarget::Gate => "mlp.gate_proj",
            LoraTarget::Up => "mlp.up_proj",
            LoraTarget::Down => "mlp.down_proj",
        }
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.module_name())
    }
}

impl FromStr for LoraTarget {
    type Err = String;

    /// `q` or `q_proj`, …, `down` or `down_proj`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let short = s.strip_suffix("_proj").unwrap_or(s);
        match short {
            "q" => Ok(LoraTarget::Q),
            "k" => Ok(LoraTarget::K),
            "v" => Ok(LoraTarget::V),
            "o" => Ok(LoraTarget::O),
            "gate" => Ok(LoraTarget::Gate),
            "up" => Ok(LoraTarget::Up),
            "down" => Ok(LoraTarget::Down),
            _ => Err(format!("unknown LoRA target {s:?} (expected one of q, k, v, o, gate, up, down)")),
        }
    }
}

/// LoRA hyper-parameters: scale = alpha / rank; no dropout, no rsLoRA, no DoRA.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<LoraTarget>,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, the four attention projections.
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, targets: LoraTarget::ATTENTION.to_vec() }
    }
}
