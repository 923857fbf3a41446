//! `config.json` of a PaliGemma checkpoint as serde types, with the defaults transformers applies to
//! keys the hub file omits (docs/design.md §4.1), the checks for what this crate can run, and the
//! named configs of the built-in models (`tiny`, `small`, `paligemma-3b-224`).
//!
//! The decoder generation comes from `text_config.model_type`: `"gemma"` (PaliGemma 1) or
//! `"gemma2"` (PaliGemma 2); keys a Gemma-2 config omits take `Gemma2Config`'s defaults, which
//! differ from Gemma's (see [`GEMMA2_DEFAULTS`]).
//!
//! Both the older hub keys (`rope_theta`, `hidden_act`, `image_token_index`) and the transformers-5
//! keys (`rope_parameters.rope_theta`, `hidden_activation`, `image_token_id`) are accepted.

use serde::{Deserialize, Serialize};

/// A `config.json` value this crate cannot run, named by its dotted key.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{key} = {value}: unsupported ({why})")]
    Unsupported { key: &'static str, value: String, why: &'static str },
    #[error("unknown named config {0:?} (expected one of: {names})", names = NAMED_CONFIGS.join(", "))]
    UnknownName(String),
}

/// Names accepted by [`PaliGemmaConfig::named`].
pub const NAMED_CONFIGS: [&str; 5] =
    ["tiny", "small", "paligemma-3b-224", "paligemma2-small", "paligemma2-3b-224"];

/// The decoder of a PaliGemma generation, from `text_config.model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `"gemma"`: PaliGemma 1.
    Gemma1,
    /// `"gemma2"`: PaliGemma 2 (four norms per block, logit soft-capping, alternating
    /// sliding-window layers, attention scale from `query_pre_attn_scalar`).
    Gemma2,
}

/// `text_config.model_type` values, by generation.
const GEMMA1_MODEL_TYPE: &str = "gemma";
const GEMMA2_MODEL_TYPE: &str = "gemma2";

/// `layer_types` values of transformers' Gemma-2 config.
const SLIDING_LAYER: &str = "sliding_attention";
const FULL_LAYER: &str = "full_attention";

/// transformers' `Gemma2Config` defaults for the keys whose default differs from `GemmaConfig`'s
/// or that Gemma 1 lacks; filled into a `"gemma2"` `text_config` before it is read. Keys absent
/// here (eps, RoPE θ, activation, tied head, …) have the same default in both.
pub const GEMMA2_DEFAULTS: [(&str, f64); 11] = [
    ("vocab_size", 256_000.0),
    ("hidden_size", GEMMA2_2B.hidden as f64),
    ("intermediate_size", GEMMA2_2B.mlp as f64),
    ("num_hidden_layers", GEMMA2_2B.layers as f64),
    ("num_attention_heads", GEMMA2_2B.heads as f64),
    ("num_key_value_heads", GEMMA2_2B.kv_heads as f64),
    ("head_dim", GEMMA2_2B.head_dim as f64),
    ("query_pre_attn_scalar", GEMMA2_2B.head_dim as f64),
    ("sliding_window", PALIGEMMA2_SLIDING_WINDOW as f64),
    ("final_logit_softcapping", PALIGEMMA2_FINAL_SOFTCAP),
    ("attn_logit_softcapping", PALIGEMMA2_ATTN_SOFTCAP),
];

/// Gemma-2 2B, the decoder of PaliGemma 2 3B (`google/paligemma2-3b-pt-224`), with the 257,216
/// embedding rows of transformers' PaliGemma checkpoints (the tokenizer's 257,152 and 64 padding
/// rows, the first of them `<image>`).
const GEMMA2_2B: Text =
    Text { vocab: 257_216, hidden: 2304, mlp: 9216, layers: 26, heads: 8, kv_heads: 4, head_dim: 256 };

/// `<image>`'s id in the built-in tokenizer (`tiny`, `small`).
const BUILTIN_IMAGE_TOKEN: u32 = 4;

/// Text positions of the shortest input sequence: `<bos>`, `"\n"` and the answer (empty prompt).
const MIN_TEXT_POSITIONS: usize = 3;

/// The GELU spellings of transformers that all mean `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
const TANH_GELU_NAMES: [&str; 3] = ["gelu_pytorch_tanh", "gelu_new", "gelu_fast"];

