//! Adapters: save exactly what was trained, and load it back into a model.
//!
//! An adapter folder holds one of
//! - a LoRA adapter in PEFT's layout (`adapter_config.json` + `adapter_model.safetensors`, see
//!   [`peft`]), which `PeftModel.from_pretrained` loads; PEFT adapters trained in Python load here;
//! - trained attention weights, `attention.safetensors`, under the checkpoint's tensor names
//!   (`language_model.model.layers.{i}.self_attn.q_proj.weight`; the transformers-5 prefix
//!   `model.language_model.` is read too).
//!
//! `gacha_adapter.json` beside them records how the adapter was made; loading does not need it.
//! [`soup`] averages the adapters of several runs into one folder of the same layout.
//! Loading is strict: a key the model does not have, a key it needs that is missing, or a tensor of
//! the wrong shape is an error naming the key, never skipped.

pub mod peft;
pub mod soup;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use crate::data::Preprocessing;
use crate::fsutil::write_atomic;
use crate::model::{LoadedModel, LoraConfig, Trainable, TrainableParams, DECODER_LAYERS};
use crate::train::TrainConfig;
use peft::{canonical_keys, key_differences, PeftConfig};

/// The weights of an attention-only adapter.
pub const ATTENTION_FILE: &str = "attention.safetensors";
/// How the adapter was made (not read when loading).
pub const PROVENANCE_FILE: &str = "gacha_adapter.json";

/// The two kinds of adapter folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// PEFT's layout: `adapter_config.json` + `adapter_model.safetensors`.
    Lora,
    /// `attention.safetensors`.
    Attention,
}

impl AdapterKind {
    /// The kind of adapter in `dir`, from the files it holds.
    pub fn of(dir: &Path) -> anyhow::Result<AdapterKind> {
        let is_lora = dir.join(peft::CONFIG_FILE).exists();
        let is_attention = dir.join(ATTENTION_FILE).exists();
        match (is_lora, is_attention) {
            (true, true) => bail!(
                "{}: holds both {} and {ATTENTION_FILE}; an adapter folder holds one kind",
                dir.display(),
                peft::CONFIG_FILE
            ),
            (true, false) => Ok(AdapterKind::Lora),
            (false, true) => Ok(AdapterKind::Attention),
            (false, false) if !dir.is_dir() => bail!("{}: adapter folder not found", dir.display()),
            (false, false) => bail!(
                "{}: not an adapter folder (expected {} + {} from LoRA, or {ATTENTION_FILE})",
                dir.display(),
                peft::CONFIG_FILE,
                peft::WEIGHTS_FILE
            ),
        }
    }

    fn of_trainable(trainable: &Trainable) -> AdapterKind {
        match trainable {
            Trainable::Attention => AdapterKind::Attention,
            Trainable::Lora(_) => AdapterKind::Lora,
        }
    }

    /// The file holding the tensors.
    pub fn weights_file(self) -> &'static str {
        match self {
            AdapterKind::Lora => peft::WEIGHTS_FILE,
            AdapterKind::Attention => ATTENTION_FILE,
        }
    }

    fn other(self) -> AdapterKind {
        match self {
            AdapterKind::Lora => AdapterKind::Attention,
            AdapterKind::Attention => AdapterKind::Lora,
        }
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterKind::Lora => write!(f, "a LoRA adapter ({})", peft::CONFIG_FILE),
            AdapterKind::Attention => write!(f, "attention weights ({ATTENTION_FILE})"),
        }
    }
}

/// What `gacha_adapter.json` records.
#[derive(Debug, Serialize)]
pub struct Provenance<'a> {
    pub gacha_version: &'a str,
    /// `--model` as given (a folder or `builtin:NAME`).
    pub base_model: &'a str,
    /// `--prompt`, or `None` when each example's own `prefix` was used.
    pub prompt: Option<&'a str>,
    pub train: &'a TrainConfig,
    /// The training seed (LoRA init, batch order) and the divergence threshold: set per run,
    /// so not among the `train` keys.
    pub seed: u64,
    pub loss_above: f64,
    /// How images were turned into the model's inputs (resize, size, normalisation).
    pub preprocessing: Preprocessing,
}

