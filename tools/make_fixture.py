"""Make the tiny random PaliGemma fixtures `tests/fixtures/tiny-paligemma/` (PaliGemma 1, Gemma
decoder) and `tests/fixtures/tiny-paligemma2/` (PaliGemma 2, Gemma-2 decoder) (docs/design.md §12).

Writes a Gemma-style BPE tokenizer, a transformers-5 `config.json`, random f32 weights under the hub's
legacy tensor names (docs/design.md §4.2), six small PNG images covering the decoder paths (8-bit RGB,
resize both ways, grey, RGBA, 16-bit RGB, palette), `data.jsonl`, the numpy-twin pixels and the
reference numbers of transformers (float32, eager attention, prefix-LM mask via token_type_ids).
Run once from the repository root:

    python tools/make_fixture.py                  # PaliGemma 1
    python tools/make_fixture.py --generation 2   # PaliGemma 2, then the two steps below

The PaliGemma-2 fixture also holds a PEFT LoRA adapter made in Python (`peft-adapter/`, random A and
B on all seven decoder projections) with its PEFT scores, and an adapter trained by gacha
(`gacha-adapter/`) with the scores PEFT gives it, so the Rust tests check the round trip both ways
without Python. After the first command:

    cargo run --release -- train GACHA_ADAPTER_ARGS   # printed by the first command
    python tools/make_fixture.py --generation 2 --score-gacha-adapter
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import png
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gacha_ref as ref  # noqa: E402

# Picked among 1..5 (PaliGemma 1) and 1..8 (PaliGemma 2) for the widest spread of p_yes within 0.05..0.95.
SEEDS = {1: 3, 2: 7}
IMAGE_SIZE = 56
PATCH = 14
PROMPTS = ["is there a cat in the picture?", "answer en is the big square red? café"]
CORPUS = [
    "a photo of a cat", "a cat on the grass", "is there a dog in the picture?", "the square is red",
    "the circle is blue", "answer en what colour is the square?", "caption en", "answer en",
    "is there a cat?", "a big red square and a small blue circle", "there is no cat in this picture",
    "is it a cat or a dog?", "the picture shows a green field",
]
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
# Re-initialisation of the random weights (the library's 0.02 init gives nearly constant outputs).
WEIGHT_STD = 0.2  # every matrix, conv kernel and embedding
BIAS_STD = 0.1  # every bias
NORM_STD = 0.1  # norm weights: LayerNorm 1 + N(0, s²); Gemma RMSNorm (scales by 1 + w) N(0, s²)
SGD_LR = 0.05
LORA = {"r": 2, "alpha": 4, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
# The decoder of each generation. PaliGemma 2's: 2 KV heads (grouped-query attention);
# query_pre_attn_scalar 16, not head_dim 24, so using the wrong one shows; soft-caps small enough to
# bend this model's attention scores (|s| up to ~10) and logits (~3), unlike the real 50 and 30;
# the sliding window just covers the longest sequence (16 image + 14 text positions), with
# layer_types left to transformers (layer 0 sliding, layer 1 full).
TEXT_CONFIGS = {
    1: dict(model_type="gemma", num_key_value_heads=1),
    2: dict(model_type="gemma2", num_key_value_heads=2, query_pre_attn_scalar=16, attn_logit_softcapping=5.0,
            final_logit_softcapping=2.0, sliding_window=32),
}
OUT = {1: "tests/fixtures/tiny-paligemma", 2: "tests/fixtures/tiny-paligemma2"}
# The PEFT adapter of the PaliGemma-2 fixture: all seven projections of the language model only.
PEFT_ADAPTER = {"r": 2, "alpha": 4, "target_modules": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
                "init_std": 0.3, "seed": 7}
# `gacha train` arguments that make the fixture's gacha-adapter/ (run from the repository root).
GACHA_ADAPTER_ARGS = ("--model {fx} --data {fx}/data.jsonl --trainable lora --lora-rank 2 --lora-alpha 4 "
                      "--lora-targets q,k,v,o,gate,up,down --optimizer sgd --lr 0.5 --steps 3 --batch-size 3 "
                      "--seed 4 --out {fx}/gacha-adapter")
# (file name, prompt index, label)
EXAMPLES = [
    ("rgb56.png", 0, "yes"),
    ("rgb80x44.png", 1, "no"),
    ("grey60x72.png", 0, "no"),
    ("rgba56x70.png", 1, "yes"),
    ("rgb16_33x29.png", 0, "yes"),
    ("palette48x36.png", 1, "no"),
]


def build_tokenizer() -> Tokenizer:
    """Gemma's structure: Replace " "→"▁", no pre-tokenizer, BPE with byte fallback, specials 0..3,
    byte tokens <0x00>..<0xFF> at 4..259, trained merges, <image> as an added special at the end."""
    def ascii_only(s: str) -> str:  # non-ASCII stays out of the alphabet so it exercises byte fallback
        return s.encode("ascii", "ignore").decode()

    lines = CORPUS * 3 + ["yes", "no", "\n"] * 10 + [ascii_only(p) for p in PROMPTS]
    trainer_tok = Tokenizer(models.BPE(unk_token=None))
    trainer_tok.normalizer = normalizers.Replace(" ", "\u2581")
    # Training only: keep merges inside "▁word" pieces like SentencePiece; the saved file has no pre-tokenizer.
    trainer_tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    trainer_tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=160, show_progress=False))
    trained = json.loads(trainer_tok.to_str())["model"]

    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token in sorted(trained["vocab"], key=trained["vocab"].get):
        vocab[token] = len(vocab)
    merges = [tuple(m) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(SPECIALS)
    tok.add_special_tokens(["<image>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", 2)]
    )
    return tok


def make_config(vocab_size: int, image_id: int, generation: int) -> PaliGemmaConfig:
    config = PaliGemmaConfig(
        text_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, head_dim=24, rope_theta=10000.0,
            rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", vocab_size=vocab_size,
            **TEXT_CONFIGS[generation],
        ),
        vision_config=dict(
            model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
            image_size=IMAGE_SIZE, patch_size=PATCH, vision_use_head=False,
        ),
        projection_dim=64, hidden_size=64, vocab_size=vocab_size, image_token_index=image_id,
    )
    config.architectures = ["PaliGemmaForConditionalGeneration"]
    return config


def reinit_(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name and name.endswith(".weight"):
                gemma_norm = ".language_model." in name  # Gemma RMSNorm scales by (1 + w)
                p.copy_(noise * NORM_STD + (0.0 if gemma_norm else 1.0))
            elif name.endswith(".bias"):
                p.copy_(noise * BIAS_STD)
            else:
                p.copy_(noise * WEIGHT_STD)


def legacy_name(name: str) -> str | None:
    """transformers-5 parameter name → hub/legacy name of docs/design.md §4.2 (None: tied lm_head)."""
    if name == "lm_head.weight":
        return None
    for new, old in (
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("model.language_model.", "language_model.model."),
    ):
        if name.startswith(new):
            return old + name[len(new):]
    raise ValueError(f"unexpected parameter {name}")


def save_model(model, config: PaliGemmaConfig, out: Path) -> list[str]:
    """config.json as transformers writes it; model.safetensors written by hand with legacy names."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copy(Path(tmp) / "config.json", out / "config.json")
    tensors = {}
    for name, t in model.state_dict().items():
        legacy = legacy_name(name)
        if legacy is not None:
            tensors[legacy] = t.detach().to(torch.float32).contiguous().clone()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return sorted(tensors)