/// The whole `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaliGemmaConfig {
    pub text_config: GemmaConfig,
    pub vision_config: SiglipVisionConfig,
    /// Id of `<image>` in the tokenizer (unused by the model: image rows are placed by position).
    #[serde(default = "defaults::image_token_index", alias = "image_token_id")]
    pub image_token_index: u32,
    /// Output width of the projector; must equal the decoder's hidden size.
    #[serde(default = "defaults::projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "defaults::pad_token_id")]
    pub pad_token_id: u32,
    #[serde(default = "defaults::eos_token_id")]
    pub eos_token_id: u32,
    #[serde(default = "defaults::bos_token_id")]
    pub bos_token_id: u32,
}

/// `text_config`: the Gemma-1 or Gemma-2 decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmaConfig {
    #[serde(default = "defaults::gemma_model_type")]
    pub model_type: String,
    #[serde(default = "defaults::gemma_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::gemma_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::gemma_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::gemma_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::gemma_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::gemma_num_key_value_heads")]
    pub num_key_value_heads: usize,
    #[serde(default = "defaults::gemma_head_dim")]
    pub head_dim: usize,
    #[serde(default = "defaults::eps")]
    pub rms_norm_eps: f64,
    /// transformers ≤ 4 key; see [`GemmaConfig::rope_theta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// transformers 5 key (`{"rope_theta": …, "rope_type": "default"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    #[serde(default = "defaults::yes")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Gemma 2: output logits become `cap·tanh(logit/cap)`; null turns it off. Gemma 1: must be
    /// absent or null.
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    /// Gemma 2: attention scores become `cap·tanh(score/cap)` before the mask; null turns it off.
    /// Gemma 1: must be absent or null.
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma 2: attention scores are scaled by `query_pre_attn_scalar^-½` (Gemma 1: `head_dim^-½`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2: the window of the sliding-window layers, in positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Gemma 2 (transformers ≥ 4.53): `"sliding_attention"` or `"full_attention"` per layer; when
    /// absent, even layers (0, 2, …) slide, as transformers fills it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
}

/// transformers-5 `rope_parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default = "defaults::rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "defaults::rope_type")]
    pub rope_type: String,
}

/// `vision_config`: the SigLIP vision tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiglipVisionConfig {
    #[serde(default = "defaults::siglip_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::siglip_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::siglip_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::siglip_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::num_channels")]
    pub num_channels: usize,
    #[serde(default = "defaults::image_size")]
    pub image_size: usize,
    #[serde(default = "defaults::patch_size")]
    pub patch_size: usize,
    #[serde(default = "defaults::tanh_gelu")]
    pub hidden_act: String,
    #[serde(default = "defaults::eps")]
    pub layer_norm_eps: f64,
    /// PaliGemma checkpoints have no attention-pooling head; `true` is refused.
    #[serde(default)]
    pub vision_use_head: bool,
}

/// Defaults of the transformers config classes for keys a `config.json` may omit.
mod defaults {
    pub fn image_token_index() -> u32 {
        256_000
    }
    pub fn projection_dim() -> usize {
        2048
    }
    pub fn pad_token_id() -> u32 {
        0
    }
    pub fn eos_token_id() -> u32 {
        1
    }
    pub fn bos_token_id() -> u32 {
        2
    }
    pub fn gemma_model_type() -> String {
        "gemma".into()
    }
    pub fn gemma_vocab_size() -> usize {
        256_000
    }
    pub fn gemma_hidden_size() -> usize {
        3072
    }
    pub fn gemma_intermediate_size() -> usize {
        24_576
    }
    pub fn gemma_num_hidden_layers() -> usize {
        28
    }
    pub fn gemma_num_attention_heads() -> usize {
        16
    }
    pub fn gemma_num_key_value_heads() -> usize {
        16
    }
    pub fn gemma_head_dim() -> usize {
        256
    }
    pub fn eps() -> f64 {
        1e-6
    }
    pub fn rope_theta() -> f64 {
        10_000.0
    }
    pub fn rope_type() -> String {
        "default".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn max_position_embeddings() -> usize {
        8192
    }
    pub fn siglip_hidden_size() -> usize {
        768
    }
    pub fn siglip_intermediate_size() -> usize {
        3072
    }
    pub fn siglip_num_hidden_layers() -> usize {
        12
    }
    pub fn siglip_num_attention_heads() -> usize {
        12
    }
    pub fn num_channels() -> usize {
        3
    }
    pub fn image_size() -> usize {
        224
    }
    pub fn patch_size() -> usize {
        16
    }
    pub fn tanh_gelu() -> String {
        "gelu_pytorch_tanh".into()
    }
}

impl GemmaConfig {
    /// RoPE base: `rope_parameters.rope_theta`, else `rope_theta`, else 10000.
    pub fn rope_theta(&self) -> f64 {
        match (&self.rope_parameters, self.rope_theta) {
            (Some(p), _) => p.rope_theta,
            (None, Some(theta)) => theta,
            (None, None) => defaults::rope_theta(),
        }
    }

