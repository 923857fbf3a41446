//! A faithful, trainable PaliGemma 1 and 2 (SigLIP vision tower + linear projector + Gemma or Gemma-2
//! decoder, by `text_config.model_type`) on candle,
//! matching Hugging Face transformers (docs/design.md).
//!
//! - [`load`] reads a checkpoint folder or a big_vision `.npz` ([`big_vision`]), or builds a named
//!   model with random weights ([`ModelSource`]);
//! - [`PromptTokenizer::batch`] turns prompts and answers into a padded [`PromptBatch`];
//! - [`PaliGemma::image_features`] runs the frozen vision side, [`PaliGemma::score`] the decoder, giving
//!   yes/no logits and a differentiable per-example loss ([`BatchScores`]);
//! - [`PaliGemma::set_trainable`] makes the attention weights or LoRA adapters trainable.

pub mod big_vision;
pub mod config;
mod download;
mod gemma;
pub mod hf_export;
pub mod hub;
pub mod hub_env;
mod hub_http;
pub mod init;
mod layout;
pub mod load;
mod lora;
mod nn;
pub mod npy;
pub mod npz;
pub mod ops;
mod paligemma;
pub mod processor;
mod siglip;
pub mod tokenizer;
mod trainable;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::data::digest::manifest_sha256;

pub use config::{GemmaConfig, PaliGemmaConfig, SiglipVisionConfig};
pub use layout::{Layout, DECODER_LAYERS, DECODER_LAYERS_V4, DECODER_LAYERS_V5, PEFT_KEY_PREFIX};
pub use lora::{LoraConfig, LoraTarget};
pub use paligemma::{BatchScores, PaliGemma};
pub use processor::ModelPreprocessing;
pub use tokenizer::{PromptBatch, PromptItem, PromptTokenizer, PromptTokens, TokenIds, TokenizerError};
pub use trainable::{peft_key, Trainable, TrainableParams};

/// A model ready to score: weights, tokenizer (answers `yes`/`no` until changed with
/// [`PromptTokenizer::with_answers`]) and the config it was built from.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub model: PaliGemma,
    pub tokenizer: PromptTokenizer,
    pub config: PaliGemmaConfig,
    /// How images become its inputs, unless a resize is asked for ([`processor`]).
    pub preprocessing: ModelPreprocessing,
}

/// Where a model comes from: `builtin:NAME[@SEED]` (a named config with random weights, seed 0 by
/// default), a path ending in `.npz` (a big_vision checkpoint), a checkpoint folder path, or a hub
/// id `owner/name[@revision]` found in the local Hugging Face cache ([`hub`]) or downloaded into it.
///
/// A path that exists wins; text shaped like a hub id ([`hub::HubId::parse`]: one `/`, no leading
/// `.` or `/`) that names no file or folder is a hub id, resolved to its snapshot when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face checkpoint folder.
    Checkpoint(PathBuf),
    /// A hub id found in the local cache: its snapshot is a checkpoint folder.
    Hub(hub::Snapshot),
    /// A big_vision `.npz`, with its tokenizer.json when not beside it.
    BigVision {
        npz: PathBuf,
        tokenizer: Option<PathBuf>,
    },
    Builtin {
        name: String,
        seed: u64,
    },
}

/// The file extension of big_vision checkpoints.
const NPZ_EXTENSION: &str = "npz";

const BUILTIN_PREFIX: &str = "builtin:";

/// Paths relative to the working folder; hub ids in the cache the environment names.
impl FromStr for ModelSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelSource::parse_in(s, Path::new(""))
    }
}

impl ModelSource {
    /// Parse `s` with relative paths resolved against `base`; a hub id is looked up in the cache
    /// the environment names, and downloaded into it when it is not there (unless
    /// `HF_HUB_OFFLINE`).
    pub fn parse_in(s: &str, base: &Path) -> Result<ModelSource, String> {
        ModelSource::parse_with(s, base, hub_env::HubAccess::Download)
    }

