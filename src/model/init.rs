//! Built-in models: a named config (`tiny`, `small`, `paligemma-3b-224`) with seeded random weights
//! and a small word-level tokenizer, built entirely in code.
//!
//! Each tensor is drawn from its own ChaCha8 stream (seed = the model seed, stream = a hash of the
//! tensor name), so values depend only on (seed, name, shape), not on construction order:
//! - matrices: U(±1/√fan_in), fan_in = product of all dims but the first (PyTorch's default
//!   Linear init bound; embeddings likewise use 1/√hidden);
//! - the vision tower's patch convolution: flat colour filters (`flat_colour_filters`), so the
//!   frozen random tower still sees each patch's colour;
//! - SigLIP LayerNorm weights: 1 + U(±0.1); Gemma RMSNorm weights (zero-centred): U(±0.1);
//! - biases: U(±0.1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenizers::Tokenizer;

use super::config::PaliGemmaConfig;
use super::layout::Layout;
use super::paligemma::PaliGemma;
use super::tokenizer::{PromptTokenizer, SpecialIds};
use super::{LoadedModel, ModelPreprocessing};
use crate::data::Answers;

/// The built-in tokenizer's special tokens, in id order from 0.
const SPECIAL_TOKENS: [&str; 5] = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"];

/// The built-in tokenizer's words, ids following the specials and `"\n"`. Text is lower-cased and
/// split on whitespace and punctuation; anything else is `<unk>`.
const WORDS: &str = "yes no . , ? ! : ; ' \" - ( ) / & % $ + = * # @ \
    0 1 2 3 4 5 6 7 8 9 \
    a an the this that these those it its is are was were be been being do does did not any some \
    there here what which who whom whose why how when where all each every both either neither \
    of in on at by for with from to into onto about above below over under between through without \
    and or but if then than as so such only also very more most less least much many few \
    i you he she we they me him her us them my your his our their \
    image images picture pictures photo photos ad ads advert advertisement advertisements banner \
    poster flyer page web site online shown show shows showing contain contains containing include \
    includes visible see seen look looks appear appears depict depicts display displays \
    appropriate inappropriate acceptable unacceptable allowed forbidden prohibited compliant \
    noncompliant compliance violation violations violate violates violating policy policies \
    rule rules law laws legal illegal regulation regulations regulated federal state act acts \
    food foods drug drugs cosmetic cosmetics device devices medical medicine health healthy \
    based according claim claims claimed misleading false deceptive safe unsafe risk warning \
    price prices priced discount discounts sale sales offer offers deal deals free buy now save \
    off percent cheap cheaper new best top limited today order shop product products item \
    brand label badge badges burst star sticker stamp seal red green blue yellow orange white \
    black color colour text word words letter letters number numbers sign strike struck striked \
    strikethrough crossed line lines cross mark marked circle round shape large small big tiny \
    answer question caption describe detect classify class category en true ok okay \
    good bad real fake cure cures miracle guaranteed weight loss pill pills supplement \
    should would could can may might must will shall have has had get gets make makes";

/// A random-weights backend for `VarBuilder`: every requested tensor exists and is drawn as the
/// module doc says.
struct RandomInit {
    seed: u64,
}

impl RandomInit {
    fn draw(&self, shape: &Shape, name: &str) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(fnv1a(name));
        let dims = shape.dims();
        let (center, bound) = if dims.len() >= 2 {
            (0.0, 1.0 / (dims[1..].iter().product::<usize>() as f32).sqrt())
        } else if ["layer_norm1.weight", "layer_norm2.weight", "post_layernorm.weight"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            (1.0, 0.1)
        } else {
            (0.0, 0.1)
        };
        if name.ends_with(PATCH_EMBEDDING) {
            return flat_colour_filters(shape, &mut rng);
        }
        let values: Vec<f32> =
            (0..shape.elem_count()).map(|_| center + rng.random_range(-bound..bound)).collect();
        Tensor::from_vec(values, shape, &Device::Cpu)
    }
}