    /// The decoder MLP's activation name. `hidden_activation` wins; a bare `hidden_act` is used
    /// otherwise, where `"gelu"` means the tanh GELU as in transformers' Gemma (it overrides the
    /// exact GELU of the original Gemma configs); absent means `gelu_pytorch_tanh`.
    fn activation(&self) -> Result<(), ConfigError> {
        let (key, value) = match (&self.hidden_activation, &self.hidden_act) {
            (Some(a), _) => ("text_config.hidden_activation", a.as_str()),
            (None, Some(a)) if a == "gelu" => return Ok(()),
            (None, Some(a)) => ("text_config.hidden_act", a.as_str()),
            (None, None) => return Ok(()),
        };
        check_tanh_gelu(key, value)
    }

    /// The decoder generation named by `model_type`.
    pub fn generation(&self) -> Result<Generation, ConfigError> {
        match self.model_type.as_str() {
            GEMMA1_MODEL_TYPE => Ok(Generation::Gemma1),
            GEMMA2_MODEL_TYPE => Ok(Generation::Gemma2),
            other => Err(ConfigError::Unsupported {
                key: "text_config.model_type",
                value: format!("{other:?}"),
                why: "expected \"gemma\" (PaliGemma 1) or \"gemma2\" (PaliGemma 2)",
            }),
        }
    }

    /// The factor attention scores are multiplied by: `query_pre_attn_scalar^-½` when set (Gemma 2),
    /// else `head_dim^-½`.
    pub fn attention_scale(&self) -> f64 {
        match self.query_pre_attn_scalar {
            Some(scalar) => scalar.powf(-0.5),
            None => 1.0 / (self.head_dim as f64).sqrt(),
        }
    }

    /// The attention window of layer `layer`: `Some(sliding_window)` for a sliding-window layer
    /// of Gemma 2 (by `layer_types`, else every even layer), `None` for full attention.
    pub fn layer_window(&self, layer: usize) -> Option<usize> {
        let window = self.sliding_window?;
        let sliding = match &self.layer_types {
            Some(types) => types.get(layer).is_some_and(|t| t == SLIDING_LAYER),
            None => layer.is_multiple_of(2),
        };
        sliding.then_some(window)
    }

    /// The smallest window of a sliding-window layer, with that layer's index (`None`: every
    /// layer attends to the full sequence).
    pub fn smallest_window(&self) -> Option<(usize, usize)> {
        (0..self.num_hidden_layers).filter_map(|i| self.layer_window(i).map(|w| (w, i))).min()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let unsupported = |key, value: String, why| Err(ConfigError::Unsupported { key, value, why });
        let generation = self.generation()?;
        self.activation()?;
        if !self.tie_word_embeddings {
            return unsupported("text_config.tie_word_embeddings", "false".into(), "the output head is tied");
        }
        if self.attention_bias {
            return unsupported("text_config.attention_bias", "true".into(), "Gemma has no attention bias");
        }
        match generation {
            Generation::Gemma1 => self.check_gemma1_has_no_gemma2_keys()?,
            Generation::Gemma2 => self.check_gemma2_keys()?,
        }
        if let Some(p) = &self.rope_parameters {
            if p.rope_type != "default" {
                return unsupported(
                    "text_config.rope_parameters.rope_type",
                    format!("{:?}", p.rope_type),
                    "only plain RoPE is implemented",
                );
            }
        }
        if self.num_key_value_heads == 0 || !self.num_attention_heads.is_multiple_of(self.num_key_value_heads)
        {
            return unsupported(
                "text_config.num_key_value_heads",
                self.num_key_value_heads.to_string(),
                "must divide num_attention_heads",
            );
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return unsupported(
                "text_config.head_dim",
                self.head_dim.to_string(),
                "RoPE needs an even head_dim",
            );
        }
        Ok(())
    }
}

impl GemmaConfig {
    fn check_gemma1_has_no_gemma2_keys(&self) -> Result<(), ConfigError> {
        let gemma2_only = |key, value: String| {
            Err(ConfigError::Unsupported { key, value, why: "a Gemma-2 key; model_type is \"gemma\"" })
        };
        if let Some(v) = self.final_logit_softcapping {
            return gemma2_only("text_config.final_logit_softcapping", v.to_string());
        }
        if let Some(v) = self.attn_logit_softcapping {
            return gemma2_only("text_config.attn_logit_softcapping", v.to_string());
        }
        if let Some(v) = self.query_pre_attn_scalar {
            return gemma2_only("text_config.query_pre_attn_scalar", v.to_string());
        }
        if let Some(v) = self.sliding_window {
            return gemma2_only("text_config.sliding_window", v.to_string());
        }
        if let Some(v) = &self.layer_types {
            return gemma2_only("text_config.layer_types", format!("{v:?}"));
        }
        Ok(())
    }

