//! Reading a checkpoint folder: `config.json`, `tokenizer.json` and the weights, either one
//! `model.safetensors` or shards listed by `model.safetensors.index.json`, stored in f32, bf16 or
//! f16, with tensor names in either layout of docs/design.md §4.2 (detected from the names present).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::big_vision::TOKENIZER_FILE;
use super::config::PaliGemmaConfig;
use super::layout::Layout;
use super::paligemma::PaliGemma;
use super::tokenizer::{PromptTokenizer, SpecialIds};
use super::LoadedModel;
use crate::data::Answers;

/// The weights file of an unsharded checkpoint.
pub(super) const SINGLE_FILE: &str = "model.safetensors";

/// The index of a sharded checkpoint: tensor name → shard file.
pub(super) const INDEX_FILE: &str = "model.safetensors.index.json";

/// A checkpoint folder's model config.
const CONFIG_FILE: &str = "config.json";

/// Read and check a checkpoint folder's `config.json`.
pub fn read_config(dir: &Path) -> anyhow::Result<PaliGemmaConfig> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("{}: cannot read model config", config_path.display()))?;
    PaliGemmaConfig::from_json(&text).with_context(|| format!("{}", config_path.display()))
}

/// Load a checkpoint folder; frozen weights are converted to `frozen_dtype`.
pub fn load_dir(dir: &Path, device: &Device, frozen_dtype: DType) -> anyhow::Result<LoadedModel> {
    let config = read_config(dir)?;
    let preprocessing = super::processor::read_dir(dir, config.vision_config.image_size)?;
    let special = SpecialIds { pad: config.pad_token_id, eos: config.eos_token_id, bos: config.bos_token_id };
    let tokenizer = PromptTokenizer::from_file(&dir.join(TOKENIZER_FILE), special, &Answers::default())?;

    let files = weight_files(dir)?;
    // SAFETY: the files are memory-mapped read-only; they must not be modified while loaded, as
    // with every mmap-based loader (candle, safetensors).
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, frozen_dtype, device) }
        .with_context(|| format!("{}: cannot read safetensors", dir.display()))?;
    let layout =
        Layout::detect(|name| vb.contains_tensor(name)).with_context(|| format!("{}", dir.display()))?;
    let model =
        PaliGemma::new(&config, vb, &layout).with_context(|| format!("{}: bad weights", dir.display()))?;
    Ok(LoadedModel { model, tokenizer, config, preprocessing })
}

/// The safetensors files of a checkpoint: the shards named in `model.safetensors.index.json`, else
/// `model.safetensors`.
pub(super) fn weight_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let text =
            std::fs::read_to_string(&index).with_context(|| format!("{}: cannot read", index.display()))?;
        let parsed: Index = serde_json::from_str(&text).with_context(|| format!("{}", index.display()))?;
        let shards: BTreeSet<&String> = parsed.weight_map.values().collect();
        if shards.is_empty() {
            anyhow::bail!("{}: weight_map is empty", index.display());
        }
        let files: Vec<PathBuf> = shards.into_iter().map(|s| dir.join(s)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            anyhow::bail!("{}: shard {} not found", index.display(), missing.display());
        }
        return Ok(files);
    }
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        Ok(vec![single])
    } else {
        anyhow::bail!("{}: neither model.safetensors nor model.safetensors.index.json found", dir.display())
    }
}

/// The files of a checkpoint folder that make its model, by their names in it: the config and
/// tokenizer that are present, then the weights (the shard index and its shards, or the single
/// file). Weights that cannot be found are left out: loading says what is missing. The image
/// processor's settings are not among them: what they resolve to (`ModelSource::preprocessing`)
/// is part of a trial's identity already, so two folders that feed the same pixels agree.
pub(super) fn read_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = [CONFIG_FILE, TOKENIZER_FILE, INDEX_FILE]
        .into_iter()
        .map(|name| (name.to_string(), dir.join(name)))
        .filter(|(_, path)| path.is_file())
        .collect();
    for path in weight_files(dir).unwrap_or_default() {
        let name = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
        files.push((name, path));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_both_layouts() {
        let legacy = [
            "vision_tower.vision_model.embeddings.patch_embedding.weight",
            "multi_modal_projector.linear.weight",
            "language_model.model.embed_tokens.weight",
        ];
        assert_eq!(Layout::detect(|n| legacy.contains(&n)).unwrap(), Layout::legacy());
        let new = [
            "model.vision_tower.embeddings.patch_embedding.weight",
            "model.multi_modal_projector.linear.weight",
            "model.language_model.embed_tokens.weight",
        ];
        let layout = Layout::detect(|n| new.contains(&n)).unwrap();
        assert_eq!(layout.vision, "model.vision_tower");
        assert_eq!(layout.language, "model.language_model");
        let err = Layout::detect(|n| n.starts_with("vision_tower")).unwrap_err().to_string();
        assert!(err.contains("no projector weights: none of multi_modal_projector.linear.weight"), "{err}");
    }

    #[test]
    fn the_files_that_make_a_checkpoint_are_its_config_tokenizer_and_weights() {
        let dir = tempfile::tempdir().unwrap();
        let names = || read_files(dir.path()).into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        for file in [CONFIG_FILE, TOKENIZER_FILE, "preprocessor_config.json", "README.md", SINGLE_FILE] {
            std::fs::write(dir.path().join(file), "{}").unwrap();
        }
        assert_eq!(names(), [CONFIG_FILE, TOKENIZER_FILE, SINGLE_FILE]);
        // Sharded: the index, then its shards in name order (the single file is not read then).
        let index = r#"{"weight_map": {"b": "model-2.safetensors", "a": "model-1.safetensors", "c": "model-2.safetensors"}}"#;
        std::fs::write(dir.path().join(INDEX_FILE), index).unwrap();
        for shard in ["model-1.safetensors", "model-2.safetensors"] {
            std::fs::write(dir.path().join(shard), "").unwrap();
        }
        assert_eq!(
            names(),
            [CONFIG_FILE, TOKENIZER_FILE, INDEX_FILE, "model-1.safetensors", "model-2.safetensors"]
        );
    }
}
