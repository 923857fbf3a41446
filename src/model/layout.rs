//! Where the three parts of a PaliGemma checkpoint live among its tensor names: the hub's
//! legacy layout or transformers 5's (docs/design.md §4.2), detected from the names present, and
//! the decoder-layer and PEFT key prefixes that adapters and trainable weights are named with.

use anyhow::Context;

/// The language model's prefix in the hub (transformers 4) layout and in transformers 5's.
const LANGUAGE_V4: &str = "language_model.model";
const LANGUAGE_V5: &str = "model.language_model";
/// The decoder layers' prefix in transformers 5's layout (`{LANGUAGE_V5}.layers.`): what gacha
/// names its trainable weights and writes adapters with.
pub const DECODER_LAYERS_V5: &str = "model.language_model.layers.";
/// The same in the hub (transformers 4) layout (`{LANGUAGE_V4}.layers.`): also read.
pub const DECODER_LAYERS_V4: &str = "language_model.model.layers.";
/// Both, the written one first.
pub const DECODER_LAYERS: [&str; 2] = [DECODER_LAYERS_V5, DECODER_LAYERS_V4];
/// PEFT's prefix of every key of a wrapped `PaliGemmaForConditionalGeneration`.
pub const PEFT_KEY_PREFIX: &str = "base_model.model.";

/// Tensor-name prefixes of the three parts of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// e.g. `vision_tower.vision_model`
    pub vision: String,
    /// e.g. `multi_modal_projector`
    pub projector: String,
    /// e.g. `language_model.model`
    pub language: String,
}

impl Layout {
    /// The hub layout, also what transformers writes by default (`language_model.model.*`).
    pub fn legacy() -> Layout {
        Layout {
            vision: "vision_tower.vision_model".into(),
            projector: "multi_modal_projector".into(),
            language: LANGUAGE_V4.into(),
        }
    }

    /// Find the layout whose marker tensors are present.
    pub(super) fn detect(has: impl Fn(&str) -> bool) -> anyhow::Result<Layout> {
        let pick = |part: &str, candidates: &[&str], marker: &str| -> anyhow::Result<String> {
            candidates.iter().find(|p| has(&format!("{p}.{marker}"))).map(|p| p.to_string()).with_context(
                || {
                    let tried: Vec<String> = candidates.iter().map(|p| format!("{p}.{marker}")).collect();
                    format!("no {part} weights: none of {} is present", tried.join(", "))
                },
            )
        };
        Ok(Layout {
            vision: pick(
                "vision tower",
                &[
                    "vision_tower.vision_model",
                    "model.vision_tower.vision_model",
                    "model.vision_tower",
                    "vision_tower",
                ],
                "embeddings.patch_embedding.weight",
            )?,
            projector: pick(
                "projector",
                &["multi_modal_projector", "model.multi_modal_projector"],
                "linear.weight",
            )?,
            language: pick("language model", &[LANGUAGE_V4, LANGUAGE_V5], "embed_tokens.weight")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_layer_prefixes_are_the_language_prefixes_with_layers() {
        assert_eq!(DECODER_LAYERS_V4, format!("{LANGUAGE_V4}.layers."));
        assert_eq!(DECODER_LAYERS_V5, format!("{LANGUAGE_V5}.layers."));
    }
}