    fn check_gemma2_keys(&self) -> Result<(), ConfigError> {
        let unsupported = |key, value: String, why| Err(ConfigError::Unsupported { key, value, why });
        for (key, cap) in [
            ("text_config.final_logit_softcapping", self.final_logit_softcapping),
            ("text_config.attn_logit_softcapping", self.attn_logit_softcapping),
            ("text_config.query_pre_attn_scalar", self.query_pre_attn_scalar),
        ] {
            if let Some(v) = cap.filter(|v| !(*v > 0.0 && v.is_finite())) {
                return unsupported(key, v.to_string(), "must be a positive number");
            }
        }
        if self.sliding_window == Some(0) {
            return unsupported("text_config.sliding_window", "0".into(), "must be at least 1");
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return unsupported(
                    "text_config.layer_types",
                    format!("{} entries", types.len()),
                    "needs one entry per layer (num_hidden_layers)",
                );
            }
            if let Some(bad) = types.iter().find(|t| *t != SLIDING_LAYER && *t != FULL_LAYER) {
                return unsupported(
                    "text_config.layer_types",
                    format!("{bad:?}"),
                    "expected \"sliding_attention\" or \"full_attention\"",
                );
            }
            if types.iter().any(|t| t == SLIDING_LAYER) && self.sliding_window.is_none() {
                return unsupported(
                    "text_config.sliding_window",
                    "null".into(),
                    "layer_types names sliding_attention layers",
                );
            }
        }
        Ok(())
    }
}

/// Fill the keys a `"gemma2"` `text_config` omits with [`GEMMA2_DEFAULTS`] (a `"gemma"` one is
/// left alone: its defaults are serde's). Explicit nulls are kept (they turn a feature off).
fn fill_gemma2_defaults(config: &mut serde_json::Value) {
    let Some(text) = config.get_mut("text_config").and_then(|t| t.as_object_mut()) else {
        return;
    };
    if text.get("model_type").and_then(|t| t.as_str()) != Some(GEMMA2_MODEL_TYPE) {
        return;
    }
    for (key, value) in GEMMA2_DEFAULTS {
        if !text.contains_key(key) {
            let value = match key {
                "final_logit_softcapping" | "attn_logit_softcapping" | "query_pre_attn_scalar" => {
                    serde_json::json!(value)
                }
                _ => serde_json::json!(value as u64),
            };
            text.insert(key.to_string(), value);
        }
    }
}

impl SiglipVisionConfig {
    /// Image tokens per image: (image_size / patch_size)².
    pub fn num_image_tokens(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side
    }

    fn check(&self) -> Result<(), ConfigError> {
        let unsupported = |key, value: String, why| Err(ConfigError::Unsupported { key, value, why });
        check_tanh_gelu("vision_config.hidden_act", &self.hidden_act)?;
        if self.vision_use_head {
            return unsupported(
                "vision_config.vision_use_head",
                "true".into(),
                "PaliGemma uses the patch tokens; the pooling head is not implemented",
            );
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return unsupported(
                "vision_config.patch_size",
                self.patch_size.to_string(),
                "must divide image_size",
            );
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return unsupported(
                "vision_config.num_attention_heads",
                self.num_attention_heads.to_string(),
                "must divide hidden_size",
            );
        }
        if self.num_channels != 3 {
            return unsupported(
                "vision_config.num_channels",
                self.num_channels.to_string(),
                "images are RGB",
            );
        }
        Ok(())
    }
}

fn check_tanh_gelu(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if TANH_GELU_NAMES.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Unsupported {
            key,
            value: format!("{value:?}"),
            why: "only the tanh GELU (gelu_pytorch_tanh) is implemented",
        })
    }
}

impl PaliGemmaConfig {
    /// Parse `config.json` text and check that this crate can run it.
    pub fn from_json(text: &str) -> anyhow::Result<PaliGemmaConfig> {
        let mut value: serde_json::Value = serde_json::from_str(text)?;
        fill_gemma2_defaults(&mut value);
        let config: PaliGemmaConfig = serde_json::from_value(value)?;
        config.check()?;
        Ok(config)
    }