impl SimpleBackend for RandomInit {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.draw(&s, name)?.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("random init of {name} needs its shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Records every tensor a `RandomInit` hands out.
struct Recording {
    inner: RandomInit,
    seen: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl SimpleBackend for Recording {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.inner.draw(&s, name)?;
        self.seen.lock().expect("recording lock is never poisoned").insert(name.to_string(), t.clone());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.inner.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// The vision tower's patch convolution, `[C, 3, P, P]`.
const PATCH_EMBEDDING: &str = "embeddings.patch_embedding.weight";

/// Patch filters that are flat over the patch: channel c's kernel for colour k is one value
/// w_ck ~ U(±2/P²) at every pixel, so each channel responds to a random mix of the patch's mean
/// red, green and blue (P²·Σ_k w_ck·mean_k, within ±2 per unit of mean colour). A frozen tower of
/// i.i.d. random filters mixes each pixel's colour with its position and blurs what the demo's
/// violations are made of (saturated red marks). Measured on the committed demo dataset with the
/// `tiny` tower (patch 7), a per-patch read-out max-pooled over patches and fitted on 66 images
/// classifies the other 30 with accuracy 0.87 (linear) on i.i.d. features, 0.90 (linear) and 0.96
/// (one hidden layer) on these.
fn flat_colour_filters(shape: &Shape, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let (channels, colours, p, _) = shape.dims4()?;
    let bound = 2.0 / (p * p) as f32;
    let values: Vec<f32> = (0..channels * colours)
        .flat_map(|_| std::iter::repeat_n(rng.random_range(-bound..bound), p * p))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// 64-bit FNV-1a of a tensor name (stable across platforms and Rust versions).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Every weight of a random model of `config`, f32 on the CPU, under the legacy checkpoint names
/// (what a checkpoint folder's `model.safetensors` would hold).
pub fn random_weights(config: &PaliGemmaConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let backend = Recording { inner: RandomInit { seed }, seen: seen.clone() };
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
    PaliGemma::new(config, vb, &Layout::legacy())?;
    let map = std::mem::take(&mut *seen.lock().expect("recording lock is never poisoned"));
    Ok(map)
}

/// The built-in word-level tokenizer (see [`WORDS`]): `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3,
/// `<image>` 4, `"\n"` 5, then the words.
pub fn builtin_tokenizer() -> Tokenizer {
    let added = |id: usize, content: &str, special: bool| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": special})
    };
    let mut added_tokens: Vec<_> =
        SPECIAL_TOKENS.iter().enumerate().map(|(id, t)| added(id, t, true)).collect();
    added_tokens.push(added(SPECIAL_TOKENS.len(), "\n", false));
    let vocab: serde_json::Map<String, serde_json::Value> = SPECIAL_TOKENS
        .iter()
        .copied()
        .chain(["\n"])
        .chain(WORDS.split_whitespace())
        .enumerate()
        .map(|(id, word)| (word.to_string(), id.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    Tokenizer::from_bytes(json.to_string()).expect("the built-in tokenizer JSON is valid")
}

/// A named config with random weights from `seed` and the built-in tokenizer.
pub fn builtin(name: &str, seed: u64, device: &Device, frozen_dtype: DType) -> anyhow::Result<LoadedModel> {
    let config = PaliGemmaConfig::named(name)?;
    let tokenizer = builtin_tokenizer();
    let needed = tokenizer.get_vocab_size(true);
    if needed > config.text_config.vocab_size {
        anyhow::bail!(
            "builtin:{name}: vocab_size {} < {needed} tokenizer entries",
            config.text_config.vocab_size
        );
    }
    let special = SpecialIds { pad: config.pad_token_id, eos: config.eos_token_id, bos: config.bos_token_id };
    let tokenizer = PromptTokenizer::new(tokenizer, special, &Answers::default())?;
    let vb = VarBuilder::from_backend(Box::new(RandomInit { seed }), frozen_dtype, device.clone());
    let model = PaliGemma::new(&config, vb, &Layout::legacy())?;
    let preprocessing = ModelPreprocessing::big_vision(config.vision_config.image_size);
    Ok(LoadedModel { model, tokenizer, config, preprocessing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tokenizer_has_the_fixed_ids_and_knows_the_demo_prompt() {
        let tokenizer = builtin_tokenizer();
        assert_eq!(tokenizer.token_to_id("<pad>"), Some(0));
        assert_eq!(tokenizer.token_to_id("<eos>"), Some(1));
        assert_eq!(tokenizer.token_to_id("<bos>"), Some(2));
        assert_eq!(tokenizer.token_to_id("<unk>"), Some(3));
        let prompt = "Is this image appropriate based on Federal Food, Drug, and Cosmetic Act?";
        let enc = tokenizer.encode(prompt, false).unwrap();
        assert_eq!(enc.get_tokens().len(), 15, "{:?}", enc.get_tokens());
        assert!(!enc.get_ids().contains(&3), "unknown word in {:?}", enc.get_tokens());
        let enc = tokenizer.encode("cat\nyes", false).unwrap();
        assert_eq!(enc.get_tokens(), ["<unk>", "\n", "yes"]);
        let words: Vec<&str> = WORDS.split_whitespace().collect();
        let unique: std::collections::HashSet<&&str> = words.iter().collect();
        assert_eq!(unique.len(), words.len(), "duplicate word in WORDS");
    }

    #[test]
    fn builtin_vocab_fits_the_small_named_configs() {
        let entries = builtin_tokenizer().get_vocab_size(true);
        assert!(entries <= PaliGemmaConfig::named("tiny").unwrap().text_config.vocab_size, "{entries}");
        assert_eq!(PaliGemmaConfig::named("tiny").unwrap().image_token_index, 4);
    }

    #[test]
    fn patch_filters_are_flat_over_the_patch_and_bounded() {
        let init = RandomInit { seed: 3 };
        let name = format!("vision_tower.vision_model.{PATCH_EMBEDDING}");
        let w = init.draw(&Shape::from((4, 3, 7, 7)), &name).unwrap();
        let w = w.reshape((12, 49)).unwrap().to_vec2::<f32>().unwrap();
        for kernel in &w {
            assert!(kernel.iter().all(|&v| v == kernel[0]), "one value per channel and colour");
            assert!(kernel[0].abs() < 2.0 / 49.0);
        }
        assert!(w.iter().any(|k| k[0] != w[0][0]), "channels differ");
    }

    #[test]
    fn random_weights_depend_on_seed_and_name_only() {
        let init = RandomInit { seed: 7 };
        let a = init.draw(&Shape::from((3, 4)), "x.weight").unwrap().to_vec2::<f32>().unwrap();
        let b = init.draw(&Shape::from((3, 4)), "x.weight").unwrap().to_vec2::<f32>().unwrap();
        let c = init.draw(&Shape::from((3, 4)), "y.weight").unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().flatten().all(|v| v.abs() < 0.5), "bound 1/√4");
        let ln = init.draw(&Shape::from(8), "a.layer_norm1.weight").unwrap().to_vec1::<f32>().unwrap();
        assert!(ln.iter().all(|v| (v - 1.0).abs() < 0.1));
    }
}