def verify_reload(model, out: Path) -> None:
    """transformers must load the hand-written legacy file back bit-exactly (docs/design.md §4.2)."""
    loaded = ref.load_model(out)
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), f"reload differs at {k}"
    assert torch.equal(got["lm_head.weight"], got["model.language_model.embed_tokens.weight"]), "lm_head not tied"


def smooth(rng: np.random.Generator, h: int, w: int, c: int, cells: int = 5) -> np.ndarray:
    """A smooth random field in 0..1 (bilinear blend of a coarse random grid) plus a little noise."""
    grid = rng.random((cells, cells, c))
    ys, xs = np.linspace(0, cells - 1, h), np.linspace(0, cells - 1, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 2), np.minimum(xs.astype(int), cells - 2)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    g = grid
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bot = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return np.clip(top * (1 - fy) + bot * fy + 0.08 * rng.standard_normal((h, w, c)), 0, 1)


def make_images(out: Path, rng: np.random.Generator) -> None:
    img = out / "images"
    img.mkdir()
    u8 = lambda x: (x * 255).round().astype(np.uint8)  # noqa: E731
    Image.fromarray(u8(smooth(rng, 56, 56, 3)), "RGB").save(img / "rgb56.png")
    a = smooth(rng, 44, 80, 3)
    a[10:30, 20:45] = [0.9, 0.1, 0.1]  # a red rectangle
    Image.fromarray(u8(a), "RGB").save(img / "rgb80x44.png")
    Image.fromarray(u8(smooth(rng, 72, 60, 1)[:, :, 0]), "L").save(img / "grey60x72.png")
    rgba = smooth(rng, 70, 56, 4)
    rgba[:, :, 3] = np.linspace(0, 1, 56)[None, :] * np.linspace(1, 0.3, 70)[:, None]  # alpha ramp 0..1
    rgba[:20, :15, 3] = 0.0  # a fully transparent corner
    rgba[50:, 40:, 3] = 1.0  # an opaque corner
    Image.fromarray(u8(rgba), "RGBA").save(img / "rgba56x70.png")
    rgb16 = (smooth(rng, 29, 33, 3) * 65535).round().astype(np.uint16)
    with open(img / "rgb16_33x29.png", "wb") as f:
        png.Writer(33, 29, greyscale=False, bitdepth=16).write(f, rgb16.reshape(29, 33 * 3).tolist())
    pal = Image.fromarray((smooth(rng, 36, 48, 1)[:, :, 0] * 15.99).astype(np.uint8), "P")
    pal.putpalette(rng.integers(0, 256, 16 * 3).astype(np.uint8).tolist())
    pal.save(img / "palette48x36.png")


