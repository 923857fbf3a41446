//! `gacha export --format hf` on the tiny HF fixture: the merged folder scores as base + adapter,
//! its index lists every tensor of the base, `--dtype` is the dtype written, the base's other
//! files come along, and an existing folder is never written into.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

fn base() -> PathBuf {
    fixtures().join("tiny-paligemma")
}

fn score(dir: &TestDir, model: &Path, adapter: Option<&str>, out: &str) -> String {
    let mut cmd = dir.gacha();
    cmd.arg("score").arg("--model").arg(model).arg("--data").arg(base().join("data.jsonl"));
    if let Some(adapter) = adapter {
        cmd.args(["--adapter", adapter]);
    }
    let output = run(cmd.args(["--out", out]));
    assert_exit(&output, 0);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

fn train(dir: &TestDir, trainable: &str, out: &str) {
    let output = run(dir
        .gacha()
        .arg("train")
        .arg("--model")
        .arg(base())
        .arg("--data")
        .arg(base().join("data.jsonl"))
        .args(["--trainable", trainable, "--optimizer", "sgd", "--lr", "0.05", "--steps", "3"])
        .args(["--batch-size", "3", "--seed", "4", "--out", out]));
    assert_exit(&output, 0);
}

fn export(dir: &TestDir, adapter: &str, extra: &[&str], out: &str) -> std::process::Output {
    run(dir
        .gacha()
        .arg("export")
        .arg("--model")
        .arg(base())
        .args(["--adapter", adapter])
        .args(extra)
        .args(["--out", out]))
}

/// Every number of a score CSV (p_yes, logits, loss).
fn numbers(csv: &str) -> Vec<f64> {
    csv.lines()
        .skip(1)
        .flat_map(|l| l.split(',').skip(2).map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
        .collect()
}

fn max_diff(a: &str, b: &str) -> f64 {
    let (a, b) = (numbers(a), numbers(b));
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Tensor name → dtype of every safetensors file in `dir`, and which file holds it.
fn tensors_of(dir: &Path) -> BTreeMap<String, (DType, String)> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            for (name, tensor) in candle_core::safetensors::load(&path, &Device::Cpu).unwrap() {
                assert!(all.insert(name.clone(), (tensor.dtype(), file.clone())).is_none(), "{name} twice");
            }
        }
    }
    all
}

#[test]
fn a_merged_export_scores_as_the_base_with_its_adapter_and_lists_every_tensor() {
    let dir = TestDir::new();
    let base_scores = score(&dir, &base(), None, "base.csv");
    let base_names: BTreeSet<String> =
        candle_core::safetensors::load(base().join("model.safetensors"), &Device::Cpu)
            .unwrap()
            .into_keys()
            .collect();
    for trainable in ["lora", "attention"] {
        train(&dir, trainable, trainable);
        let with_adapter = score(&dir, &base(), Some(trainable), &format!("{trainable}.csv"));
        assert_ne!(with_adapter, base_scores, "{trainable}: training changed nothing");
        let out = format!("{trainable}-merged");
        // The fixture is ~0.9 MB: 300 KB shards make several.
        assert_exit(&export(&dir, trainable, &["--max-shard-size", "300KB"], &out), 0);
        let merged = score(&dir, &dir.join(&out), None, &format!("{trainable}-merged.csv"));
        // LoRA: merged W + s·B·A against x·Wᵀ + s·(x·Aᵀ)·Bᵀ, equal up to f32 rounding;
        // attention: the trained f32 weights written as they are.
        let diff = max_diff(&merged, &with_adapter);
        assert!(diff < 1e-5, "{trainable}: merged export differs from base + adapter by {diff}");
        if trainable == "attention" {
            assert_eq!(merged, with_adapter);
        }

        let written = tensors_of(&dir.join(&out));
        assert_eq!(written.keys().cloned().collect::<BTreeSet<_>>(), base_names, "{trainable}: tensor names");
        let index: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(&out).join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let map = index["weight_map"].as_object().unwrap();
        let shards: BTreeSet<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
        assert!(shards.len() >= 2, "{shards:?}");
        assert!(shards.contains(format!("model-00001-of-{:05}.safetensors", shards.len()).as_str()));
        for (name, (dtype, file)) in &written {
            assert_eq!(map[name].as_str(), Some(file.as_str()), "{name}: index names another shard");
            assert_eq!(*dtype, DType::F32, "{name}: the base's dtype is kept without --dtype");
        }
        assert_eq!(map.len(), written.len());
        for file in ["config.json", "tokenizer.json"] {
            assert_eq!(
                std::fs::read(dir.join(&out).join(file)).unwrap(),
                std::fs::read(base().join(file)).unwrap(),
                "{file} is copied"
            );
        }
    }
}

#[test]
fn dtype_is_the_dtype_written_and_gacha_loads_it() {
    let dir = TestDir::new();
    train(&dir, "lora", "lora");
    assert_exit(&export(&dir, "lora", &["--dtype", "bf16"], "bf16"), 0);
    let written = tensors_of(&dir.join("bf16"));
    assert!(!written.is_empty());
    for (name, (dtype, file)) in &written {
        assert_eq!((*dtype, file.as_str()), (DType::BF16, "model.safetensors"), "{name}");
    }
    assert!(!dir.join("bf16/model.safetensors.index.json").exists(), "one shard needs no index");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bf16/config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let f32_scores = score(&dir, &base(), Some("lora"), "f32.csv");
    let bf16_scores = score(&dir, &dir.join("bf16"), None, "bf16.csv");
    // bf16 keeps 8 bits of mantissa: close to the f32 scores, not equal.
    let diff = max_diff(&bf16_scores, &f32_scores);
    assert!(diff > 0.0 && diff < 0.1, "bf16 export scores differ by {diff}");
}

#[test]
fn an_existing_folder_is_refused_and_left_as_it_was() {
    let dir = TestDir::new();
    train(&dir, "lora", "lora");
    dir.write("taken/keep.txt", "mine");
    let output = export(&dir, "lora", &[], "taken");
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    assert!(stderr.contains("already exists and is not an empty folder; choose another --out"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.join("taken")).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(std::fs::read_to_string(dir.join("taken/keep.txt")).unwrap(), "mine");
    // No temporary folder left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
    // An npz-only flag combination and a builtin model are refused with the way out.
    let output = run(dir.gacha().args(["export", "--model", "builtin:tiny", "--out", "b"]));
    assert_exit(&output, 2);
    assert!(texts(&output).1.contains("a big_vision .npz exports with --format npz"), "{}", texts(&output).1);
}
