//! big_vision `.npz` checkpoints in and out, on `tests/fixtures/tiny-paligemma-npz/`: the tiny HF
//! fixture written by `tools/make_npz_fixture.py` with the inverse of transformers' converter
//! mapping (checked there against the converter's own formulas), in f32, f16 and bf16.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

const DTYPES: [(&str, DType); 3] = [("f32", DType::F32), ("f16", DType::F16), ("bf16", DType::BF16)];

fn hf_fixture() -> PathBuf {
    fixtures().join("tiny-paligemma")
}

fn npz(dtype: &str) -> PathBuf {
    fixtures().join(format!("tiny-paligemma-npz/tiny.{dtype}.npz"))
}

fn tokenizer() -> PathBuf {
    hf_fixture().join("tokenizer.json")
}

fn data() -> PathBuf {
    hf_fixture().join("data.jsonl")
}

/// `gacha score` CSV text of `model` (with `extra` flags).
fn score(dir: &TestDir, model: &Path, extra: &[&str], out: &str) -> String {
    let output = run(dir
        .gacha()
        .arg("score")
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data())
        .args(extra)
        .args(["--out", out]));
    assert_exit(&output, 0);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

fn score_npz(dir: &TestDir, model: &Path, extra: &[&str], out: &str) -> String {
    let tokenizer = tokenizer().display().to_string();
    let mut flags = vec!["--tokenizer", tokenizer.as_str()];
    flags.extend(extra);
    score(dir, model, &flags, out)
}

/// The HF fixture with the weights big_vision holds: the embedding cut to the big_vision
/// vocabulary (`image_token_index` rows, as the converter found it) and every value rounded
/// through `dtype` (stored as f32). Written in a folder of `dir`.
fn hf_folder_with_big_vision_weights(dir: &TestDir, dtype: DType) -> PathBuf {
    let out = dir.join(&format!("hf-{dtype:?}"));
    std::fs::create_dir_all(&out).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf_fixture().join("config.json")).unwrap()).unwrap();
    let vocab = config["image_token_index"].as_u64().unwrap() as usize;
    config["vocab_size"] = vocab.into();
    config["text_config"]["vocab_size"] = vocab.into();
    std::fs::write(out.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(tokenizer(), out.join("tokenizer.json")).unwrap();
    let tensors =
        candle_core::safetensors::load(hf_fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    let tensors: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if name.ends_with("embed_tokens.weight") { t.narrow(0, 0, vocab).unwrap() } else { t };
            (name, t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap())
        })
        .collect();
    candle_core::safetensors::save(&tensors.into_iter().collect(), out.join("model.safetensors")).unwrap();
    out
}

/// The columns of a score CSV other than `loss`.
fn without_loss(csv: &str) -> Vec<String> {
    csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// Every member of a zip: name → bytes.
fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut member = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).unwrap();
            (member.name().unwrap().to_string(), bytes)
        })
        .collect()
}

fn export(dir: &TestDir, model: &Path, adapter: Option<&str>, out: &str) {
    let mut cmd = dir.gacha();
    cmd.arg("export").arg("--model").arg(model).arg("--tokenizer").arg(tokenizer());
    if let Some(adapter) = adapter {
        cmd.args(["--adapter", adapter]);
    }
    let output = run(cmd.args(["--format", "npz", "--out", out]));
    assert_exit(&output, 0);
}

fn train(dir: &TestDir, model: &Path, trainable: &str, out: &str) {
    let output = run(dir
        .gacha()
        .arg("train")
        .arg("--model")
        .arg(model)
        .arg("--tokenizer")
        .arg(tokenizer())
        .arg("--data")
        .arg(data())
        .args(["--trainable", trainable, "--optimizer", "sgd", "--lr", "0.05", "--steps", "3"])
        .args(["--batch-size", "3", "--seed", "4", "--out", out]));
    assert_exit(&output, 0);
}

