"""Reference helpers shared by the gacha Python tools (fixture maker, PEFT scorer, benchmark).

Implements the numerical contract of docs/design.md with numpy + transformers so that the Rust
side can be checked against it: §5 image preprocessing ("gacha-triangle", a numpy twin of the Rust
code), §6 token ids built by hand, §7 scores and loss computed from the full logits. Python is a
tool here, never a dependency of gacha itself.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# §5 image preprocessing
# --------------------------------------------------------------------------------------------


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24]


def _decode_png16(path: Path) -> np.ndarray:
    """RGBA f32 on a 0..255 scale from a 16-bit PNG, keeping all 16 bits (v / 257, no rounding)."""
    # pypng: Pillow truncates 16-bit colour PNGs to 8 bits, pypng keeps every bit. Imported here so
    # that tools which only benchmark (bench_reference.py on a GPU machine) need no pypng.
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    raw = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
    assert info["bitdepth"] == 16, f"{path}: expected 16-bit samples, got {info['bitdepth']}"
    return _to_rgba(raw.astype(np.float32) / np.float32(257.0), info["greyscale"], info["alpha"])


def _to_rgba(x: np.ndarray, grey: bool, alpha: bool) -> np.ndarray:
    """[H, W, C] samples (grey, grey+alpha, RGB or RGBA) → [H, W, 4] with a = 255 when absent."""
    h, w = x.shape[:2]
    colour = np.repeat(x[:, :, :1], 3, axis=2) if grey else x[:, :, :3]
    a = x[:, :, -1:] if alpha else np.full((h, w, 1), 255.0, dtype=np.float32)
    return np.concatenate([colour, a], axis=2).astype(np.float32)


def decode_rgba(path: str | Path) -> np.ndarray:
    """Decode an image to RGBA f32 [H, W, 4] on a 0..255 scale (docs/design.md §5 step 1)."""
    path = Path(path)
    if _png_bit_depth(path) == 16:
        return _decode_png16(path)
    im = Image.open(path)
    im.load()
    mode = im.mode
    if mode in ("1", "L", "RGB") and "transparency" in im.info:
        # A PNG tRNS colour key on a grey or RGB image: the matching pixels are transparent.
        # Pillow keeps the key in info; converting applies it (palette keys are handled below).
        return decode_rgba_keyed(im)
    if mode in ("I;16", "I;16B", "I;16L"):
        # 16-bit greyscale from a non-PNG container: values 0..65535.
        return _to_rgba(np.asarray(im, dtype=np.float32)[:, :, None] / np.float32(257.0), True, False)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "RGBX"):
        im = im.convert("RGB")
    mode = im.mode
    x = np.asarray(im, dtype=np.float32)
    if mode == "L":
        return _to_rgba(x[:, :, None], True, False)
    if mode == "LA":
        return _to_rgba(x, True, True)
    if mode == "RGB":
        return _to_rgba(x, False, False)
    if mode == "RGBA":
        return _to_rgba(x, False, True)
    raise ValueError(f"{path}: unsupported image mode {mode}")


def decode_rgba_keyed(im: Image.Image) -> np.ndarray:
    """RGBA f32 from a grey or RGB image with a transparency key (PNG tRNS)."""
    return _to_rgba(np.asarray(im.convert("RGBA"), dtype=np.float32), False, True)


def composite_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha over a white background in f32: c·(a/255) + 255·(1 − a/255) (§5 step 2)."""
    a = rgba[:, :, 3:4] / np.float32(255.0)
    return (rgba[:, :, :3] * a + np.float32(255.0) * (np.float32(1.0) - a)).astype(np.float32)