    /// `parse_in`, downloading a hub id only if `access` allows it.
    pub fn parse_with(s: &str, base: &Path, access: hub_env::HubAccess) -> Result<ModelSource, String> {
        let Some(rest) = s.strip_prefix(BUILTIN_PREFIX) else {
            if s.is_empty() {
                return Err("empty model path".into());
            }
            let path = base.join(s);
            if !path.exists() {
                if let Some(id) = hub::HubId::parse(s) {
                    let env = hub_env::HubEnv::of_process();
                    return download::find_or_fetch(&id, &env, access).map(ModelSource::Hub).map_err(|err| {
                        format!(
                            "{s:?} is no file or folder ({} does not exist) and looks like a hub id: \
                             {err:#}\n(a folder path is taken as a hub id when it does not exist; \
                             write ./{s} for a folder)",
                            std::path::absolute(&path).unwrap_or(path.clone()).display()
                        )
                    });
                }
            }
            if path.extension().is_some_and(|e| e == NPZ_EXTENSION) {
                return Ok(ModelSource::BigVision { npz: path, tokenizer: None });
            }
            return Ok(ModelSource::Checkpoint(path));
        };
        let (name, seed) = match rest.split_once('@') {
            Some((name, seed)) => {
                let seed = seed
                    .parse()
                    .map_err(|_| format!("{s:?}: seed {seed:?} is not a non-negative integer"))?;
                (name, seed)
            }
            None => (rest, 0),
        };
        if !config::NAMED_CONFIGS.contains(&name) {
            return Err(format!(
                "{s:?}: unknown built-in model {name:?} (expected one of: {})",
                config::NAMED_CONFIGS.join(", ")
            ));
        }
        Ok(ModelSource::Builtin { name: name.to_string(), seed })
    }

    /// What the model was found to be, for `gacha check`.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Checkpoint(dir) => format!("Hugging Face checkpoint folder {}", dir.display()),
            ModelSource::Hub(snapshot) => format!(
                "hub id {} → snapshot {} (Hugging Face checkpoint folder {})",
                snapshot.id,
                snapshot.sha,
                snapshot.dir.display()
            ),
            ModelSource::BigVision { npz, .. } => format!("big_vision checkpoint {}", npz.display()),
            ModelSource::Builtin { name, seed } => {
                format!("built-in config {name} with random weights (seed {seed})")
            }
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Checkpoint(path) | ModelSource::BigVision { npz: path, .. } => {
                write!(f, "{}", path.display())
            }
            ModelSource::Hub(snapshot) => write!(f, "{snapshot}"),
            ModelSource::Builtin { name, seed } => write!(f, "{BUILTIN_PREFIX}{name}@{seed}"),
        }
    }
}

impl ModelSource {
    /// Use `tokenizer` instead of the one beside the checkpoint (big_vision `.npz` only: a
    /// checkpoint folder has its own, a built-in model is built with one).
    pub fn with_tokenizer(self, tokenizer: PathBuf) -> Result<ModelSource, String> {
        match self {
            ModelSource::BigVision { npz, .. } => Ok(ModelSource::BigVision { npz, tokenizer: Some(tokenizer) }),
            other => Err(format!(
                "{other}: a tokenizer is named only for a big_vision .npz (a checkpoint folder uses its own tokenizer.json)"
            )),
        }
    }

    /// The model's config, without loading its weights.
    pub fn config(&self) -> anyhow::Result<PaliGemmaConfig> {
        match self {
            ModelSource::Checkpoint(dir) | ModelSource::Hub(hub::Snapshot { dir, .. }) => {
                load::read_config(dir)
            }
            ModelSource::BigVision { npz, .. } => big_vision::read_config(npz),
            ModelSource::Builtin { name, .. } => Ok(PaliGemmaConfig::named(name)?),
        }
    }

    /// The digest ([`crate::data::digest`]) of the files whose bytes make the model: a
    /// checkpoint folder's config, tokenizer and weights; a big_vision `.npz` and its tokenizer. `None` for a hub snapshot (its commit names its files) and a
    /// built-in model (its name and seed make it). Every byte is read, every time: SHA-256 runs at
    /// about 1.7 GB/s of one core with SHA-NI (2 GiB of weights: 1.2 s), less than loading takes.
    pub fn content_sha256(&self) -> Option<String> {
        let files = match self {
            ModelSource::Checkpoint(dir) => load::read_files(dir),
            ModelSource::BigVision { npz, tokenizer } => big_vision::read_files(npz, tokenizer.as_deref()),
            ModelSource::Hub(_) | ModelSource::Builtin { .. } => return None,
        };
        Some(manifest_sha256(&files))
    }

