//! The FLOP count of a benchmark step, the same count as `tools/bench_reference.py` (`flops`), so
//! achieved TFLOP/s compare across the two.
//!
//! A multiply-add is 2 FLOPs. Counted: matmuls, the patch convolution, attention scores and values;
//! not norms, activations, softmax or the optimizer update. Sequence: `N` image tokens, `<bos>`,
//! [`PROMPT_TOKENS`] prompt tokens, `"\n"`, answer, `<eos>` (T = N + 18); the output head at 3 rows.
//! - Scoring (forward): vision (conv + per layer 4·Dv² + 2·Dv·Mv per token + 4·N²·Dv attention),
//!   projector, decoder (per layer q/k/v/o and 3 MLP matrices per token + 4·T²·H·hd attention), head.
//! - Train step: vision and projector forward only (frozen); decoder and head forward, their input
//!   gradients (the same again), and the trainables' weight gradients (2·T·params per matrix; LoRA:
//!   A and B's weight and input gradients, 2 × 2·T·r·(in + out), plus the LoRA forward twice).

use crate::model::PaliGemmaConfig;

/// Prompt length of the benchmark batch (issue 3: 14 prompt tokens).
pub const PROMPT_TOKENS: usize = 14;

/// What trains in a benchmark step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Attention,
    /// LoRA of this rank on the decoder's q/k/v/o.
    LoraAttention {
        rank: usize,
    },
}

/// (train step, scoring pass) FLOPs of one example.
pub fn flops_per_example(config: &PaliGemmaConfig, kind: StepKind) -> (f64, f64) {
    let v = &config.vision_config;
    let l = &config.text_config;
    let f = |x: usize| x as f64;
    let n = f(v.num_image_tokens());
    let t = n + f(1 + PROMPT_TOKENS + 3);
    let (dv, mv) = (f(v.hidden_size), f(v.intermediate_size));
    let vision = 2.0 * n * f(v.num_channels * v.patch_size * v.patch_size) * dv
        + f(v.num_hidden_layers) * (2.0 * n * (4.0 * dv * dv + 2.0 * dv * mv) + 4.0 * n * n * dv);
    let d = f(l.hidden_size);
    let projector = 2.0 * n * dv * d;
    let q = f(l.num_attention_heads * l.head_dim);
    let kv = f(l.num_key_value_heads * l.head_dim);
    let attn_params = d * (2.0 * q + 2.0 * kv);
    let layers = f(l.num_hidden_layers);
    let decoder = layers * (2.0 * t * (attn_params + 3.0 * d * f(l.intermediate_size)) + 4.0 * t * t * q);
    let head = 2.0 * 3.0 * d * f(l.vocab_size);
    let score = vision + projector + decoder + head;
    let (weight_grads, lora_forward) = match kind {
        StepKind::Attention => (layers * 2.0 * t * attn_params, 0.0),
        StepKind::LoraAttention { rank } => {
            let lora_params = f(rank) * (2.0 * (d + q) + 2.0 * (d + kv));
            (layers * 2.0 * t * lora_params * 2.0, layers * 2.0 * t * lora_params)
        }
    };
    let train = vision + projector + 2.0 * (decoder + head) + weight_grads + 2.0 * lora_forward;
    (train, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_config_by_hand() {
        // small: N 64, T 82, vision 256 wide × 4 layers (MLP 1024), patch 14; decoder 256 wide × 4
        // layers, 4 heads × 64, 1 KV head, MLP 1024, vocab 2048.
        // vision = 2·64·3·196·256 + 4·(2·64·(4·256² + 2·256·1024) + 4·64²·256) = 438,697,984
        // projector = 2·64·256² = 8,388,608; q/k/v/o params = 256·(2·256 + 2·64) = 163,840
        // decoder = 4·(2·82·(163,840 + 3·256·1024) + 4·82²·256) = 650,919,936; head = 6·256·2048
        // score = 1,101,152,256. Train: vision + projector + 2·(decoder + head) = 1,755,217,920, plus
        // attention weight gradients 4·2·82·163,840 = 107,479,040 → 1,862,696,960; or LoRA r 8
        // (params 8·(2·512 + 2·320) = 13,312): gradients 2·4·2·82·13,312 = 17,465,344 and the forward
        // twice, 17,465,344 → 1,790,148,608. tools/bench_reference.py's `flops` gives the same numbers.
        let config = PaliGemmaConfig::named("small").unwrap();
        let (train, score) = flops_per_example(&config, StepKind::Attention);
        assert_eq!(score, 1_101_152_256.0);
        assert_eq!(train, 1_862_696_960.0);
        let (train, score) = flops_per_example(&config, StepKind::LoraAttention { rank: 8 });
        assert_eq!(score, 1_101_152_256.0);
        assert_eq!(train, 1_790_148_608.0);
    }

    #[test]
    fn paligemma2_3b_by_hand() {
        // paligemma2-3b-224: N 256, T 274; SigLIP So400m/14 (1152 wide, MLP 4304, 27 layers);
        // Gemma-2 2B: 2304 wide, 26 layers, 8 heads × 256, 4 KV heads, MLP 9216, vocab 257216.
        // vision = 2·256·588·1152 + 27·(2·256·(4·1152² + 2·1152·4304) + 4·256²·1152) = 218,968,621,056
        // projector = 2·256·1152·2304 = 1,358,954,496
        // per layer: q/k/v/o 2304·(2·2048 + 2·1024) = 14,155,776, MLP 3·2304·9216 = 63,700,992;
        // 2·274·77,856,768 + 4·274²·2048 = 43,280,531,456; × 26 = 1,125,293,817,856
        // head = 6·2304·257216 = 3,555,753,984 → score 1,349,177,147,392.
        // LoRA r 8: params 8·(2·(2304 + 2048) + 2·(2304 + 1024)) = 122,880; gradients
        // 26·2·274·122,880·2 = 3,501,588,480, forward twice the same → train 2,485,029,896,192.
        let config = PaliGemmaConfig::named("paligemma2-3b-224").unwrap();
        let (train, score) = flops_per_example(&config, StepKind::LoraAttention { rank: 8 });
        assert_eq!(score, 1_349_177_147_392.0);
        assert_eq!(train, 2_485_029_896_192.0);
    }
}
