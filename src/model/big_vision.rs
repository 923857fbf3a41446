//! big_vision's PaliGemma parameter tree, as the Kaggle `.npz` checkpoints and the JAX fine-tuning
//! scripts hold it, read into the model and written back (docs/design.md §4.3).
//!
//! One table, [`RULES`], says how each array becomes Hugging Face tensors: a layer axis first for
//! the scanned stacks (`img/Transformer/encoderblock/…`, `llm/layers/…`), then for k/v and
//! gate/up a pair axis, then an axis permutation and a merge of neighbouring axes — the mapping of
//! transformers' `convert_paligemma_weights_to_hf.py`, inverted for writing. The config is read
//! off the array shapes (there is no config.json in a big_vision checkpoint), and every array is
//! checked against it by key. Arrays are converted one layer slice at a time, so a checkpoint is
//! never held twice.
//!
//! Export rewrites the decoder projections (what gacha trains) from the model, LoRA merged, in
//! each array's own dtype; every other member is copied byte for byte, so a checkpoint exported
//! without training equals its input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::{self, PaliGemmaConfig, Text, Vision};
use super::layout::Layout;
use super::lora::LoraTarget;
use super::npz::{NpzReader, NpzWriter};
use super::paligemma::PaliGemma;
use super::tokenizer::{PromptTokenizer, SpecialIds};
use super::{LoadedModel, ModelPreprocessing};
use crate::data::Answers;

/// The tokenizer looked for beside a checkpoint file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The sizes a checkpoint's arrays are made of.
struct Sizes {
    vision: Vision,
    text: Text,
}

/// Which layer stack an array's leading axis runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Unstacked,
    Vision,
    Text,
}

/// The HF tensors an array holds (two: on the array's first per-layer axis).
enum Hf {
    /// Names in the legacy layout, `{i}` for the layer.
    Frozen(&'static [&'static str]),
    /// Decoder projections of layer `{i}`: trained by gacha, so written back from the model.
    Projections(&'static [LoraTarget]),
}

/// How one big_vision array maps to HF tensors.
struct Rule {
    key: &'static str,
    stack: Stack,
    hf: Hf,
    /// The HF tensor's axes, as axes of the (per-layer, per-part) array.
    perm: &'static [usize],
    /// The HF dims: runs of this many consecutive permuted axes multiplied together.
    merge: &'static [usize],
    /// The array's shape per layer (pair axis included).
    shape: fn(&Sizes) -> Vec<usize>,
}

macro_rules! vision {
    ($name:literal) => {
        concat!("vision_tower.vision_model.encoder.layers.{i}.", $name)
    };
}

