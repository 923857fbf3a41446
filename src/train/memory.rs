//! An estimate of a sweep's peak memory, from the model's config, the batch and the longest
//! sequence, so that `gacha check` and the sweep can refuse a run that would not fit before it
//! starts (`spec::fits`). Meant as an upper-ish bound, from a simple model of what is resident:
//!
//! In bytes, with `B` the batch, `T` = image tokens + `<bos>` + the longest prompt + `"\n"` +
//! answer, `D`/`M` the decoder's width and MLP width, `H`/`K` its query and key-value heads of
//! `hd`, `L` its layers:
//! - **weights**: every parameter of the model (vision tower, projector, decoder; the output head
//!   is tied) × the frozen dtype's size;
//! - **image features**: one `[N, D]` f32 per example (one frame each; `frames = "all"` has more),
//!   computed once per sweep;
//! - **trainable state**: trainable parameters × 4 bytes × (weight, gradient, accumulated
//!   gradient, mean gradient, and AdamW's two moments);
//! - **training activations**: candle keeps every intermediate of the forward pass until backward
//!   has run, so per example and layer [`ACT_PER_TOKEN_WIDTHS`] floats of width `D`, `M` and
//!   `(H + 2K)·hd` per token plus [`ACT_PER_SCORE`] attention-score tensors of `H·T²`, and once
//!   per example the `T²` attention mask, all f32: `4·B·(L·(T·(a·D + b·M + c·(H + 2K)·hd) +
//!   e·H·T²) + T²)`;
//! - **scoring activations**, when larger (a long prompt with a small training batch): no graph,
//!   but a score batch of 8 at once, [`SCORE_PER_SCORE`] `H·T²` tensors and the mask each;
//! - **the process** itself: [`PROCESS_BYTES`] (code, the tokenizer, the dataset, thread stacks).
//!
//! The feature pass (the vision tower, 8 images at a time, no graph) is not counted. The constants
//! were fitted to the peak RSS (`/usr/bin/time -v`) of one-trial sweeps of the built-in tiny model
//! on the demo images at batches 8–2048 and prompts of 5–1,940 tokens: the estimate was 1.0–1.5×
//! the measured peak (docs/sweeps.md, "What can go wrong").

use std::fmt;

use crate::machine::Bytes;
use crate::model::{LoraTarget, PaliGemmaConfig};

use super::config::{TrainConfig, TrainableKind};
use super::optim::OptimizerKind;

/// Saved f32 values per token, decoder layer and example, of width `D`, of width `M` and of width
/// `(H + 2K)·hd`. Counted off a layer, about (6, 4, 7): of width `D` the two norms (fused), the
/// attention and MLP outputs and the residuals; of width `M` `gate`, its GELU (fused), `up` and
/// their product; of the heads' width q/k/v, their transposed copies and the rotary embedding's
/// halves, products and sum. Set a little above the fit (small: 0.93 of this, tiny: 0.6).
const ACT_PER_TOKEN_WIDTHS: (f64, f64, f64) = (7.0, 5.0, 8.0);

/// Saved `H·T²` tensors per decoder layer and example: scores, scaled, masked, softmax (and
/// soft-capping's on Gemma 2). Fitted: 3.8 on the tiny model.
const ACT_PER_SCORE: f64 = 4.5;

/// `H·T²` tensors alive at once in a scoring pass (one layer's scores, scaled, masked, softmax).
/// Fitted: 3.9 on the tiny model with a 1,940-token prompt.
const SCORE_PER_SCORE: f64 = 4.5;

/// What a process running the tiny model holds besides the model's tensors (measured: about
/// 21 MiB).
pub const PROCESS_BYTES: u64 = 32 << 20;

/// f32: trainables, features, activations.
const F32: u64 = 4;

/// The sequence a batch row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    pub image_tokens: usize,
    /// The longest prompt, in tokens.
    pub prompt_tokens: usize,
}

impl Sequence {
    /// Image tokens, `<bos>`, the prompt, `"\n"`, the answer.
    pub fn tokens(&self) -> usize {
        self.image_tokens + 1 + self.prompt_tokens + 2
    }
}