#[test]
fn npz_scores_equal_the_hf_folder_of_the_same_weights_bit_for_bit() {
    let dir = TestDir::new();
    for (name, dtype) in DTYPES {
        let hf = hf_folder_with_big_vision_weights(&dir, dtype);
        let from_hf = score(&dir, &hf, &[], &format!("hf-{name}.csv"));
        let from_npz = score_npz(&dir, &npz(name), &[], &format!("npz-{name}.csv"));
        assert_eq!(from_npz, from_hf, "{name}: npz and HF folder of the same weights score differently");
    }
    // Against the fixture itself (448 embedding rows: 59 more in the softmax, so only the loss
    // differs): the yes/no logits and p_yes are the same numbers.
    let fixture = score(&dir, &hf_fixture(), &[], "fixture.csv");
    let f32_npz = std::fs::read_to_string(dir.join("npz-f32.csv")).unwrap();
    assert_eq!(without_loss(&f32_npz), without_loss(&fixture));
    assert_ne!(f32_npz, fixture, "the loss's normaliser has fewer rows");
}

#[test]
fn frozen_weights_in_half_precision_load_too() {
    let dir = TestDir::new();
    for (name, dtype) in [("f16", "f16"), ("bf16", "bf16")] {
        let hf = hf_folder_with_big_vision_weights(&dir, DType::F32);
        let from_hf = score(&dir, &hf, &["--dtype", dtype], &format!("hf-{name}.csv"));
        let from_npz = score_npz(&dir, &npz("f32"), &["--dtype", dtype], &format!("npz-{name}.csv"));
        assert_eq!(from_npz, from_hf, "--dtype {dtype}");
    }
}

#[test]
fn export_without_training_writes_the_input_back() {
    let dir = TestDir::new();
    for (name, _) in DTYPES {
        let out = format!("out.{name}.npz");
        export(&dir, &npz(name), None, &out);
        let (input, output) = (members(&npz(name)), members(&dir.join(&out)));
        assert_eq!(input.keys().collect::<Vec<_>>(), output.keys().collect::<Vec<_>>(), "{name}: keys");
        for (key, bytes) in &input {
            assert!(output[key] == *bytes, "{name}: {key}: header (dtype, shape) or data differ");
        }
    }
}

#[test]
fn an_exported_adapter_scores_as_the_base_with_the_adapter() {
    let dir = TestDir::new();
    let base = npz("f32");
    let base_scores = score_npz(&dir, &base, &[], "base.csv");
    for trainable in ["attention", "lora"] {
        train(&dir, &base, trainable, trainable);
        let with_adapter = score_npz(&dir, &base, &["--adapter", trainable], &format!("{trainable}.csv"));
        assert_ne!(with_adapter, base_scores, "{trainable}: training changed nothing");
        let out = format!("{trainable}.npz");
        export(&dir, &base, Some(trainable), &out);
        let exported = score_npz(&dir, &dir.join(&out), &[], &format!("{trainable}-exported.csv"));
        if trainable == "attention" {
            assert_eq!(exported, with_adapter, "trained f32 weights are written exactly");
        } else {
            // Merged W + s·B·A against x·Wᵀ + s·(x·Aᵀ)·Bᵀ: the same up to f32 rounding.
            let numbers = |csv: &str| -> Vec<f64> {
                csv.lines()
                    .skip(1)
                    .flat_map(|l| l.split(',').skip(2).map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
                    .collect()
            };
            let (a, b) = (numbers(&exported), numbers(&with_adapter));
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-5, "LoRA merged export differs by {diff}");
        }
        let (input, output) = (members(&base), members(&dir.join(&out)));
        for (key, bytes) in &input {
            let trained = key.starts_with("llm/layers/attn/");
            assert_eq!(output[key] != *bytes, trained, "{trainable}: {key}");
        }
    }
}

/// Write `members` (name → .npy bytes) as an uncompressed .npz at `path`.
fn write_npz(path: &Path, members: impl IntoIterator<Item = (String, Vec<u8>)>) {
    let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        writer.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut writer, &bytes).unwrap();
    }
    writer.finish().unwrap();
}

