//! Issue 13 part 3: a checkpoint folder's own preprocessing. The folder is the tiny-paligemma
//! fixture plus the `processor_config.json` transformers 5.24 saved for it (bicubic), assembled in a
//! temp dir; reference P(yes) from `tools/processor_parity.py` (transformers' processor + model).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

const PROCESSOR: &str = "tiny-paligemma-processor";

/// The tiny-paligemma checkpoint with the processor fixture's `processor_config.json`.
fn bicubic_checkpoint(dir: &TestDir) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures().join("tiny-paligemma").join(file), model.join(file)).unwrap();
    }
    std::fs::copy(
        fixtures().join(PROCESSOR).join("processor_config.json"),
        model.join("processor_config.json"),
    )
    .unwrap();
    model
}

/// `gacha score` P(yes) per image of the processor fixture's data.jsonl.
fn gacha_scores(dir: &TestDir, model: &Path, extra: &[&str]) -> Vec<(String, f64)> {
    let out = dir.join("scores.csv");
    let data = fixtures().join(PROCESSOR).join("data.jsonl");
    let result = run(dir
        .gacha()
        .args(["-q", "score", "--frames", "first", "--model"])
        .arg(model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(extra));
    assert_exit(&result, 0);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    reader
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(|row| {
            let row = row.unwrap();
            (row["image"].clone(), row["p_yes"].parse().unwrap())
        })
        .collect()
}

fn reference() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(fixtures().join(PROCESSOR).join("reference.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    value["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["image"].as_str().unwrap().to_string(), e["p_yes"].as_f64().unwrap()))
        .collect()
}

/// The largest |ΔP(yes)| against transformers per file extension.
fn worst_by_format(got: &[(String, f64)]) -> std::collections::BTreeMap<String, f64> {
    let want = reference();
    assert_eq!(got.len(), want.len());
    let mut worst = std::collections::BTreeMap::new();
    for ((image, p), (want_image, want_p)) in got.iter().zip(&want) {
        assert_eq!(image, want_image);
        let ext = image.rsplit('.').next().unwrap().to_string();
        let entry = worst.entry(ext).or_insert(0f64);
        *entry = entry.max((p - want_p).abs());
    }
    worst
}

#[test]
fn checkpoint_processor_scores_match_transformers() {
    let dir = TestDir::new();
    let model = bicubic_checkpoint(&dir);
    let worst = worst_by_format(&gacha_scores(&dir, &model, &[]));
    eprintln!("|ΔP(yes)| against transformers' processor + model, by format: {worst:?}");
    // The same pixels up to float rounding: PNG and GIF (measured 4.4e-7 and 7.6e-7), and JPEG
    // since gacha decodes it as libjpeg-turbo does (measured 2.0e-7; 1.8e-2 with zune-jpeg).
    assert!(worst["png"] < 1e-5 && worst["gif"] < 1e-5 && worst["jpg"] < 1e-5, "{worst:?}");
}

#[test]
fn resize_bilinear_replaces_the_checkpoints_bicubic() {
    // The same folder with --resize bilinear sees other pixels wherever an image is resized.
    let dir = TestDir::new();
    let model = bicubic_checkpoint(&dir);
    let worst = worst_by_format(&gacha_scores(&dir, &model, &["--resize", "bilinear"]));
    assert!(worst["png"] > 1e-4 && worst["gif"] > 1e-4, "{worst:?}");
}

#[test]
fn check_reports_the_preprocessing_and_trial_ids_follow_it() {
    let dir = TestDir::new();
    let model = bicubic_checkpoint(&dir);
    let fixture = fixtures().join("tiny-paligemma");
    dir.write("data.jsonl", std::fs::read(fixture.join("data.jsonl")).unwrap());
    for entry in std::fs::read_dir(fixture.join("images")).unwrap() {
        let entry = entry.unwrap();
        dir.write(
            &format!("images/{}", entry.file_name().to_str().unwrap()),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    let spec = |model: &str, resize: &str| {
        format!(
            "name = \"p\"\n[model]\npath = \"{model}\"\n[data]\npath = \"data.jsonl\"\n{resize}\
             [train]\nsteps = 1\nlearning_rate = 0.1\n[sweep]\nseeds = [1]\nvalid = [2]\n"
        )
    };
    let check = |text: String| {
        let path = dir.write("s.toml", text);
        let out = run(dir.gacha().arg("check").arg(&path));
        let (stdout, stderr) = texts(&out);
        assert_exit(&out, 0);
        let preprocessing = stdout.lines().find(|l| l.starts_with("preprocessing: ")).unwrap_or_else(|| {
            panic!("no preprocessing line\n{stdout}\n{stderr}");
        });
        let spec = gacha::spec::load_spec(&path).unwrap();
        (preprocessing.to_string(), spec.trials[0].id.clone())
    };
    let (bicubic, bicubic_id) = check(spec("model", ""));
    assert!(
        bicubic.starts_with(
            "preprocessing: bicubic to 56×56, rescale 0.00392156862745098, mean [0.5, 0.5, 0.5]"
        ) && bicubic.ends_with(&format!(
            "(from {} (image_processor))",
            model.join("processor_config.json").display()
        )),
        "{bicubic}"
    );
    let (bilinear, bilinear_id) = check(spec("model", "resize = \"bilinear\"\n"));
    assert!(
        bilinear.contains("bilinear to 56×56") && bilinear.contains("the model's own is bicubic"),
        "{bilinear}"
    );
    assert_ne!(bicubic_id, bilinear_id, "other pixels, other trials");
    // Without the processor file the folder gets big_vision's recipe, and the id of before.
    std::fs::remove_file(model.join("processor_config.json")).unwrap();
    let (default, default_id) = check(spec("model", ""));
    assert!(default.contains("big_vision's recipe (no preprocessor_config.json"), "{default}");
    assert_eq!(default_id, bilinear_id);
}
