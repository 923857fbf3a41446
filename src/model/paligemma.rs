//! The whole PaliGemma: vision tower → projector → Gemma decoder, and the yes/no scoring of a batch
//! (docs/design.md §6–§7). The output head is evaluated only at the two loss positions of each
//! example (never over every position).

use candle_core::{DType, IndexOp, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::PaliGemmaConfig;
use super::gemma::Gemma;
use super::layout::Layout;
use super::lora::LoraTarget;
use super::nn::{self, Bias, Linear};
use super::siglip::SiglipVisionModel;
use super::tokenizer::PromptBatch;

/// A PaliGemma model whose decoder may hold trainable weights or adapters (`set_trainable`).
#[derive(Debug, Clone)]
pub struct PaliGemma {
    vision: SiglipVisionModel,
    projector: Linear,
    pub(super) language: Gemma,
    /// Tensor-name prefixes of the checkpoint this model was read from.
    pub(super) layout: Layout,
    num_image_tokens: usize,
}

/// Scores of a batch, one entry per example.
#[derive(Debug, Clone)]
pub struct BatchScores {
    /// `[B]` f32: logit of the positive answer word at the `"\n"` position.
    pub logit_yes: Tensor,
    /// `[B]` f32: logit of the negative answer word at the `"\n"` position.
    pub logit_no: Tensor,
    /// `[B]` f32, differentiable: mean full-vocabulary cross-entropy of (answer, `<eos>`).
    pub loss: Tensor,
}

impl BatchScores {
    /// Batch loss: the mean of the per-example losses (a scalar).
    pub fn mean_loss(&self) -> Result<Tensor> {
        self.loss.mean(0)
    }

    /// `sigmoid(logit_yes − logit_no)` per example.
    pub fn p_yes(&self) -> Result<Vec<f32>> {
        let diff = (&self.logit_yes - &self.logit_no)?.to_vec1::<f32>()?;
        Ok(diff.into_iter().map(|d| 1.0 / (1.0 + (-d).exp())).collect())
    }
}

impl PaliGemma {
    /// Build from a VarBuilder whose paths are the checkpoint's tensor names under `layout`.
    pub fn new(config: &PaliGemmaConfig, vb: VarBuilder, layout: &Layout) -> Result<PaliGemma> {
        let vision_cfg = &config.vision_config;
        Ok(PaliGemma {
            vision: SiglipVisionModel::new(vision_cfg, vb.pp(&layout.vision))?,
            projector: Linear::new(
                vision_cfg.hidden_size,
                config.projection_dim,
                Bias::With,
                vb.pp(&layout.projector).pp("linear"),
            )?,
            language: Gemma::new(&config.text_config, vb.pp(&layout.language))?,
            layout: layout.clone(),
            num_image_tokens: config.num_image_tokens(),
        })
    }

    /// Decoder layer `layer`'s projection `which` as it computes: its weight `[out, in]` in f32,
    /// with a LoRA adapter merged in.
    pub fn decoder_weight(&self, layer: usize, which: LoraTarget) -> Result<Tensor> {
        self.language.projection(layer, which).merged_weight()
    }

    pub fn num_image_tokens(&self) -> usize {
        self.num_image_tokens
    }

    /// Pixels `[B, 3, S, S]` in [-1, 1] → projector output `[B, N, D]` f32 (unscaled, detached: the
    /// vision tower and projector are frozen).
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        let patches = self.vision.forward(&pixels.to_dtype(DType::F32)?)?;
        Ok(self.projector.forward(&patches)?.detach())
    }

    /// Scores and per-example losses of `batch` given its image features `[B, N, D]`.
    pub fn score(&self, features: &Tensor, batch: &PromptBatch) -> Result<BatchScores> {
        let device = features.device();
        let (b, n, d) = features.dims3()?;
        if batch.is_empty() {
            candle_core::bail!("score: empty batch")
        }
        if b != batch.len() || n != self.num_image_tokens {
            candle_core::bail!(
                "score: features [{b}, {n}, {d}] do not fit a batch of {} with {} image tokens",
                batch.len(),
                self.num_image_tokens
            )
        }
        let text = self.language.embed_text(&batch.input_ids(device)?)?;
        let x = Tensor::cat(&[&features.to_dtype(DType::F32)?, &text], 1)?;
        let mask = batch.attention_mask(n, device)?;
        let hidden = self.language.hidden_states_at(&x, &mask, &batch.loss_positions(n))?;
        let logits = self.language.logits(&hidden)?;

        let ids = batch.token_ids();
        let at_newline = logits.i((.., 0))?;
        let logit_yes = at_newline.i((.., ids.positive as usize))?;
        let logit_no = at_newline.i((.., ids.negative as usize))?;
        let log_probs = nn::log_softmax(&logits)?;
        let target_log_probs = log_probs.gather(&batch.targets(device)?.unsqueeze(2)?, 2)?.squeeze(2)?;
        let loss = target_log_probs.mean(1)?.neg()?;
        Ok(BatchScores { logit_yes, logit_no, loss })
    }
}