impl<'a> Provenance<'a> {
    /// This build's record of a run of `train` on `base_model`, fed images by `preprocessing`.
    pub fn new(
        base_model: &'a str,
        prompt: Option<&'a str>,
        train: &'a TrainConfig,
        preprocessing: Preprocessing,
    ) -> Provenance<'a> {
        Provenance {
            gacha_version: env!("CARGO_PKG_VERSION"),
            base_model,
            prompt,
            train,
            seed: train.seed,
            loss_above: train.guard.loss_above,
            preprocessing,
        }
    }
}

/// Write the trained `params` (as returned by `set_trainable(trainable)`) to `dir`.
pub fn save(
    dir: &Path,
    trainable: &Trainable,
    params: &TrainableParams,
    provenance: &Provenance,
) -> anyhow::Result<()> {
    let kind = AdapterKind::of_trainable(trainable);
    create_adapter_dir(dir, kind)?;
    if let Trainable::Lora(lora) = trainable {
        let config = PeftConfig::for_targets(lora.rank, lora.alpha, &lora.targets, provenance.base_model);
        write_atomic(&dir.join(peft::CONFIG_FILE), &serde_json::to_vec_pretty(&config)?)?;
    }
    let tensors: HashMap<String, Tensor> =
        params.named.iter().map(|(name, var)| (name.clone(), var.as_tensor().detach())).collect();
    write_atomic(&dir.join(kind.weights_file()), &safetensors_bytes(&tensors)?)?;
    write_atomic(&dir.join(PROVENANCE_FILE), &serde_json::to_vec_pretty(provenance)?)
}

/// Create `dir` for an adapter of `kind`, refusing a folder that holds the other kind.
fn create_adapter_dir(dir: &Path, kind: AdapterKind) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the adapter folder", dir.display()))?;
    let other = kind.other().weights_file();
    ensure!(
        !dir.join(other).exists(),
        "{}: already holds another kind of adapter ({other}); choose another --out folder",
        dir.display()
    );
    Ok(())
}

/// Load the adapter in `dir` into `loaded.model`: its tensors become the model's trainable
/// variables (so training can continue from them). Returns what they are.
pub fn load(dir: &Path, loaded: &mut LoadedModel) -> anyhow::Result<(Trainable, TrainableParams)> {
    AdapterKind::of(dir)
        .and_then(|kind| match kind {
            AdapterKind::Lora => load_lora(dir, loaded),
            AdapterKind::Attention => load_attention(dir, loaded),
        })
        .with_context(|| format!("adapter {}", dir.display()))
}

