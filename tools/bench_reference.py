"""Benchmark the PyTorch reference (transformers + PEFT) on the work `gacha bench` measures.

Random-init PaliGemma of a named config, a fixed random batch laid out as docs/design.md §6
(image tokens, <bos>, prompt, "\\n", one answer token, <eos>), loss of §7 (full-vocabulary
cross-entropy at the "\\n" and answer positions, mean per example, mean over the batch), plain SGD.

    python tools/bench_reference.py --config small|paligemma-3b-224 --trainable lora|attention \\
        --steps N --batch B [--grad-accum K] [--threads T] [--device cpu|cuda] [--dtype f32|bf16] [--json]

Measures
- train step: forward + backward + SGD update over `batch × grad-accum` examples; median of --steps
  timed steps after --warmup untimed ones (ms);
- scoring: forward only, no grad, same batch; examples/s from the median of --steps passes;
- peak memory: CUDA `torch.cuda.max_memory_allocated`; CPU the process's peak RSS (ru_maxrss);
- achieved TFLOP/s against a FLOP count of the step (see `flops`: multiply-add = 2 FLOPs; matmuls,
  patch conv and attention scores/values; no norms, activations or softmax).

Trainable sets: `lora` = LoRA r 8, alpha 16 on the language model's q/k/v/o (regex-restricted), B = 0
at start as PEFT initialises it; `attention` = the language model's q/k/v/o weights. With --dtype bf16
the frozen base is bf16 and trainables (f32 master weights) are cast by torch.autocast, as gacha does.

On a CPU shared with other work, PyTorch's OpenMP threads spin while waiting: with 2 threads on 2 busy
cores a step took 2–8 s instead of ~0.3 s here. `OMP_WAIT_POLICY=PASSIVE` avoids that; say which you used.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gacha_ref as ref  # noqa: E402

PROMPT_TOKENS = 14
LORA_R, LORA_ALPHA = 8, 16
LM_ATTENTION = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


@dataclass
class Sizes:
    image_size: int
    patch: int
    v_hidden: int
    v_layers: int
    v_heads: int
    v_mlp: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int
    image_token: int
    yes: int
    no: int


CONFIGS = {
    # issue 3's benchmark config
    "small": Sizes(112, 14, 256, 4, 4, 1024, 256, 4, 4, 1, 64, 1024, 2048, 2047, 300, 301),
    # docs/design.md §1 / §4.1 (HF vocab 257216 with <image> at 257152; "yes" 3276, "no" 956)
    "paligemma-3b-224": Sizes(224, 14, 1152, 27, 16, 4304, 2048, 18, 8, 1, 256, 16384, 257216, 257152, 3276, 956),
}


def make_config(s: Sizes):
    from transformers import PaliGemmaConfig

    return PaliGemmaConfig(
        text_config=dict(
            model_type="gemma", hidden_size=s.hidden, intermediate_size=s.mlp, num_hidden_layers=s.layers,
            num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, head_dim=s.head_dim,
            rope_theta=10000.0, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", vocab_size=s.vocab,
        ),
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=s.v_hidden, intermediate_size=s.v_mlp,
            num_hidden_layers=s.v_layers, num_attention_heads=s.v_heads, layer_norm_eps=1e-6,
            hidden_act="gelu_pytorch_tanh", image_size=s.image_size, patch_size=s.patch, vision_use_head=False,
        ),
        projection_dim=s.hidden, hidden_size=s.hidden, vocab_size=s.vocab, image_token_index=s.image_token,
    )


def flops(s: Sizes, batch: int, trainable: str) -> tuple[float, float]:
    """(train step, scoring pass) FLOPs for `batch` examples; multiply-add = 2 FLOPs.

    Forward: vision (patch conv, per layer 4·D² + 2·D·M matmul params per token, attention 4·N²·D),
    projector, decoder (per layer q/k/v/o + 3·D·M matmul params per token, attention 4·T²·H·hd), head at
    the 3 kept positions. Train step: vision + projector forward only (frozen, no input gradient); the
    decoder and head forward, input gradients (≈ the same again) and weight gradients of the trainables
    (2·T·params per matrix; LoRA: 2·T·r·(in+out) for A and B each, plus the LoRA forward)."""
    n = (s.image_size // s.patch) ** 2
    t = n + 1 + PROMPT_TOKENS + 3
    vision = 2 * n * 3 * s.patch**2 * s.v_hidden + s.v_layers * (
        2 * n * (4 * s.v_hidden**2 + 2 * s.v_hidden * s.v_mlp) + 4 * n * n * s.v_hidden)
    proj = 2 * n * s.v_hidden * s.hidden
    q = s.heads * s.head_dim
    kv = s.kv_heads * s.head_dim
    attn_params = s.hidden * (2 * q + 2 * kv)  # q, o: D·q each; k, v: D·kv each
    lm = s.layers * (2 * t * (attn_params + 3 * s.hidden * s.mlp) + 4 * t * t * q)
    head = 2 * 3 * s.hidden * s.vocab
    score = vision + proj + lm + head
    if trainable == "attention":
        weight_grads = s.layers * 2 * t * attn_params
        lora_fwd = 0
    else:
        lora_params = LORA_R * (2 * (s.hidden + q) + 2 * (s.hidden + kv))
        lora_fwd = s.layers * 2 * t * lora_params
        weight_grads = s.layers * 2 * t * lora_params * 2  # input grads through LoRA + weight grads
    train = vision + proj + 2 * (lm + head) + weight_grads + lora_fwd * 2
    return batch * float(train), batch * float(score)


def make_batch(s: Sizes, batch: int, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = (s.image_size // s.patch) ** 2
    prompt = torch.randint(4, min(s.vocab, s.image_token) - 1, (batch, PROMPT_TOKENS), generator=gen)
    answers = torch.where(torch.rand(batch, generator=gen) < 0.5, s.yes, s.no)[:, None]
    newline = torch.full((batch, 1), 108 if s.vocab > 108 else 5)
    ids = torch.cat([torch.full((batch, n), s.image_token), torch.full((batch, 1), 2), prompt, newline,
                     answers, torch.ones(batch, 1, dtype=torch.long)], dim=1)
    tt = torch.zeros_like(ids)
    tt[:, -2:] = 1
    pixels = torch.rand(batch, 3, s.image_size, s.image_size, generator=gen) * 2 - 1
    return {"input_ids": ids.to(device), "token_type_ids": tt.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "pixel_values": pixels.to(device, dtype), "answers": answers[:, 0].to(device)}


def loss_fn(model, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """docs/design.md §7 on logits of the last 3 positions ("\\n", answer, eos): answer at "\\n", eos at answer."""
    logits = model(input_ids=b["input_ids"], pixel_values=b["pixel_values"], attention_mask=b["attention_mask"],
                   token_type_ids=b["token_type_ids"], logits_to_keep=3, use_cache=False).logits
    logp = torch.log_softmax(logits[:, :2].float(), dim=-1)
    nll_answer = -logp[:, 0].gather(1, b["answers"][:, None])[:, 0]
    nll_eos = -logp[:, 1, 1]
    return ((nll_answer + nll_eos) / 2).mean()


def build(args, s: Sizes):
    from transformers import PaliGemmaForConditionalGeneration

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with torch.device(args.device):
        model = PaliGemmaForConditionalGeneration._from_config(
            make_config(s), attn_implementation=args.attn, dtype=dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    if args.trainable == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=LM_ATTENTION, lora_dropout=0.0, bias="none")
        model = get_peft_model(model, cfg)  # adapter weights in f32 (autocast_adapter_dtype)
    else:
        for name, p in model.named_parameters():
            if ".language_model." in name and any(f"self_attn.{m}.weight" in name for m in ("q_proj", "k_proj", "v_proj", "o_proj")):
                p.data = p.data.float()  # f32 master weights; autocast computes in bf16 when asked
                p.requires_grad_(True)
    trainables = [p for p in model.parameters() if p.requires_grad]
    assert trainables and all(p.dtype == torch.float32 for p in trainables)
    return model, trainables


def timed(fn, steps: int, warmup: int, device: str) -> list[float]:
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--trainable", choices=["lora", "attention"], default="lora")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="dtype of the frozen base")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa", help="transformers attention kernel")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = CONFIGS[args.config]
    dev_type = "cuda" if args.device.startswith("cuda") else "cpu"

    t0 = time.perf_counter()
    model, trainables = build(args, s)
    batch = make_batch(s, args.batch, args.device, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    build_s = time.perf_counter() - t0
    opt = torch.optim.SGD(trainables, lr=args.lr)
    autocast = torch.autocast(dev_type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    if dev_type == "cuda":
        torch.cuda.reset_peak_memory_stats(args.device)
    losses = []

    def train_step():
        model.train()
        for _ in range(args.grad_accum):
            with autocast:
                loss = loss_fn(model, batch) / args.grad_accum
            loss.backward()
            losses.append(float(loss.detach()) * args.grad_accum)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def score():
        model.eval()
        with torch.no_grad(), autocast:
            loss_fn(model, batch)

    train_s = timed(train_step, args.steps, args.warmup, args.device)
    score_s = timed(score, args.steps, args.warmup, args.device)
    if dev_type == "cuda":
        peak = torch.cuda.max_memory_allocated(args.device)
        device_name = torch.cuda.get_device_name(args.device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        device_name = "cpu"
    train_flop, score_flop = flops(s, args.batch * args.grad_accum, args.trainable)
    score_flop /= args.grad_accum
    ms_step = statistics.median(train_s) * 1e3
    score_ms = statistics.median(score_s) * 1e3
    result = {
        "tool": "bench_reference.py", "config": args.config, "device": args.device, "device_name": device_name,
        "dtype": args.dtype, "attn": args.attn, "threads": torch.get_num_threads(), "trainable": args.trainable,
        "batch": args.batch, "grad_accum": args.grad_accum, "seq_len": int(batch["input_ids"].shape[1]),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in trainables),
        "steps": args.steps, "warmup": args.warmup, "build_s": round(build_s, 2),
        "ms_per_step": ms_step, "ms_per_step_all": [x * 1e3 for x in train_s],
        "score_ms_per_batch": score_ms, "score_examples_per_s": args.batch / (score_ms / 1e3),
        "peak_mem_mib": peak / 2**20, "peak_mem_kind": "cuda max_memory_allocated" if dev_type == "cuda" else "process peak RSS",
        "train_gflop_per_step": train_flop / 1e9, "score_gflop_per_batch": score_flop / 1e9,
        "train_tflops": train_flop / (ms_step / 1e3) / 1e12, "score_tflops": score_flop / (score_ms / 1e3) / 1e12,
        "loss_first": losses[0], "loss_last": losses[-1], "versions": ref.versions(),
    }
    if args.json:
        print(json.dumps(result))
        return
    cols = [("config", "config"), ("device", "device_name"), ("dtype", "dtype"), ("thr", "threads"),
            ("trainable", "trainable"), ("batch", "batch"), ("accum", "grad_accum"), ("seq", "seq_len"),
            ("ms/step", "ms_per_step"), ("score ex/s", "score_examples_per_s"), ("peak MiB", "peak_mem_mib"),
            ("train TFLOP/s", "train_tflops"), ("score TFLOP/s", "score_tflops")]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [fmt(result[k]) for _, k in cols]
    widths = [max(len(h), len(c)) for (h, _), c in zip(cols, cells)]
    print("  ".join(h.rjust(w) for (h, _), w in zip(cols, widths)))
    print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    print(f"params {result['params']:,}, trainable {result['trainable_params']:,}; loss {losses[0]:.4f} -> "
          f"{losses[-1]:.4f}; train {result['train_gflop_per_step']:.3g} GFLOP/step, score "
          f"{result['score_gflop_per_batch']:.3g} GFLOP/batch; peak = {result['peak_mem_kind']}")


if __name__ == "__main__":
    main()
