//! Parity with transformers on the committed fixtures `tests/fixtures/tiny-paligemma` (PaliGemma 1)
//! and `tests/fixtures/tiny-paligemma2` (PaliGemma 2, tests named `pg2_…`) (reference numbers from
//! `tools/make_fixture.py`: transformers 5.24.0, float32, eager attention). Pixels come from
//! `reference_pixels.safetensors` (the numpy twin of the preprocessing), so these tests check the
//! model alone. Tolerances from issues 3 and 15: p_yes within 1e-4 absolute, losses within 1e-4
//! relative. The PaliGemma-2 fixture also holds two LoRA adapters with their PEFT 0.21.2 scores: one
//! made by PEFT, one made by `gacha train` and loaded in PEFT.

use candle_core::{DType, Device, Tensor};
use gacha::data::image::load_image;
use gacha::data::{Answers, FramePolicy, ImageOptions, Label, Preprocessing};
use gacha::model::{load, LoadedModel, ModelSource, PromptItem, Trainable};
use serde_json::Value;

use crate::util::{assert_exit, fixtures, run, TestDir};

/// The committed fixtures, by generation.
const PG1: &str = "tiny-paligemma";
const PG2: &str = "tiny-paligemma2";

struct Example {
    image: String,
    prompt: String,
    label: Label,
    text_ids: Vec<u32>,
    logit_yes: f32,
    logit_no: f32,
    p_yes: f32,
    loss: f32,
}

struct Fixture {
    name: &'static str,
    model: LoadedModel,
    reference: Value,
    examples: Vec<Example>,
    pixels: std::collections::HashMap<String, Tensor>,
}

fn fixture(name: &'static str) -> Fixture {
    let dir = fixtures().join(name);
    let model = load(&ModelSource::Checkpoint(dir.clone()), &Device::Cpu, DType::F32).unwrap();
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let f = |v: &Value| v.as_f64().unwrap() as f32;
    let examples = reference["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Example {
            image: e["image"].as_str().unwrap().to_string(),
            prompt: e["prompt"].as_str().unwrap().to_string(),
            label: Answers::default().label_of(e["label"].as_str().unwrap()).unwrap(),
            text_ids: e["text_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect(),
            logit_yes: f(&e["logit_yes"]),
            logit_no: f(&e["logit_no"]),
            p_yes: f(&e["p_yes"]),
            loss: f(&e["loss"]),
        })
        .collect();
    let pixels =
        candle_core::safetensors::load(dir.join("reference_pixels.safetensors"), &Device::Cpu).unwrap();
    Fixture { name, model, reference, examples, pixels }
}

impl Fixture {
    fn items(&self) -> Vec<PromptItem<'_>> {
        self.examples.iter().map(|e| PromptItem { prompt: &e.prompt, answer: e.label }).collect()
    }

    fn features(&self, examples: &[&Example]) -> Tensor {
        let pix: Vec<Tensor> = examples.iter().map(|e| self.pixels[&e.image].unsqueeze(0).unwrap()).collect();
        self.model.model.image_features(&Tensor::cat(&pix, 0).unwrap()).unwrap()
    }

    fn batch_loss(&self) -> Tensor {
        let all: Vec<&Example> = self.examples.iter().collect();
        let batch = self.model.tokenizer.batch(&self.items()).unwrap();
        self.model.model.score(&self.features(&all), &batch).unwrap().mean_loss().unwrap()
    }
}

fn rel(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs()
}

#[test]
fn token_ids_match_the_reference() {
    check_token_ids(PG1);
}

#[test]
fn pg2_token_ids_match_the_reference() {
    check_token_ids(PG2);
}

fn check_token_ids(name: &'static str) {
    let fx = fixture(name);
    let ids = fx.model.tokenizer.ids();
    let r = &fx.reference["ids"];
    let want = |k: &str| r[k].as_u64().unwrap() as u32;
    assert_eq!(
        [ids.pad, ids.eos, ids.bos, ids.newline, ids.positive, ids.negative],
        [want("pad"), want("eos"), want("bos"), want("newline"), want("yes"), want("no")]
    );
    for (e, item) in fx.examples.iter().zip(fx.items()) {
        assert_eq!(fx.model.tokenizer.text_ids(&item).unwrap(), e.text_ids, "{:?}", e.prompt);
    }
}

#[test]
fn each_example_alone_matches_transformers() {
    let fx = fixture(PG1);
    check_one_at_a_time(&fx, &fx.examples, "one at a time");
}

#[test]
fn pg2_each_example_alone_matches_transformers() {
    let fx = fixture(PG2);
    check_one_at_a_time(&fx, &fx.examples, "one at a time");
}