/// `adapter_config.json` of `dir`, checked to hold only settings we follow.
fn read_peft_config(dir: &Path) -> anyhow::Result<PeftConfig> {
    let config_path = dir.join(peft::CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config: PeftConfig =
        serde_json::from_str(&text).with_context(|| format!("{}", config_path.display()))?;
    config.check_supported().with_context(|| format!("{}", config_path.display()))?;
    Ok(config)
}

fn load_lora(dir: &Path, loaded: &mut LoadedModel) -> anyhow::Result<(Trainable, TrainableParams)> {
    let config_path = dir.join(peft::CONFIG_FILE);
    let config = read_peft_config(dir)?;
    let weights_path = dir.join(peft::WEIGHTS_FILE);
    let file = canonical_keys(read_tensors(&weights_path)?)
        .with_context(|| format!("{}", weights_path.display()))?;
    let targets = config
        .targets(file.layout, loaded.config.text_config.num_hidden_layers)
        .with_context(|| format!("{}: target_modules", config_path.display()))?;
    let trainable = Trainable::Lora(LoraConfig { rank: config.r, alpha: config.model_alpha(), targets });
    let params = loaded.model.set_trainable(&trainable, 0)?;
    assign(&params, file.tensors, &weights_path)?;
    Ok((trainable, params))
}

fn load_attention(dir: &Path, loaded: &mut LoadedModel) -> anyhow::Result<(Trainable, TrainableParams)> {
    let path = dir.join(ATTENTION_FILE);
    let params = loaded.model.set_trainable(&Trainable::Attention, 0)?;
    // Bring the file's names to the model's prefix (the checkpoint it was read from).
    let model_prefix = params
        .named
        .first()
        .and_then(|(name, _)| DECODER_LAYERS.into_iter().find(|p| name.starts_with(p)))
        .context("the model has no attention weights to train")?;
    let mut tensors = BTreeMap::new();
    for (key, tensor) in read_tensors(&path)? {
        let Some(rest) = DECODER_LAYERS.into_iter().find_map(|p| key.strip_prefix(p)) else {
            bail!("{}: unknown key {key} (not a decoder layer weight)", path.display());
        };
        tensors.insert(format!("{model_prefix}{rest}"), tensor);
    }
    assign(&params, tensors, &path)?;
    Ok((Trainable::Attention, params))
}

/// Set every parameter from `tensors`, which must hold exactly the parameters' names and shapes.
fn assign(
    params: &TrainableParams,
    mut tensors: BTreeMap<String, Tensor>,
    file: &Path,
) -> anyhow::Result<()> {
    let (missing, unknown) =
        key_differences(params.named.iter().map(|(n, _)| n.as_str()), tensors.keys().map(String::as_str));
    if let Some(key) = unknown.first() {
        bail!(
            "{}: unknown key {key} (the model has no such parameter; {} unknown in all)",
            file.display(),
            unknown.len()
        );
    }
    if let Some(key) = missing.first() {
        bail!("{}: missing key {key} ({} missing in all)", file.display(), missing.len());
    }
    for (name, var) in &params.named {
        let tensor = tensors.remove(name).expect("key sets were checked equal");
        ensure!(
            tensor.dims() == var.dims(),
            "{}: key {name} has shape {:?}, the model needs {:?}",
            file.display(),
            tensor.dims(),
            var.dims()
        );
        var.set(&tensor.to_dtype(DType::F32)?.to_device(var.device())?)?;
    }
    Ok(())
}

fn read_tensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    ensure!(path.is_file(), "{}: file not found", path.display());
    candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))
}