    /// Refuse what the model does not implement, naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.text_config.check()?;
        self.vision_config.check()?;
        let shortest = self.num_image_tokens() + MIN_TEXT_POSITIONS;
        if let Some((window, _)) = self.text_config.smallest_window().filter(|&(w, _)| shortest > w) {
            return Err(ConfigError::Unsupported {
                key: "text_config.sliding_window",
                value: format!(
                    "{window} (< {shortest}: {} image tokens + <bos>, \"\\n\", answer)",
                    self.num_image_tokens()
                ),
                why: "sliding-window attention is not implemented, so every sequence must fit the window",
            });
        }
        if self.projection_dim != self.text_config.hidden_size {
            return Err(ConfigError::Unsupported {
                key: "projection_dim",
                value: self.projection_dim.to_string(),
                why: "the projector output must have the decoder's hidden_size",
            });
        }
        Ok(())
    }

    /// Image tokens per image.
    pub fn num_image_tokens(&self) -> usize {
        self.vision_config.num_image_tokens()
    }

    /// The longest prompt, in tokens, whose sequence (image tokens, `<bos>`, prompt, `"\n"`,
    /// answer) fits the decoder: within `max_position_embeddings` (the positions it was trained
    /// for) and within the smallest sliding window (not implemented, so every sequence must fit).
    /// `check` has made sure this is not negative.
    pub fn max_prompt_tokens(&self) -> usize {
        let text = &self.text_config;
        let positions = text
            .smallest_window()
            .map_or(text.max_position_embeddings, |(window, _)| window.min(text.max_position_embeddings));
        positions.saturating_sub(self.num_image_tokens() + MIN_TEXT_POSITIONS)
    }

    /// A built-in config by name (see [`NAMED_CONFIGS`]).
    ///
    /// - `tiny`: the demo model (`sweeps/demo.toml`): image 56, patch 7 (64 image tokens, so a
    ///   patch spans about 1/8 of an ad and a red badge fills whole patches), SigLIP 32 wide ×
    ///   2 layers, Gemma 64 wide × 2 layers, 4 heads, 1 KV head, head_dim 24, vocab 384 (the
    ///   built-in tokenizer fits). The decoder has the shapes of the Python reference fixture
    ///   (docs/design.md §12), whose vision tower uses patch 14.
    /// - `small`: the benchmark config of issue 3 (image 112, widths 256, 4 layers, vocab 2048).
    /// - `paligemma-3b-224`: the shapes of `google/paligemma-3b-pt-224`.
    /// - `paligemma2-small`: `small` with a Gemma-2 decoder (2 KV heads, soft-capping 50/30,
    ///   `query_pre_attn_scalar` 64 = head_dim, window 4096 on even layers), for benchmarks.
    /// - `paligemma2-3b-224`: the shapes of `google/paligemma2-3b-pt-224` (Gemma-2 2B: hidden
    ///   2304, 26 layers, 8 heads, 4 KV heads, head_dim 256, MLP 9216).
    pub fn named(name: &str) -> Result<PaliGemmaConfig, ConfigError> {
        let config = match name {
            "tiny" => build(
                Vision { image: 56, patch: 7, hidden: 32, mlp: 64, layers: 2, heads: 4 },
                Text { vocab: 384, hidden: 64, mlp: 128, layers: 2, heads: 4, kv_heads: 1, head_dim: 24 },
                BUILTIN_IMAGE_TOKEN,
            ),
            "small" => build(
                Vision { image: 112, patch: 14, hidden: 256, mlp: 1024, layers: 4, heads: 4 },
                Text { vocab: 2048, hidden: 256, mlp: 1024, layers: 4, heads: 4, kv_heads: 1, head_dim: 64 },
                BUILTIN_IMAGE_TOKEN,
            ),
            "paligemma-3b-224" => build(
                Vision { image: 224, patch: 14, hidden: 1152, mlp: 4304, layers: 27, heads: 16 },
                Text {
                    vocab: 257_216,
                    hidden: 2048,
                    mlp: 16_384,
                    layers: 18,
                    heads: 8,
                    kv_heads: 1,
                    head_dim: 256,
                },
                257_152,
            ),
            "paligemma2-small" => build(
                Vision { image: 112, patch: 14, hidden: 256, mlp: 1024, layers: 4, heads: 4 },
                Text { vocab: 2048, hidden: 256, mlp: 1024, layers: 4, heads: 4, kv_heads: 2, head_dim: 64 },
                BUILTIN_IMAGE_TOKEN,
            )
            .with_gemma2_decoder(64.0),
            "paligemma2-3b-224" => build(
                Vision { image: 224, patch: 14, hidden: 1152, mlp: 4304, layers: 27, heads: 16 },
                GEMMA2_2B,
                257_152,
            )
            .with_gemma2_decoder(GEMMA2_2B.head_dim as f64),
            other => return Err(ConfigError::UnknownName(other.to_string())),
        };
        Ok(config)
    }
}