/// Each example scored alone by `fx.model` matches `want` (same order as `fx.examples`).
fn check_one_at_a_time(fx: &Fixture, want: &[Example], what: &str) {
    let (mut dp, mut dlogit, mut dloss) = (0f32, 0f32, 0f32);
    for ((e, item), w) in fx.examples.iter().zip(fx.items()).zip(want) {
        assert_eq!(e.image, w.image);
        let batch = fx.model.tokenizer.batch(&[item]).unwrap();
        let s = fx.model.model.score(&fx.features(&[e]), &batch).unwrap();
        let p = s.p_yes().unwrap()[0];
        let (ly, ln) = (s.logit_yes.to_vec1::<f32>().unwrap()[0], s.logit_no.to_vec1::<f32>().unwrap()[0]);
        let loss = s.loss.to_vec1::<f32>().unwrap()[0];
        assert!((p - w.p_yes).abs() < 1e-4, "{}: {what}: p_yes {p} vs reference {}", e.image, w.p_yes);
        assert!(rel(loss, w.loss) < 1e-4, "{}: {what}: loss {loss} vs reference {}", e.image, w.loss);
        dp = dp.max((p - w.p_yes).abs());
        dlogit = dlogit.max((ly - w.logit_yes).abs()).max((ln - w.logit_no).abs());
        dloss = dloss.max(rel(loss, w.loss));
    }
    eprintln!(
        "parity {}, {what}: max |Δp_yes| {dp:.2e}, max |Δlogit| {dlogit:.2e}, max rel Δloss {dloss:.2e}",
        fx.name
    );
}

#[test]
fn the_padded_batch_matches_transformers() {
    check_padded_batch(PG1);
}

#[test]
fn pg2_the_padded_batch_matches_transformers() {
    check_padded_batch(PG2);
}

fn check_padded_batch(name: &'static str) {
    let fx = fixture(name);
    let all: Vec<&Example> = fx.examples.iter().collect();
    let batch = fx.model.tokenizer.batch(&fx.items()).unwrap();
    let s = fx.model.model.score(&fx.features(&all), &batch).unwrap();
    let (p, loss) = (s.p_yes().unwrap(), s.loss.to_vec1::<f32>().unwrap());
    let (mut dp, mut dloss) = (0f32, 0f32);
    for (i, e) in fx.examples.iter().enumerate() {
        assert!((p[i] - e.p_yes).abs() < 1e-4, "{}: p_yes {} vs reference {}", e.image, p[i], e.p_yes);
        assert!(rel(loss[i], e.loss) < 1e-4, "{}: loss {} vs reference {}", e.image, loss[i], e.loss);
        dp = dp.max((p[i] - e.p_yes).abs());
        dloss = dloss.max(rel(loss[i], e.loss));
    }
    let batch_loss = s.mean_loss().unwrap().to_scalar::<f32>().unwrap();
    let want = fx.reference["batch_loss"].as_f64().unwrap() as f32;
    assert!(rel(batch_loss, want) < 1e-4, "batch loss {batch_loss} vs reference {want}");
    eprintln!(
        "parity {name}, padded batch: max |Δp_yes| {dp:.2e}, max rel Δloss {dloss:.2e}, batch loss rel Δ {:.2e}",
        rel(batch_loss, want)
    );
}

#[test]
fn one_sgd_step_on_the_attention_weights_matches_transformers() {
    check_sgd_step(PG1);
}

#[test]
fn pg2_one_sgd_step_on_the_attention_weights_matches_transformers() {
    check_sgd_step(PG2);
}

fn check_sgd_step(name: &'static str) {
    let mut fx = fixture(name);
    let step = &fx.reference["sgd_step"];
    assert_eq!(step["trainable"], "attention");
    let lr = step["lr"].as_f64().unwrap();
    let (want_before, want_after) =
        (step["loss_before"].as_f64().unwrap() as f32, step["loss_after"].as_f64().unwrap() as f32);
    let params = fx.model.model.set_trainable(&Trainable::Attention, 0).unwrap();
    assert_eq!(params.named.len(), 8, "q/k/v/o of 2 layers");
    let loss = fx.batch_loss();
    let before = loss.to_scalar::<f32>().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in &params.named {
        let grad = grads.get(var).unwrap_or_else(|| panic!("{name}: no gradient"));
        var.set(&(var.as_tensor() - (grad * lr).unwrap()).unwrap()).unwrap();
    }
    let after = fx.batch_loss().to_scalar::<f32>().unwrap();
    assert!(rel(before, want_before) < 1e-4, "loss before {before} vs reference {want_before}");
    assert!(rel(after, want_after) < 1e-4, "loss after {after} vs reference {want_after}");
    eprintln!(
        "parity {name}, SGD step (lr {lr}): loss {before} → {after}; reference {want_before} → {want_after}; rel Δ after {:.2e}",
        rel(after, want_after)
    );
}

