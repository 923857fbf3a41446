//! The parameter count of a config, and the FLOP count `gacha bench` divides by, counted as PALIGEMMA.md §14 does: a multiply-add is 2
//! FLOPs, matmuls and attention only (no norms, activations, softmax or optimizer update).
//!
//! Forward of one example with `n` image tokens and `t` decoder rows:
//! - vision: patch conv `2·n·(3·p²)·Dv`, per layer `2·n·(4·Dv² + 2·Dv·Mv)` matmuls and `4·n²·Dv`
//!   attention (scores and weighted values);
//! - projector `2·n·Dv·D`;
//! - decoder, per layer `2·t·(q/k/v/o + 3·D·M params)` plus attention `4·t²·H·hd` (the full t×t score
//!   matrix is computed, mask or not);
//! - head `2·D·V` per loss position (2: the `"\n"` and the answer position);
//! - LoRA adapters `2·t·r·(in + out)` per adapted matrix.
//!
//! Train step: the vision tower and projector are frozen, so they run forward only; the decoder and
//! head run forward and backward, where the input gradients cost about one forward again; the
//! weight gradients of the trainables cost `2·t·params` (attention weights), or for LoRA the input
//! and weight gradients of A and B (two more adapter forwards).

use crate::model::{LoraConfig, LoraTarget, PaliGemmaConfig};

/// What trains, for counting: the attention weights or LoRA adapters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Counted<'a> {
    Attention,
    Lora(&'a LoraConfig),
}

/// FLOPs of one example, by part (forward unless named).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleFlops {
    pub vision: f64,
    pub projector: f64,
    pub decoder: f64,
    pub head: f64,
    /// Forward of the LoRA adapters (0 without LoRA).
    pub adapters: f64,
    /// Weight gradients of the trainables (attention), or the adapters' input and weight
    /// gradients (LoRA).
    pub trainable_backward: f64,
}

impl ExampleFlops {
    /// Forward only (a scoring pass with the trainables attached).
    pub fn score(&self) -> f64 {
        self.vision + self.projector + self.decoder + self.head + self.adapters
    }

    /// Forward and backward of a train step.
    pub fn train(&self) -> f64 {
        self.vision
            + self.projector
            + 2.0 * (self.decoder + self.head)
            + self.adapters
            + self.trainable_backward
    }
}

/// Loss positions whose logits are computed: the `"\n"` and the answer position.
const HEAD_POSITIONS: f64 = 2.0;

/// FLOPs of one example of `config` with `text_len` decoder text rows (`<bos>`, prompt, `"\n"`,
/// answer).
pub fn example_flops(config: &PaliGemmaConfig, text_len: usize, trainable: Counted) -> ExampleFlops {
    let v = &config.vision_config;
    let g = &config.text_config;
    let f = |x: usize| x as f64;
    let n = f(config.num_image_tokens());
    let t = n + f(text_len);
    let (dv, mv) = (f(v.hidden_size), f(v.intermediate_size));
    let vision = 2.0 * n * f(v.num_channels * v.patch_size * v.patch_size) * dv
        + f(v.num_hidden_layers) * (2.0 * n * (4.0 * dv * dv + 2.0 * dv * mv) + 4.0 * n * n * dv);
    let projector = 2.0 * n * dv * f(config.projection_dim);

    let d = f(g.hidden_size);
    let q_width = f(g.num_attention_heads * g.head_dim);
    let kv_width = f(g.num_key_value_heads * g.head_dim);
    let attn_params = d * (2.0 * q_width + 2.0 * kv_width);
    let layers = f(g.num_hidden_layers);
    let decoder =
        layers * (2.0 * t * (attn_params + 3.0 * d * f(g.intermediate_size)) + 4.0 * t * t * q_width);
    let head = 2.0 * HEAD_POSITIONS * d * f(g.vocab_size);

    let (adapters, trainable_backward) = match trainable {
        Counted::Attention => (0.0, layers * 2.0 * t * attn_params),
        Counted::Lora(lora) => {
            let per_layer: f64 = lora
                .targets
                .iter()
                .map(|&target| {
                    let (input, output) = projection_dims(config, target);
                    f(lora.rank) * f(input + output)
                })
                .sum();
            let forward = layers * 2.0 * t * per_layer;
            (forward, 2.0 * forward)
        }
    };
    ExampleFlops { vision, projector, decoder, head, adapters, trainable_backward }
}