impl PaliGemmaConfig {
    /// The same sizes with a Gemma-2 decoder: PaliGemma 2's soft-capping (attention 50, final 30),
    /// the attention scale `query_pre_attn_scalar^-½`, a 4096 window on even layers.
    fn with_gemma2_decoder(mut self, query_pre_attn_scalar: f64) -> PaliGemmaConfig {
        let t = &mut self.text_config;
        t.model_type = GEMMA2_MODEL_TYPE.into();
        t.final_logit_softcapping = Some(PALIGEMMA2_FINAL_SOFTCAP);
        t.attn_logit_softcapping = Some(PALIGEMMA2_ATTN_SOFTCAP);
        t.query_pre_attn_scalar = Some(query_pre_attn_scalar);
        t.sliding_window = Some(PALIGEMMA2_SLIDING_WINDOW);
        self
    }
}

/// PaliGemma 2's `final_logit_softcapping`, `attn_logit_softcapping` and `sliding_window`.
const PALIGEMMA2_FINAL_SOFTCAP: f64 = 30.0;
const PALIGEMMA2_ATTN_SOFTCAP: f64 = 50.0;
const PALIGEMMA2_SLIDING_WINDOW: usize = 4096;

/// Sizes of a vision tower (a named config's, or those read off a checkpoint's arrays).
#[derive(Debug, Clone)]
pub(super) struct Vision {
    pub(super) image: usize,
    pub(super) patch: usize,
    pub(super) hidden: usize,
    pub(super) mlp: usize,
    pub(super) layers: usize,
    pub(super) heads: usize,
}

/// Sizes of a decoder.
#[derive(Debug, Clone)]
pub(super) struct Text {
    pub(super) vocab: usize,
    pub(super) hidden: usize,
    pub(super) mlp: usize,
    pub(super) layers: usize,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
}

