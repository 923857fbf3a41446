//! Which weights train: the language model's q/k/v/o weights (the big_vision demo recipe) or LoRA
//! adapters on chosen decoder projections. Everything else stays a plain tensor and gets no gradient.
//!
//! Trainable tensors are f32 `Var`s named as they are saved (docs/design.md §8): the checkpoint's
//! own tensor names for attention weights, PEFT's transformers-5 keys for LoRA
//! (`base_model.model.model.language_model.layers.{i}.self_attn.q_proj.lora_A.weight`).

use candle_core::Var;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::layout::{DECODER_LAYERS_V5, PEFT_KEY_PREFIX};
use super::lora::{LoraAdapter, LoraConfig, LoraTarget, Trained};
use super::paligemma::PaliGemma;

/// What `set_trainable` makes trainable.
#[derive(Debug, Clone, PartialEq)]
pub enum Trainable {
    /// The language model's q/k/v/o projection weights themselves, as f32 `Var`s.
    Attention,
    /// Fresh LoRA adapters on the chosen projections of every decoder layer.
    Lora(LoraConfig),
}

/// The trainable tensors of one trial, each under the name it is saved as.
#[derive(Debug, Clone)]
pub struct TrainableParams {
    /// What they are.
    pub kind: Trainable,
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

    /// This trial's state of each trained layer, in [`slots`] order.
    fn layer_states(&self) -> Vec<Trained> {
        match &self.kind {
            Trainable::Attention => self.named.iter().map(|(_, var)| Trained::Weight(var.clone())).collect(),
            Trainable::Lora(config) => self
                .named
                .chunks(2)
                .map(|pair| {
                    let scale = config.alpha / config.rank as f64;
                    Trained::Adapter(LoraAdapter { a: pair[0].1.clone(), b: pair[1].1.clone(), scale })
                })
                .collect(),
        }
    }
}

/// PEFT's key of a LoRA matrix (`which` is `lora_A` or `lora_B`), transformers-5 naming.
pub fn peft_key(layer: usize, target: LoraTarget, which: &str) -> String {
    format!("{PEFT_KEY_PREFIX}{DECODER_LAYERS_V5}{layer}.{}.{which}.weight", target.module_path())
}

/// The layers `which` trains, in the order their tensors are created and listed.
fn slots(which: &Trainable, layers: usize) -> Vec<(usize, LoraTarget)> {
    let targets: Vec<LoraTarget> = match which {
        Trainable::Attention => LoraTarget::ATTENTION.to_vec(),
        Trainable::Lora(config) => {
            LoraTarget::ALL.into_iter().filter(|t| config.targets.contains(t)).collect()
        }
    };
    (0..layers).flat_map(|layer| targets.iter().map(move |&t| (layer, t))).collect()
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
        let params = self.fresh_trainable(which, seed)?;
        self.hold(&[&params])?;
        Ok(params)
    }

    /// New trainable tensors for `which`, as `set_trainable` makes them, without putting them in
    /// the model (see [`PaliGemma::hold`]).
    pub fn fresh_trainable(&self, which: &Trainable, seed: u64) -> anyhow::Result<TrainableParams> {
        if let Trainable::Lora(config) = which {
            if config.rank == 0 {
                anyhow::bail!("LoRA rank must be at least 1");
            }
            if config.targets.is_empty() {
                anyhow::bail!("LoRA needs at least one target (q, k, v, o, gate, up, down)");
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut named = Vec::new();
        for (layer, target) in slots(which, self.language.num_layers()) {
            let proj = self.language.projection(layer, target);
            match which {
                Trainable::Attention => {
                    let name =
                        format!("{}.layers.{layer}.{}.weight", self.layout.language, target.module_path());
                    named.push((name, proj.weight_var()?));
                }
                Trainable::Lora(config) => {
                    let adapter = proj.new_adapter(config.rank, config.alpha, &mut rng)?;
                    named.push((peft_key(layer, target, "lora_A"), adapter.a));
                    named.push((peft_key(layer, target, "lora_B"), adapter.b));
                }
            }
        }
        Ok(TrainableParams { kind: which.clone(), named })
    }

    /// Compute with these trials' trainable tensors: one trial's, or K > 1 packed (the batch's
    /// rows in K equal blocks, block k trial k's). They must all be of one kind; whatever the model
    /// held before is dropped (the frozen weights stay as they are).
    pub fn hold(&mut self, members: &[&TrainableParams]) -> anyhow::Result<()> {
        let Some(first) = members.first() else { anyhow::bail!("no trainable tensors to hold") };
        if let Some(other) = members.iter().find(|m| m.kind != first.kind) {
            anyhow::bail!(
                "packed trials must train the same tensors ({:?} and {:?})",
                first.kind,
                other.kind
            );
        }
        let all_slots = slots(&first.kind, self.language.num_layers());
        let states: Vec<Vec<Trained>> = members.iter().map(|m| m.layer_states()).collect();
        if let Some(m) = states.iter().find(|s| s.len() != all_slots.len()) {
            anyhow::bail!("{} trainable layers given, the model has {}", m.len(), all_slots.len());
        }
        for layer in 0..self.language.num_layers() {
            for target in LoraTarget::ALL {
                self.language.projection_mut(layer, target).hold(Vec::new());
            }
        }
        for (i, &(layer, target)) in all_slots.iter().enumerate() {
            let layer_states = states.iter().map(|s| s[i].clone()).collect();
            self.language.projection_mut(layer, target).hold(layer_states);
        }
        Ok(())
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
