//! Model soup: one adapter holding the mean of the trained weights of K runs (the members, e.g.
//! the seeds of a sweep's winning configuration), in the same folder layout as each member.
//!
//! - Attention weights: each tensor is the element-wise mean of the members' (summed in f64,
//!   written in the members' dtype).
//! - LoRA: the exact mean of the weight deltas `ΔW_i = s·B_i·A_i`, as one PEFT adapter.
//!   Averaging A and B separately would not average the deltas (the mean of products is not the
//!   product of means). Instead the members' `lora_A` (`[r, in]`) are stacked along the rank
//!   axis into `[K·r, in]` and their `lora_B` (`[out, r]`), each times 1/K, side by side into
//!   `[out, K·r]`, so `B·A = (1/K)·Σ B_i·A_i`; `adapter_config.json` gets `r = K·r` and the
//!   `lora_alpha` that keeps the scale `s` ([`PeftConfig::with_rank_times`]). The soup is K times
//!   the members' rank, so K times their adapter size and LoRA cost; it is not re-compressed.
//!
//! Every member must be the same kind with the same keys, shapes and dtypes, and for LoRA the same
//! `adapter_config.json`; members that record a provenance must agree on its `base_model` and
//! `prompt`. Otherwise the error names the member folder and the key.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use candle_core::{DType, Tensor};
use serde::Serialize;
use serde_json::Value;

use super::peft::{key_differences, PeftConfig, CONFIG_FILE};
use super::{
    create_adapter_dir, read_peft_config, read_tensors, safetensors_bytes, AdapterKind, PROVENANCE_FILE,
};
use crate::fsutil::write_atomic;

/// Keys of the members' `gacha_adapter.json` that must agree, and that the soup's records too.
const SHARED_PROVENANCE_KEYS: [&str; 3] = ["base_model", "prompt", "preprocessing"];

/// What [`soup`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SoupSummary {
    pub kind: AdapterKind,
    /// K, the number of member folders.
    pub members: usize,
    /// Tensors in the soup's weights file.
    pub tensors: usize,
    /// LoRA: the members' rank and the soup's (K times it); `None` for attention weights.
    pub ranks: Option<(usize, usize)>,
}

impl fmt::Display for SoupSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ranks {
            Some((member, soup)) => write!(
                f,
                "mean of {} LoRA adapters of rank {member}, as one of rank {soup} ({} tensors)",
                self.members, self.tensors
            ),
            None => {
                write!(f, "mean of {} sets of attention weights ({} tensors)", self.members, self.tensors)
            }
        }
    }
}

/// What the soup's `gacha_adapter.json` records.
#[derive(Debug, Serialize)]
struct SoupProvenance<'a> {
    gacha_version: &'a str,
    /// The members' common `base_model`, `prompt` and `preprocessing`, where they record them.
    #[serde(skip_serializing_if = "Option::is_none")]
    base_model: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preprocessing: Option<&'a Value>,
    soup: SoupRecord<'a>,
}

#[derive(Debug, Serialize)]
struct SoupRecord<'a> {
    kind: AdapterKind,
    method: &'static str,
    /// The member folders as given, in order (LoRA: the order of the soup's rank blocks).
    members: Vec<String>,
    /// Each member's own `gacha_adapter.json`, null where it has none.
    member_provenance: Vec<Option<&'a Value>>,
}

/// One member folder as read.
struct Member<'a> {
    dir: &'a Path,
    tensors: HashMap<String, Tensor>,
    /// LoRA only.
    config: Option<PeftConfig>,
    provenance: Option<Value>,
}