/// A config of these sizes, every other key at its default.
pub(super) fn build(v: Vision, t: Text, image_token_index: u32) -> PaliGemmaConfig {
    PaliGemmaConfig {
        text_config: GemmaConfig {
            model_type: GEMMA1_MODEL_TYPE.into(),
            vocab_size: t.vocab,
            hidden_size: t.hidden,
            intermediate_size: t.mlp,
            num_hidden_layers: t.layers,
            num_attention_heads: t.heads,
            num_key_value_heads: t.kv_heads,
            head_dim: t.head_dim,
            rms_norm_eps: defaults::eps(),
            rope_theta: Some(defaults::rope_theta()),
            rope_parameters: None,
            hidden_act: None,
            hidden_activation: Some(defaults::tanh_gelu()),
            tie_word_embeddings: true,
            attention_bias: false,
            max_position_embeddings: defaults::max_position_embeddings(),
            final_logit_softcapping: None,
            attn_logit_softcapping: None,
            query_pre_attn_scalar: None,
            sliding_window: None,
            layer_types: None,
        },
        vision_config: SiglipVisionConfig {
            hidden_size: v.hidden,
            intermediate_size: v.mlp,
            num_hidden_layers: v.layers,
            num_attention_heads: v.heads,
            num_channels: 3,
            image_size: v.image,
            patch_size: v.patch,
            hidden_act: defaults::tanh_gelu(),
            layer_norm_eps: defaults::eps(),
            vision_use_head: false,
        },
        image_token_index,
        projection_dim: t.hidden,
        pad_token_id: defaults::pad_token_id(),
        eos_token_id: defaults::eos_token_id(),
        bos_token_id: defaults::bos_token_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub config of paligemma-3b (keys of docs/design.md §4.1, image_size absent).
    const HUB_CONFIG: &str = r#"{
      "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
      "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "hidden_size": 2048,
      "ignore_index": -100, "image_token_index": 257152, "projection_dim": 2048, "torch_dtype": "float32",
      "text_config": {"model_type": "gemma", "hidden_size": 2048, "intermediate_size": 16384,
        "num_attention_heads": 8, "num_hidden_layers": 18, "num_key_value_heads": 1,
        "num_image_tokens": 256, "vocab_size": 257216, "torch_dtype": "float32"},
      "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
        "num_attention_heads": 16, "num_hidden_layers": 27, "num_image_tokens": 256, "patch_size": 14,
        "projection_dim": 2048, "projector_hidden_act": "gelu_fast", "vision_use_head": false}
    }"#;

    #[test]
    fn prompts_must_fit_the_positions_and_the_smallest_window() {
        // tiny: 8192 positions (the default), 64 image tokens, <bos>, "\n", answer.
        assert_eq!(PaliGemmaConfig::named("tiny").unwrap().max_prompt_tokens(), 8192 - 64 - 3);
        // PaliGemma 2: a 4096 window on even layers, 256 image tokens.
        assert_eq!(PaliGemmaConfig::named("paligemma2-3b-224").unwrap().max_prompt_tokens(), 4096 - 256 - 3);
    }

    #[test]
    fn hub_config_gets_the_documented_defaults_and_equals_the_named_one() {
        let config = PaliGemmaConfig::from_json(HUB_CONFIG).unwrap();
        let t = &config.text_config;
        assert_eq!((t.head_dim, t.rope_theta(), t.rms_norm_eps), (256, 10_000.0, 1e-6));
        assert_eq!((config.vision_config.image_size, config.vision_config.layer_norm_eps), (224, 1e-6));
        assert_eq!(config.num_image_tokens(), 256);
        let named = PaliGemmaConfig::named("paligemma-3b-224").unwrap();
        assert_eq!(named.text_config.vocab_size, t.vocab_size);
        assert_eq!(named.vision_config, config.vision_config);
        assert_eq!(named.text_config.num_key_value_heads, t.num_key_value_heads);
    }

    #[test]
    fn transformers5_keys_are_read() {
        let text = r#"{"text_config": {"hidden_size": 64, "rope_parameters": {"rope_theta": 500.0,
            "rope_type": "default"}, "hidden_activation": "gelu_pytorch_tanh", "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 24},
          "vision_config": {"hidden_size": 32, "num_attention_heads": 4, "patch_size": 14, "image_size": 56},
          "image_token_id": 7, "projection_dim": 64}"#;
        let config = PaliGemmaConfig::from_json(text).unwrap();
        assert_eq!(config.text_config.rope_theta(), 500.0);
        assert_eq!(config.image_token_index, 7);
        assert_eq!(config.num_image_tokens(), 16);
    }

    #[test]
    fn unsupported_values_are_named() {
        let mut config = PaliGemmaConfig::named("tiny").unwrap();
        config.vision_config.vision_use_head = true;
        let err = config.check().unwrap_err().to_string();
        assert!(err.starts_with("vision_config.vision_use_head = true: unsupported"), "{err}");

        let mut config = PaliGemmaConfig::named("tiny").unwrap();
        config.text_config.hidden_activation = Some("gelu".into());
        let err = config.check().unwrap_err().to_string();
        assert!(err.starts_with("text_config.hidden_activation = \"gelu\": unsupported"), "{err}");

        let mut config = PaliGemmaConfig::named("tiny").unwrap();
        config.text_config.hidden_activation = None;
        config.text_config.hidden_act = Some("gelu".into());
        assert_eq!(config.check(), Ok(()), "Gemma's hidden_act \"gelu\" means the tanh GELU");

        assert!(matches!(PaliGemmaConfig::named("huge"), Err(ConfigError::UnknownName(_))));
    }

    /// The text_config of google/paligemma2-3b-pt-224 as the hub writes it: most Gemma-2 keys are
    /// left to Gemma2Config's defaults (num_attention_heads, head_dim, the soft-caps).
    const HUB_PG2_CONFIG: &str = r#"{
      "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
      "bos_token_id": 2, "eos_token_id": 1, "image_token_index": 257152,
      "pad_token_id": 0, "projection_dim": 2304,
      "text_config": {"hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
        "intermediate_size": 9216, "model_type": "gemma2", "num_hidden_layers": 26,
        "num_image_tokens": 256, "num_key_value_heads": 4, "vocab_size": 257216},
      "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_vision_model",
        "num_attention_heads": 16, "num_hidden_layers": 27, "num_image_tokens": 256, "num_positions": 256,
        "patch_size": 14, "projection_dim": 2304, "vision_use_head": false}
    }"#;

    #[test]
    fn a_paligemma2_config_gets_gemma2_defaults_and_equals_the_named_one() {
        let config = PaliGemmaConfig::from_json(HUB_PG2_CONFIG).unwrap();
        let t = &config.text_config;
        assert_eq!(t.generation(), Ok(Generation::Gemma2));
        assert_eq!((t.num_attention_heads, t.head_dim, t.query_pre_attn_scalar), (8, 256, Some(256.0)));
        assert_eq!((t.attn_logit_softcapping, t.final_logit_softcapping), (Some(50.0), Some(30.0)));
        assert_eq!(t.attention_scale(), 1.0 / 16.0);
        assert_eq!(
            (t.layer_window(0), t.layer_window(1), t.layer_window(24)),
            (Some(4096), None, Some(4096))
        );
        let named = PaliGemmaConfig::named("paligemma2-3b-224").unwrap();
        let sizes = |t: &GemmaConfig| {
            (t.vocab_size, t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_key_value_heads)
        };
        assert_eq!(sizes(&named.text_config), sizes(t));
        let n = &named.text_config;
        assert_eq!((n.model_type.as_str(), n.rope_theta(), n.head_dim), ("gemma2", 10_000.0, 256));
        let gemma2 = |t: &GemmaConfig| {
            (t.query_pre_attn_scalar, t.attn_logit_softcapping, t.final_logit_softcapping, t.sliding_window)
        };
        assert_eq!(gemma2(n), gemma2(t));
        assert_eq!(named.projection_dim, config.projection_dim);
        assert_eq!(named.vision_config, config.vision_config);

        // layer_types wins over the default pattern; an explicit null turns a soft-cap off.
        let text = HUB_PG2_CONFIG.replace(
            r#""model_type": "gemma2","#,
            r#""model_type": "gemma2", "num_hidden_layers": 2, "final_logit_softcapping": null,
               "layer_types": ["full_attention", "sliding_attention"],"#,
        );
        let text = text.replace(r#""num_hidden_layers": 26,"#, "");
        let config = PaliGemmaConfig::from_json(&text).unwrap();
        let t = &config.text_config;
        assert_eq!((t.layer_window(0), t.layer_window(1)), (None, Some(4096)));
        assert_eq!(t.final_logit_softcapping, None);
    }

    #[test]
    fn a_decoder_of_another_kind_or_mixed_keys_are_refused_naming_the_key() {
        let text = HUB_PG2_CONFIG.replace(r#""model_type": "gemma2""#, r#""model_type": "llama""#);
        let err = PaliGemmaConfig::from_json(&text).unwrap_err().to_string();
        assert!(err.starts_with("text_config.model_type = \"llama\": unsupported"), "{err}");

        let mut config = PaliGemmaConfig::named("tiny").unwrap();
        config.text_config.query_pre_attn_scalar = Some(24.0);
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.starts_with("text_config.query_pre_attn_scalar = 24: unsupported (a Gemma-2 key"),
            "{err}"
        );

        let mut config = PaliGemmaConfig::named("paligemma2-small").unwrap();
        config.text_config.layer_types = Some(vec!["sliding_attention".into(); 3]);
        let err = config.check().unwrap_err().to_string();
        assert!(err.starts_with("text_config.layer_types = 3 entries: unsupported"), "{err}");
        config.text_config.layer_types = Some(vec!["chunked_attention".into(); 4]);
        let err = config.check().unwrap_err().to_string();
        assert!(err.starts_with("text_config.layer_types = \"chunked_attention\""), "{err}");
    }

    #[test]
    fn a_window_shorter_than_the_image_tokens_is_refused() {
        // paligemma2-3b-pt-896: 64×64 = 4096 image tokens, window 4096.
        let mut config = PaliGemmaConfig::named("paligemma2-3b-224").unwrap();
        config.vision_config.image_size = 896;
        let err = config.check().unwrap_err().to_string();
        assert!(err.starts_with("text_config.sliding_window = 4096 (< 4099: 4096 image tokens"), "{err}");
        config.vision_config.image_size = 448;
        assert_eq!(config.check(), Ok(()));
    }

    #[test]
    fn gemma1_keeps_the_head_dim_scale_and_no_window() {
        let t = PaliGemmaConfig::named("paligemma-3b-224").unwrap().text_config;
        assert_eq!(t.generation(), Ok(Generation::Gemma1));
        assert_eq!(t.attention_scale(), 1.0 / (256f64).sqrt());
        assert_eq!(t.layer_window(0), None);
    }

    #[test]
    fn named_configs_are_valid_and_round_trip_through_json() {
        for name in NAMED_CONFIGS {
            let config = PaliGemmaConfig::named(name).unwrap();
            config.check().unwrap();
            let back = PaliGemmaConfig::from_json(&serde_json::to_string(&config).unwrap()).unwrap();
            assert_eq!(back, config);
        }
    }
}