def triangle_weights(n: int, m: int) -> np.ndarray:
    """[m, n] f32 matrix of the antialiased triangle filter from length n to m, rows summing to 1 (§5 step 3)."""
    scale = np.float32(n) / np.float32(m)
    support = max(scale, np.float32(1.0))
    w = np.zeros((m, n), dtype=np.float32)
    for i in range(m):
        center = (np.float32(i) + np.float32(0.5)) * scale
        left = max(0, math.floor(center - support))
        right = min(n, math.ceil(center + support))
        j = np.arange(left, right, dtype=np.float32)
        wj = np.maximum(np.float32(0.0), np.float32(1.0) - np.abs((j + np.float32(0.5) - center) / support))
        w[i, left:right] = wj / wj.sum(dtype=np.float32)
    return w


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] → [size, size, 3], horizontal pass first, then vertical, all in f32."""
    h, w, _ = rgb.shape
    horiz = np.einsum("ow,hwc->hoc", triangle_weights(w, size), rgb).astype(np.float32)
    return np.einsum("oh,hwc->owc", triangle_weights(h, size), horiz).astype(np.float32)


def preprocess(path: str | Path, size: int) -> np.ndarray:
    """The whole "gacha-triangle" pipeline: CHW f32 [3, size, size] in [-1, 1]."""
    rgb = resize(composite_white(decode_rgba(path)), size)
    return (rgb / np.float32(127.5) - np.float32(1.0)).transpose(2, 0, 1).astype(np.float32).copy()


# --------------------------------------------------------------------------------------------
# §6 token ids
# --------------------------------------------------------------------------------------------


@dataclass
class Vocab:
    """The tokenizer and the special ids the model needs."""

    tokenizer: Tokenizer
    pad: int
    eos: int
    bos: int
    newline: int
    image: int
    yes: int
    no: int

    def answer_id(self, answer: str) -> int:
        return {"yes": self.yes, "no": self.no}[answer]

    def ids_json(self) -> dict:
        return {k: getattr(self, k) for k in ("pad", "eos", "bos", "newline", "yes", "no", "image")}


def single_token(tok: Tokenizer, text: str) -> int:
    """The id of `text`, which must encode (without specials) to exactly one token."""
    ids = tok.encode(text, add_special_tokens=False).ids
    if len(ids) != 1:
        raise ValueError(f"{text!r} encodes to {len(ids)} tokens {ids}, expected exactly one")
    return ids[0]


def load_vocab(tokenizer_path: str | Path, image_token_id: int) -> Vocab:
    tok = Tokenizer.from_file(str(tokenizer_path))
    fixed = {"<pad>": 0, "<eos>": 1, "<bos>": 2}
    for token, want in fixed.items():
        got = tok.token_to_id(token)
        if got != want:
            raise ValueError(f"{tokenizer_path}: {token} has id {got}, expected {want}")
    if tok.token_to_id("<image>") != image_token_id:
        raise ValueError(f"{tokenizer_path}: <image> id {tok.token_to_id('<image>')} != config {image_token_id}")
    return Vocab(tok, 0, 1, 2, single_token(tok, "\n"), image_token_id, single_token(tok, "yes"),
                 single_token(tok, "no"))


def text_ids(vocab: Vocab, prompt: str, answer: str) -> list[int]:
    """<bos> prompt… "\\n" answer <eos>, built by hand (never via the post-processor)."""
    prompt_ids = vocab.tokenizer.encode(prompt, add_special_tokens=False).ids
    return [vocab.bos, *prompt_ids, vocab.newline, vocab.answer_id(answer), vocab.eos]


@dataclass
class Example:
    """One example's model inputs (unpadded) and where its scores live."""

    input_ids: list[int]
    token_type_ids: list[int]
    labels: list[int]
    newline_pos: int
    answer: int


def make_example(vocab: Vocab, num_image_tokens: int, ids: list[int]) -> Example:
    """Image tokens + text ids; prefix (image, bos, prompt, "\\n") has token type 0, answer+eos 1."""
    input_ids = [vocab.image] * num_image_tokens + ids
    n_prefix = len(input_ids) - 2
    token_type_ids = [0] * n_prefix + [1, 1]
    labels = [-100] * n_prefix + input_ids[n_prefix:]
    return Example(input_ids, token_type_ids, labels, n_prefix - 1, input_ids[n_prefix])


