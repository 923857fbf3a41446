//! `LoraLinear`: a decoder Linear layer whose weight can be frozen, trained in place, or adapted by
//! a low-rank update `y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ` with A `[r, in]`, B `[out, r]` (PEFT's layout;
//! B starts at zero so the adapted model starts equal to the base).
//!
//! It may also hold the trainable state of K > 1 trials at once (packed trials, `train::pack`):
//! the input's rows are then K equal blocks, block k computed with trial k's weight or adapter by
//! one batched matmul, while the frozen weight is applied once to all of them.

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

/// One trial's trainable state of a layer.
#[derive(Debug, Clone)]
pub enum Trained {
    /// The weight itself, an f32 `Var` `[out, in]` (the frozen weight is then unused).
    Weight(Var),
    /// A LoRA adapter over the frozen weight.
    Adapter(LoraAdapter),
}

/// A Linear layer (no bias) of the language model, with its trainable state.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    /// The frozen weight (never a `Var`).
    base: Linear,
    /// Empty: frozen. One: that trial's state. K > 1: packed trials, one per block of input rows.
    trained: Vec<Trained>,
}

impl LoraLinear {
    pub fn new(base: Linear) -> LoraLinear {
        LoraLinear { base, trained: Vec::new() }
    }

    /// Drop any trainable state; a single trained weight becomes the frozen weight, in `dtype`.
    pub fn freeze(&mut self, dtype: DType) -> Result<()> {
        if let [Trained::Weight(var)] = self.trained.as_slice() {
            // A copy: the `Var` may still be held (and stepped) by whoever trained it.
            let frozen = var.as_tensor().detach().to_dtype(dtype)?.copy()?;
            self.base.set_weight(frozen)?;
        }
        self.trained.clear();
        Ok(())
    }

    /// Hold the trainable state of these trials (one, or K > 1 packed), replacing any other;
    /// the frozen weight is kept as it is.
    pub fn hold(&mut self, trained: Vec<Trained>) {
        self.trained = trained;
    }

    /// A fresh trainable weight: an f32 `Var` holding the current weight's values.
    pub fn weight_var(&self) -> Result<Var> {
        Var::from_tensor(&self.merged_weight()?)
    }

    /// The weight `[out, in]` the layer applies, in f32: `W + (alpha/r)·B·A` with an adapter (the
    /// merged weight), the trained weight, else `W`; an error while trials are packed.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let weight = self.base.weight().detach().to_dtype(DType::F32)?;
        match self.trained.as_slice() {
            [] => Ok(weight),
            [Trained::Weight(var)] => Ok(var.as_tensor().detach()),
            [Trained::Adapter(adapter)] => {
                let delta = adapter.b.as_tensor().detach().matmul(&adapter.a.as_tensor().detach())?;
                weight + (delta * adapter.scale)?
            }
            packed => candle_core::bail!("the layer holds {} packed trials, not one weight", packed.len()),
        }
    }

    /// A fresh adapter: A ~ U(±1/√in) (PEFT's `kaiming_uniform_(a=√5)`), B = 0, f32.
    pub fn new_adapter(&self, rank: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Result<LoraAdapter> {
        let (out_dim, in_dim) = self.base.weight().dims2()?;
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a: Vec<f32> = (0..rank * in_dim).map(|_| rng.random_range(-bound..bound)).collect();
        let device = self.base.weight().device();
        let a = Var::from_tensor(&Tensor::from_vec(a, (rank, in_dim), device)?)?;
        let b = Var::zeros((out_dim, rank), DType::F32, device)?;
        Ok(LoraAdapter { a, b, scale: alpha / rank as f64 })
    }
}

/// `x·Wₖᵀ` for the K row blocks of `x` `[R, …, in]` (R a multiple of K), one batched matmul.
fn packed_matmul_t(x: &Tensor, weights: &[&Tensor]) -> Result<Tensor> {
    let k = weights.len();
    let (out_dim, in_dim) = weights[0].dims2()?;
    let rows = x.elem_count() / in_dim;
    if x.dim(0)? % k != 0 {
        candle_core::bail!("{} input rows cannot be split among {k} packed trials", x.dim(0)?)
    }
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("packed input has dimensions") = out_dim;
    let stacked = Tensor::stack(weights, 0)?.transpose(1, 2)?;
    x.reshape((k, rows / k, in_dim))?.matmul(&stacked)?.reshape(out_shape)
}

impl Module for LoraLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.trained.as_slice() {
            [] => self.base.forward(x),
            [Trained::Weight(var)] => matmul_t(x, var.as_tensor()),
            [Trained::Adapter(adapter)] => {
                let low = matmul_t(&matmul_t(x, adapter.a.as_tensor())?, adapter.b.as_tensor())?;
                self.base.forward(x)? + (low * adapter.scale)?
            }
            packed => {
                let mut weights = Vec::with_capacity(packed.len());
                let mut adapters = Vec::with_capacity(packed.len());
                for trained in packed {
                    match trained {
                        Trained::Weight(var) => weights.push(var.as_tensor()),
                        Trained::Adapter(adapter) => adapters.push(adapter),
                    }
                }
                if !weights.is_empty() && !adapters.is_empty() {
                    candle_core::bail!("packed trials mix trained weights and adapters")
                }
                if adapters.is_empty() {
                    return packed_matmul_t(x, &weights);
                }
                let a: Vec<&Tensor> = adapters.iter().map(|ad| ad.a.as_tensor()).collect();
                let b: Vec<&Tensor> = adapters.iter().map(|ad| ad.b.as_tensor()).collect();
                let low = packed_matmul_t(&packed_matmul_t(x, &a)?, &b)?;
                if adapters.iter().any(|ad| ad.scale != adapters[0].scale) {
                    candle_core::bail!("packed trials need one LoRA alpha/rank")
                }
                self.base.forward(x)? + (low * adapters[0].scale)?
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
