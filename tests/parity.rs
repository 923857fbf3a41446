//! Parity with transformers on the committed fixture `tests/fixtures/tiny-paligemma` (reference
//! numbers from `tools/make_fixture.py`: transformers 5.24.0, float32, eager attention). Pixels come
//! from `reference_pixels.safetensors` (the numpy twin of the preprocessing), so these tests check
//! the model alone. Tolerances from issue 3: p_yes within 1e-4 absolute, losses within 1e-4 relative.

use candle_core::{DType, Device, Tensor};
use gacha::data::image::load_image;
use gacha::data::{Answers, FramePolicy, ImageOptions, Label};
use gacha::model::{load, LoadedModel, ModelSource, PromptItem, Trainable};
use serde_json::Value;

use crate::util::fixtures;

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
    model: LoadedModel,
    reference: Value,
    examples: Vec<Example>,
    pixels: std::collections::HashMap<String, Tensor>,
}

fn fixture() -> Fixture {
    let dir = fixtures().join("tiny-paligemma");
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
    Fixture { model, reference, examples, pixels }
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
    let fx = fixture();
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
    let fx = fixture();
    let (mut dp, mut dlogit, mut dloss) = (0f32, 0f32, 0f32);
    for (e, item) in fx.examples.iter().zip(fx.items()) {
        let batch = fx.model.tokenizer.batch(&[item]).unwrap();
        let s = fx.model.model.score(&fx.features(&[e]), &batch).unwrap();
        let p = s.p_yes().unwrap()[0];
        let (ly, ln) = (s.logit_yes.to_vec1::<f32>().unwrap()[0], s.logit_no.to_vec1::<f32>().unwrap()[0]);
        let loss = s.loss.to_vec1::<f32>().unwrap()[0];
        assert!((p - e.p_yes).abs() < 1e-4, "{}: p_yes {p} vs reference {}", e.image, e.p_yes);
        assert!(rel(loss, e.loss) < 1e-4, "{}: loss {loss} vs reference {}", e.image, e.loss);
        dp = dp.max((p - e.p_yes).abs());
        dlogit = dlogit.max((ly - e.logit_yes).abs()).max((ln - e.logit_no).abs());
        dloss = dloss.max(rel(loss, e.loss));
    }
    eprintln!(
        "parity, one at a time: max |Δp_yes| {dp:.2e}, max |Δlogit| {dlogit:.2e}, max rel Δloss {dloss:.2e}"
    );
}

#[test]
fn the_padded_batch_matches_transformers() {
    let fx = fixture();
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
        "parity, padded batch: max |Δp_yes| {dp:.2e}, max rel Δloss {dloss:.2e}, batch loss rel Δ {:.2e}",
        rel(batch_loss, want)
    );
}

#[test]
fn one_sgd_step_on_the_attention_weights_matches_transformers() {
    let mut fx = fixture();
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
        "parity, SGD step (lr {lr}): loss {before} → {after}; reference {want_before} → {want_after}; rel Δ after {:.2e}",
        rel(after, want_after)
    );
}

#[test]
fn images_through_our_decoding_match_the_reference_pixels_and_scores() {
    let fx = fixture();
    let dir = fixtures().join("tiny-paligemma");
    let size = fx.reference["image_size"].as_u64().unwrap() as usize;
    let (mut dpix, mut dp) = (0f32, 0f32);
    for (e, item) in fx.examples.iter().zip(fx.items()) {
        let decoded = load_image(
            &dir.join(&e.image),
            ImageOptions { frames: FramePolicy::First, ..Default::default() },
            size,
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
    eprintln!("parity through data::image: max |Δpixel| {dpix:.2e}, max |Δp_yes| {dp:.2e}");
}