/// The whole tree; the embedding (the largest array) first, while little else is in memory.
const RULES: &[Rule] = &[
    Rule {
        key: "llm/embedder/input_embedding",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["language_model.model.embed_tokens.weight"]),
        perm: &[0, 1],
        merge: &[1, 1],
        shape: |s| vec![s.text.vocab, s.text.hidden],
    },
    Rule {
        key: "img/embedding/kernel",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["vision_tower.vision_model.embeddings.patch_embedding.weight"]),
        perm: &[3, 2, 0, 1],
        merge: &[1, 1, 1, 1],
        shape: |s| vec![s.vision.patch, s.vision.patch, 3, s.vision.hidden],
    },
    Rule {
        key: "img/embedding/bias",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["vision_tower.vision_model.embeddings.patch_embedding.bias"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/pos_embedding",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["vision_tower.vision_model.embeddings.position_embedding.weight"]),
        perm: &[0, 1, 2],
        merge: &[2, 1],
        shape: |s| vec![1, (s.vision.image / s.vision.patch).pow(2), s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/LayerNorm_0/scale",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("layer_norm1.weight")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/LayerNorm_0/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("layer_norm1.bias")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/LayerNorm_1/scale",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("layer_norm2.weight")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/LayerNorm_1/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("layer_norm2.bias")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.q_proj.weight")]),
        perm: &[1, 2, 0],
        merge: &[2, 1],
        shape: vision_qkv_kernel,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/key/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.k_proj.weight")]),
        perm: &[1, 2, 0],
        merge: &[2, 1],
        shape: vision_qkv_kernel,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/value/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.v_proj.weight")]),
        perm: &[1, 2, 0],
        merge: &[2, 1],
        shape: vision_qkv_kernel,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.q_proj.bias")]),
        perm: &[0, 1],
        merge: &[2],
        shape: vision_heads,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/key/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.k_proj.bias")]),
        perm: &[0, 1],
        merge: &[2],
        shape: vision_heads,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/value/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.v_proj.bias")]),
        perm: &[0, 1],
        merge: &[2],
        shape: vision_heads,
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/out/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.out_proj.weight")]),
        perm: &[2, 0, 1],
        merge: &[1, 2],
        shape: |s| {
            let mut shape = vision_heads(s);
            shape.push(s.vision.hidden);
            shape
        },
    },
    Rule {
        key: "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/out/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("self_attn.out_proj.bias")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("mlp.fc1.weight")]),
        perm: &[1, 0],
        merge: &[1, 1],
        shape: |s| vec![s.vision.hidden, s.vision.mlp],
    },
    Rule {
        key: "img/Transformer/encoderblock/MlpBlock_0/Dense_0/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("mlp.fc1.bias")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.mlp],
    },
    Rule {
        key: "img/Transformer/encoderblock/MlpBlock_0/Dense_1/kernel",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("mlp.fc2.weight")]),
        perm: &[1, 0],
        merge: &[1, 1],
        shape: |s| vec![s.vision.mlp, s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoderblock/MlpBlock_0/Dense_1/bias",
        stack: Stack::Vision,
        hf: Hf::Frozen(&[vision!("mlp.fc2.bias")]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoder_norm/scale",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["vision_tower.vision_model.post_layernorm.weight"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/Transformer/encoder_norm/bias",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["vision_tower.vision_model.post_layernorm.bias"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.vision.hidden],
    },
    Rule {
        key: "img/head/kernel",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["multi_modal_projector.linear.weight"]),
        perm: &[1, 0],
        merge: &[1, 1],
        shape: |s| vec![s.vision.hidden, s.text.hidden],
    },
    Rule {
        key: "img/head/bias",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["multi_modal_projector.linear.bias"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.text.hidden],
    },
    Rule {
        key: "llm/layers/attn/q_einsum/w",
        stack: Stack::Text,
        hf: Hf::Projections(&[LoraTarget::Q]),
        perm: &[0, 2, 1],
        merge: &[2, 1],
        shape: |s| vec![s.text.heads, s.text.hidden, s.text.head_dim],
    },
    Rule {
        key: "llm/layers/attn/kv_einsum/w",
        stack: Stack::Text,
        hf: Hf::Projections(&[LoraTarget::K, LoraTarget::V]),
        perm: &[0, 2, 1],
        merge: &[2, 1],
        shape: |s| vec![2, s.text.kv_heads, s.text.hidden, s.text.head_dim],
    },
    Rule {
        key: "llm/layers/attn/attn_vec_einsum/w",
        stack: Stack::Text,
        hf: Hf::Projections(&[LoraTarget::O]),
        perm: &[2, 0, 1],
        merge: &[1, 2],
        shape: |s| vec![s.text.heads, s.text.head_dim, s.text.hidden],
    },
    Rule {
        key: "llm/layers/mlp/gating_einsum",
        stack: Stack::Text,
        hf: Hf::Projections(&[LoraTarget::Gate, LoraTarget::Up]),
        perm: &[1, 0],
        merge: &[1, 1],
        shape: |s| vec![2, s.text.hidden, s.text.mlp],
    },
    Rule {
        key: "llm/layers/mlp/linear",
        stack: Stack::Text,
        hf: Hf::Projections(&[LoraTarget::Down]),
        perm: &[1, 0],
        merge: &[1, 1],
        shape: |s| vec![s.text.mlp, s.text.hidden],
    },
    Rule {
        key: "llm/layers/pre_attention_norm/scale",
        stack: Stack::Text,
        hf: Hf::Frozen(&["language_model.model.layers.{i}.input_layernorm.weight"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.text.hidden],
    },
    Rule {
        key: "llm/layers/pre_ffw_norm/scale",
        stack: Stack::Text,
        hf: Hf::Frozen(&["language_model.model.layers.{i}.post_attention_layernorm.weight"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.text.hidden],
    },
    Rule {
        key: "llm/final_norm/scale",
        stack: Stack::Unstacked,
        hf: Hf::Frozen(&["language_model.model.norm.weight"]),
        perm: &[0],
        merge: &[1],
        shape: |s| vec![s.text.hidden],
    },
];

fn vision_heads(s: &Sizes) -> Vec<usize> {
    vec![s.vision.heads, s.vision.hidden / s.vision.heads]
}

fn vision_qkv_kernel(s: &Sizes) -> Vec<usize> {
    let mut shape = vec![s.vision.hidden];
    shape.extend(vision_heads(s));
    shape
}

impl Rule {
    /// The layers of the array's stack: `[None]` for an unstacked array.
    fn layers(&self, sizes: &Sizes) -> Vec<Option<usize>> {
        match self.stack {
            Stack::Unstacked => vec![None],
            Stack::Vision => (0..sizes.vision.layers).map(Some).collect(),
            Stack::Text => (0..sizes.text.layers).map(Some).collect(),
        }
    }

    /// The whole array's shape.
    fn full_shape(&self, sizes: &Sizes) -> Vec<usize> {
        let mut shape = match self.stack {
            Stack::Unstacked => vec![],
            Stack::Vision => vec![sizes.vision.layers],
            Stack::Text => vec![sizes.text.layers],
        };
        shape.extend((self.shape)(sizes));
        shape
    }

    fn parts(&self) -> usize {
        match self.hf {
            Hf::Frozen(names) => names.len(),
            Hf::Projections(targets) => targets.len(),
        }
    }

    /// The HF names of the tensors the array's slice `layer` holds.
    fn hf_names(&self, layer: Option<usize>) -> Vec<String> {
        let i = layer.map(|i| i.to_string()).unwrap_or_default();
        match self.hf {
            Hf::Frozen(names) => names.iter().map(|n| n.replace("{i}", &i)).collect(),
            Hf::Projections(targets) => targets
                .iter()
                .map(|t| format!("language_model.model.layers.{i}.{}.weight", t.module_path()))
                .collect(),
        }
    }

    /// One layer's slice of the array → its HF tensors.
    fn to_hf(&self, slice: &Tensor) -> anyhow::Result<Vec<Tensor>> {
        let parts = match self.parts() {
            1 => vec![slice.clone()],
            n => (0..n).map(|p| slice.get(p)).collect::<candle_core::Result<_>>()?,
        };
        parts
            .into_iter()
            .map(|part| {
                let permuted = part.permute(self.perm)?;
                let mut dims = permuted.dims().iter();
                let merged: Vec<usize> =
                    self.merge.iter().map(|&n| dims.by_ref().take(n).product()).collect();
                Ok(permuted.reshape(merged)?)
            })
            .collect()
    }

    /// HF tensors → one layer's slice of the array, of shape `slice_shape`.
    fn to_big_vision(&self, parts: &[Tensor], slice_shape: &[usize]) -> anyhow::Result<Tensor> {
        let part_shape = if parts.len() == 1 { slice_shape } else { &slice_shape[1..] };
        let permuted: Vec<usize> = self.perm.iter().map(|&a| part_shape[a]).collect();
        let mut inverse = vec![0; self.perm.len()];
        for (to, &from) in self.perm.iter().enumerate() {
            inverse[from] = to;
        }
        let parts = parts
            .iter()
            .map(|t| t.reshape(permuted.as_slice())?.permute(inverse.as_slice()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(if parts.len() == 1 { parts[0].clone() } else { Tensor::stack(&parts, 0)? })
    }
}

/// The shape of `key`, which every big_vision PaliGemma has.
fn shape_of<'a>(npz: &'a NpzReader, key: &str) -> anyhow::Result<&'a [usize]> {
    Ok(npz.entry(key)?.shape())
}

/// The sizes read off a few arrays; [`check_shapes`] then checks every array against them.
fn infer_sizes(npz: &NpzReader) -> anyhow::Result<Sizes> {
    let dims = |key: &str, rank: usize| -> anyhow::Result<Vec<usize>> {
        let shape = shape_of(npz, key)?;
        ensure!(
            shape.len() == rank,
            "{}: key {key} has shape {shape:?}, expected {rank} axes",
            npz.path().display()
        );
        Ok(shape.to_vec())
    };
    let patch = dims("img/embedding/kernel", 4)?;
    let tokens = dims("img/pos_embedding", 3)?[1];
    let side = (tokens as f64).sqrt().round() as usize;
    ensure!(
        side * side == tokens,
        "{}: key img/pos_embedding has {tokens} positions, not a square grid",
        npz.path().display()
    );
    let query = dims("img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel", 4)?;
    let mlp = dims("img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel", 3)?;
    let embedding = dims("llm/embedder/input_embedding", 2)?;
    let q = dims("llm/layers/attn/q_einsum/w", 4)?;
    let kv = dims("llm/layers/attn/kv_einsum/w", 5)?;
    let gating = dims("llm/layers/mlp/gating_einsum", 4)?;
    Ok(Sizes {
        vision: Vision {
            image: side * patch[0],
            patch: patch[0],
            hidden: patch[3],
            mlp: mlp[2],
            layers: query[0],
            heads: query[2],
        },
        text: Text {
            vocab: embedding[0],
            hidden: embedding[1],
            mlp: gating[3],
            layers: q[0],
            heads: q[1],
            kv_heads: kv[2],
            head_dim: q[3],
        },
    })
}

/// Every array of [`RULES`] is present with the shape the sizes give; returns the keys the file
/// holds beyond them.
fn check_shapes(npz: &NpzReader, sizes: &Sizes) -> anyhow::Result<Vec<String>> {
    for rule in RULES {
        let want = rule.full_shape(sizes);
        let got = shape_of(npz, rule.key)?;
        ensure!(
            got == want.as_slice(),
            "{}: key {} has shape {got:?}, expected {want:?} (from the sizes read off its other arrays)",
            npz.path().display(),
            rule.key
        );
    }
    Ok(npz.entries().keys().filter(|k| !RULES.iter().any(|r| r.key == k.as_str())).cloned().collect())
}

/// The config of a big_vision `.npz`: sizes from its arrays, everything else PaliGemma's
/// (eps 1e-6, RoPE θ 10000, tanh GELU; `<image>` right after the vocabulary, as the HF copy has it).
pub fn read_config(path: &Path) -> anyhow::Result<PaliGemmaConfig> {
    Ok(inspect(&NpzReader::open(path)?)?.config)
}

/// What a checkpoint's headers say, checked.
struct Inspected {
    config: PaliGemmaConfig,
    sizes: Sizes,
    /// Keys beyond the PaliGemma tree.
    extra: Vec<String>,
}

/// Arrays of a Gemma-2 decoder (big_vision's `post_norms`), found only in PaliGemma 2 checkpoints.
const GEMMA2_MARKERS: [&str; 2] = ["llm/layers/post_attention_norm/scale", "llm/layers/post_ffw_norm/scale"];

fn inspect(npz: &NpzReader) -> anyhow::Result<Inspected> {
    if let Some(marker) = GEMMA2_MARKERS.iter().find(|k| npz.entries().contains_key(**k)) {
        bail!(
            "{}: key {marker} is a Gemma-2 norm: this is a PaliGemma 2 checkpoint, and gacha reads \
             only PaliGemma 1 .npz files; use the Hugging Face folder of the model \
             (e.g. google/paligemma2-3b-pt-224) instead",
            npz.path().display()
        );
    }
    let sizes = infer_sizes(npz)?;
    let extra = check_shapes(npz, &sizes)?;
    let image_token = sizes.text.vocab as u32;
    let config = config::build(sizes.vision.clone(), sizes.text.clone(), image_token);
    config.check().with_context(|| format!("{}: config read off the arrays", npz.path().display()))?;
    Ok(Inspected { config, sizes, extra })
}

/// The files `load_npz` reads, by file name: the checkpoint and its tokenizer (left out when
/// not found: loading says where to put it).
pub(super) fn read_files(npz: &Path, tokenizer: Option<&Path>) -> Vec<(String, PathBuf)> {
    let named = |path: PathBuf| {
        (path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), path)
    };
    let mut files = vec![named(npz.to_path_buf())];
    files.extend(tokenizer_path(npz, tokenizer).ok().map(named));
    files
}

/// The tokenizer of a checkpoint file: `tokenizer` if given, else `tokenizer.json` beside it. A
/// SentencePiece `.model` alone is not read: the error says which file to put where.
pub fn tokenizer_path(npz: &Path, tokenizer: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = tokenizer {
        ensure!(path.is_file(), "tokenizer {}: file not found", path.display());
        return Ok(path.to_path_buf());
    }
    let dir = npz.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let beside = dir.join(TOKENIZER_FILE);
    if beside.is_file() {
        return Ok(beside);
    }
    let sentencepiece = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "model"));
    let found = match &sentencepiece {
        Some(model) => format!(
            "; {} is a SentencePiece model, which gacha does not read",
            model.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => String::new(),
    };
    bail!(
        "{}: no tokenizer{found}. Put the Hugging Face tokenizer.json of PaliGemma (from the hub \
         copy, e.g. google/paligemma-3b-pt-224/tokenizer.json) at {}, or name it with \
         `tokenizer = \"…\"` in [model] (--tokenizer on the command line)",
        npz.display(),
        beside.display()
    )
}