def check_pixels(out: Path, pixels: dict[str, np.ndarray]) -> None:
    """Independent spot checks of the numpy twin: filter weights by hand, and two images."""
    # docs/design.md §5 step 3 by hand. 4 → 2: scale 2, support 2, output 0 has center 1, inputs 0..2
    # with w = 1 − |j + 0.5 − 1| / 2 = 0.75, 0.75, 0.25. 2 → 4: scale 0.5, support 1, output 1 has
    # center 0.75, w = 0.75, 0.25.
    assert np.allclose(ref.triangle_weights(4, 2)[0], np.array([0.75, 0.75, 0.25, 0]) / 1.75, atol=1e-7)
    assert np.allclose(ref.triangle_weights(2, 4)[:2], [[1, 0], [0.75, 0.25]], atol=1e-7)
    assert np.array_equal(ref.triangle_weights(5, 5), np.eye(5, dtype=np.float32))
    # 56×56 8-bit RGB: no resize, so the twin must be exactly x/127.5 − 1 of the raw bytes.
    raw = np.asarray(Image.open(out / "images/rgb56.png"), dtype=np.float32)
    assert np.array_equal(pixels["images/rgb56.png"], (raw / np.float32(127.5) - 1).transpose(2, 0, 1))
    # 16-bit RGB: the decoder must keep 16 bits (Pillow alone would give only the high byte).
    rgba = ref.decode_rgba(out / "images/rgb16_33x29.png")
    v16 = np.rint(rgba[:, :, :3] * 257).astype(np.int64)
    assert np.abs(rgba[:, :, :3] * 257 - v16).max() < 1e-2 and (v16 % 257 != 0).mean() > 0.9, "not 16-bit"
    hi = np.asarray(Image.open(out / "images/rgb16_33x29.png"))  # Pillow's 8-bit view = high byte
    assert np.array_equal(v16 >> 8, hi), "16-bit samples disagree with Pillow's high byte"
    # RGBA: rows 0..19, columns 0..14 are fully transparent, so over white they are 255 → +1; the width
    # is not resized and output rows 0..13 only read input rows < 20.
    assert np.abs(pixels["images/rgba56x70.png"][:, :14, :15] - 1).max() < 1e-6, "transparent corner is not white"


