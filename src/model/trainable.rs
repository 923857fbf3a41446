//! Which weights train: the language model's q/k/v/o weights (the big_vision demo recipe) or LoRA
//! adapters on chosen decoder projections. Everything else stays a plain tensor and gets no gradient.
//!
//! Trainable tensors are f32 `Var`s named as they are saved (CONVENTIONS.md §5): the checkpoint's
//! own tensor names for attention weights, PEFT's transformers-5 keys for LoRA
//! (`base_model.model.model.language_model.layers.{i}.self_attn.q_proj.lora_A.weight`).

use candle_core::Var;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::layout::{DECODER_LAYERS_V5, PEFT_KEY_PREFIX};
use super::lora::{LoraConfig, LoraTarget};
use super::paligemma::PaliGemma;

/// What `set_trainable` makes trainable.
#[derive(Debug, Clone, PartialEq)]
pub enum Trainable {
    /// The language model's q/k/v/o projection weights themselves, as f32 `Var`s.
    Attention,
    /// Fresh LoRA adapters on the chosen projections of every decoder layer.
    Lora(LoraConfig),
}

/// The trainable tensors, each under the name it is saved as.
#[derive(Debug, Clone, Default)]
pub struct TrainableParams {
    pub named: Vec<(String, Var)>,
}

impl TrainableParams {
    pub fn vars(&self) -> Vec<Var> {
        self.named.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Total number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.named.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// PEFT's key of a LoRA matrix (`which` is `lora_A` or `lora_B`), transformers-5 naming.
pub fn peft_key(layer: usize, target: LoraTarget, which: &str) -> String {
    format!("{PEFT_KEY_PREFIX}{DECODER_LAYERS_V5}{layer}.{}.{which}.weight", target.module_path())
}

impl PaliGemma {
    /// Make `which` trainable, after returning any previous trainable set to frozen tensors (trained
    /// weight values are kept, adapters dropped). LoRA: A ~ U(±1/√in) from a ChaCha8 stream seeded
    /// with `seed`, drawn layer by layer in [`LoraTarget::ALL`] order; B = 0. Attention: the weights
    /// become f32 `Var`s holding their current values (`seed` unused).
    pub fn set_trainable(&mut self, which: &Trainable, seed: u64) -> anyhow::Result<TrainableParams> {
        let dtype = self.language.frozen_dtype();
        for layer in 0..self.language.num_layers() {
            for target in LoraTarget::ALL {
                self.language.projection_mut(layer, target).freeze(dtype)?;
            }
        }
        let mut named = Vec::new();
        match which {
            Trainable::Attention => {
                for layer in 0..self.language.num_layers() {
                    for target in LoraTarget::ATTENTION {
                        let var = self.language.projection_mut(layer, target).train_weight()?;
                        let name = format!(
                            "{}.layers.{layer}.{}.weight",
                            self.layout.language,
                            target.module_path()
                        );
                        named.push((name, var));
                    }
                }
            }
            Trainable::Lora(config) => {
                if config.rank == 0 {
                    anyhow::bail!("LoRA rank must be at least 1");
                }
                if config.targets.is_empty() {
                    anyhow::bail!("LoRA needs at least one target (q, k, v, o, gate, up, down)");
                }
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for layer in 0..self.language.num_layers() {
                    for target in LoraTarget::ALL.into_iter().filter(|t| config.targets.contains(t)) {
                        let proj = self.language.projection_mut(layer, target);
                        let adapter = proj.attach_adapter(config.rank, config.alpha, &mut rng)?;
                        named.push((peft_key(layer, target, "lora_A"), adapter.a));
                        named.push((peft_key(layer, target, "lora_B"), adapter.b));
                    }
                }
            }
        }
        Ok(TrainableParams { named })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_short_and_peft_names() {
        assert_eq!("q".parse::<LoraTarget>(), Ok(LoraTarget::Q));
        assert_eq!("down_proj".parse::<LoraTarget>(), Ok(LoraTarget::Down));
        assert!("qkv".parse::<LoraTarget>().unwrap_err().contains("\"qkv\""));
        assert_eq!(LoraTarget::Gate.to_string(), "gate_proj");
        assert_eq!(
            peft_key(3, LoraTarget::Up, "lora_B"),
            "base_model.model.model.language_model.layers.3.mlp.up_proj.lora_B.weight"
        );
    }
}