/// What a run will hold at its peak, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub weights: u64,
    pub features: u64,
    pub trainable: u64,
    /// What a training step's graph holds.
    pub training: u64,
    /// What a scoring pass holds at its attention (no graph, but a whole score batch at once).
    pub scoring: u64,
    pub process: u64,
}

impl MemoryEstimate {
    /// The peak of `k` such trials trained as one pack (`train::pack`): `k` times the trainable
    /// state and a step's activations; the weights, features and a scoring pass once.
    pub fn packed(self, k: usize) -> MemoryEstimate {
        let k = k as u64;
        MemoryEstimate {
            trainable: self.trainable.saturating_mul(k),
            training: self.training.saturating_mul(k),
            ..self
        }
    }

    /// The peak: everything resident, and the larger of a training step and a scoring pass.
    pub fn total(&self) -> u64 {
        self.weights + self.features + self.trainable + self.process + self.training.max(self.scoring)
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "about {} (weights {}, image features {}, trainable state {}, activations {} in training, \
             {} in scoring, process {})",
            Bytes(self.total()),
            Bytes(self.weights),
            Bytes(self.features),
            Bytes(self.trainable),
            Bytes(self.training),
            Bytes(self.scoring),
            Bytes(self.process)
        )
    }
}

/// What the estimate needs besides a trial's training settings.
#[derive(Debug, Clone, Copy)]
pub struct MemoryModel<'a> {
    pub config: &'a PaliGemmaConfig,
    /// Examples whose image features are cached.
    pub examples: usize,
    /// Bytes of one frozen weight (4 on CPU).
    pub frozen_bytes: u64,
    /// Examples per scoring pass.
    pub score_batch: usize,
}

impl MemoryModel<'_> {
    /// The peak of training with `train` on sequences `seq` and scoring them.
    pub fn estimate(&self, train: &TrainConfig, seq: Sequence) -> MemoryEstimate {
        let text = &self.config.text_config;
        let (d, m) = (text.hidden_size as f64, text.intermediate_size as f64);
        let layers = text.num_hidden_layers as f64;
        let heads = text.num_attention_heads as f64;
        let qkv = ((text.num_attention_heads + 2 * text.num_key_value_heads) * text.head_dim) as f64;
        let t = seq.tokens() as f64;
        let (a, b, c) = ACT_PER_TOKEN_WIDTHS;
        let per_layer = t * (a * d + b * m + c * qkv) + ACT_PER_SCORE * heads * t * t;
        let train_example = layers * per_layer + t * t;
        let score_example = SCORE_PER_SCORE * heads * t * t + t * t;
        let bytes = |examples: usize, floats: f64| {
            (examples as f64 * floats * F32 as f64).min(u64::MAX as f64 / 4.0) as u64
        };
        let states = match train.optimizer {
            OptimizerKind::Sgd => 4,
            OptimizerKind::AdamW => 6,
        };
        MemoryEstimate {
            weights: parameters(self.config) * self.frozen_bytes,
            features: (self.examples * seq.image_tokens) as u64 * text.hidden_size as u64 * F32,
            trainable: trainable_parameters(self.config, train) * F32 * states,
            training: bytes(train.batch_size, train_example),
            scoring: bytes(self.score_batch, score_example),
            process: PROCESS_BYTES,
        }
    }
}

/// The in and out widths of a decoder projection.
fn projection_dims(config: &PaliGemmaConfig, target: LoraTarget) -> (u64, u64) {
    let text = &config.text_config;
    let d = text.hidden_size as u64;
    let q = (text.num_attention_heads * text.head_dim) as u64;
    let kv = (text.num_key_value_heads * text.head_dim) as u64;
    let m = text.intermediate_size as u64;
    match target {
        LoraTarget::Q => (d, q),
        LoraTarget::K | LoraTarget::V => (d, kv),
        LoraTarget::O => (q, d),
        LoraTarget::Gate | LoraTarget::Up => (d, m),
        LoraTarget::Down => (m, d),
    }
}