#[test]
fn images_through_our_decoding_match_the_reference_pixels_and_scores() {
    check_through_our_decoding(PG1);
}

#[test]
fn pg2_images_through_our_decoding_match_the_reference_pixels_and_scores() {
    check_through_our_decoding(PG2);
}

fn check_through_our_decoding(name: &'static str) {
    let fx = fixture(name);
    let dir = fixtures().join(name);
    let size = fx.reference["image_size"].as_u64().unwrap() as usize;
    let (mut dpix, mut dp) = (0f32, 0f32);
    for (e, item) in fx.examples.iter().zip(fx.items()) {
        let decoded = load_image(
            &dir.join(&e.image),
            ImageOptions { frames: FramePolicy::First, ..Default::default() },
            &Preprocessing::big_vision(size),
        )
        .unwrap();
        let frame = &decoded.frames[0];
        let want = fx.pixels[&e.image].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let diff = frame.chw.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "{}: pixels differ from the numpy twin by {diff}", e.image);
        dpix = dpix.max(diff);

        let pixels = Tensor::from_slice(&frame.chw, (1, 3, size, size), &Device::Cpu).unwrap();
        let features = fx.model.model.image_features(&pixels).unwrap();
        let batch = fx.model.tokenizer.batch(&[item]).unwrap();
        let p = fx.model.model.score(&features, &batch).unwrap().p_yes().unwrap()[0];
        assert!((p - e.p_yes).abs() < 1e-4, "{}: p_yes {p} vs reference {}", e.image, e.p_yes);
        dp = dp.max((p - e.p_yes).abs());
    }
    eprintln!("parity {name} through data::image: max |Δpixel| {dpix:.2e}, max |Δp_yes| {dp:.2e}");
}

/// The fixture's examples with the scores `reference[section].examples` gives them.
fn scores_in(fx: &Fixture, section: &str) -> Vec<Example> {
    let rows =
        fx.reference[section]["examples"].as_array().unwrap_or_else(|| panic!("no {section} in reference"));
    assert_eq!(rows.len(), fx.examples.len());
    let f = |v: &Value| v.as_f64().unwrap() as f32;
    fx.examples
        .iter()
        .zip(rows)
        .map(|(e, r)| Example {
            image: r["image"].as_str().unwrap().to_string(),
            prompt: e.prompt.clone(),
            label: e.label,
            text_ids: e.text_ids.clone(),
            logit_yes: f(&r["logit_yes"]),
            logit_no: f(&r["logit_no"]),
            p_yes: f(&r["p_yes"]),
            loss: f(&r["loss"]),
        })
        .collect()
}

#[test]
fn pg2_a_peft_adapter_made_in_python_scores_as_in_peft() {
    let mut fx = fixture(PG2);
    let dir = fixtures().join(PG2).join(fx.reference["peft_adapter"]["dir"].as_str().unwrap());
    let (_, params) = gacha::adapter::load(&dir, &mut fx.model).unwrap();
    assert_eq!(params.named.len(), 2 * 7 * 2, "A and B of 7 projections in 2 layers");
    let want = scores_in(&fx, "peft_adapter");
    let moved = fx.examples.iter().zip(&want).map(|(e, w)| (e.p_yes - w.p_yes).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-2, "the adapter barely changes p_yes ({moved})");
    check_one_at_a_time(&fx, &want, "PEFT adapter from Python");
}

#[test]
fn pg2_an_adapter_made_by_gacha_scores_as_peft_scores_it() {
    let mut fx = fixture(PG2);
    let section = &fx.reference["gacha_adapter"];
    let dir = fixtures().join(PG2).join(section["dir"].as_str().unwrap());
    let tensors = section["tensors"].as_u64().unwrap() as usize;
    let (_, params) = gacha::adapter::load(&dir, &mut fx.model).unwrap();
    assert_eq!(params.named.len(), tensors, "PEFT loaded {tensors} tensors");
    let want = scores_in(&fx, "gacha_adapter");
    check_one_at_a_time(&fx, &want, "gacha's adapter in PEFT");
}