/// Load a big_vision `.npz`; frozen weights are converted to `frozen_dtype` one layer slice at a
/// time.
pub fn load_npz(
    path: &Path,
    tokenizer: Option<&Path>,
    device: &Device,
    frozen_dtype: DType,
) -> anyhow::Result<LoadedModel> {
    let npz = NpzReader::open(path)?;
    let Inspected { config, sizes, extra } = inspect(&npz)?;
    if !extra.is_empty() {
        crate::logging::warn!(
            "{}: {} arrays that are not PaliGemma weights are not used (first: {})",
            path.display(),
            extra.len(),
            extra[0]
        );
    }
    let (v, t) = (&config.vision_config, &config.text_config);
    crate::logging::info!(
        "{}: big_vision checkpoint; read off its arrays: image {} px, patch {}, vision {} wide × {} layers \
         ({} heads, MLP {}), decoder {} wide × {} layers ({} heads of {}, {} KV, MLP {}), vocabulary {}",
        path.display(),
        v.image_size,
        v.patch_size,
        v.hidden_size,
        v.num_hidden_layers,
        v.num_attention_heads,
        v.intermediate_size,
        t.hidden_size,
        t.num_hidden_layers,
        t.num_attention_heads,
        t.head_dim,
        t.num_key_value_heads,
        t.intermediate_size,
        t.vocab_size
    );
    let special = SpecialIds { pad: config.pad_token_id, eos: config.eos_token_id, bos: config.bos_token_id };
    let tokenizer =
        PromptTokenizer::from_file(&tokenizer_path(path, tokenizer)?, special, &Answers::default())?;

    let mut tensors = HashMap::new();
    for rule in RULES {
        for layer in rule.layers(&sizes) {
            let slice = npz.read(rule.key, layer)?;
            let hf = rule.to_hf(&slice).with_context(|| format!("{}: key {}", path.display(), rule.key))?;
            for (name, tensor) in rule.hf_names(layer).into_iter().zip(hf) {
                tensors.insert(name, tensor.to_dtype(frozen_dtype)?.contiguous()?.to_device(device)?);
            }
        }
    }
    let vb = VarBuilder::from_tensors(tensors, frozen_dtype, device);
    let model = PaliGemma::new(&config, vb, &Layout::legacy())
        .with_context(|| format!("{}: bad weights", path.display()))?;
    let preprocessing = ModelPreprocessing::big_vision(config.vision_config.image_size);
    Ok(LoadedModel { model, tokenizer, config, preprocessing })
}