/// A safetensors file of the tensors, each in its own dtype (f32, f64, f16 or bf16), with PEFT's
/// `{"format": "pt"}` metadata.
fn safetensors_bytes<'a>(
    tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    for (name, tensor) in tensors {
        let flat = tensor.flatten_all()?;
        let (dtype, bytes) = match tensor.dtype() {
            DType::F32 => (Dtype::F32, le_bytes(&flat, f32::to_le_bytes)?),
            DType::F64 => (Dtype::F64, le_bytes(&flat, f64::to_le_bytes)?),
            DType::F16 => (Dtype::F16, le_bytes(&flat, half::f16::to_le_bytes)?),
            DType::BF16 => (Dtype::BF16, le_bytes(&flat, half::bf16::to_le_bytes)?),
            other => bail!("tensor {name} has dtype {other:?}; adapters hold f32, f64, f16 or bf16 tensors"),
        };
        data.push((name.as_str(), dtype, tensor.dims().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((*name, TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(safetensors::tensor::serialize(views, Some(metadata))?)
}

/// The little-endian bytes of the values of a 1-D tensor of element type `T`.
fn le_bytes<T: candle_core::WithDType, const N: usize>(
    flat: &Tensor,
    to_le: fn(T) -> [u8; N],
) -> anyhow::Result<Vec<u8>> {
    Ok(flat.to_vec1::<T>()?.into_iter().flat_map(to_le).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LoraTarget, PromptItem};
    use crate::train::tests::{examples, tiny};

    /// p_yes and loss of a fixed batch of four.
    pub(super) fn scores(loaded: &LoadedModel) -> Vec<f32> {
        let examples = examples(loaded, 4);
        let features: Vec<&Tensor> = examples.iter().map(|e| &e.features).collect();
        let items: Vec<PromptItem> =
            examples.iter().map(|e| PromptItem { prompt: &e.prompt, answer: e.answer }).collect();
        let scores = loaded
            .model
            .score(&Tensor::stack(&features, 0).unwrap(), &loaded.tokenizer.batch(&items).unwrap())
            .unwrap();
        let mut out = scores.p_yes().unwrap();
        out.extend(scores.loss.to_vec1::<f32>().unwrap());
        out
    }

    /// Move every parameter away from its start (B included, so LoRA changes the output); each
    /// `salt` moves them differently.
    fn perturb(params: &TrainableParams, salt: usize) {
        for (i, (_, var)) in params.named.iter().enumerate() {
            let n = var.elem_count();
            let noise: Vec<f32> =
                (0..n).map(|j| ((i * 31 + j) as f32 * 0.61 + salt as f32).sin() * 0.05).collect();
            let noise = Tensor::from_vec(noise, var.shape(), var.device()).unwrap();
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
    }

    fn provenance(cfg: &TrainConfig) -> Provenance<'_> {
        Provenance::new("builtin:tiny@7", Some("p"), cfg, Preprocessing::big_vision(28))
    }

    /// Train-like state saved to a temp dir: the dir and the scores it gives.
    fn saved(trainable: Trainable) -> (tempfile::TempDir, Vec<f32>) {
        saved_with(&trainable, 3, 0)
    }

    /// As [`saved`], with the parameters initialised from `seed` and moved by `salt`.
    pub(super) fn saved_with(trainable: &Trainable, seed: u64, salt: usize) -> (tempfile::TempDir, Vec<f32>) {
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(trainable, seed).unwrap();
        perturb(&params, salt);
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), trainable, &params, &provenance(&TrainConfig::new(0.01))).unwrap();
        (dir, scores(&loaded))
    }

    pub(super) fn lora(rank: usize, alpha: f64) -> Trainable {
        Trainable::Lora(LoraConfig {
            rank,
            alpha,
            targets: vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Up],
        })
    }

    fn load_err(dir: &Path) -> String {
        format!("{:#}", load(dir, &mut tiny()).unwrap_err())
    }

    #[test]
    fn lora_round_trip_gives_identical_scores() {
        let (dir, want) = saved(lora(2, 4.0));
        let mut fresh = tiny();
        assert_ne!(scores(&fresh), want, "the perturbation must change the scores");
        let (trainable, params) = load(dir.path(), &mut fresh).unwrap();
        assert_eq!(trainable, lora(2, 4.0));
        assert_eq!(params.named.len(), 2 * 3 * fresh.config.text_config.num_hidden_layers);
        assert_eq!(scores(&fresh), want);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(peft::CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(config["target_modules"], r".*language_model.*\.(q_proj|v_proj|up_proj)");
        assert_eq!((config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some(2), Some(4.0)));
    }

    #[test]
    fn attention_round_trip_gives_identical_scores() {
        let (dir, want) = saved(Trainable::Attention);
        assert!(dir.path().join(ATTENTION_FILE).is_file() && !dir.path().join(peft::CONFIG_FILE).exists());
        let mut fresh = tiny();
        let (trainable, _) = load(dir.path(), &mut fresh).unwrap();
        assert_eq!((trainable, scores(&fresh)), (Trainable::Attention, want));
    }

    /// Rewrite the adapter's weights file through `edit`.
    pub(super) fn edit_weights(file: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
        let mut tensors = read_tensors(file).unwrap();
        edit(&mut tensors);
        candle_core::safetensors::save(&tensors, file).unwrap();
    }

    #[test]
    fn transformers4_keys_and_a_list_of_targets_load_the_same() {
        let (dir, want) = saved(lora(2, 4.0));
        edit_weights(&dir.path().join(peft::WEIGHTS_FILE), |t| {
            *t = t
                .drain()
                .map(|(k, v)| {
                    (
                        k.replace(
                            "base_model.model.model.language_model.",
                            "base_model.model.language_model.model.",
                        ),
                        v,
                    )
                })
                .collect();
        });
        let config_path = dir.path().join(peft::CONFIG_FILE);
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["target_modules"] = serde_json::json!([
            "language_model.model.layers.0.self_attn.q_proj",
            "language_model.model.layers.1.self_attn.q_proj",
            "v_proj",
            "up_proj"
        ]);
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut fresh = tiny();
        load(dir.path(), &mut fresh).unwrap();
        assert_eq!(scores(&fresh), want);
    }

    #[test]
    fn rslora_divides_alpha_by_the_root_of_the_rank() {
        // Saved with r 4, alpha 8: scale 2. As rsLoRA, alpha 4 gives 4/√4 = 2 too.
        let (dir, want) = saved(lora(4, 8.0));
        let config_path = dir.path().join(peft::CONFIG_FILE);
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["use_rslora"] = true.into();
        config["lora_alpha"] = 4.0.into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut fresh = tiny();
        load(dir.path(), &mut fresh).unwrap();
        let got = scores(&fresh);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn unknown_missing_and_misshaped_keys_are_errors_naming_the_key() {
        let (dir, _) = saved(lora(2, 4.0));
        let weights = dir.path().join(peft::WEIGHTS_FILE);
        let q0 = "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight";
        let k0 = "base_model.model.model.language_model.layers.0.self_attn.k_proj.lora_A.weight";
        let extra = |t: &mut HashMap<String, Tensor>| {
            let a = t[q0].clone();
            t.insert(k0.to_string(), a);
        };
        edit_weights(&weights, extra);
        let err = load_err(dir.path());
        assert!(err.contains(&format!("unknown key {k0}")), "{err}");

        let (dir, _) = saved(lora(2, 4.0));
        edit_weights(&dir.path().join(peft::WEIGHTS_FILE), |t| {
            t.remove(q0);
        });
        let err = load_err(dir.path());
        assert!(err.contains(&format!("missing key {q0}")), "{err}");

        let (dir, _) = saved(lora(2, 4.0));
        edit_weights(&dir.path().join(peft::WEIGHTS_FILE), |t| {
            let wrong = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
            t.insert(q0.to_string(), wrong);
        });
        let err = load_err(dir.path());
        assert!(err.contains(&format!("key {q0} has shape [3, 4]")), "{err}");

        let (dir, _) = saved(Trainable::Attention);
        let typo = "language_model.model.layers.0.self_attn.q_prj.weight";
        edit_weights(&dir.path().join(ATTENTION_FILE), |t| {
            let w = t.remove("language_model.model.layers.0.self_attn.q_proj.weight").unwrap();
            t.insert(typo.to_string(), w);
        });
        let err = load_err(dir.path());
        assert!(err.contains(&format!("unknown key {typo}")), "{err}");
    }

    #[test]
    fn dora_and_non_adapter_folders_are_refused() {
        let (dir, _) = saved(lora(2, 4.0));
        let config_path = dir.path().join(peft::CONFIG_FILE);
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["use_dora"] = true.into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        assert!(load_err(dir.path()).contains("DoRA adapters are not supported"));
        let empty = tempfile::tempdir().unwrap();
        assert!(load_err(empty.path()).contains("not an adapter folder"));
        assert!(load_err(&empty.path().join("nope")).contains("adapter folder not found"));
    }

    #[test]
    fn saving_over_another_kind_of_adapter_is_refused() {
        let (dir, _) = saved(lora(2, 4.0));
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&Trainable::Attention, 0).unwrap();
        let cfg = TrainConfig::new(0.01);
        let err = save(dir.path(), &Trainable::Attention, &params, &provenance(&cfg)).unwrap_err();
        assert!(err.to_string().contains("already holds another kind of adapter"), "{err}");
    }
}
