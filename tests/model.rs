//! Model tests on tiny random models: scoring, the prefix-LM mask, gradients (every trainable tensor,
//! finite differences) and checkpoint loading in every supported form. Parity with transformers is
//! in `parity.rs`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use gacha::data::{Answers, Label};
use gacha::model::init::{builtin_tokenizer, random_weights};
use gacha::model::{
    load, LoadedModel, LoraConfig, LoraTarget, ModelSource, PaliGemmaConfig, PromptItem, Trainable,
    TrainableParams,
};

use crate::util::TestDir;

fn tiny(seed: u64) -> LoadedModel {
    load(&ModelSource::Builtin { name: "tiny".into(), seed }, &Device::Cpu, DType::F32).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1].
fn noise(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_add(salt).wrapping_mul(2_654_435_761) >> 8) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Pixels `[n, 3, S, S]` in [-1, 1].
fn pixels(n: usize, size: usize, salt: u32) -> Tensor {
    Tensor::from_vec(noise(n * 3 * size * size, salt), (n, 3, size, size), &Device::Cpu).unwrap()
}

fn items() -> Vec<PromptItem<'static>> {
    vec![
        PromptItem { prompt: "is this ad appropriate?", answer: Label::Positive },
        PromptItem {
            prompt: "does the picture show a red price badge or a struck price?",
            answer: Label::Negative,
        },
        PromptItem { prompt: "", answer: Label::Negative },
    ]
}

/// (p_yes, per-example loss) of `items`, the i-th on pixels with salt i.
fn scores(m: &LoadedModel, items: &[PromptItem]) -> (Vec<f32>, Vec<f32>) {
    let pix: Vec<Tensor> = (0..items.len()).map(|i| pixels(1, 56, i as u32)).collect();
    let features = m.model.image_features(&Tensor::cat(&pix, 0).unwrap()).unwrap();
    let s = m.model.score(&features, &m.tokenizer.batch(items).unwrap()).unwrap();
    (s.p_yes().unwrap(), s.loss.to_vec1().unwrap())
}