/// Number of weights of `config` (the decoder's embedding counted once: the head is tied).
pub fn parameters(config: &PaliGemmaConfig) -> usize {
    let v = &config.vision_config;
    let g = &config.text_config;
    let (dv, mv) = (v.hidden_size, v.intermediate_size);
    let vision_block = 4 * (dv * dv + dv) + (dv * mv + mv) + (mv * dv + dv) + 2 * 2 * dv;
    let vision = (v.num_channels * v.patch_size * v.patch_size * dv + dv)
        + config.num_image_tokens() * dv
        + v.num_hidden_layers * vision_block
        + 2 * dv;
    let projector = dv * config.projection_dim + config.projection_dim;
    let d = g.hidden_size;
    let decoder_block: usize =
        LoraTarget::ALL.iter().map(|&t| projection_dims(config, t)).map(|(i, o)| i * o).sum::<usize>()
            + 2 * d;
    let decoder = g.vocab_size * d + g.num_hidden_layers * decoder_block + d;
    vision + projector + decoder
}

/// (in, out) widths of a decoder projection.
fn projection_dims(config: &PaliGemmaConfig, target: LoraTarget) -> (usize, usize) {
    let g = &config.text_config;
    let (d, m) = (g.hidden_size, g.intermediate_size);
    let q = g.num_attention_heads * g.head_dim;
    let kv = g.num_key_value_heads * g.head_dim;
    match target {
        LoraTarget::Q => (d, q),
        LoraTarget::K | LoraTarget::V => (d, kv),
        LoraTarget::O => (q, d),
        LoraTarget::Gate | LoraTarget::Up => (d, m),
        LoraTarget::Down => (m, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) {
        assert!((got - want).abs() <= rel * want.abs(), "got {got:e}, want {want:e}");
    }

    /// The numbers of PALIGEMMA.md §14, derived there from the checkpoint's parameter shapes.
    #[test]
    fn paligemma_3b_matches_the_spec_reference_numbers() {
        let config = PaliGemmaConfig::named("paligemma-3b-224").unwrap();
        // 383 decoder positions (the demo's training length): 256 image + 127 text.
        let flops = example_flops(&config, 127, Counted::Attention);
        close(flops.vision, 219.0e9, 0.001); // 210.5 matmuls + 0.35 conv + 8.15 attention
        close(flops.projector, 1.2e9, 0.01);
        close(flops.decoder, 1_540e9, 0.001); // 383 · 3.96 + 21.6 attention
                                              // Attention weight gradients: 2 · 383 · 169.9 M.
        close(flops.trainable_backward, 130e9, 0.001);
        // One position of the head: 2 · 2048 · 257216 (HF rows) = 1.05 GFLOP.
        close(flops.head / 2.0, 1.05e9, 0.01);
    }

    #[test]
    fn parameters_match_the_spec_totals() {
        // PALIGEMMA.md §1/§14: 2,923,466,480 with the HF vocabulary of 257,216 rows.
        let config = PaliGemmaConfig::named("paligemma-3b-224").unwrap();
        assert_eq!(parameters(&config), 2_923_466_480);
    }

    #[test]
    fn small_config_by_hand() {
        let config = PaliGemmaConfig::named("small").unwrap();
        // 64 image tokens, text rows 1 + 14 + 2 = 17, t = 81.
        let flops = example_flops(&config, 17, Counted::Attention);
        // Vision: conv 2·64·588·256 = 19,267,584; per layer 2·64·(4·65,536 + 2·262,144) = 100,663,296
        // plus attention 4·4096·256 = 4,194,304; 4 layers.
        assert_eq!(flops.vision, 19_267_584.0 + 4.0 * (100_663_296.0 + 4_194_304.0));
        assert_eq!(flops.projector, 2.0 * 64.0 * 256.0 * 256.0);
        // Decoder per layer: attention params 256·(2·256 + 2·64) = 163,840, MLP 3·256·1024 = 786,432;
        // 2·81·950,272 = 153,944,064; attention 4·81²·256 = 6,718,464.
        assert_eq!(flops.decoder, 4.0 * (153_944_064.0 + 6_718_464.0));
        assert_eq!(flops.head, 2.0 * 2.0 * 256.0 * 2048.0);
        assert_eq!(flops.trainable_backward, 4.0 * 2.0 * 81.0 * 163_840.0);

        // LoRA r 8 on q/k/v/o: r·(in+out) = 8·(512 + 320 + 320 + 512) = 13,312 per layer.
        let lora = LoraConfig::default();
        let with_lora = example_flops(&config, 17, Counted::Lora(&lora));
        let adapters = 4.0 * 2.0 * 81.0 * 13_312.0;
        assert_eq!(with_lora.adapters, adapters);
        assert_eq!(with_lora.trainable_backward, 2.0 * adapters);
        assert_eq!(with_lora.score(), flops.score() + adapters);
        assert_eq!(
            with_lora.train(),
            flops.vision + flops.projector + 2.0 * (flops.decoder + flops.head) + 3.0 * adapters
        );
    }
}
