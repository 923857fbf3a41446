//! Model tests on tiny random models: scoring, masks, gradients, loading, and parity with the
//! Python reference fixture (`tests/fixtures/tiny-paligemma`, made by transformers).

use candle_core::{DType, Device, Tensor};
use gacha::data::Label;
use gacha::model::{load, LoadedModel, ModelSource, PromptItem};

fn tiny(seed: u64) -> LoadedModel {
    load(&ModelSource::Builtin { name: "tiny".into(), seed }, &Device::Cpu, DType::F32).unwrap()
}

/// Deterministic pseudo-random pixels in [-1, 1], `[n, 3, S, S]`.
fn pixels(n: usize, size: usize, salt: u32) -> Tensor {
    let values: Vec<f32> = (0..n * 3 * size * size)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(salt) >> 8) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor::from_vec(values, (n, 3, size, size), &Device::Cpu).unwrap()
}

#[test]
fn builtin_tiny_scores_a_batch() {
    let m = tiny(1);
    let items = [
        PromptItem { prompt: "is this ad appropriate?", answer: Label::Positive },
        PromptItem { prompt: "red badge", answer: Label::Negative },
    ];
    let batch = m.tokenizer.batch(&items).unwrap();
    let features = m.model.image_features(&pixels(2, 56, 0)).unwrap();
    assert_eq!(features.dims(), [2, 16, 64]);
    let scores = m.model.score(&features, &batch).unwrap();
    let p = scores.p_yes().unwrap();
    let loss = scores.loss.to_vec1::<f32>().unwrap();
    assert!(p.iter().all(|p| p.is_finite() && *p > 0.0 && *p < 1.0), "{p:?}");
    // A random model over 384 tokens: the loss is of the order of ln(384) ≈ 5.95.
    assert!(loss.iter().all(|l| l.is_finite() && *l > 1.0 && *l < 20.0), "{loss:?}");
}