/// Write `model` to `out` as a big_vision `.npz` with the members of `template` (the `.npz` it was
/// loaded from): decoder projections from the model (LoRA merged) in each array's dtype, every
/// other member copied unchanged.
pub fn export_npz(model: &PaliGemma, template: &Path, out: &Path) -> anyhow::Result<()> {
    let npz = NpzReader::open(template)?;
    let sizes = inspect(&npz)?.sizes;
    crate::fsutil::write_atomic_with(out, |file| {
        let mut writer = NpzWriter::new(file);
        for (key, entry) in npz.entries() {
            let rule = RULES.iter().find(|r| r.key == key);
            let Some((rule, targets)) = rule.and_then(|r| match r.hf {
                Hf::Projections(targets) => Some((r, targets)),
                Hf::Frozen(_) => None,
            }) else {
                npz.copy_member(key, &mut writer)?;
                continue;
            };
            writer.start(&entry.member, &entry.header.dtype, entry.shape())?;
            for layer in 0..sizes.text.layers {
                let parts = targets
                    .iter()
                    .map(|&t| model.decoder_weight(layer, t))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let slice = rule.to_big_vision(&parts, &entry.shape()[1..])?;
                writer.write_tensor(&slice.to_dtype(entry.header.dtype.dtype)?)?;
            }
        }
        writer.finish()
    })
    .with_context(|| format!("exporting to {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_inverts() {
        let sizes = Sizes {
            vision: Vision { image: 28, patch: 14, hidden: 6, mlp: 10, layers: 1, heads: 3 },
            text: Text { vocab: 11, hidden: 8, mlp: 12, layers: 1, heads: 4, kv_heads: 2, head_dim: 6 },
        };
        for rule in RULES {
            let shape = (rule.shape)(&sizes);
            let n: usize = shape.iter().product();
            let slice =
                Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap().reshape(shape.as_slice()).unwrap();
            let hf = rule.to_hf(&slice).unwrap();
            assert_eq!(hf.len(), rule.parts());
            let back = rule.to_big_vision(&hf, &shape).unwrap();
            assert_eq!(back.dims(), shape.as_slice(), "{}", rule.key);
            let diff = (back - &slice).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "{}", rule.key);
        }
    }

    #[test]
    fn maps_as_the_converter_does() {
        // q_einsum [H, D, hd] → q_proj.weight[h·hd + d, in] = w[h, in, d].
        let rule = RULES.iter().find(|r| r.key == "llm/layers/attn/q_einsum/w").unwrap();
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap();
        let q = rule.to_hf(&w).unwrap().remove(0).to_vec2::<f32>().unwrap();
        let w = w.to_vec3::<f32>().unwrap();
        assert_eq!((q.len(), q[0].len()), (8, 3));
        assert_eq!(q[4 + 2][1], w[1][1][2]);
        // attn_vec_einsum [H, hd, D] → o_proj.weight[out, h·hd + d] = w[h, d, out].
        let rule = RULES.iter().find(|r| r.key == "llm/layers/attn/attn_vec_einsum/w").unwrap();
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((2, 4, 3)).unwrap();
        let o = rule.to_hf(&w).unwrap().remove(0).to_vec2::<f32>().unwrap();
        let w = w.to_vec3::<f32>().unwrap();
        assert_eq!((o.len(), o[0].len()), (3, 8));
        assert_eq!(o[2][4 + 1], w[1][1][2]);
        assert_eq!(
            RULES.iter().find(|r| r.key == "llm/layers/mlp/gating_einsum").unwrap().hf_names(Some(3)),
            [
                "language_model.model.layers.3.mlp.gate_proj.weight",
                "language_model.model.layers.3.mlp.up_proj.weight"
            ]
        );
    }
}
