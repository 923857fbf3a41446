//! The Gemma-1 decoder of PaliGemma (PALIGEMMA.md §4): RMSNorm with (1 + w) in f32, RoPE (halves
//! layout, tables in f32), multi-query/grouped attention under an additive mask, GeGLU MLP with
//! tanh-GELU on the gate, tied output head. Text embeddings are scaled by √hidden here; image rows
//! come in from the projector unscaled.
//!
//! Its seven Linear layers per block are [`LoraLinear`]s so that the attention weights or LoRA
//! adapters can be trained; everything else is frozen.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::GemmaConfig;
use super::lora::LoraLinear;
use super::nn::{self, Bias, Linear};
use super::trainable::LoraTarget;

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: vb.get(dim, "weight")?, eps })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        nn::rms_norm(x, &self.weight, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: LoraLinear,
    k_proj: LoraLinear,
    v_proj: LoraLinear,
    o_proj: LoraLinear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Attention> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let (h, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let proj = |i, o, name| Linear::new(i, o, Bias::Without, vb.pp(name)).map(LoraLinear::new);
        Ok(Attention {
            q_proj: proj(d, h * hd, "q_proj")?,
            k_proj: proj(d, kv * hd, "k_proj")?,
            v_proj: proj(d, kv * hd, "v_proj")?,
            o_proj: proj(h * hd, d, "o_proj")?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: hd,
        })
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |proj: &LoraLinear, n| -> Result<Tensor> {
            proj.forward(x)?.reshape((b, t, n, self.head_dim))?.transpose(1, 2)
        };
        let q = nn::rope(&heads(&self.q_proj, self.num_heads)?, &rope.0, &rope.1)?;
        let k = nn::rope(&heads(&self.k_proj, self.num_kv_heads)?, &rope.0, &rope.1)?;
        let v = heads(&self.v_proj, self.num_kv_heads)?;
        self.o_proj.forward(&nn::attention(&q, &k, &v, Some(mask))?)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: LoraLinear,
    up_proj: LoraLinear,
    down_proj: LoraLinear,
}

impl Mlp {
    fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Mlp> {
        let (d, m) = (cfg.hidden_size, cfg.intermediate_size);
        let proj = |i, o, name| Linear::new(i, o, Bias::Without, vb.pp(name)).map(LoraLinear::new);
        Ok(Mlp {
            gate_proj: proj(d, m, "gate_proj")?,
            up_proj: proj(d, m, "up_proj")?,
            down_proj: proj(m, d, "down_proj")?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = nn::gelu_tanh(&self.gate_proj.forward(x)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<DecoderLayer> {
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::new(d, eps, vb.pp("input_layernorm"))?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(d, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor) -> Result<Tensor> {
        let h = (x + self.self_attn.forward(&self.input_layernorm.forward(x)?, rope, mask)?)?;
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?
    }

    fn projection_mut(&mut self, which: LoraTarget) -> &mut LoraLinear {
        match which {
            LoraTarget::Q => &mut self.self_attn.q_proj,
            LoraTarget::K => &mut self.self_attn.k_proj,
            LoraTarget::V => &mut self.self_attn.v_proj,
            LoraTarget::O => &mut self.self_attn.o_proj,
            LoraTarget::Gate => &mut self.mlp.gate_proj,
            LoraTarget::Up => &mut self.mlp.up_proj,
            LoraTarget::Down => &mut self.mlp.down_proj,
        }
    }
}

/// The decoder (`language_model.model` in the legacy checkpoint layout).
#[derive(Debug, Clone)]
pub struct Gemma {
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    hidden_size: usize,
    head_dim: usize,
    rope_theta: f64,
}

impl Gemma {
    pub fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Gemma> {
        let layers_vb = vb.pp("layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, layers_vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Gemma {
            embed_tokens: vb.pp("embed_tokens").get((cfg.vocab_size, cfg.hidden_size), "weight")?,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            hidden_size: cfg.hidden_size,
            head_dim: cfg.head_dim,
            rope_theta: cfg.rope_theta(),
        })
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The dtype the frozen weights are stored in.
    pub fn frozen_dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    pub fn projection_mut(&mut self, layer: usize, which: LoraTarget) -> &mut LoraLinear {
        self.layers[layer].projection_mut(which)
    }

    /// Text embeddings `E[ids]·√hidden` in f32 (√ taken in f32): ids `[B, L]` → `[B, L, D]`.
    pub fn embed_text(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let rows = self.embed_tokens.index_select(&ids.flatten_all()?, 0)?.to_dtype(DType::F32)?;
        let scale = (self.hidden_size as f32).sqrt();
        (rows * f64::from(scale))?.reshape((b, l, self.hidden_size))
    }

    /// Run every block over input rows `[B, T, D]` (f32) with positions `0..T` and the additive mask
    /// `[B, 1, T, T]`; returns the last hidden states before the final norm.
    pub fn hidden_states(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let t = x.dim(1)?;
        let rope = nn::rope_tables(t, self.head_dim, self.rope_theta, x.device())?;
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward(&x, &rope, mask)?;
        }
        Ok(x)
    }

    /// Final RMSNorm then the tied head over the full vocabulary: `[…, D]` → `[…, V]` f32.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(hidden)?;
        nn::frozen_matmul_t(&h, &self.embed_tokens)
    }
}