/// The committed gacha-adapter/ is what `gacha train` writes today (its command is in
/// reference.json), so the PEFT scores above are those of a current gacha adapter: same config,
/// same keys, tensors within 1e-5 (training may round differently on another CPU).
#[test]
fn pg2_gacha_train_still_writes_the_committed_adapter() {
    let fx = fixture(PG2);
    let command = fx.reference["gacha_adapter"]["command"].as_str().unwrap();
    let committed = fixtures().join(PG2).join("gacha-adapter");
    let fixture_dir = fixtures().join(PG2);
    let dir = TestDir::new();
    let args: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("tests/fixtures/tiny-paligemma2/gacha-adapter", "out")
                .replace("tests/fixtures/tiny-paligemma2", fixture_dir.to_str().unwrap())
        })
        .collect();
    let output = run(dir.gacha().args(&args));
    assert_exit(&output, 0);
    let config = |d: &std::path::Path| -> Value {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("adapter_config.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("base_model_name_or_path");
        v
    };
    assert_eq!(config(&dir.join("out")), config(&committed));
    let read = |d: &std::path::Path| {
        candle_core::safetensors::load(d.join("adapter_model.safetensors"), &Device::Cpu).unwrap()
    };
    let (got, want) = (read(&dir.join("out")), read(&committed));
    let mut names: Vec<&String> = got.keys().collect();
    names.sort();
    let mut want_names: Vec<&String> = want.keys().collect();
    want_names.sort();
    assert_eq!(names, want_names);
    for name in names {
        let diff =
            (&got[name] - &want[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{name}: differs from the committed adapter by {diff}");
    }
}

/// Central difference of the fixture's batch loss in entry `index` of `var`, step `h`.
fn finite_difference(fx: &Fixture, var: &candle_core::Var, index: usize, h: f32) -> f32 {
    let original = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let loss_at = |delta: f32| {
        let mut values = original.clone();
        values[index] += delta;
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
        fx.batch_loss().to_scalar::<f32>().unwrap()
    };
    let (plus, minus) = (loss_at(h), loss_at(-h));
    var.set(&Tensor::from_vec(original, var.shape(), &Device::Cpu).unwrap()).unwrap();
    (plus - minus) / (2.0 * h)
}

/// Every trainable tensor gets a non-zero gradient, and backprop agrees with a central difference
/// (h 1e-2; loss ≈ 7 in f32, so ~1e-4 noise in the quotient; tolerance 2e-3 + 1e-2·|bp|) at the
/// three largest gradient entries of each tensor. The fixture's soft-caps (5 on attention scores,
/// 2 on logits) are far from linear there, so this checks the tanh backward inside the decoder.
fn check_gradients(fx: &Fixture, params: &gacha::model::TrainableParams) {
    let grads = fx.batch_loss().backward().unwrap();
    for (name, var) in &params.named {
        let grad = grads.get(var).unwrap_or_else(|| panic!("{name}: no gradient"));
        let grad = grad.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(grad.iter().any(|g| *g != 0.0), "{name}: zero gradient");
        let mut order: Vec<usize> = (0..grad.len()).collect();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        for &index in order.iter().take(3) {
            let fd = finite_difference(fx, var, index, 1e-2);
            let bp = grad[index];
            assert!((fd - bp).abs() <= 2e-3 + 1e-2 * bp.abs(), "{name}[{index}]: backprop {bp} vs {fd}");
        }
    }
}

#[test]
fn pg2_finite_differences_agree_with_backprop_through_the_gemma2_decoder() {
    let mut fx = fixture(PG2);
    let params = fx.model.model.set_trainable(&Trainable::Attention, 0).unwrap();
    check_gradients(&fx, &params);
    let lora =
        gacha::model::LoraConfig { rank: 2, alpha: 4.0, targets: gacha::model::LoraTarget::ALL.to_vec() };
    let params = fx.model.model.set_trainable(&Trainable::Lora(lora), 3).unwrap();
    // B starts at zero, which leaves A without gradient: give every B small values.
    for (i, (name, var)) in params.named.iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let values: Vec<f32> = (0..var.elem_count() as u32)
                .map(|j| {
                    let h = j.wrapping_add(i as u32 * 7919).wrapping_mul(2_654_435_761) >> 8;
                    0.2 * ((h % 2001) as f32 / 1000.0 - 1.0)
                })
                .collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    check_gradients(&fx, &params);
}

#[test]
fn pg2_a_sequence_longer_than_the_sliding_window_is_refused() {
    let fx = fixture(PG2);
    let window = 32;
    assert_eq!(fx.model.config.text_config.sliding_window, Some(window));
    // 16 image positions + <bos> + 15 words + "\n" + answer = 34 > 32 (the text ends before <eos>).
    let prompt = "is there a cat in the picture? is there a dog in the picture? the square";
    let item = PromptItem { prompt, answer: Label::Positive };
    let batch = fx.model.tokenizer.batch(&[item]).unwrap();
    let err = fx.model.model.score(&fx.features(&[&fx.examples[0]]), &batch).unwrap_err().to_string();
    assert!(err.contains("longer than text_config.sliding_window = 32"), "{err}");
    assert!(err.contains("layer 0 uses sliding-window attention"), "{err}");
}