def check_prefix_lm_mask(model, vocab: ref.Vocab, pixels: torch.Tensor, e: ref.Example) -> None:
    """The mask HF builds from token_type_ids must be docs/design.md §6's prefix-LM mask: the answer
    cannot reach the "\n" logits, while the prefix is bidirectional (the "\n" reaches the <bos> row)."""
    def logits(ex: ref.Example) -> torch.Tensor:
        return ref.forward(model, pixels, ref.pad_batch([ex], vocab.pad)).logits[0]

    base = logits(e)
    ids = list(e.input_ids)
    ids[e.newline_pos + 1] = vocab.no if e.answer == vocab.yes else vocab.yes
    flipped = logits(ref.Example(ids, e.token_type_ids, e.labels, e.newline_pos, ids[e.newline_pos + 1]))
    assert torch.equal(base[: e.newline_pos + 1], flipped[: e.newline_pos + 1]), "suffix leaks into the prefix"
    assert not torch.equal(base[e.newline_pos + 1], flipped[e.newline_pos + 1])
    ids = list(e.input_ids)
    ids[e.newline_pos] = vocab.yes
    bos_pos = e.input_ids.index(vocab.bos)
    changed = logits(ref.Example(ids, e.token_type_ids, e.labels, e.newline_pos, e.answer))
    assert not torch.allclose(base[bos_pos], changed[bos_pos]), "prefix is not bidirectional"


def check_softcaps_bind(out: Path, vocab: ref.Vocab, pixels: torch.Tensor, e: ref.Example, want: float) -> dict:
    """Each soft-cap of the Gemma-2 fixture must move p_yes: the model without it scores differently."""
    moved = {}
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        model = ref.load_model(out)
        setattr(model.config.text_config, key, None)
        if key == "attn_logit_softcapping":
            for layer in model.model.language_model.layers:
                layer.self_attn.attn_logit_softcapping = None
        with torch.no_grad():
            logits = ref.forward(model, pixels, ref.pad_batch([e], vocab.pad)).logits
        moved[key] = abs(ref.example_scores(logits, [e], vocab)[0].p_yes - want)
        assert moved[key] > 1e-2, f"{key} barely matters: p_yes moves by {moved[key]}"
    return moved


def sgd_step(model, vocab: ref.Vocab, pixels: torch.Tensor, examples: list[ref.Example]):
    """One plain-SGD step on the language model's q/k/v/o_proj weights over the padded batch.

    Returns (per-example losses before, HF's label loss before, batch loss after). The model is changed."""
    trainable = [p for n, p in model.named_parameters()
                 if ".language_model." in n and any(f"self_attn.{t}.weight" in n for t in LORA["targets"])]
    assert len(trainable) == 4 * model.config.text_config.num_hidden_layers
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    batch = ref.pad_batch(examples, vocab.pad)
    hf_out = ref.forward(model, pixels, batch)
    losses = ref.example_losses(hf_out.logits, examples, vocab.eos)
    losses.mean().backward()
    with torch.no_grad():
        for p in trainable:
            p -= SGD_LR * p.grad
        after = ref.example_losses(ref.forward(model, pixels, batch).logits, examples, vocab.eos).mean()
    return losses.detach(), float(hf_out.loss.detach()), float(after)


def make_peft_adapter(out: Path) -> None:
    """A PEFT LoRA adapter on the fixture with random non-zero A and B, saved by PEFT."""
    from peft import LoraConfig, get_peft_model

    a = PEFT_ADAPTER
    cfg = LoraConfig(r=a["r"], lora_alpha=a["alpha"], target_modules=a["target_modules"], lora_dropout=0.0,
                     bias="none")
    peft_model = get_peft_model(ref.load_model(out), cfg)
    gen = torch.Generator().manual_seed(a["seed"])
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * a["init_std"])
    folder = out / "peft-adapter"
    peft_model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's model-card template


def adapter_scores(out: Path, adapter: Path, image_id: int) -> list[dict]:
    """PEFT's scores of every example with `adapter` (each tensor checked to be loaded)."""
    import peft_score

    model = peft_score.apply_adapter(ref.load_model(out), adapter)
    vocab = ref.load_vocab(out / "tokenizer.json", image_id)
    rows = ref.read_jsonl(out / "data.jsonl")
    return [{"image": r["image"], **vars(s)} for r, s in peft_score.score_rows(model, vocab, rows, out, None, "cpu")]