/// Write into `out` the soup of the adapter folders `members` (at least one; one gives a copy).
pub fn soup(members: &[PathBuf], out: &Path) -> anyhow::Result<SoupSummary> {
    let first = members.first().context("a soup needs at least one member adapter folder")?;
    let kind = AdapterKind::of(first).with_context(|| format!("soup member {}", first.display()))?;
    let read = members
        .iter()
        .map(|dir| read_member(dir, kind).with_context(|| format!("soup member {}", dir.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for member in &read[1..] {
        check_matches(&read[0], member, kind).with_context(|| {
            format!("soup member {} differs from {}", member.dir.display(), first.display())
        })?;
    }
    check_not_a_member(members, out)?;

    let (tensors, config) = match &read[0].config {
        None => (mean(&read)?, None),
        Some(config) => (stack_lora(&read, config.r)?, Some((config.r, config.with_rank_times(read.len())))),
    };
    let summary = SoupSummary {
        kind,
        members: read.len(),
        tensors: tensors.len(),
        ranks: config.as_ref().map(|(member_rank, soup)| (*member_rank, soup.r)),
    };

    create_adapter_dir(out, kind)?;
    if let Some((_, config)) = &config {
        write_atomic(&out.join(CONFIG_FILE), &serde_json::to_vec_pretty(config)?)?;
    }
    write_atomic(&out.join(kind.weights_file()), &safetensors_bytes(&tensors)?)?;
    let shared = |key: &str| read[0].provenance.as_ref().and_then(|p| p.get(key));
    let provenance = SoupProvenance {
        gacha_version: env!("CARGO_PKG_VERSION"),
        base_model: shared(SHARED_PROVENANCE_KEYS[0]),
        prompt: shared(SHARED_PROVENANCE_KEYS[1]),
        preprocessing: shared(SHARED_PROVENANCE_KEYS[2]),
        soup: SoupRecord {
            kind,
            method: match kind {
                AdapterKind::Attention => "element-wise mean of each tensor",
                AdapterKind::Lora => {
                    "mean of the weight deltas: lora_A stacked along the rank axis, lora_B side by side \
                     times 1/K, r and lora_alpha scaled to keep the scale"
                }
            },
            members: members.iter().map(|m| m.display().to_string()).collect(),
            member_provenance: read.iter().map(|m| m.provenance.as_ref()).collect(),
        },
    };
    write_atomic(&out.join(PROVENANCE_FILE), &serde_json::to_vec_pretty(&provenance)?)?;
    Ok(summary)
}

fn read_member(dir: &Path, kind: AdapterKind) -> anyhow::Result<Member<'_>> {
    let found = AdapterKind::of(dir)?;
    ensure!(
        found == kind,
        "{}: holds {found}, the first member holds {kind}; a soup is of one kind",
        dir.display()
    );
    let config = match kind {
        AdapterKind::Lora => Some(read_peft_config(dir)?),
        AdapterKind::Attention => None,
    };
    let tensors = read_tensors(&dir.join(kind.weights_file()))?;
    let path = dir.join(PROVENANCE_FILE);
    let provenance = match path.exists() {
        false => None,
        true => {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?)
        }
    };
    Ok(Member { dir, tensors, config, provenance })
}

/// `member` must have `first`'s keys, shapes, dtypes, config and shared provenance.
fn check_matches(first: &Member, member: &Member, kind: AdapterKind) -> anyhow::Result<()> {
    let file = member.dir.join(kind.weights_file());
    let (missing, unknown) =
        key_differences(first.tensors.keys().map(String::as_str), member.tensors.keys().map(String::as_str));
    if let Some(key) = missing.first() {
        bail!("{}: missing key {key} ({} missing in all)", file.display(), missing.len());
    }
    if let Some(key) = unknown.first() {
        bail!("{}: key {key} is not in the first member ({} such keys)", file.display(), unknown.len());
    }
    let mut keys: Vec<&String> = first.tensors.keys().collect();
    keys.sort();
    for key in keys {
        let (want, got) = (&first.tensors[key], &member.tensors[key]);
        ensure!(
            (want.dims(), want.dtype()) == (got.dims(), got.dtype()),
            "{}: key {key} is {:?} of shape {:?}, the first member's is {:?} of shape {:?}",
            file.display(),
            got.dtype(),
            got.dims(),
            want.dtype(),
            want.dims()
        );
    }
    if let (Some(want), Some(got)) = (&first.config, &member.config) {
        let (want, got) = (serde_json::to_value(want)?, serde_json::to_value(got)?);
        let keys: BTreeSet<&str> = [&want, &got]
            .into_iter()
            .filter_map(Value::as_object)
            .flat_map(|o| o.keys().map(String::as_str))
            .collect();
        if let Some(key) = first_difference(keys, &want, &got) {
            bail!(
                "{}: key {key} is {}, the first member's is {}",
                member.dir.join(CONFIG_FILE).display(),
                got[key],
                want[key]
            );
        }
    }
    if let (Some(want), Some(got)) = (&first.provenance, &member.provenance) {
        if let Some(key) = first_difference(SHARED_PROVENANCE_KEYS, want, got) {
            bail!(
                "{}: key {key} is {}, the first member's is {}",
                member.dir.join(PROVENANCE_FILE).display(),
                got[key],
                want[key]
            );
        }
    }
    Ok(())
}

/// The first of `keys` whose value differs between the JSON objects `a` and `b` (absent is null).
fn first_difference<'k>(keys: impl IntoIterator<Item = &'k str>, a: &Value, b: &Value) -> Option<&'k str> {
    keys.into_iter().find(|&key| a[key] != b[key])
}