fn batch_loss(m: &LoadedModel, items: &[PromptItem]) -> Tensor {
    let pix: Vec<Tensor> = (0..items.len()).map(|i| pixels(1, 56, i as u32)).collect();
    let features = m.model.image_features(&Tensor::cat(&pix, 0).unwrap()).unwrap();
    m.model.score(&features, &m.tokenizer.batch(items).unwrap()).unwrap().mean_loss().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn all_lora(rank: usize) -> Trainable {
    Trainable::Lora(LoraConfig { rank, alpha: 2.0 * rank as f64, targets: LoraTarget::ALL.to_vec() })
}

/// Give every LoRA B small non-zero values (B starts at zero, which leaves A without gradient).
fn perturb_lora_b(params: &TrainableParams) {
    for (i, (name, var)) in params.named.iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let values: Vec<f32> = noise(var.elem_count(), i as u32).iter().map(|v| 0.2 * v).collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
}

#[test]
fn builtin_tiny_scores_a_batch() {
    let m = tiny(1);
    let (p, loss) = scores(&m, &items());
    assert!(p.iter().all(|p| p.is_finite() && *p > 0.0 && *p < 1.0), "{p:?}");
    // A random model over 384 tokens: the loss is of the order of ln(384) ≈ 5.95.
    assert!(loss.iter().all(|l| l.is_finite() && *l > 1.0 && *l < 20.0), "{loss:?}");
}

#[test]
fn the_answer_token_does_not_change_the_newline_logits() {
    let m = tiny(2);
    let prompt = "is there a red badge?";
    let pix = pixels(1, 56, 9);
    let features = m.model.image_features(&pix).unwrap();
    let score = |answer| {
        let batch = m.tokenizer.batch(&[PromptItem { prompt, answer }]).unwrap();
        let s = m.model.score(&features, &batch).unwrap();
        let logits = [s.logit_yes.to_vec1::<f32>().unwrap()[0], s.logit_no.to_vec1::<f32>().unwrap()[0]];
        (logits, s.loss.to_vec1::<f32>().unwrap()[0])
    };
    let (yes_logits, yes_loss) = score(Label::Positive);
    let (no_logits, no_loss) = score(Label::Negative);
    assert_eq!(yes_logits, no_logits, "the prefix must not see the answer");
    assert!((yes_loss - no_loss).abs() > 1e-4, "the loss does depend on the answer: {yes_loss} {no_loss}");
}

#[test]
fn padding_a_batch_does_not_change_per_example_scores() {
    let m = tiny(3);
    let all = items();
    let (p_batch, loss_batch) = scores(&m, &all);
    for (i, item) in all.iter().enumerate() {
        let features = m.model.image_features(&pixels(1, 56, i as u32)).unwrap();
        let s = m.model.score(&features, &m.tokenizer.batch(&[*item]).unwrap()).unwrap();
        let (p, loss) = (s.p_yes().unwrap()[0], s.loss.to_vec1::<f32>().unwrap()[0]);
        assert!((p - p_batch[i]).abs() < 1e-5, "example {i}: p_yes {p} alone, {} in the batch", p_batch[i]);
        assert!((loss - loss_batch[i]).abs() < 1e-5 * loss, "example {i}: loss {loss} vs {}", loss_batch[i]);
    }
}

/// Backprop the batch loss; return each trainable tensor's gradient (None when it got none).
fn gradients(m: &LoadedModel, params: &TrainableParams) -> Vec<(String, Option<Tensor>)> {
    let grads = batch_loss(m, &items()).backward().unwrap();
    params.named.iter().map(|(name, var)| (name.clone(), grads.get(var).cloned())).collect()
}

fn abs_sum(t: &Tensor) -> f32 {
    t.abs().unwrap().sum_all().unwrap().to_scalar().unwrap()
}

#[test]
fn every_attention_weight_gets_a_gradient() {
    let mut m = tiny(4);
    let params = m.model.set_trainable(&Trainable::Attention, 0).unwrap();
    assert_eq!(params.named.len(), 2 * 4, "2 layers × q/k/v/o");
    assert_eq!(params.named[1].0, "language_model.model.layers.0.self_attn.k_proj.weight");
    for (name, grad) in gradients(&m, &params) {
        let grad = grad.unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(abs_sum(&grad) > 0.0, "{name}: zero gradient");
    }
}

#[test]
fn every_lora_matrix_gets_a_gradient_once_b_is_nonzero() {
    let mut m = tiny(5);
    let params = m.model.set_trainable(&all_lora(2), 11).unwrap();
    assert_eq!(params.named.len(), 2 * 7 * 2, "2 layers × 7 targets × (A, B)");
    assert_eq!(
        params.named[0].0,
        "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"
    );
    // At init B = 0: B gets a gradient, A's is exactly zero (its path is multiplied by B).
    for (name, grad) in gradients(&m, &params) {
        let grad = grad.unwrap_or_else(|| panic!("{name}: no gradient"));
        if name.ends_with("lora_B.weight") {
            assert!(abs_sum(&grad) > 0.0, "{name}: zero gradient at init");
        } else {
            assert_eq!(abs_sum(&grad), 0.0, "{name}: B = 0 at init, so A's gradient must be 0");
        }
    }
    perturb_lora_b(&params);
    for (name, grad) in gradients(&m, &params) {
        let grad = grad.unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(abs_sum(&grad) > 0.0, "{name}: zero gradient with B ≠ 0");
    }
}

#[test]
fn lora_starts_equal_to_the_base_model_and_is_seeded() {
    let base = tiny(6);
    let (p0, loss0) = scores(&base, &items());
    let mut m = base.clone();
    let a = m.model.set_trainable(&all_lora(4), 1).unwrap();
    let (p1, loss1) = scores(&m, &items());
    assert!(max_abs_diff(&p0, &p1) < 1e-6 && max_abs_diff(&loss0, &loss1) < 1e-5);
    let b = m.model.set_trainable(&all_lora(4), 1).unwrap();
    let c = m.model.set_trainable(&all_lora(4), 2).unwrap();
    let first = |p: &TrainableParams| p.named[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(first(&a), first(&b), "same seed, same A");
    assert_ne!(first(&a), first(&c), "another seed, another A");
    let bound = 1.0 / 64f32.sqrt();
    assert!(first(&a).iter().all(|v| v.abs() <= bound), "A ~ U(±1/√in), in = 64");
}

/// Central finite difference of the batch loss in one entry of `var`, with step `h`.
fn finite_difference(m: &LoadedModel, var: &Var, index: usize, h: f32) -> f32 {
    let original = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let loss_at = |delta: f32| {
        let mut values = original.clone();
        values[index] += delta;
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
        batch_loss(m, &items()).to_scalar::<f32>().unwrap()
    };
    let (plus, minus) = (loss_at(h), loss_at(-h));
    var.set(&Tensor::from_vec(original, var.shape(), &Device::Cpu).unwrap()).unwrap();
    (plus - minus) / (2.0 * h)
}

/// Compare backprop with a central difference at the entry of largest gradient of the named tensor.
/// The model computes in f32, so the loss (≈6) carries ~1e-6 rounding noise; with h = 1e-2 that is
/// ~1e-4 in the difference quotient, and the O(h²) truncation error is of the same order.
/// Tolerance: |fd − bp| ≤ 2e-3 + 1e-2·|bp|.
fn check_gradient(m: &LoadedModel, params: &TrainableParams, name: &str) -> (f32, f32) {
    let var = &params.named.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1;
    let grads = batch_loss(m, &items()).backward().unwrap();
    let grad = grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (index, &backprop) = grad.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap();
    let fd = finite_difference(m, var, index, 1e-2);
    eprintln!("gradient check {name}[{index}]: backprop {backprop:.6e}, finite difference {fd:.6e}");
    assert!(
        (fd - backprop).abs() <= 2e-3 + 1e-2 * backprop.abs(),
        "{name}[{index}]: backprop {backprop} vs {fd}"
    );
    (backprop, fd)
}

#[test]
fn finite_differences_agree_with_backprop() {
    let mut m = tiny(7);
    let params = m.model.set_trainable(&Trainable::Attention, 0).unwrap();
    check_gradient(&m, &params, "language_model.model.layers.0.self_attn.k_proj.weight");

    let params = m.model.set_trainable(&all_lora(2), 3).unwrap();
    perturb_lora_b(&params);
    check_gradient(
        &m,
        &params,
        "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight",
    );
    check_gradient(&m, &params, "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight");
}

/// Write a checkpoint folder of the tiny config with seed `seed`'s random weights, tensor names
/// mapped by `rename`, in `dtype`; `shards` > 1 splits it with an index file.
fn write_checkpoint(dir: &Path, seed: u64, dtype: DType, shards: usize, rename: impl Fn(&str) -> String) {
    std::fs::create_dir_all(dir).unwrap();
    let config = PaliGemmaConfig::named("tiny").unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    builtin_tokenizer().save(dir.join("tokenizer.json"), false).unwrap();
    let weights: HashMap<String, Tensor> = random_weights(&config, seed)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (rename(&name), t.to_dtype(dtype).unwrap()))
        .collect();
    if shards == 1 {
        candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
        return;
    }
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (k, chunk) in names.chunks(names.len().div_ceil(shards)).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", k + 1);
        let part: HashMap<&String, Tensor> = chunk.iter().map(|n| (*n, weights[*n].clone())).collect();
        candle_core::safetensors::save(&part, dir.join(&file)).unwrap();
        for n in chunk {
            weight_map.insert(n.to_string(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn load_dir(dir: &Path) -> anyhow::Result<LoadedModel> {
    load(&ModelSource::Checkpoint(dir.to_path_buf()), &Device::Cpu, DType::F32)
}

fn legacy(name: &str) -> String {
    name.to_string()
}

/// transformers ≥ 4.52 module names, vision tower with or without `.vision_model`.
fn transformers5(with_vision_model: bool) -> impl Fn(&str) -> String {
    move |name: &str| {
        let vision =
            if with_vision_model { "model.vision_tower.vision_model." } else { "model.vision_tower." };
        name.replacen("vision_tower.vision_model.", vision, 1)
            .replacen("multi_modal_projector.", "model.multi_modal_projector.", 1)
            .replacen("language_model.model.", "model.language_model.", 1)
    }
}

#[test]
fn checkpoints_in_every_layout_load_to_the_same_model() {
    let tmp = TestDir::new();
    let (want_p, want_loss) = scores(&tiny(8), &items());
    type Rename = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, Rename, usize); 4] = [
        ("legacy", Box::new(legacy), 1),
        ("transformers5", Box::new(transformers5(true)), 1),
        ("transformers5-no-vision-model", Box::new(transformers5(false)), 1),
        ("legacy-sharded", Box::new(legacy), 3),
    ];
    for (label, rename, shards) in cases {
        let dir = tmp.join(label);
        write_checkpoint(&dir, 8, DType::F32, shards, rename);
        let m = load_dir(&dir).unwrap_or_else(|e| panic!("{label}: {e:#}"));
        let (p, loss) = scores(&m, &items());
        assert_eq!((p, loss), (want_p.clone(), want_loss.clone()), "{label}");
    }
}

#[test]
fn attention_names_follow_the_checkpoint_layout() {
    let tmp = TestDir::new();
    write_checkpoint(tmp.path(), 8, DType::F32, 1, transformers5(true));
    let mut m = load_dir(tmp.path()).unwrap();
    let params = m.model.set_trainable(&Trainable::Attention, 0).unwrap();
    assert_eq!(params.named[0].0, "model.language_model.layers.0.self_attn.q_proj.weight");
}

#[test]
fn half_precision_checkpoints_load() {
    let tmp = TestDir::new();
    let (want_p, _) = scores(&tiny(8), &items());
    for dtype in [DType::BF16, DType::F16] {
        let dir = tmp.join(&format!("{dtype:?}"));
        write_checkpoint(&dir, 8, dtype, 1, legacy);
        for frozen in [DType::F32, dtype] {
            let m = load(&ModelSource::Checkpoint(dir.clone()), &Device::Cpu, frozen).unwrap();
            let (p, _) = scores(&m, &items());
            // Rounding every weight to 8 (bf16) or 11 (f16) mantissa bits moves p_yes a little.
            assert!(
                max_abs_diff(&p, &want_p) < 2e-2,
                "{dtype:?} stored, {frozen:?} frozen: {p:?} vs {want_p:?}"
            );
            let mut m = m;
            let params = m.model.set_trainable(&Trainable::Attention, 0).unwrap();
            assert_eq!(params.named[0].1.dtype(), DType::F32, "trainables are f32");
            let grads = batch_loss(&m, &items()).backward().unwrap();
            assert!(grads.get(&params.named[0].1).is_some(), "{dtype:?}/{frozen:?}: gradient reaches q_proj");
        }
    }
}

fn load_error(dir: &Path) -> String {
    format!("{:#}", load_dir(dir).expect_err("loading should fail"))
}

#[test]
fn a_missing_or_misshaped_tensor_is_named() {
    let tmp = TestDir::new();
    let victim = "language_model.model.layers.1.mlp.up_proj.weight";
    write_checkpoint(tmp.path(), 1, DType::F32, 1, legacy);
    let path = tmp.join("model.safetensors");
    let mut weights = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    weights.remove(victim);
    candle_core::safetensors::save(&weights, &path).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains(victim), "{err}");

    weights.insert(victim.to_string(), Tensor::zeros((128, 63), DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&weights, &path).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains(victim) && err.contains("shape"), "{err}");
    assert!(err.contains("[128, 63]") && err.contains("[128, 64]"), "{err}");
}

#[test]
fn missing_files_and_unsupported_configs_are_clear_errors() {
    let tmp = TestDir::new();
    write_checkpoint(tmp.path(), 1, DType::F32, 1, legacy);
    std::fs::remove_file(tmp.join("tokenizer.json")).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("tokenizer.json") && err.contains("not found"), "{err}");

    write_checkpoint(tmp.path(), 1, DType::F32, 1, legacy);
    std::fs::remove_file(tmp.join("model.safetensors")).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("neither model.safetensors nor model.safetensors.index.json"), "{err}");

    write_checkpoint(tmp.path(), 1, DType::F32, 1, legacy);
    let mut config = PaliGemmaConfig::named("tiny").unwrap();
    config.vision_config.hidden_act = "gelu".into();
    std::fs::write(tmp.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    let err = load_error(tmp.path());
    assert!(err.contains("config.json") && err.contains("vision_config.hidden_act = \"gelu\""), "{err}");
}

#[test]
fn answers_must_be_single_tokens() {
    let m = tiny(1);
    let answers = Answers { positive: "red badge".into(), negative: "no".into() };
    let err = m.tokenizer.with_answers(&answers).unwrap_err().to_string();
    assert!(err.contains("\"red badge\"") && err.contains("[\"red\", \"badge\"]"), "{err}");
    let answers = Answers { positive: "Yes".into(), negative: "yes".into() };
    let err = m.tokenizer.with_answers(&answers).unwrap_err().to_string();
    assert!(err.contains("same token"), "{err}");
    let answers = Answers { positive: "acceptable".into(), negative: "violation".into() };
    assert!(m.tokenizer.with_answers(&answers).is_ok());
}

#[test]
fn frozen_weights_get_no_gradient_entries() {
    let mut m = tiny(9);
    let lora = LoraConfig { rank: 2, alpha: 4.0, targets: vec![LoraTarget::Q, LoraTarget::V] };
    let params = m.model.set_trainable(&Trainable::Lora(lora), 0).unwrap();
    perturb_lora_b(&params);
    let one = &items()[1..2];
    let grads = batch_loss(&m, one).backward().unwrap();
    // Shapes of the tiny decoder's frozen matrices: q, k/v, o, gate/up, down, embeddings.
    let frozen: [&[usize]; 6] = [&[96, 64], &[24, 64], &[64, 96], &[128, 64], &[64, 128], &[384, 64]];
    let rows = 16 + m.tokenizer.batch(one).unwrap().input_ids(&Device::Cpu).unwrap().dim(1).unwrap();
    assert!(frozen.iter().all(|s| s[0] != rows), "activation rows {rows} would look like a weight");
    let shapes: Vec<Vec<usize>> =
        grads.get_ids().map(|id| grads.get_id(*id).unwrap().dims().to_vec()).collect();
    for shape in &shapes {
        assert!(!frozen.contains(&shape.as_slice()), "a frozen weight got a gradient of shape {shape:?}");
    }
    for (name, var) in &params.named {
        assert!(grads.get(var).is_some(), "{name}");
    }
}
