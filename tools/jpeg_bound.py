"""How far gacha's JPEG decoding moves P(yes) from PIL's (libjpeg-turbo, what transformers uses),
on the tiny fixture model. Since gacha decodes JPEG as libjpeg-turbo does (issue 31) both are 0;
with zune-jpeg, gacha's decoder before, they were 0.033 and up to 42 levels.

Writes seeded test JPEGs (smooth colour, edges and noise; 1×1 up to 300×200, chroma subsampling
4:4:4, 4:2:2 and 4:2:0, qualities 60 and 95), and beside each the pixels PIL decodes, saved as a
lossless PNG; scores both lists with `gacha score` and prints the largest |ΔP(yes)|. Only the
decoder differs between the two scores: the PNGs hold PIL's JPEG pixels exactly. Then compares
the pixels themselves: gacha's decode (`gacha check --save-inputs`) against PIL's, per channel.

    python tools/jpeg_bound.py [--gacha target/release/gacha] [--model tests/fixtures/tiny-paligemma]
"""

import argparse
import csv
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(1, 1), (3, 5), (4, 4), (17, 9), (56, 56), (64, 48), (120, 90), (300, 200)]


def picture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / max(w, 1) * 255, y / max(h, 1) * 255, (x + y) % 64 * 4], axis=2)
    edges = ((x // 8 + y // 8) % 2)[..., None] * rng.uniform(0, 120, 3)
    noise = rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(base + edges + noise, 0, 255).astype(np.uint8))


def score(gacha: str, model: str, data: Path, out: Path) -> dict[str, float]:
    subprocess.run([gacha, "-q", "score", "--model", model, "--data", str(data), "--out", str(out)], check=True)
    with open(out) as f:
        return {row["image"]: float(row["p_yes"]) for row in csv.DictReader(f)}


def pixel_bound(gacha: str, dir: Path, jpegs: list[str]) -> None:
    """Per channel (R, G, B), over all pixels of all JPEGs: max and mean |gacha − PIL| in levels,
    and the share of pixels where any channel differs."""
    saved = dir / "decoded"
    subprocess.run([gacha, "-q", "check", str(dir / "jpeg.jsonl"), "--save-inputs", str(saved)],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"pixels ({len(jpegs)} JPEGs):")
    compare(dir, saved, jpegs, list(range(1, len(jpegs) + 1)))


def compare(dir: Path, saved: Path, jpegs: list[str], lines: list[int]) -> None:
    deltas, differ, pixels = [], 0, 0
    for line, name in zip(lines, jpegs):
        ours = np.asarray(Image.open(saved / f"{line}-{Path(name).stem}.decoded.png").convert("RGB"), np.int16)
        pil = np.asarray(Image.open(dir / name).convert("RGB"), np.int16)
        assert ours.shape == pil.shape, name
        delta = np.abs(ours - pil).reshape(-1, 3)
        deltas.append(delta)
        differ += int((delta > 0).any(axis=1).sum())
        pixels += delta.shape[0]
    delta = np.concatenate(deltas)
    for channel, values in zip("RGB", delta.T):
        print(f"  {channel}: max |Δ| {values.max()}, mean |Δ| {values.mean():.3f} levels")
    print(f"  differing in any channel: {differ}/{pixels} ({differ / pixels:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gacha", default="target/release/gacha")
    parser.add_argument("--model", default="tests/fixtures/tiny-paligemma")
    args = parser.parse_args()
    rng = np.random.default_rng(14)
    with tempfile.TemporaryDirectory() as tmp:
        dir = Path(tmp)
        jpegs, pngs = [], []
        for w, h in SIZES:
            for subsampling in (0, 1, 2):
                for quality in (60, 95):
                    name = f"{w}x{h}_s{subsampling}_q{quality}"
                    picture(rng, w, h).save(dir / f"{name}.jpg", quality=quality, subsampling=subsampling)
                    Image.open(dir / f"{name}.jpg").convert("RGB").save(dir / f"{name}.png")
                    jpegs.append(f"{name}.jpg")
                    pngs.append(f"{name}.png")
        for listing, names in (("jpeg.jsonl", jpegs), ("pil.jsonl", pngs)):
            with open(dir / listing, "w") as f:
                for name in names:
                    f.write(json.dumps({"prefix": "", "suffix": "yes", "image": name}) + "\n")
        ours = score(args.gacha, args.model, dir / "jpeg.jsonl", dir / "jpeg.csv")
        pil = score(args.gacha, args.model, dir / "pil.jsonl", dir / "pil.csv")
        deltas = sorted(((abs(ours[j] - pil[p]), j) for j, p in zip(jpegs, pngs)), reverse=True)
        print(f"{len(deltas)} JPEGs; max |ΔP(yes)| {deltas[0][0]:.3g} ({deltas[0][1]}), "
              f"median {deltas[len(deltas) // 2][0]:.3g}")
        pixel_bound(args.gacha, dir, jpegs)


if __name__ == "__main__":
    main()
