//! `gacha score`, `gacha eval` and `gacha train` on the committed tiny-paligemma fixture.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

fn fixture() -> PathBuf {
    fixtures().join("tiny-paligemma")
}

fn data() -> PathBuf {
    fixture().join("data.jsonl")
}

/// `gacha score` of the fixture (optionally with an adapter): the CSV text.
fn score(dir: &TestDir, adapter: Option<&Path>, out: &str) -> String {
    let mut cmd = dir.gacha();
    cmd.arg("score").arg("--model").arg(fixture()).arg("--data").arg(data()).arg("--out").arg(out);
    if let Some(adapter) = adapter {
        cmd.arg("--adapter").arg(adapter);
    }
    let output = run(&mut cmd);
    assert_exit(&output, 0);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

fn eval(dir: &TestDir, adapter: &Path) -> String {
    let output =
        run(dir.gacha().arg("eval").arg("--model").arg(fixture()).arg("--adapter").arg(adapter).arg(data()));
    assert_exit(&output, 0);
    texts(&output).0
}

/// `gacha train` on the fixture with each line's own prompt; returns (stdout, stderr).
fn train(dir: &TestDir, out: &str, extra: &[&str]) -> (String, String) {
    let output = run(dir
        .gacha()
        .args(["train", "--model"])
        .arg(fixture())
        .arg("--data")
        .arg(data())
        .args([
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--steps",
            "3",
            "--batch-size",
            "3",
            "--seed",
            "4",
            "--log-every",
            "1",
            "--out",
            out,
        ])
        .args(extra));
    assert_exit(&output, 0);
    texts(&output)
}

#[test]
fn score_matches_the_transformers_reference_through_our_own_image_decoding() {
    // reference.json: transformers 5.24.0 on the same images (tools/make_fixture.py); tolerances
    // of issue 3: p_yes within 1e-4, loss within 1e-4 relative.
    let dir = TestDir::new();
    let csv = score(&dir, None, "scores.csv");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("image,label,p_yes,logit_yes,logit_no,loss"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let examples = reference["examples"].as_array().unwrap();
    assert_eq!(rows.len(), examples.len());
    for (row, want) in rows.iter().zip(examples) {
        assert_eq!(row[0], want["image"].as_str().unwrap());
        assert_eq!(row[1], want["label"].as_str().unwrap());
        let (p_yes, loss): (f64, f64) = (row[2].parse().unwrap(), row[5].parse().unwrap());
        let (want_p, want_loss) = (want["p_yes"].as_f64().unwrap(), want["loss"].as_f64().unwrap());
        assert!((p_yes - want_p).abs() < 1e-4, "{}: p_yes {p_yes} vs {want_p}", row[0]);
        assert!((loss - want_loss).abs() < 1e-4 * want_loss, "{}: loss {loss} vs {want_loss}", row[0]);
    }
}

#[test]
fn eval_prints_the_users_block() {
    // From reference.json's p_yes at 0.5: tp 2 (0.73, 0.81), fn 1 (0.19), fp 2 (0.59, 0.68),
    // tn 1 (0.49); precision 2/4, recall 2/3, F1 4/7.
    let dir = TestDir::new();
    let output = run(dir.gacha().arg("eval").arg("--model").arg(fixture()).arg(data()).arg(data()));
    assert_exit(&output, 0);
    let block = format!(
        "Result: {}\ntp=2 tn=1 fp=2 fn=1\naccuracy: 0.5000\nprecision: 0.5000\nrecall: 0.6667\nF-measure: 0.5714\n",
        data().display()
    );
    assert_eq!(texts(&output).0, format!("{block}\n{block}"));
}

#[test]
fn lora_training_saves_a_peft_adapter_that_reloads_with_the_same_scores() {
    let dir = TestDir::new();
    let (stdout, stderr) =
        train(&dir, "lora", &["--trainable", "lora", "--lora-rank", "2", "--lora-alpha", "4"]);
    // 3 steps: horizon 4, no warmup (the default); lr(1) = 0.05·½(1 + cos(π/4)) = 0.042678.
    assert!(stderr.contains("step: 1/3   lr: 0.04268   loss: "), "{stderr}");
    assert!(stderr.contains("trainable parameters: "), "{stderr}");
    for file in ["adapter_config.json", "adapter_model.safetensors", "gacha_adapter.json"] {
        assert!(dir.join("lora").join(file).is_file(), "{file} missing");
    }
    // The block train printed from the model in memory is the one the reloaded adapter gives.
    assert!(stdout.starts_with("Result: "), "{stdout}");
    assert_eq!(eval(&dir, &dir.join("lora")), stdout);
    // The adapter changes the scores, and reloading it twice gives identical bytes.
    let base = score(&dir, None, "base.csv");
    let adapted = score(&dir, Some(&dir.join("lora")), "a.csv");
    assert_ne!(base, adapted);
    assert_eq!(score(&dir, Some(&dir.join("lora")), "b.csv"), adapted);
}

#[test]
fn attention_training_saves_the_checkpoint_names_and_reloads() {
    let dir = TestDir::new();
    let (stdout, _) = train(&dir, "att", &["--trainable", "attention"]);
    assert!(dir.join("att/attention.safetensors").is_file());
    assert!(!dir.join("att/adapter_config.json").exists());
    assert_eq!(eval(&dir, &dir.join("att")), stdout);
}

#[test]
fn the_same_seed_writes_the_same_adapter() {
    let dir = TestDir::new();
    let args = ["--trainable", "lora", "--grad-accum", "2"];
    train(&dir, "a", &args);
    train(&dir, "b", &args);
    let read = |d: &str| std::fs::read(dir.join(d).join("adapter_model.safetensors")).unwrap();
    assert_eq!(read("a"), read("b"));
}

#[test]
fn an_adapter_that_does_not_fit_the_model_is_refused_naming_the_key() {
    let dir = TestDir::new();
    train(&dir, "lora", &["--trainable", "lora", "--lora-targets", "q,k"]);
    // Claim only q_proj was adapted: the k_proj tensors are then unknown.
    let config_path = dir.join("lora/adapter_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["target_modules"] = serde_json::json!(["q_proj"]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let output =
        run(dir.gacha().arg("eval").arg("--model").arg(fixture()).arg("--adapter").arg("lora").arg(data()));
    assert_exit(&output, 2);
    let stderr = texts(&output).1;
    assert!(
        stderr.contains(
            "unknown key base_model.model.model.language_model.layers.0.self_attn.k_proj.lora_A.weight"
        ),
        "{stderr}"
    );
}

#[test]
fn training_continues_from_an_adapter_of_its_kind_only() {
    let dir = TestDir::new();
    train(&dir, "first", &["--trainable", "lora", "--lora-rank", "2"]);
    let (_, stderr) = train(&dir, "second", &["--trainable", "lora", "--adapter", "first"]);
    assert!(stderr.contains(r#""lora_rank":2"#), "the adapter's rank is used: {stderr}");
    let output = run(dir
        .gacha()
        .args(["train", "--model"])
        .arg(fixture())
        .arg("--data")
        .arg(data())
        .args(["--trainable", "attention", "--adapter", "first", "--optimizer", "sgd", "--lr", "0.1"])
        .args(["--steps", "1", "--batch-size", "2", "--seed", "1", "--out", "third"]));
    assert_exit(&output, 2);
    assert!(texts(&output).1.contains("does not match the adapter"), "{}", texts(&output).1);
}

#[test]
fn cuda_in_a_cpu_build_is_an_error_not_a_fallback() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = TestDir::new();
    let output = run(dir.gacha().args(["eval", "--model", "builtin:tiny", "--device", "cuda:1"]).arg(data()));
    assert_exit(&output, 2);
    assert!(texts(&output).1.contains("built without CUDA support"), "{}", texts(&output).1);
}

#[test]
fn bench_prints_a_table_or_json_lines() {
    let dir = TestDir::new();
    let args = ["bench", "--config", "tiny", "--steps", "1", "--warmup", "0", "--batch-size", "2"];
    let output = run(dir.gacha().args(args).arg("--json"));
    assert_exit(&output, 0);
    let rows: Vec<Value> = texts(&output).0.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let trainables: Vec<&str> = rows.iter().map(|r| r["trainable"].as_str().unwrap()).collect();
    assert_eq!(trainables, ["lora", "attention"]);
    // tiny: q/k/v/o weights of 2 layers, 64 wide, 4 heads × 24, 1 KV head:
    // 2·(64·96 + 64·24 + 64·24 + 96·64) = 30,720.
    assert_eq!(rows[1]["trainable_params"], 30_720);
    assert!(rows
        .iter()
        .all(|r| r["ms_per_step"].as_f64().unwrap() > 0.0 && r["train_tflops"].as_f64().is_some()));
    let output = run(dir.gacha().args(args).args(["--trainable", "attention"]));
    assert_exit(&output, 0);
    let table = texts(&output).0;
    assert!(
        table.lines().next().unwrap().trim_start().starts_with("config  device  dtype  thr  trainable"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");
}

/// A dataset of one 3-frame GIF (red, green, blue) in `dir`.
fn gif_dataset(dir: &TestDir) -> PathBuf {
    use image::codecs::gif::GifEncoder;
    use image::{Frame, Rgba, RgbaImage};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for color in [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]] {
            encoder.encode_frame(Frame::new(RgbaImage::from_pixel(16, 16, Rgba(color)))).unwrap();
        }
    }
    dir.write("images/anim.gif", bytes);
    dir.write(
        "data.jsonl",
        "{\"prefix\": \"is this image appropriate\", \"suffix\": \"yes\", \"image\": \"images/anim.gif\"}\n",
    )
}

#[test]
fn a_gif_is_scored_by_its_worst_frame_and_trained_on_every_frame() {
    let dir = TestDir::new();
    let data = gif_dataset(&dir);
    let p_yes = |frames: &str| -> f64 {
        let out = format!("{frames}.csv");
        let output = run(dir
            .gacha()
            .args(["score", "--model", "builtin:tiny", "--gif-frames", frames, "--out", &out])
            .arg("--data")
            .arg(&data));
        assert_exit(&output, 0);
        let csv = std::fs::read_to_string(dir.join(&out)).unwrap();
        csv.lines().nth(1).unwrap().split(',').nth(2).unwrap().parse().unwrap()
    };
    let single = [p_yes("first"), p_yes("middle"), p_yes("last")];
    let spread = single.into_iter().fold(f64::NEG_INFINITY, f64::max)
        - single.into_iter().fold(f64::INFINITY, f64::min);
    assert!(spread > 1e-3, "the frames must score clearly differently: {single:?}");
    // Frames alone and in one batch of three differ by float rounding only.
    let (all, worst) = (p_yes("all"), single.into_iter().fold(f64::INFINITY, f64::min));
    assert!((all - worst).abs() < 1e-5, "all {all} vs worst frame {worst} of {single:?}");

    let output = run(dir
        .gacha()
        .args([
            "train",
            "--model",
            "builtin:tiny",
            "--trainable",
            "lora",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
        ])
        .args(["--steps", "1", "--batch-size", "2", "--seed", "1", "--out", "a"])
        .arg("--data")
        .arg(&data));
    assert_exit(&output, 0);
    assert!(texts(&output).1.contains("3 training frames from 1 images"), "{}", texts(&output).1);
}