def pad_batch(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: pad id, attention_mask 0, token type 0, label -100."""
    t = max(len(e.input_ids) for e in examples)

    def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([r + [fill] * (t - len(r)) for r in rows], dtype=torch.long)

    return {
        "input_ids": padded([e.input_ids for e in examples], pad_id),
        "attention_mask": padded([[1] * len(e.input_ids) for e in examples], 0),
        "token_type_ids": padded([e.token_type_ids for e in examples], 0),
        "labels": padded([e.labels for e in examples], -100),
    }


# --------------------------------------------------------------------------------------------
# §7 scores and loss
# --------------------------------------------------------------------------------------------


@dataclass
class Score:
    logit_yes: float
    logit_no: float
    p_yes: float
    loss: float


def example_losses(logits: torch.Tensor, examples: list[Example], eos: int) -> torch.Tensor:
    """[B] per-example loss: mean full-vocab cross-entropy of answer (at "\\n") and eos (at answer)."""
    losses = []
    for b, e in enumerate(examples):
        rows = logits[b, e.newline_pos : e.newline_pos + 2]
        logp = torch.log_softmax(rows if rows.dtype == torch.float64 else rows.float(), dim=-1)
        losses.append(-(logp[0, e.answer] + logp[1, eos]) / 2)
    return torch.stack(losses)


def example_scores(logits: torch.Tensor, examples: list[Example], vocab: Vocab) -> list[Score]:
    """Per-example yes/no logits at the "\\n" position, p_yes (sigmoid of their difference) and loss."""
    losses = example_losses(logits, examples, vocab.eos)
    out = []
    for b, e in enumerate(examples):
        ly = float(logits[b, e.newline_pos, vocab.yes])
        ln = float(logits[b, e.newline_pos, vocab.no])
        out.append(Score(ly, ln, 1.0 / (1.0 + math.exp(-(ly - ln))), float(losses[b])))
    return out


def forward(model, pixels: torch.Tensor, batch: dict[str, torch.Tensor]):
    """HF forward with the prefix-LM mask (token_type_ids always given) and HF's own label loss."""
    dev = pixels.device
    return model(
        input_ids=batch["input_ids"].to(dev),
        pixel_values=pixels,
        attention_mask=batch["attention_mask"].to(dev),
        token_type_ids=batch["token_type_ids"].to(dev),
        labels=batch["labels"].to(dev),
        use_cache=False,
    )


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict]:
    """Users' data format: one {"prefix", "suffix", "image"} object per line; image relative to the file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: invalid JSON: {err}") from err
            for key in ("suffix", "image"):
                if not isinstance(row.get(key), str):
                    raise ValueError(f"{path}:{n}: field {key!r} missing or not a string")
            if row["suffix"] not in ("yes", "no"):
                raise ValueError(f"{path}:{n}: suffix {row['suffix']!r} is neither 'yes' nor 'no'")
            rows.append(row)
    return rows


def load_model(model_dir: str | Path, dtype: torch.dtype = torch.float32):
    """PaliGemmaForConditionalGeneration with eager attention; fails on missing/unexpected tensors."""
    from transformers import PaliGemmaForConditionalGeneration

    model, info = PaliGemmaForConditionalGeneration.from_pretrained(
        str(model_dir), dtype=dtype, attn_implementation="eager", output_loading_info=True
    )
    missing = [k for k in info["missing_keys"] if k != "lm_head.weight"]
    bad = missing + list(info["unexpected_keys"]) + list(info.get("mismatched_keys", []))
    if bad:
        raise ValueError(f"{model_dir}: checkpoint does not match the model: {bad[:10]}")
    return model.eval()


def info(msg: str) -> None:
    """Progress and diagnostics go to stderr; stdout is for results."""
    print(msg, file=sys.stderr, flush=True)


def versions() -> dict:
    import platform

    try:
        import png

        pypng = png.__version__
    except ImportError:
        pypng = "not installed"
    import peft
    import PIL
    import safetensors
    import tokenizers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pypng": pypng,
    }