def score_gacha_adapter(out: Path) -> None:
    """Load gacha-adapter/ in PEFT, score it, and add the numbers to reference.json and README.md."""
    adapter = out / "gacha-adapter"
    if not (adapter / "adapter_model.safetensors").is_file():
        sys.exit(f"{adapter}: missing; first run: cargo run --release -- train {GACHA_ADAPTER_ARGS.format(fx=out)}")
    reference = json.loads((out / "reference.json").read_text(encoding="utf-8"))
    n_tensors = len(load_file(str(adapter / "adapter_model.safetensors")))
    scores = adapter_scores(out, adapter, reference["ids"]["image"])
    reference["gacha_adapter"] = {"dir": "gacha-adapter", "command": f"gacha train {GACHA_ADAPTER_ARGS.format(fx=out)}",
                                  "tensors": n_tensors, "examples": scores}
    (out / "reference.json").write_text(json.dumps(reference, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(out / "README.md", "a", encoding="utf-8") as f:
        f.write(f"""
`gacha-adapter/`: made by gacha (`gacha train {GACHA_ADAPTER_ARGS.format(fx=out)}`), then loaded with
PEFT {reference['versions']['peft']} (`PeftModel.from_pretrained`, all {n_tensors} tensors checked to be loaded) and scored:
`reference.json` → `gacha_adapter` (`python tools/make_fixture.py --generation 2 --score-gacha-adapter`).
""")
    print(json.dumps({"gacha_adapter_p_yes": [s["p_yes"] for s in scores]}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generation", type=int, choices=[1, 2], default=1, help="PaliGemma 1 or 2")
    parser.add_argument("--out", help="fixture folder (replaced; default by generation)")
    parser.add_argument("--score-gacha-adapter", action="store_true",
                        help="only add PEFT's scores of OUT/gacha-adapter to OUT/reference.json")
    args = parser.parse_args()
    out = Path(args.out or OUT[args.generation])
    if args.score_gacha_adapter:
        score_gacha_adapter(out)
        return
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    seed = SEEDS[args.generation]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    tok = build_tokenizer()
    tok.save(str(out / "tokenizer.json"))
    image_id = tok.token_to_id("<image>")
    vocab_size = math.ceil(tok.get_vocab_size() / 64) * 64
    config = make_config(vocab_size, image_id, args.generation)
    model = PaliGemmaForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    reinit_(model, seed)
    keys = save_model(model, config, out)
    verify_reload(model, out)
    model = ref.load_model(out)
    vocab = ref.load_vocab(out / "tokenizer.json", image_id)
    n_img = (IMAGE_SIZE // PATCH) ** 2

    make_images(out, rng)
    rows = [{"prefix": PROMPTS[p], "suffix": label, "image": f"images/{f}"} for f, p, label in EXAMPLES]
    with open(out / "data.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    pixels = {r["image"]: ref.preprocess(out / r["image"], IMAGE_SIZE) for r in rows}
    check_pixels(out, pixels)
    save_file({k: torch.from_numpy(v) for k, v in pixels.items()}, str(out / "reference_pixels.safetensors"))

    ids = [ref.text_ids(vocab, r["prefix"], r["suffix"]) for r in rows]
    examples = [ref.make_example(vocab, n_img, t) for t in ids]
    pix = [torch.from_numpy(pixels[r["image"]])[None] for r in rows]

    # Per-example reference: one example at a time, no padding.
    results = []
    with torch.no_grad():
        for r, t, e, p in zip(rows, ids, examples, pix):
            hf_out = ref.forward(model, p, ref.pad_batch([e], vocab.pad))
            score = ref.example_scores(hf_out.logits, [e], vocab)[0]
            assert all(math.isfinite(v) for v in vars(score).values()), f"non-finite score for {r}"
            assert abs(score.loss - float(hf_out.loss)) < 1e-6, (score.loss, float(hf_out.loss))
            results.append({"image": r["image"], "prompt": r["prefix"], "label": r["suffix"], "text_ids": t,
                            **vars(score)})
        check_prefix_lm_mask(model, vocab, pix[0], examples[0])
    softcap_moves = check_softcaps_bind(out, vocab, pix[0], examples[0], results[0]["p_yes"]) if args.generation == 2 else {}
    p_yes = [r["p_yes"] for r in results]
    assert min(p_yes) > 0.05 and max(p_yes) < 0.95 and max(p_yes) - min(p_yes) > 0.3, f"p_yes not spread: {p_yes}"

    # The padded batch (prompts differ in length) must reproduce the per-example losses.
    batch_pix = torch.cat(pix)
    single = torch.tensor([r["loss"] for r in results])
    losses, hf_loss, loss_after = sgd_step(model, vocab, batch_pix, examples)
    loss_before = float(losses.mean())
    pad_diff = float((losses - single).abs().max())
    assert pad_diff < 1e-6, f"padded batch changes per-example losses by {pad_diff}"
    assert abs(hf_loss - loss_before) < 1e-6, (hf_loss, loss_before)
    assert abs(loss_after - loss_before) / loss_before > 0.01, "SGD step changes the loss by less than 1%"

    # Conditioning: the same computations in float64 must agree far below the Rust tolerance (1e-4).
    m64 = ref.load_model(out, torch.float64)
    f64_diff = 0.0
    with torch.no_grad():
        for res, e, p in zip(results, examples, pix):
            s = ref.example_scores(ref.forward(m64, p.double(), ref.pad_batch([e], vocab.pad)).logits, [e], vocab)[0]
            f64_diff = max(f64_diff, abs(s.p_yes - res["p_yes"]), abs(s.loss - res["loss"]) / res["loss"])
    loss_after64 = sgd_step(m64, vocab, batch_pix.double(), examples)[2]
    f64_diff = max(f64_diff, abs(loss_after64 - loss_after) / loss_after)
    assert f64_diff < 1e-5, f"f32 vs f64 differ by {f64_diff}: fixture is too ill-conditioned"

    vers = ref.versions()
    command = "python tools/make_fixture.py" + ("" if args.generation == 1 else f" --generation {args.generation}")
    command += "" if args.out is None else f" --out {args.out}"
    reference = {
        "versions": vers,
        "command": command,
        "image_size": IMAGE_SIZE,
        "num_image_tokens": n_img,
        "preprocess": "gacha-triangle",
        "ids": vocab.ids_json(),
        "examples": results,
        "batch_loss": loss_before,
        "sgd_step": {"trainable": "attention", "lr": SGD_LR, "loss_before": loss_before, "loss_after": loss_after},
        "lora": LORA,
    }
    if args.generation == 2:
        make_peft_adapter(out)
        reference["peft_adapter"] = {"dir": "peft-adapter", **PEFT_ADAPTER,
                                     "examples": adapter_scores(out, out / "peft-adapter", image_id)}
    (out / "reference.json").write_text(json.dumps(reference, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_readme(out, command, vers, vocab, n_img, keys, results, loss_before, loss_after, pad_diff, f64_diff,
                 args.generation)
    if args.generation == 2:
        print(f"next: cargo run --release -- train {GACHA_ADAPTER_ARGS.format(fx=out)}", file=sys.stderr)
    print(json.dumps({"p_yes": p_yes, "batch_loss": loss_before, "loss_after_sgd": loss_after,
                      "pad_max_abs_diff": pad_diff, "f32_vs_f64_max": f64_diff, "p_yes_moved_without": softcap_moves,
                      "config_text_keys": sorted(json.loads((out / "config.json").read_text())["text_config"]),
                      "tensors": len(keys)}, indent=1))


def decoder_description(generation: int) -> str:
    if generation == 1:
        return "Gemma hidden 64, MLP 128, 2 layers, 4 heads,\n  1 KV head, head_dim 24"
    t = TEXT_CONFIGS[2]
    return (f"Gemma-2 hidden 64, MLP 128, 2 layers, 4 heads,\n  {t['num_key_value_heads']} KV heads, head_dim 24, "
            f"query_pre_attn_scalar {t['query_pre_attn_scalar']}, attention soft-cap {t['attn_logit_softcapping']},\n"
            f"  final soft-cap {t['final_logit_softcapping']}, sliding window {t['sliding_window']} on layer 0")


def write_readme(out, command, vers, vocab, n_img, keys, results, before, after, pad_diff, f64_diff,
                 generation) -> None:
    ver = ", ".join(f"{k} {v}" for k, v in vers.items())
    table = "\n".join(f"| {r['image']} | {r['label']} | {len(r['text_ids'])} | {r['p_yes']:.4f} | {r['loss']:.4f} |"
                      for r in results)
    name = "tiny-paligemma" if generation == 1 else "tiny-paligemma2"
    norms = "Gemma RMSNorm" if generation == 1 else "Gemma-2 RMSNorm (all four per block)"
    peft = "" if generation == 1 else f"""
- `peft-adapter/`: a PEFT LoRA adapter saved by PEFT (r {PEFT_ADAPTER['r']}, alpha {PEFT_ADAPTER['alpha']}, target regex
  `{PEFT_ADAPTER['target_modules']}`, A and B N(0, {PEFT_ADAPTER['init_std']}²) from seed {PEFT_ADAPTER['seed']}); its
  scores through PEFT (one example at a time) in `reference.json` → `peft_adapter`.
"""
    (out / "README.md").write_text(f"""# {name}: random PaliGemma fixture with reference numbers

Generated by `tools/make_fixture.py` (do not edit by hand), from the repository root:

    {command}

with {ver} (pins in `tools/requirements.txt`).

- `config.json`: `PaliGemmaConfig` as transformers {vers['transformers']} writes it (`rope_parameters`,
  `hidden_activation`, `use_bidirectional_attention` …): SigLIP 56 px / patch 14 ({n_img} image tokens),
  hidden 32, MLP 64, 2 layers, 4 heads; projector 32→64; {decoder_description(generation)}, vocab {vocab.tokenizer.get_vocab_size()} rounded up to 64.
- `model.safetensors`: {len(keys)} f32 tensors under the hub's legacy names (`vision_tower.vision_model.…`,
  `multi_modal_projector.linear.…`, `language_model.model.…`, no `lm_head`), written by hand; transformers
  loads it back bit-exactly (checked). Random init: matrices/embeddings N(0, {WEIGHT_STD}²), biases
  N(0, {BIAS_STD}²), LayerNorm weights 1 + N(0, {NORM_STD}²), {norms} weights N(0, {NORM_STD}²).
- `tokenizer.json`: Gemma's structure (Replace " "→"▁", no pre-tokenizer, BPE with byte fallback,
  `<pad>` 0 `<eos>` 1 `<bos>` 2 `<unk>` 3, `<0x00>`..`<0xFF>` at 4..259, `<image>` {vocab.image} added
  last); "yes" {vocab.yes}, "no" {vocab.no} and "\\n" {vocab.newline} are single tokens; the "é" of the
  second prompt goes through byte fallback.
- `images/`: 56×56 RGB (no resize), 80×44 RGB, 60×72 grey, 56×70 RGBA with partial transparency,
  33×29 16-bit RGB, 48×36 palette; `data.jsonl` in the users' format, two prompts of different length.
- `reference_pixels.safetensors`: docs/design.md §5 ("gacha-triangle") by the numpy twin in
  `tools/gacha_ref.py`, one [3, 56, 56] f32 tensor per image path.
- `reference.json`: transformers `PaliGemmaForConditionalGeneration`, float32, eager attention,
  `token_type_ids` given, pixels from the numpy twin, ids built by hand (§6). Per example (one at a
  time): logit_yes/logit_no at the "\\n" position, p_yes, loss (§7, from log_softmax of the full logits;
  equal to HF's label loss within 1e-6). Batch: all examples right-padded (pad 0, attention_mask 0);
  its per-example losses equal the unpadded ones (max diff {pad_diff:.1e}); then one plain-SGD step
  (lr {SGD_LR}) on the language model's q/k/v/o_proj weights: batch loss {before:.6f} → {after:.6f}.
  The f32 numbers agree with a float64 run to {f64_diff:.1e} (the fixture is well conditioned).
{peft}
| image | label | text ids | p_yes | loss |
|---|---|---|---|---|
{table}
""", encoding="utf-8")


if __name__ == "__main__":
    main()
