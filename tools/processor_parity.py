"""gacha's P(yes) on image files against transformers' own processor + model, on a checkpoint
folder whose processor says bicubic (issue 13 part 3).

Writes tests/fixtures/tiny-paligemma-processor/ (do not edit by hand):
- processor_config.json: what transformers 5's `PaliGemmaProcessor.save_pretrained` writes for
  the tiny-paligemma fixture's size (SiglipImageProcessor, resample 3 = bicubic, 56×56);
- images/: seeded PNG (RGB, grey, RGBA with on/off transparency), GIF and JPEG files of 7–300 px,
  already square, upsized and downsized, with data.jsonl listing them;
- reference.json: per image, P(yes) by transformers: `PaliGemmaProcessor(text=prompt,
  images=PIL image, suffix=answer)` (pixel values by the processor itself: PIL's bicubic, then
  rescale and normalise; its input_ids are checked equal to gacha's hand-built ones) into
  `PaliGemmaForConditionalGeneration` (float32, eager attention).

The checkpoint folder is tests/fixtures/tiny-paligemma (config, weights, tokenizer) plus that
processor_config.json. With --gacha, the folder is assembled in a temp dir, scored with
`gacha score`, and the largest |ΔP(yes)| is printed per format (the Rust test
`preprocessing::checkpoint_processor_scores_match_transformers` uses the committed numbers).

    python tools/processor_parity.py [--gacha target/release/gacha]
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
import gacha_ref  # noqa: E402

MODEL = Path("tests/fixtures/tiny-paligemma")
OUT = Path("tests/fixtures/tiny-paligemma-processor")
MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json"]
PROMPTS = ["is there a cat in the picture?", "answer en is the big square red? café"]
# (name, width, height, mode, format): every format at the model's size (56), above and below it.
IMAGES = [
    ("rgb56", 56, 56, "RGB", "png"),
    ("rgb7x5", 7, 5, "RGB", "png"),
    ("rgb20x33", 20, 33, "RGB", "png"),
    ("rgb100x64", 100, 64, "RGB", "png"),
    ("rgb300x17", 300, 17, "RGB", "png"),
    ("grey61x40", 61, 40, "L", "png"),
    ("rgba90x70", 90, 70, "RGBA", "png"),
    ("gif56", 56, 56, "P", "gif"),
    ("gif30x45", 30, 45, "P", "gif"),
    ("gif120x80", 120, 80, "P", "gif"),
    ("jpeg56", 56, 56, "RGB", "jpg"),
    ("jpeg33x20", 33, 20, "RGB", "jpg"),
    ("jpeg160x120", 160, 120, "RGB", "jpg"),
]


def picture(rng: np.random.Generator, w: int, h: int, mode: str) -> Image.Image:
    """Smooth colour, hard edges and noise; RGBA gets a fully transparent disc (alpha 0 or 255,
    so compositing on white is exact on both sides)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 255, y / h * 255, (x + y) % 32 * 8], axis=2)
    edges = ((x // 6 + y // 4) % 2)[..., None] * rng.uniform(0, 150, 3)
    rgb = np.clip(base + edges + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    if mode == "L":
        return im.convert("L")
    if mode == "RGBA":
        alpha = np.where((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 3) ** 2, 0, 255).astype(np.uint8)
        return Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=2), "RGBA")
    if mode == "P":
        return im.quantize(colors=200, dither=Image.Dither.NONE)
    return im


def write_fixture() -> None:
    from transformers import PaliGemmaProcessor, PreTrainedTokenizerFast, SiglipImageProcessorPil

    config = json.loads((MODEL / "config.json").read_text())
    size = config["vision_config"]["image_size"]
    tokens = config["text_config"]["num_image_tokens"]
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(MODEL / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    # The PIL backend: what transformers 5.24 uses where torchvision is not installed.
    image_processor = SiglipImageProcessorPil(size={"height": size, "width": size}, image_seq_length=tokens)
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    if OUT.exists():
        shutil.rmtree(OUT)
    with tempfile.TemporaryDirectory() as tmp:
        processor.save_pretrained(tmp)
        (OUT / "images").mkdir(parents=True)
        shutil.copy(Path(tmp) / "processor_config.json", OUT / "processor_config.json")
    rng = np.random.default_rng(13)
    rows = []
    for i, (name, w, h, mode, fmt) in enumerate(IMAGES):
        path = f"images/{name}.{fmt}"
        im = picture(rng, w, h, mode)
        im.save(OUT / path, **({"quality": 90} if fmt == "jpg" else {}))
        rows.append({"prefix": PROMPTS[i % 2], "suffix": "yes" if i % 3 else "no", "image": path})
    with open(OUT / "data.jsonl", "w") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def processor_for(model_dir: Path, tokens: int):
    """PaliGemmaProcessor with the image processor transformers reads from `model_dir` (its
    processor_config.json) and the fixture's tokenizer."""
    from transformers import AutoImageProcessor, PaliGemmaProcessor, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(model_dir / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    image_processor = AutoImageProcessor.from_pretrained(str(model_dir))
    # save_pretrained does not keep image_seq_length; the hub's files hold it in
    # preprocessor_config.json. It does not touch the pixels.
    image_processor.image_seq_length = tokens
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)


def transformers_scores(model_dir: Path) -> list[dict]:
    config = json.loads((model_dir / "config.json").read_text())
    processor = processor_for(model_dir, config["text_config"]["num_image_tokens"])
    gacha_ref.info(f"image processor: {processor.image_processor}")
    model = gacha_ref.load_model(model_dir)
    vocab = gacha_ref.load_vocab(model_dir / "tokenizer.json", config["image_token_index"])
    tokens = config["text_config"]["num_image_tokens"]
    out = []
    for row in gacha_ref.read_jsonl(OUT / "data.jsonl"):
        image = ImageOps.exif_transpose(Image.open(OUT / row["image"]))
        inputs = processor(text=row["prefix"], images=image, suffix=row["suffix"], return_tensors="pt")
        example = gacha_ref.make_example(vocab, tokens, gacha_ref.text_ids(vocab, row["prefix"], row["suffix"]))
        got_ids = inputs["input_ids"][0].tolist()
        if got_ids != example.input_ids:
            raise ValueError(f"{row['image']}: processor ids {got_ids} != gacha's {example.input_ids}")
        with torch.no_grad():
            batch = gacha_ref.pad_batch([example], vocab.pad)
            logits = gacha_ref.forward(model, inputs["pixel_values"], batch).logits
        score = gacha_ref.example_scores(logits, [example], vocab)[0]
        out.append({"image": row["image"], "p_yes": score.p_yes})
    return out


def assemble(dir: Path) -> None:
    for name in MODEL_FILES:
        shutil.copy(MODEL / name, dir / name)
    shutil.copy(OUT / "processor_config.json", dir / "processor_config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gacha", help="also score with this gacha binary and print the differences")
    args = parser.parse_args()
    write_fixture()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        assemble(model_dir)
        reference = transformers_scores(model_dir)
        (OUT / "reference.json").write_text(
            json.dumps({"versions": gacha_ref.versions(), "examples": reference}, indent=1) + "\n"
        )
        gacha_ref.info(f"wrote {OUT}: {len(reference)} images")
        if not args.gacha:
            return
        scores = Path(tmp) / "scores.csv"
        subprocess.run(
            [args.gacha, "-q", "score", "--model", str(model_dir), "--data", str(OUT / "data.jsonl"),
             "--frames", "first", "--out", str(scores)],
            check=True,
        )
        with open(scores) as f:
            ours = {row["image"]: float(row["p_yes"]) for row in csv.DictReader(f)}
    worst: dict[str, tuple[float, str]] = {}
    for row in reference:
        delta = abs(ours[row["image"]] - row["p_yes"])
        fmt = row["image"].rsplit(".", 1)[1]
        print(f"{row['image']:28} transformers {row['p_yes']:.7f} gacha {ours[row['image']]:.7f} |Δ| {delta:.1e}")
        if delta >= worst.get(fmt, (-1.0, ""))[0]:
            worst[fmt] = (delta, row["image"])
    for fmt, (delta, image) in sorted(worst.items()):
        print(f"max |ΔP(yes)| {fmt}: {delta:.2e} ({image})")


if __name__ == "__main__":
    main()
