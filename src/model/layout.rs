//! Where the three parts of a PaliGemma checkpoint live among its tensor names: the hub's
//! legacy layout or transformers 5's (PALIGEMMA.md §6.2), detected from the names present.

use anyhow::Context;

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
            language: "language_model.model".into(),
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
            language: pick(
                "language model",
                &["language_model.model", "model.language_model"],
                "embed_tokens.weight",
            )?,
        })
    }
}
