//! The Gemma-1 decoder of PaliGemma (PALIGEMMA.md §4): RMSNorm with (1 + w) in f32, RoPE (halves
//! layout, tables in f32), multi-query/grouped attention under an additive mask, GeGLU MLP with
//! tanh-GELU on the gate, tied output head. Text embeddings are scaled by √hidden here; image rows
//! come in from the projector unscaled.
//!
//! Its seven Linear layers per block are [`LoraLinear`]s so that the attention weights or LoRA
//! adapters can be trained; everything else is frozen.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::GemmaConfig;
use super::lora::LoraLinear;
use super::nn::{self, Bias, Linear};
use super::trainable::LoraTarget;

/// RoPE tables: cos/sin `[T, hd/2]` for all positions, or `[B, 1, R, hd/2]` for picked rows.
#[derive(Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(len: usize, head_dim: usize, theta: f64, device: &Device) -> Result<Rope> {
        let (cos, sin) = nn::rope_tables(len, head_dim, theta, device)?;
        Ok(Rope { cos, sin })
    }
}

/// Which rows of a block's input the block computes outputs for.
enum Select {
    All,
    Rows(Picked),
}

/// Rows picked per example: flat indices into `[B·T]` and the matching sequence positions.
struct Picked {
    /// `[B·R]` u32, `b·T + position`.
    flat: Tensor,
    /// `[B·R]` u32 positions.
    positions: Tensor,
    batch: usize,
    per_example: usize,
}

impl Picked {
    fn new(positions: &[u32], batch: usize, len: usize, device: &Device) -> Result<Picked> {
        let per_example = positions.len() / batch.max(1);
        let flat: Vec<u32> =
            positions.iter().enumerate().map(|(i, &p)| (i / per_example * len) as u32 + p).collect();
        Ok(Picked {
            flat: Tensor::from_vec(flat, positions.len(), device)?,
            positions: Tensor::from_slice(positions, positions.len(), device)?,
            batch,
            per_example,
        })
    }

    /// `[B, T, C]` → `[B, R, C]`.
    fn rows(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        x.reshape((b * t, c))?.index_select(&self.flat, 0)?.reshape((self.batch, self.per_example, c))
    }
}

/// The query side of an attention call: its input rows, their RoPE tables and mask rows.
struct Queries {
    /// `[B, R, D]`
    rows: Tensor,
    rope: Rope,
    /// `[B, 1, R, T]`
    mask: Tensor,
}

impl Select {
    /// `[B, T, D]` → the selected rows `[B, R, D]`.
    fn rows(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Select::All => Ok(x.clone()),
            Select::Rows(picked) => picked.rows(x),
        }
    }

    fn queries(&self, a: &Tensor, rope: &Rope, mask: &Tensor) -> Result<Queries> {
        match self {
            Select::All => Ok(Queries { rows: a.clone(), rope: rope.clone(), mask: mask.clone() }),
            Select::Rows(p) => {
                let (b, r) = (p.batch, p.per_example);
                let table = |t: &Tensor| -> Result<Tensor> {
                    let half = t.dim(1)?;
                    t.index_select(&p.positions, 0)?.reshape((b, 1, r, half))
                };
                let (_, _, tq, tk) = mask.dims4()?;
                let mask = mask.reshape((b * tq, tk))?.index_select(&p.flat, 0)?.reshape((b, 1, r, tk))?;
                Ok(Queries {
                    rows: p.rows(a)?,
                    rope: Rope { cos: table(&rope.cos)?, sin: table(&rope.sin)? },
                    mask,
                })
            }
        }
    }
}

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

    /// Keys and values from every row of `x` `[B, T, D]`, queries from `q.rows` `[B, R, D]`.
    fn forward(&self, x: &Tensor, rope: &Rope, q: &Queries) -> Result<Tensor> {
        let heads = |proj: &LoraLinear, input: &Tensor, n| -> Result<Tensor> {
            let (b, t, _) = input.dims3()?;
            proj.forward(input)?.reshape((b, t, n, self.head_dim))?.transpose(1, 2)
        };
        let query = nn::rope(&heads(&self.q_proj, &q.rows, self.num_heads)?, &q.rope.cos, &q.rope.sin)?;
        let k = nn::rope(&heads(&self.k_proj, x, self.num_kv_heads)?, &rope.cos, &rope.sin)?;
        let v = heads(&self.v_proj, x, self.num_kv_heads)?;
        self.o_proj.forward(&nn::attention(&query, &k, &v, Some(&q.mask))?)
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

    /// The block's output at the rows `select` picks (every row, or the requested ones).
    fn forward(&self, x: &Tensor, rope: &Rope, mask: &Tensor, select: &Select) -> Result<Tensor> {
        let a = self.input_layernorm.forward(x)?;
        let queries = select.queries(&a, rope, mask)?;
        let h = (select.rows(x)? + self.self_attn.forward(&a, rope, &queries)?)?;
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?
    }

    fn projection(&self, which: LoraTarget) -> &LoraLinear {
        projection_of!(self, which)
    }

    fn projection_mut(&mut self, which: LoraTarget) -> &mut LoraLinear {
        projection_of!(self, which, mut)
    }
}

/// The projection `which` of a decoder layer, by reference (`mut` for a mutable one): one match
/// for both.
macro_rules! projection_of {
    ($layer:expr, $which:expr $(, $mut:tt)?) => {
        match $which {
            LoraTarget::Q => &$($mut)? $layer.self_attn.q_proj,
            LoraTarget::K => &$($mut)? $layer.self_attn.k_proj,
            LoraTarget::V => &$($mut)? $layer.self_attn.v_proj,
            LoraTarget::O => &$($mut)? $layer.self_attn.o_proj,
            LoraTarget::Gate => &$($mut)? $layer.mlp.gate_proj,
            LoraTarget::Up => &$($mut)? $layer.mlp.up_proj,
            LoraTarget::Down => &$($mut)? $layer.mlp.down_proj,
        }
    };
}
use projection_of;

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

    pub fn projection(&self, layer: usize, which: LoraTarget) -> &LoraLinear {
        self.layers[layer].projection(which)
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

    /// Run the blocks over input rows `x` `[B, T, D]` (f32) with positions `0..T` and the additive
    /// mask `[B, 1, T, T]`, and return the last hidden states (before the final norm) at `positions`
    /// only: `[B, R, D]` for `R` positions per example, given row-major (`positions[b·R + r]`).
    /// The last block computes queries, attention output and MLP for those rows alone.
    pub fn hidden_states_at(&self, x: &Tensor, mask: &Tensor, positions: &[u32]) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let rope = Rope::new(t, self.head_dim, self.rope_theta, x.device())?;
        let picked = Select::Rows(Picked::new(positions, b, t, x.device())?);
        let mut x = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let select = if i + 1 == self.layers.len() { &picked } else { &Select::All };
            x = layer.forward(&x, &rope, mask, select)?;
        }
        if self.layers.is_empty() {
            picked.rows(&x)
        } else {
            Ok(x)
        }
    }

    /// Final RMSNorm then the tied head over the full vocabulary: `[…, D]` → `[…, V]` f32.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(hidden)?;
        nn::frozen_linear(&h, &self.embed_tokens, None)
    }
}