/// Writing the soup into a member's folder would replace that member's weights.
fn check_not_a_member(members: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let Ok(out_real) = out.canonicalize() else {
        return Ok(());
    };
    match members.iter().find(|m| m.canonicalize().is_ok_and(|m| m == out_real)) {
        Some(member) => bail!(
            "{}: the soup's output folder is its member {}; choose another folder",
            out.display(),
            member.display()
        ),
        None => Ok(()),
    }
}

/// Attention weights: the element-wise mean of each tensor, summed in f64.
fn mean(members: &[Member]) -> anyhow::Result<HashMap<String, Tensor>> {
    let k = members.len() as f64;
    members[0]
        .tensors
        .iter()
        .map(|(key, first)| {
            let mut sum = first.to_dtype(DType::F64)?;
            for member in &members[1..] {
                sum = (sum + member.tensors[key].to_dtype(DType::F64)?)?;
            }
            Ok((key.clone(), (sum / k)?.to_dtype(first.dtype())?))
        })
        .collect()
}

/// LoRA of rank `rank`: every `lora_A` stacked along the rank axis (rows), every `lora_B` times
/// 1/K side by side (columns), member by member in the same order.
fn stack_lora(members: &[Member], rank: usize) -> anyhow::Result<HashMap<String, Tensor>> {
    let k = members.len() as f64;
    let file = members[0].dir.join(AdapterKind::Lora.weights_file());
    members[0]
        .tensors
        .iter()
        .map(|(key, first)| {
            let parts: Vec<&Tensor> = members.iter().map(|m| &m.tensors[key]).collect();
            let dims = first.dims();
            let stacked = if key.ends_with(".lora_A.weight") {
                ensure!(
                    dims.len() == 2 && dims[0] == rank,
                    "{}: key {key} has shape {dims:?}; a lora_A weight is [r = {rank}, in]",
                    file.display()
                );
                Tensor::cat(&parts, 0)?
            } else if key.ends_with(".lora_B.weight") {
                ensure!(
                    dims.len() == 2 && dims[1] == rank,
                    "{}: key {key} has shape {dims:?}; a lora_B weight is [out, r = {rank}]",
                    file.display()
                );
                let scaled = parts
                    .iter()
                    .map(|b| (b.to_dtype(DType::F64)? / k)?.to_dtype(b.dtype()))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&scaled, 1)?
            } else {
                bail!(
                    "{}: key {key} is neither a lora_A nor a lora_B weight; only plain LoRA adapters can be souped",
                    file.display()
                );
            };
            Ok((key.clone(), stacked))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use candle_core::Device;
    use tempfile::TempDir;

    use super::*;
    use crate::adapter::tests::{edit_weights, lora, saved_with, scores};
    use crate::adapter::{load, ATTENTION_FILE};
    use crate::model::{LoraConfig, LoraTarget, Trainable};
    use crate::train::tests::tiny;

    /// `k` adapters of `trainable`, each from its own seed and perturbation.
    fn members(trainable: &Trainable, k: usize) -> Vec<TempDir> {
        (0..k).map(|i| saved_with(trainable, 10 + i as u64, i + 1).0).collect()
    }

    fn paths(dirs: &[TempDir]) -> Vec<PathBuf> {
        dirs.iter().map(|d| d.path().to_path_buf()).collect()
    }

    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    fn json(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Every element of `got` within `rel` (relative to the largest of `want`) of `want`.
    fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let size = want.iter().fold(0f64, |m, w| m.max(w.abs()));
        let worst = got.iter().zip(want).fold(0f64, |m, (g, w)| m.max((g - w).abs()));
        assert!(worst <= rel * size, "{what}: off by {worst} (largest value {size})");
    }

    #[test]
    fn attention_soup_is_the_mean_of_each_tensor() {
        let dirs = members(&Trainable::Attention, 3);
        let out = tempfile::tempdir().unwrap();
        let summary = soup(&paths(&dirs), out.path()).unwrap();
        let layers = tiny().config.text_config.num_hidden_layers;
        let want = SoupSummary { kind: AdapterKind::Attention, members: 3, tensors: 4 * layers, ranks: None };
        assert_eq!(summary, want);
        assert_eq!(
            summary.to_string(),
            format!("mean of 3 sets of attention weights ({} tensors)", 4 * layers)
        );

        let read: Vec<_> =
            dirs.iter().map(|d| read_tensors(&d.path().join(ATTENTION_FILE)).unwrap()).collect();
        let got = read_tensors(&out.path().join(ATTENTION_FILE)).unwrap();
        assert_eq!(got.len(), 4 * layers);
        for (key, tensor) in &got {
            assert_eq!(tensor.dtype(), DType::F32, "{key}");
            let m: Vec<Vec<f64>> = read.iter().map(|r| values(&r[key])).collect();
            let mean: Vec<f64> = (0..m[0].len()).map(|j| (m[0][j] + m[1][j] + m[2][j]) / 3.0).collect();
            assert_close(&values(tensor), &mean, 1e-6, key);
            assert!(values(tensor) != m[0], "{key}: the members must differ");
        }
        let (trainable, _) = load(out.path(), &mut tiny()).unwrap();
        assert_eq!(trainable, Trainable::Attention);

        let provenance = json(&out.path().join(PROVENANCE_FILE));
        assert_eq!(provenance["base_model"], "builtin:tiny@7");
        assert_eq!(provenance["prompt"], "p");
        assert_eq!(provenance["soup"]["kind"], "attention");
        let listed: Vec<String> = paths(&dirs).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(provenance["soup"]["members"], serde_json::json!(listed));
        assert_eq!(provenance["soup"]["member_provenance"][2]["base_model"], "builtin:tiny@7");
    }

    #[test]
    fn a_soup_of_one_is_a_copy_and_bf16_members_give_a_bf16_soup() {
        let dirs = members(&Trainable::Attention, 2);
        let out = tempfile::tempdir().unwrap();
        soup(&paths(&dirs[..1]), out.path()).unwrap();
        let member = read_tensors(&dirs[0].path().join(ATTENTION_FILE)).unwrap();
        let copy = read_tensors(&out.path().join(ATTENTION_FILE)).unwrap();
        assert_eq!(copy.len(), member.len());
        for (key, tensor) in &member {
            assert_eq!(values(&copy[key]), values(tensor), "{key}");
        }

        for dir in &dirs {
            edit_weights(&dir.path().join(ATTENTION_FILE), |t| {
                t.values_mut().for_each(|v| *v = v.to_dtype(DType::BF16).unwrap());
            });
        }
        soup(&paths(&dirs), out.path()).unwrap();
        let (a, b) = (
            &read_tensors(&dirs[0].path().join(ATTENTION_FILE)).unwrap(),
            &read_tensors(&dirs[1].path().join(ATTENTION_FILE)).unwrap(),
        );
        for (key, tensor) in read_tensors(&out.path().join(ATTENTION_FILE)).unwrap() {
            assert_eq!(tensor.dtype(), DType::BF16, "{key}");
            let mean: Vec<f64> =
                values(&a[&key]).iter().zip(values(&b[&key])).map(|(x, y)| (x + y) / 2.0).collect();
            // bf16 keeps 8 significant bits: rounding moves a value by at most 2^-8 of it.
            assert_close(&values(&tensor), &mean, 1.0 / 256.0, &key);
        }
    }

    /// The weight delta `s·B·A` of each LoRA module of the adapter in `dir`, by module name
    /// (`layers.0.self_attn.q_proj`), from its files read as plain JSON and tensors.
    fn deltas(dir: &Path) -> BTreeMap<String, Vec<f64>> {
        let config = json(&dir.join(CONFIG_FILE));
        let (r, alpha) = (config["r"].as_f64().unwrap(), config["lora_alpha"].as_f64().unwrap());
        let scale = match config["use_rslora"].as_bool() == Some(true) {
            true => alpha / r.sqrt(),
            false => alpha / r,
        };
        let tensors = read_tensors(&dir.join(super::super::peft::WEIGHTS_FILE)).unwrap();
        let mut out = BTreeMap::new();
        for (key, a) in &tensors {
            let Some(module) = key.strip_suffix(".lora_A.weight") else { continue };
            let b = &tensors[&format!("{module}.lora_B.weight")];
            let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
            let delta = (b.matmul(&a).unwrap() * scale).unwrap();
            let module = module.strip_prefix("base_model.model.model.language_model.").unwrap();
            out.insert(module.to_string(), values(&delta));
        }
        out
    }

    fn lora_qv(rank: usize, alpha: f64) -> Trainable {
        Trainable::Lora(LoraConfig { rank, alpha, targets: vec![LoraTarget::Q, LoraTarget::V] })
    }

    /// A copy of the tiny model with each delta added to its attention weight by hand.
    fn merged(deltas: &BTreeMap<String, Vec<f64>>) -> Vec<f32> {
        let mut loaded = tiny();
        let params = loaded.model.set_trainable(&Trainable::Attention, 0).unwrap();
        for (name, var) in &params.named {
            let module = &name[name.find("layers.").unwrap()..name.len() - ".weight".len()];
            if let Some(delta) = deltas.get(module) {
                let delta: Vec<f32> = delta.iter().map(|&d| d as f32).collect();
                let delta = Tensor::from_vec(delta, var.shape(), &Device::Cpu).unwrap();
                var.set(&(var.as_tensor() + delta).unwrap()).unwrap();
            }
        }
        scores(&loaded)
    }

    #[test]
    fn lora_soup_is_the_mean_delta_and_scores_like_the_base_merged_with_it() {
        for rslora in [false, true] {
            let dirs = members(&lora_qv(2, 4.0), 3);
            if rslora {
                for dir in &dirs {
                    let path = dir.path().join(CONFIG_FILE);
                    let mut config = json(&path);
                    config["use_rslora"] = true.into();
                    std::fs::write(&path, config.to_string()).unwrap();
                }
            }
            let out = tempfile::tempdir().unwrap();
            let summary = soup(&paths(&dirs), out.path()).unwrap();
            assert_eq!((summary.kind, summary.members, summary.ranks), (AdapterKind::Lora, 3, Some((2, 6))));
            let config = json(&out.path().join(CONFIG_FILE));
            assert_eq!(config["r"], 6);
            // Scale 4/2 = 2 (as 12/6), or with rsLoRA 4/√2 (as 4·√3/√6).
            let want_alpha = if rslora { 4.0 * 3f64.sqrt() } else { 12.0 };
            assert!((config["lora_alpha"].as_f64().unwrap() - want_alpha).abs() < 1e-12, "{config}");

            let member_deltas: Vec<_> = dirs.iter().map(|d| deltas(d.path())).collect();
            let soup_deltas = deltas(out.path());
            assert_eq!(soup_deltas.len(), 2 * tiny().config.text_config.num_hidden_layers);
            let mut mean_deltas = BTreeMap::new();
            for (module, got) in &soup_deltas {
                let m: Vec<&Vec<f64>> = member_deltas.iter().map(|d| &d[module]).collect();
                let mean: Vec<f64> = (0..got.len()).map(|j| (m[0][j] + m[1][j] + m[2][j]) / 3.0).collect();
                assert_close(got, &mean, 1e-6, module);
                mean_deltas.insert(module.clone(), mean);
            }

            let mut souped = tiny();
            let (trainable, _) = load(out.path(), &mut souped).unwrap();
            let Trainable::Lora(lora) = trainable else { panic!("{trainable:?}") };
            assert_eq!((lora.rank, &lora.targets), (6, &vec![LoraTarget::Q, LoraTarget::V]));
            let (got, want, base) = (scores(&souped), merged(&mean_deltas), scores(&tiny()));
            let as_f64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            // p_yes and loss through two f32 paths (x·Wᵀ + s·(x·Aᵀ)·Bᵀ vs x·(W + ΔW)ᵀ).
            assert_close(&as_f64(&got), &as_f64(&want), 1e-4, "scores");
            let moved = got.iter().zip(&base).fold(0f32, |m, (g, b)| m.max((g - b).abs()));
            assert!(moved > 1e-3, "the soup must change the scores: {got:?} vs {base:?}");
        }
    }

    fn soup_err(dirs: &[&TempDir]) -> String {
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
        format!("{:#}", soup(&paths, &tempfile::tempdir().unwrap().path().join("soup")).unwrap_err())
    }

    #[test]
    fn mismatched_members_are_errors_naming_the_member_and_key() {
        let lora_dir = saved_with(&lora(2, 4.0), 1, 1).0;
        let attention = members(&Trainable::Attention, 2);
        let err = soup_err(&[&lora_dir, &attention[0]]);
        let member = attention[0].path().display().to_string();
        assert!(err.contains(&format!("{member}: holds attention weights (attention.safetensors)")), "{err}");

        let key = "language_model.model.layers.1.self_attn.k_proj.weight";
        edit_weights(&attention[1].path().join(ATTENTION_FILE), |t| {
            assert!(t.contains_key(key));
            t.insert(key.to_string(), Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap());
        });
        let err = soup_err(&[&attention[0], &attention[1]]);
        let file = attention[1].path().join(ATTENTION_FILE).display().to_string();
        assert!(err.contains(&format!("{file}: key {key} is F32 of shape [3, 4]")), "{err}");
        edit_weights(&attention[1].path().join(ATTENTION_FILE), |t| {
            t.remove(key);
        });
        assert!(soup_err(&[&attention[0], &attention[1]]).contains(&format!("{file}: missing key {key}")));

        let other_alpha = saved_with(&lora(2, 8.0), 2, 2).0;
        let err = soup_err(&[&lora_dir, &other_alpha]);
        let config = other_alpha.path().join(CONFIG_FILE).display().to_string();
        assert!(
            err.contains(&format!("{config}: key lora_alpha is 8.0, the first member's is 4.0")),
            "{err}"
        );

        let patterned = saved_with(&lora(2, 4.0), 2, 2).0;
        let path = patterned.path().join(CONFIG_FILE);
        let mut value = json(&path);
        value["rank_pattern"] = serde_json::json!({"q_proj": 4});
        std::fs::write(&path, value.to_string()).unwrap();
        let err = soup_err(&[&lora_dir, &patterned]);
        assert!(err.contains(&format!("soup member {}", patterned.path().display())), "{err}");
        assert!(err.contains("rank_pattern is set"), "{err}");

        assert!(format!("{:#}", soup(&[], Path::new("x")).unwrap_err()).contains("at least one member"));
        let err = soup(&paths(&attention[..1]), attention[0].path()).unwrap_err().to_string();
        assert!(err.contains("output folder is its member"), "{err}");
    }
}