    /// The model's tokenizer (answers `yes`/`no`, as [`load`] gives it), without loading its
    /// weights.
    pub fn tokenizer(&self) -> anyhow::Result<PromptTokenizer> {
        let config = self.config()?;
        let special = tokenizer::SpecialIds {
            pad: config.pad_token_id,
            eos: config.eos_token_id,
            bos: config.bos_token_id,
        };
        let answers = crate::data::Answers::default();
        match self {
            ModelSource::Checkpoint(dir) | ModelSource::Hub(hub::Snapshot { dir, .. }) => {
                PromptTokenizer::from_file(&dir.join("tokenizer.json"), special, &answers)
            }
            ModelSource::BigVision { npz, tokenizer } => PromptTokenizer::from_file(
                &big_vision::tokenizer_path(npz, tokenizer.as_deref())?,
                special,
                &answers,
            ),
            ModelSource::Builtin { .. } => {
                Ok(PromptTokenizer::new(init::builtin_tokenizer(), special, &answers)?)
            }
        }
    }

    /// The model's own preprocessing ([`processor`]), without loading its weights.
    pub fn preprocessing(&self) -> anyhow::Result<ModelPreprocessing> {
        let size = self.config()?.vision_config.image_size;
        match self {
            ModelSource::Checkpoint(dir) | ModelSource::Hub(hub::Snapshot { dir, .. }) => {
                processor::read_dir(dir, size)
            }
            ModelSource::BigVision { .. } | ModelSource::Builtin { .. } => {
                Ok(ModelPreprocessing::big_vision(size))
            }
        }
    }
}

/// Load a model; frozen weights are held in `frozen_dtype` (use f32 on CPU), trainables are f32.
pub fn load(source: &ModelSource, device: &Device, frozen_dtype: DType) -> anyhow::Result<LoadedModel> {
    match source {
        ModelSource::Checkpoint(dir) | ModelSource::Hub(hub::Snapshot { dir, .. }) => {
            load::load_dir(dir, device, frozen_dtype)
        }
        ModelSource::BigVision { npz, tokenizer } => {
            big_vision::load_npz(npz, tokenizer.as_deref(), device, frozen_dtype)
        }
        ModelSource::Builtin { name, seed } => init::builtin(name, *seed, device, frozen_dtype),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_source_parses_and_displays() {
        assert_eq!("builtin:tiny".parse(), Ok(ModelSource::Builtin { name: "tiny".into(), seed: 0 }));
        let source: ModelSource = "builtin:small@42".parse().unwrap();
        assert_eq!(source, ModelSource::Builtin { name: "small".into(), seed: 42 });
        assert_eq!(source.to_string(), "builtin:small@42");
        assert_eq!("./models/pg".parse(), Ok(ModelSource::Checkpoint("./models/pg".into())));
        assert_eq!("models/pg/x".parse(), Ok(ModelSource::Checkpoint("models/pg/x".into())));
        let in_spec_dir = ModelSource::parse_in("../pg", Path::new("sweeps"));
        assert_eq!(in_spec_dir, Ok(ModelSource::Checkpoint("sweeps/../pg".into())));
        // An existing folder is a path even when shaped like a hub id.
        assert_eq!(
            ModelSource::parse_in("src/model", Path::new(env!("CARGO_MANIFEST_DIR"))),
            Ok(ModelSource::Checkpoint(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model")))
        );
        let npz: ModelSource = "kaggle/pg.f16.npz".parse().unwrap();
        assert_eq!(npz, ModelSource::BigVision { npz: "kaggle/pg.f16.npz".into(), tokenizer: None });
        assert_eq!(npz.to_string(), "kaggle/pg.f16.npz");
        let npz = npz.with_tokenizer("t.json".into()).unwrap();
        assert!(matches!(npz, ModelSource::BigVision { tokenizer: Some(_), .. }));
        let err = ModelSource::Checkpoint("./models/pg".into()).with_tokenizer("t.json".into()).unwrap_err();
        assert!(err.contains("only for a big_vision .npz"), "{err}");
        assert!("builtin:huge"
            .parse::<ModelSource>()
            .unwrap_err()
            .contains("unknown built-in model \"huge\""));
        assert!("builtin:tiny@x".parse::<ModelSource>().unwrap_err().contains("seed \"x\""));
    }

    #[test]
    fn a_checkpoint_digest_follows_its_weights_bytes_not_their_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("config.json", "{}");
        write("tokenizer.json", "{}");
        write("model.safetensors", "weights");
        let source = ModelSource::Checkpoint(dir.path().to_path_buf());
        let before = source.content_sha256().unwrap();
        write("model.safetensors", "weights");
        assert_eq!(source.content_sha256().unwrap(), before);
        write("model.safetensors", "Weights");
        assert_ne!(source.content_sha256().unwrap(), before);
        assert_eq!("builtin:tiny".parse::<ModelSource>().unwrap().content_sha256(), None);
    }
}
