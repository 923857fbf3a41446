//! The Gemma decoder of PaliGemma 1 and 2 (docs/design.md §3; transformers `modeling_gemma.py`,
//! `modeling_gemma2.py`): RMSNorm with (1 + w) in f32, RoPE (halves layout, tables in f32),
//! multi-query/grouped attention under an additive mask, GeGLU MLP with tanh-GELU on the gate,
//! tied output head. Text embeddings are scaled by √hidden here; image rows come in from the
//! projector unscaled.
//!
//! Gemma 2 ([`Generation::Gemma2`]) differs by config switches only: two more norms per block
//! (`post_attention_layernorm` on the attention output, `post_feedforward_layernorm` on the MLP
//! output; the MLP input norm is `pre_feedforward_layernorm`), attention scores scaled by
//! `query_pre_attn_scalar^-½` and soft-capped `cap·tanh(s/cap)` before the mask, the output
//! logits soft-capped likewise, and sliding-window attention on alternate layers, which never
//! binds here: a sequence longer than the window is refused.
//!
//! Its seven Linear layers per block are [`LoraLinear`]s so that the attention weights or LoRA
//! adapters can be trained; everything else is frozen.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{GemmaConfig, Generation};
use super::lora::LoraLinear;
use super::lora::LoraTarget;
use super::nn::{self, AttnLogits, Bias, Linear};

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
    logits: AttnLogits,
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
            logits: AttnLogits { scale: cfg.attention_scale(), softcap: cfg.attn_logit_softcapping },
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
        self.o_proj.forward(&nn::attention(&query, &k, &v, Some(&q.mask), self.logits)?)
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

/// A decoder block's norms by role. The checkpoint names differ by generation: Gemma 1 calls the
/// MLP input norm `post_attention_layernorm`; Gemma 2 uses that name for the attention output norm
/// and calls the MLP input norm `pre_feedforward_layernorm`.
#[derive(Debug, Clone)]
struct BlockNorms {
    /// `input_layernorm`: the attention input.
    attn_in: RmsNorm,
    /// Gemma 2's `post_attention_layernorm`: the attention output, before the residual add.
    attn_out: Option<RmsNorm>,
    /// The MLP input.
    mlp_in: RmsNorm,
    /// Gemma 2's `post_feedforward_layernorm`: the MLP output, before the residual add.
    mlp_out: Option<RmsNorm>,
}

impl BlockNorms {
    fn new(cfg: &GemmaConfig, generation: Generation, vb: &VarBuilder) -> Result<BlockNorms> {
        let norm = |name: &str| RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        let attn_in = norm("input_layernorm")?;
        Ok(match generation {
            Generation::Gemma1 => BlockNorms {
                attn_in,
                attn_out: None,
                mlp_in: norm("post_attention_layernorm")?,
                mlp_out: None,
            },
            Generation::Gemma2 => BlockNorms {
                attn_in,
                attn_out: Some(norm("post_attention_layernorm")?),
                mlp_in: norm("pre_feedforward_layernorm")?,
                mlp_out: Some(norm("post_feedforward_layernorm")?),
            },
        })
    }
}

/// `norm(x)` where the generation has that norm, else `x`.
fn maybe_norm(norm: &Option<RmsNorm>, x: Tensor) -> Result<Tensor> {
    match norm {
        Some(norm) => norm.forward(&x),
        None => Ok(x),
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    norms: BlockNorms,
    self_attn: Attention,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &GemmaConfig, generation: Generation, vb: VarBuilder) -> Result<DecoderLayer> {
        Ok(DecoderLayer {
            norms: BlockNorms::new(cfg, generation, &vb)?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    /// The block's output at the rows `select` picks (every row, or the requested ones).
    fn forward(&self, x: &Tensor, rope: &Rope, mask: &Tensor, select: &Select) -> Result<Tensor> {
        let n = &self.norms;
        let a = n.attn_in.forward(x)?;
        let queries = select.queries(&a, rope, mask)?;
        let attn = maybe_norm(&n.attn_out, self.self_attn.forward(&a, rope, &queries)?)?;
        let h = (select.rows(x)? + attn)?;
        &h + maybe_norm(&n.mlp_out, self.mlp.forward(&n.mlp_in.forward(&h)?)?)?
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
    /// Gemma 2's `final_logit_softcapping`.
    final_softcap: Option<f64>,
    /// The smallest window of a sliding-window layer (Gemma 2), with that layer's index.
    window: Option<(usize, usize)>,
}

impl Gemma {
    pub fn new(cfg: &GemmaConfig, vb: VarBuilder) -> Result<Gemma> {
        let generation = cfg.generation().map_err(candle_core::Error::wrap)?;
        let layers_vb = vb.pp("layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, generation, layers_vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Gemma {
            embed_tokens: vb.pp("embed_tokens").get((cfg.vocab_size, cfg.hidden_size), "weight")?,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            hidden_size: cfg.hidden_size,
            head_dim: cfg.head_dim,
            rope_theta: cfg.rope_theta(),
            final_softcap: cfg.final_logit_softcapping,
            window: cfg.smallest_window(),
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
        if let Some((window, layer)) = self.window.filter(|&(w, _)| t > w) {
            candle_core::bail!(
                "a sequence of {t} positions is longer than text_config.sliding_window = {window} \
                 (layer {layer} uses sliding-window attention, which gacha does not implement: \
                 sequences must fit the window; shorten the prompt or use a lower image resolution)"
            )
        }
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

    /// Final RMSNorm then the tied head over the full vocabulary (soft-capped in Gemma 2):
    /// `[…, D]` → `[…, V]` f32.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(hidden)?;
        let logits = nn::frozen_linear(&h, &self.embed_tokens, None)?;
        match self.final_softcap {
            Some(cap) => nn::softcap(&logits, cap),
            None => Ok(logits),
        }
    }
}