/// `gacha score` on the .npz `model` (with the fixture's tokenizer): it must fail; its stderr.
fn score_fails(dir: &TestDir, model: &Path) -> String {
    let output = run(dir
        .gacha()
        .arg("score")
        .arg("--model")
        .arg(model)
        .arg("--tokenizer")
        .arg(tokenizer())
        .arg("--data")
        .arg(data())
        .args(["--out", "x.csv"]));
    assert_exit(&output, 2);
    texts(&output).1
}

#[test]
fn a_missing_key_is_named_with_the_file() {
    let dir = TestDir::new();
    let broken = dir.join("broken.npz");
    write_npz(
        &broken,
        members(&npz("f32")).into_iter().filter(|(name, _)| name != "llm/final_norm/scale.npy"),
    );
    let stderr = score_fails(&dir, &broken);
    assert!(stderr.contains("broken.npz: missing key llm/final_norm/scale"), "{stderr}");
}

#[test]
fn a_paligemma2_npz_is_refused_naming_its_gemma2_key() {
    let dir = TestDir::new();
    let pg2 = dir.join("pg2.npz");
    let members = members(&npz("f32"));
    // A Gemma-2 block has post-attention and post-FFW norms: a copy of pre_ffw_norm stands in.
    let norm = members["llm/layers/pre_ffw_norm/scale.npy"].clone();
    write_npz(&pg2, members.into_iter().chain([("llm/layers/post_ffw_norm/scale.npy".to_string(), norm)]));
    let stderr = score_fails(&dir, &pg2);
    assert!(stderr.contains("key llm/layers/post_ffw_norm/scale is a Gemma-2 norm"), "{stderr}");
}

#[test]
fn the_tokenizer_is_found_beside_the_npz_or_the_error_says_where_to_put_it() {
    let dir = TestDir::new();
    let model = dir.join("kaggle/paligemma.npz");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    std::fs::copy(npz("f32"), &model).unwrap();
    dir.write("kaggle/paligemma_tokenizer.model", "not read");
    let output = run(dir
        .gacha()
        .arg("score")
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(data())
        .args(["--out", "x.csv"]));
    assert_exit(&output, 2);
    let stderr = texts(&output).1;
    assert!(stderr.contains("paligemma_tokenizer.model is a SentencePiece model"), "{stderr}");
    assert!(stderr.contains(&format!("at {}", dir.join("kaggle/tokenizer.json").display())), "{stderr}");

    std::fs::copy(tokenizer(), dir.join("kaggle/tokenizer.json")).unwrap();
    let beside = score(&dir, &model, &[], "beside.csv");
    assert_eq!(beside, score_npz(&dir, &npz("f32"), &[], "named.csv"));
}

#[test]
fn a_sweep_spec_takes_an_npz_and_its_tokenizer() {
    let dir = TestDir::new();
    let spec = dir.write(
        "spec.toml",
        format!(
            "name = \"npz\"\n[model]\npath = {:?}\ntokenizer = {:?}\n[data]\npath = {:?}\n[train]\ntrainable = \"attention\"\noptimizer = \"sgd\"\nsteps = 1\nbatch_size = 2\n[sweep]\nseeds = [1]\nvalid = [2]\nlearning_rate = [0.01]\n",
            npz("bf16").display().to_string(),
            tokenizer().display().to_string(),
            data().display().to_string()
        ),
    );
    let output = run(dir.gacha().arg("check").arg(&spec));
    let (stdout, stderr) = texts(&output);
    assert_exit(&output, 0);
    assert!(stdout.contains("1 trial") || stderr.contains("1 trial"), "{stdout}\n{stderr}");
    let resolved = format!("model resolved to: big_vision checkpoint {}\n", npz("bf16").display());
    assert!(stdout.contains(&resolved), "{stdout}");
}
