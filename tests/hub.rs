//! Hub ids found offline in a fake Hugging Face cache (`HF_HUB_CACHE` pointing into a temp
//! folder): snapshot A is the tiny HF fixture, snapshot B the same with the projector weights
//! doubled, so picking the wrong snapshot changes the scores. `refs/main` → A, tag `v1` → B.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID: &str = "google/tiny-pg";

fn hf_fixture() -> PathBuf {
    fixtures().join("tiny-paligemma")
}

/// The snapshots folder of `ID` in the cache at `dir/cache`.
fn snapshots(dir: &TestDir) -> PathBuf {
    dir.join("cache/models--google--tiny-pg/snapshots")
}

/// Build the fake cache: A = the fixture (files symlinked, as the hub cache links to blobs),
/// B = the fixture with `multi_modal_projector.linear.weight` doubled.
fn fake_cache(dir: &TestDir) {
    let a = snapshots(dir).join(SHA_A);
    std::fs::create_dir_all(&a).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(hf_fixture().join(file), a.join(file)).unwrap();
    }
    let b = snapshots(dir).join(SHA_B);
    std::fs::create_dir_all(&b).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(hf_fixture().join(file), b.join(file)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(hf_fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    let name = "multi_modal_projector.linear.weight";
    let doubled: Tensor = (&tensors[name] * 2.0).unwrap();
    tensors.insert(name.to_string(), doubled);
    candle_core::safetensors::save(&tensors, b.join("model.safetensors")).unwrap();
    point_ref(dir, "main", SHA_A);
    point_ref(dir, "v1", SHA_B);
}

fn point_ref(dir: &TestDir, name: &str, sha: &str) {
    dir.write(&format!("cache/models--google--tiny-pg/refs/{name}"), sha);
}

/// A gacha command that finds the fake cache and nothing else.
fn gacha(dir: &TestDir) -> Command {
    let mut cmd = dir.gacha();
    cmd.env("HF_HUB_CACHE", dir.join("cache")).env_remove("HF_HOME").env_remove("HUGGINGFACE_HUB_CACHE");
    cmd
}

/// `gacha score --model MODEL` on the fixture's data: the CSV.
fn score(dir: &TestDir, model: &Path, out: &str) -> String {
    let output = run(gacha(dir)
        .args(["score", "--model"])
        .arg(model)
        .arg("--data")
        .arg(hf_fixture().join("data.jsonl"))
        .args(["--out", out]));
    assert_exit(&output, 0);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

#[test]
fn a_hub_id_scores_as_its_snapshot_folder() {
    let dir = TestDir::new();
    fake_cache(&dir);
    let from_folder = score(&dir, &hf_fixture(), "folder.csv");
    assert_eq!(score(&dir, Path::new(ID), "hub.csv"), from_folder);
    let b = score(&dir, &snapshots(&dir).join(SHA_B), "b.csv");
    assert_ne!(b, from_folder, "snapshot B must score differently for the revision checks to mean anything");
    // By tag, by full sha, by sha of the other snapshot.
    assert_eq!(score(&dir, Path::new(&format!("{ID}@v1")), "v1.csv"), b);
    assert_eq!(score(&dir, Path::new(&format!("{ID}@{SHA_B}")), "sha-b.csv"), b);
    assert_eq!(score(&dir, Path::new(&format!("{ID}@{SHA_A}")), "sha-a.csv"), from_folder);
}

#[test]
fn an_existing_folder_shaped_like_an_id_is_a_folder() {
    let dir = TestDir::new();
    fake_cache(&dir);
    // `google/tiny-pg` exists in the working folder, holding snapshot B: the folder wins over
    // the cache's main (A).
    std::fs::create_dir_all(dir.join("google")).unwrap();
    std::os::unix::fs::symlink(snapshots(&dir).join(SHA_B), dir.join(ID)).unwrap();
    let b = score(&dir, &snapshots(&dir).join(SHA_B), "b.csv");
    assert_eq!(score(&dir, Path::new(ID), "local.csv"), b);
}

#[test]
fn a_model_not_in_the_cache_says_where_it_looked_and_how_to_download_it() {
    let dir = TestDir::new();
    fake_cache(&dir);
    let output = run(gacha(&dir)
        .args(["score", "--model", "google/paligemma-3b-pt-224", "--data"])
        .arg(hf_fixture().join("data.jsonl"))
        .args(["--out", "x.csv"]));
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    let cache = dir.join("cache");
    for expected in [
        format!("{} does not exist", dir.path().join("google/paligemma-3b-pt-224").display()),
        format!("not in the local Hugging Face cache {} (from $HF_HUB_CACHE)", cache.display()),
        format!("{}: no such folder", cache.join("models--google--paligemma-3b-pt-224").display()),
        "HF_HUB_OFFLINE is set, so gacha does not download it".to_string(),
        "download it with: hf download google/paligemma-3b-pt-224".to_string(),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(!dir.join("x.csv").exists());

    let output = run(gacha(&dir)
        .args(["score", "--model", &format!("{ID}@v2"), "--data"])
        .arg(hf_fixture().join("data.jsonl"))
        .args(["--out", "x.csv"]));
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    let reference = dir.join("cache/models--google--tiny-pg/refs/v2");
    assert!(stderr.contains(&format!("{}: no such branch or tag file", reference.display())), "{stderr}");
    assert!(stderr.contains(&format!("hf download {ID} --revision v2")), "{stderr}");
}

/// A one-trial sweep of `ID` in results/: the trial folder names after it ran.
fn sweep_trials(dir: &TestDir) -> Vec<String> {
    let spec = format!(
        "name = \"hub\"\n[model]\npath = \"{ID}\"\n[data]\npath = {:?}\n[train]\ntrainable = \"attention\"\n\
         optimizer = \"sgd\"\nsteps = 1\nbatch_size = 2\n[sweep]\nseeds = [1]\nvalid = [2]\nlearning_rate = [0.01]\n",
        hf_fixture().join("data.jsonl").display().to_string()
    );
    dir.write("s.toml", spec);
    let output = run(gacha(dir).args(["sweep", "s.toml", "--results", "results"]));
    assert_exit(&output, 0);
    let mut trials: Vec<String> = std::fs::read_dir(dir.join("results/trials"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    trials.sort();
    trials
}

#[test]
fn a_changed_snapshot_is_a_different_trial_and_the_config_names_it() {
    let dir = TestDir::new();
    fake_cache(&dir);
    let first = sweep_trials(&dir);
    assert_eq!(first.len(), 1);
    let config =
        std::fs::read_to_string(dir.join(&format!("results/trials/{}/config.toml", first[0]))).unwrap();
    let snapshot = std::path::absolute(snapshots(&dir).join(SHA_A)).unwrap();
    for expected in [
        format!("model = \"{ID}\"\n"),
        format!("model_snapshot = {:?}\n", snapshot.display().to_string()),
        format!("model_sha = \"{SHA_A}\"\n"),
    ] {
        assert!(config.contains(&expected), "missing {expected:?} in:\n{config}");
    }
    // The same snapshot again: the finished trial is kept, nothing new.
    assert_eq!(sweep_trials(&dir), first);
    // main moves to B: a new trial beside the old one.
    point_ref(&dir, "main", SHA_B);
    let second = sweep_trials(&dir);
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.contains(&first[0]));

    let output = run(gacha(&dir).args(["check", "s.toml"]));
    assert_exit(&output, 0);
    let (stdout, _) = texts(&output);
    let expected =
        format!("model resolved to: hub id {ID} → snapshot {SHA_B} (Hugging Face checkpoint folder ");
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains(&format!("), model snapshot {SHA_B}\n")), "{stdout}");
}
