//! A model with its adapter merged in, written as a complete Hugging Face checkpoint folder that
//! transformers loads without PEFT: the base folder's tensors under their own names, the decoder
//! projections taken from the model (LoRA merged `W + (alpha/r)·B·A`, or the trained attention
//! weights), every other tensor copied; safetensors in shards of at most `max_shard_bytes` with
//! `model.safetensors.index.json` when more than one (as `save_pretrained` writes them); and the
//! base's other files (config, tokenizer, processor settings) copied.
//!
//! The folder is written under a temporary name beside `out` and renamed when complete; an
//! `out` that exists and is not empty is refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::DType;

use super::layout::Layout;
use super::load::{weight_files, INDEX_FILE, SINGLE_FILE};
use super::lora::LoraTarget;
use super::paligemma::PaliGemma;

/// `save_pretrained`'s default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// Base files that hold weights: not copied, since the export replaces them.
const WEIGHT_SUFFIXES: [&str; 8] =
    [".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".h5", ".msgpack"];

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct HfExport {
    /// The dtype of every floating-point tensor written; `None` keeps each one's dtype in the base.
    pub dtype: Option<DType>,
    pub max_shard_bytes: u64,
}

/// Write `model` (loaded from the checkpoint folder `base`) to the folder `out`.
pub fn export_hf(model: &PaliGemma, base: &Path, out: &Path, opts: HfExport) -> anyhow::Result<()> {
    check_out(out)?;
    let tmp = temp_sibling(out)?;
    std::fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let written = write_folder(model, base, &tmp, opts).and_then(|()| {
        std::fs::rename(&tmp, out)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))
    });
    if written.is_err() {
        // Only the folder this call created.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written.with_context(|| format!("exporting to {}", out.display()))
}

/// Refuse an `out` that exists and is not an empty folder (called again when writing).
pub fn check_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .with_context(|| format!("{}: cannot read", out.display()))?
                .next()
                .is_none();
        if !empty {
            bail!("{}: already exists and is not an empty folder; choose another --out", out.display());
        }
    }
    Ok(())
}

/// `.NAME.tmp-PID` beside `out`.
fn temp_sibling(out: &Path) -> anyhow::Result<PathBuf> {
    let name = out.file_name().with_context(|| format!("{}: --out needs a folder name", out.display()))?;
    let tmp = format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id());
    Ok(out.with_file_name(tmp))
}

fn write_folder(model: &PaliGemma, base: &Path, dir: &Path, opts: HfExport) -> anyhow::Result<()> {
    let files = weight_files(base)?;
    // SAFETY: read-only mappings of the base's files, which must not change while exporting (as
    // when loading them).
    let tensors = unsafe { MmapedSafetensors::multi(&files) }
        .with_context(|| format!("{}: cannot read safetensors", base.display()))?;
    let mut names: Vec<(String, DType, Vec<usize>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = DType::try_from(view.dtype()).map_err(anyhow::Error::from)?;
            Ok((name, dtype, view.shape().to_vec()))
        })
        .collect::<anyhow::Result<_>>()?;
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let projections = projection_names(&model.layout, model.language.num_layers());

    let out_dtype = |dtype: DType| match opts.dtype {
        Some(out) if dtype.is_float() => out,
        _ => dtype,
    };
    let sizes: Vec<u64> = names
        .iter()
        .map(|(_, dtype, shape)| (shape.iter().product::<usize>() * out_dtype(*dtype).size_in_bytes()) as u64)
        .collect();
    let shards = plan_shards(&sizes, opts.max_shard_bytes);
    let shard_file = |k: usize| {
        if shards.len() == 1 {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", k + 1, shards.len())
        }
    };
    let mut weight_map = BTreeMap::new();
    for (k, members) in shards.iter().enumerate() {
        let mut shard = HashMap::new();
        for &i in members {
            let (name, dtype, _) = &names[i];
            let tensor = match projections.get(name) {
                Some(&(layer, target)) => model.decoder_weight(layer, target)?,
                None => tensors.load(name, &candle_core::Device::Cpu)?,
            };
            shard.insert(name.clone(), tensor.to_dtype(out_dtype(*dtype))?);
            weight_map.insert(name.clone(), shard_file(k));
        }
        let path = dir.join(shard_file(k));
        candle_core::safetensors::save(&shard, &path)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if shards.len() > 1 {
        let index = serde_json::json!({
            "metadata": { "total_size": sizes.iter().sum::<u64>() },
            "weight_map": weight_map,
        });
        std::fs::write(dir.join(INDEX_FILE), serde_json::to_vec_pretty(&index)?)?;
    }
    copy_other_files(base, dir, opts.dtype)
}

/// Decoder projection tensor name → (layer, projection).
fn projection_names(layout: &Layout, layers: usize) -> HashMap<String, (usize, LoraTarget)> {
    (0..layers)
        .flat_map(|layer| {
            LoraTarget::ALL.into_iter().map(move |target| {
                (
                    format!("{}.layers.{layer}.{}.weight", layout.language, target.module_path()),
                    (layer, target),
                )
            })
        })
        .collect()
}

/// Tensors (by index) into shards in order, each at most `max_bytes` unless one tensor alone
/// is larger (it gets a shard of its own, as transformers does).
fn plan_shards(sizes: &[u64], max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut filled = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let last = shards.last_mut().expect("starts with one shard");
        if !last.is_empty() && filled + size > max_bytes {
            shards.push(vec![i]);
            filled = size;
        } else {
            last.push(i);
            filled += size;
        }
    }
    shards
}

/// Copy the base's files other than weights (config, tokenizer, processor settings, …);
/// `config.json` gets `torch_dtype` set to `dtype` when one is given.
fn copy_other_files(base: &Path, dir: &Path, dtype: Option<DType>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(base).with_context(|| format!("{}: cannot read", base.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !path.is_file() || WEIGHT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        match (name.as_str(), dtype) {
            ("config.json", Some(dtype)) => {
                let text = std::fs::read_to_string(&path)?;
                let mut config: serde_json::Value =
                    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
                // transformers 4 reads `torch_dtype`, 5 writes `dtype`.
                config["torch_dtype"] = torch_dtype(dtype).into();
                if config.get("dtype").is_some() {
                    config["dtype"] = torch_dtype(dtype).into();
                }
                std::fs::write(dir.join(&name), serde_json::to_vec_pretty(&config)?)?;
            }
            _ => {
                std::fs::copy(&path, dir.join(&name))
                    .with_context(|| format!("cannot copy {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// transformers' name of a dtype.
fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_fill_in_order_and_a_big_tensor_stands_alone() {
        assert_eq!(plan_shards(&[4, 4, 4], 100), vec![vec![0, 1, 2]]);
        assert_eq!(plan_shards(&[4, 4, 4], 8), vec![vec![0, 1], vec![2]]);
        assert_eq!(plan_shards(&[3, 20, 3, 3], 8), vec![vec![0], vec![1], vec![2, 3]]);
    }
}