/// Every parameter of the model: vision tower, projector, decoder (the output head is tied).
pub fn parameters(config: &PaliGemmaConfig) -> u64 {
    let v = &config.vision_config;
    let (dv, mv) = (v.hidden_size as u64, v.intermediate_size as u64);
    let patch = (v.num_channels * v.patch_size * v.patch_size) as u64 * dv + dv;
    let positions = v.num_image_tokens() as u64 * dv;
    // q, k, v, o with biases; fc1, fc2 with biases; two layer norms.
    let vision_layer = 4 * (dv * dv + dv) + (dv * mv + mv) + (mv * dv + dv) + 4 * dv;
    let vision = patch + positions + v.num_hidden_layers as u64 * vision_layer + 2 * dv;
    let text = &config.text_config;
    let d = text.hidden_size as u64;
    let projector = dv * config.projection_dim as u64 + config.projection_dim as u64;
    let matrices: u64 = LoraTarget::ALL.iter().map(|&t| projection_dims(config, t)).map(|(i, o)| i * o).sum();
    // Up to four norms per layer (Gemma 2), and the final norm.
    let decoder = text.vocab_size as u64 * d + text.num_hidden_layers as u64 * (matrices + 4 * d) + d;
    vision + projector + decoder
}

/// The parameters `train` makes trainable.
pub fn trainable_parameters(config: &PaliGemmaConfig, train: &TrainConfig) -> u64 {
    let layers = config.text_config.num_hidden_layers as u64;
    let per_layer: u64 = match train.trainable {
        TrainableKind::Attention => {
            LoraTarget::ATTENTION.iter().map(|&t| projection_dims(config, t)).map(|(i, o)| i * o).sum()
        }
        TrainableKind::Lora => train
            .lora_targets
            .iter()
            .map(|&t| projection_dims(config, t))
            .map(|(i, o)| train.lora_rank as u64 * (i + o))
            .sum(),
    };
    layers * per_layer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_tiny_models_parameters_by_hand() {
        let tiny = PaliGemmaConfig::named("tiny").unwrap();
        // Decoder attention (demo comment in sweeps/demo.toml): 2 layers × 64 × (2·96 + 2·24).
        let attention = TrainConfig { trainable: TrainableKind::Attention, ..TrainConfig::new(0.1) };
        assert_eq!(trainable_parameters(&tiny, &attention), 30_720);
        // LoRA r = 2 on q, k, v, o: 2 layers × 2 × ((64 + 96) + 2·(64 + 24) + (96 + 64)).
        let lora = TrainConfig { trainable: TrainableKind::Lora, lora_rank: 2, ..attention };
        assert_eq!(trainable_parameters(&tiny, &lora), 2 * 2 * (160 + 176 + 160));
    }

    #[test]
    fn paligemma_3b_has_about_3_billion_parameters() {
        // google/paligemma-3b-pt-224: 2.92 B parameters (its model card: "3B").
        let params = parameters(&PaliGemmaConfig::named("paligemma-3b-224").unwrap());
        assert!((2.90e9..2.95e9).contains(&(params as f64)), "{params}");
    }

    #[test]
    fn a_pack_multiplies_the_trainable_state_and_the_step_only() {
        let one = MemoryEstimate {
            weights: 100,
            features: 10,
            trainable: 3,
            training: 20,
            scoring: 30,
            process: 1,
        };
        let four = one.packed(4);
        assert_eq!((four.trainable, four.training, four.scoring), (12, 80, 30));
        // 100 + 10 + 12 + 1 + max(80, 30), by hand.
        assert_eq!(four.total(), 203);
    }

    #[test]
    fn activations_grow_with_the_batch_and_the_square_of_the_sequence() {
        let tiny = PaliGemmaConfig::named("tiny").unwrap();
        let train = |batch_size| TrainConfig { batch_size, ..TrainConfig::new(0.1) };
        let seq = |prompt_tokens| Sequence { image_tokens: 64, prompt_tokens };
        let model = MemoryModel { config: &tiny, examples: 10, frozen_bytes: 4, score_batch: 8 };
        let at = |batch, prompt| model.estimate(&train(batch), seq(prompt)).training;
        assert_eq!(at(8, 5), 2 * at(4, 5));
        // A long prompt: the T² terms dominate, 10× the tokens is more than 50× the bytes.
        assert!(at(1, 1933) > 50 * at(1, 133), "{} {}", at(1, 1933), at(1, 133));
        assert_eq!(seq(5).tokens(), 72);
    }
}
