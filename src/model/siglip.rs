//! The SigLIP vision tower of PaliGemma (docs/design.md §2): stride-`patch` convolution patch
//! embedding, learned position embedding, pre-norm encoder blocks (LayerNorm, attention, tanh-GELU
//! MLP), final `post_layernorm`; no class token, no pooling head. Always frozen.
//!
//! VarBuilder paths are the checkpoint names under the tower's prefix (`embeddings.patch_embedding`,
//! `encoder.layers.{i}.self_attn.q_proj`, …).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::SiglipVisionConfig;
use super::nn::{self, AttnLogits, Bias, Linear};

#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: vb.get(dim, "weight")?, bias: vb.get(dim, "bias")?, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        nn::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Embeddings {
    patch_weight: Tensor,
    patch_bias: Tensor,
    position: Tensor,
    patch_size: usize,
}

impl Embeddings {
    fn new(cfg: &SiglipVisionConfig, vb: VarBuilder) -> Result<Embeddings> {
        let (c, p) = (cfg.hidden_size, cfg.patch_size);
        let patch = vb.pp("patch_embedding");
        Ok(Embeddings {
            patch_weight: patch.get((c, cfg.num_channels, p, p), "weight")?,
            patch_bias: patch.get(c, "bias")?,
            position: vb.pp("position_embedding").get((cfg.num_image_tokens(), c), "weight")?,
            patch_size: p,
        })
    }

    /// `[B, 3, S, S]` → `[B, N, C]`, token `p = row·grid + col`.
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        // In f32 whatever the stored dtype: the kernel is small, and candle's CPU conv lacks bf16.
        let kernel = self.patch_weight.to_dtype(DType::F32)?;
        let (padding, dilation, groups) = (0, 1, 1);
        let x = pixels.to_dtype(DType::F32)?.conv2d(&kernel, padding, self.patch_size, dilation, groups)?;
        let x = x.broadcast_add(&self.patch_bias.to_dtype(DType::F32)?.reshape((1, (), 1, 1))?)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?;
        x.broadcast_add(&self.position.to_dtype(DType::F32)?)
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
}

impl Attention {
    fn new(cfg: &SiglipVisionConfig, vb: VarBuilder) -> Result<Attention> {
        let d = cfg.hidden_size;
        Ok(Attention {
            q_proj: Linear::new(d, d, Bias::With, vb.pp("q_proj"))?,
            k_proj: Linear::new(d, d, Bias::With, vb.pp("k_proj"))?,
            v_proj: Linear::new(d, d, Bias::With, vb.pp("v_proj"))?,
            out_proj: Linear::new(d, d, Bias::With, vb.pp("out_proj"))?,
            num_heads: cfg.num_attention_heads,
        })
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let heads = |proj: &Linear| -> Result<Tensor> {
            proj.forward(x)?.reshape((b, t, self.num_heads, d / self.num_heads))?.transpose(1, 2)
        };
        let (q, k, v) = (heads(&self.q_proj)?, heads(&self.k_proj)?, heads(&self.v_proj)?);
        let out = nn::attention(&q, &k, &v, None, AttnLogits::standard(d / self.num_heads))?;
        self.out_proj.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&nn::gelu_tanh(&self.fc1.forward(x)?)?)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: Attention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn new(cfg: &SiglipVisionConfig, vb: VarBuilder) -> Result<EncoderLayer> {
        let (d, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let mlp = vb.pp("mlp");
        Ok(EncoderLayer {
            layer_norm1: LayerNorm::new(d, eps, vb.pp("layer_norm1"))?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            layer_norm2: LayerNorm::new(d, eps, vb.pp("layer_norm2"))?,
            mlp: Mlp {
                fc1: Linear::new(d, cfg.intermediate_size, Bias::With, mlp.pp("fc1"))?,
                fc2: Linear::new(cfg.intermediate_size, d, Bias::With, mlp.pp("fc2"))?,
            },
        })
    }
}

impl Module for EncoderLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.self_attn.forward(&self.layer_norm1.forward(x)?)?)?;
        &x + self.mlp.forward(&self.layer_norm2.forward(&x)?)?
    }
}

/// The vision tower: pixels `[B, 3, S, S]` in [-1, 1] → patch features `[B, N, C]` (f32).
#[derive(Debug, Clone)]
pub struct SiglipVisionModel {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
}

impl SiglipVisionModel {
    pub fn new(cfg: &SiglipVisionConfig, vb: VarBuilder) -> Result<SiglipVisionModel> {
        let layers_vb = vb.pp("encoder").pp("layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(cfg, layers_vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(SiglipVisionModel {
            embeddings: Embeddings::new(cfg, vb.pp("embeddings"))?,
            layers,
            post_layernorm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }
}

impl Module for SiglipVisionModel {
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut x = self.embeddings.forward(pixels)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        self.post_layernorm.forward(&x)
    }
}
