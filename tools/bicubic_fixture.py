"""Reference outputs of PIL's bicubic resize for gacha's bit-for-bit test of its port
(src/data/image/bicubic.rs, test `matches_pil_bicubic_on_the_fixture`).

Each case is an 8-bit RGB image made from a formula both sides compute (no input files), resized
with `Image.resize((w, h), Image.BICUBIC)`, as the SigLIP image processor of transformers does;
the outputs are written as PNG (lossless) into tests/fixtures/bicubic/, with cases.json listing
them and the Pillow version.

    python tools/bicubic_fixture.py [--out tests/fixtures/bicubic]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

# (input width, height) → (output width, height): upsizing, downsizing, both at once, integer and
# odd factors, 1-pixel inputs, the identity, and two at PaliGemma's 224.
CASES = [
    ((7, 5), (16, 16)),
    ((20, 33), (16, 16)),
    ((100, 64), (16, 16)),
    ((300, 17), (16, 16)),
    ((64, 64), (16, 16)),
    ((16, 16), (16, 16)),
    ((1, 1), (16, 16)),
    ((2, 3), (5, 7)),
    ((33, 20), (7, 9)),
    ((17, 300), (31, 13)),
    ((57, 56), (56, 56)),
    ((100, 64), (224, 224)),
    ((640, 480), (224, 224)),
]


def pattern(width: int, height: int) -> np.ndarray:
    """[H, W, 3] uint8: a hash of (x, y, c) (noise, the hardest case for rounding) over a gradient
    with hard edges (where the cubic kernel's negative lobes overshoot and clamp). Twin of
    `pattern` in the Rust test."""
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    x, y, c = x.astype(np.uint64), y.astype(np.uint64), c.astype(np.uint64)
    mixed = ((x * 7919 + y * 104729 + c * 31337) * 2654435761) % (1 << 32)
    noise = (mixed >> 24).astype(np.int64)
    edges = np.where(((x // 5 + y // 3 + c) % 2) == 0, 0, 255).astype(np.int64)
    return ((noise + edges) // 2).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="tests/fixtures/bicubic")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    listing = []
    for (w, h), (ow, oh) in CASES:
        name = f"{w}x{h}_to_{ow}x{oh}.png"
        resized = Image.fromarray(pattern(w, h), "RGB").resize((ow, oh), Image.BICUBIC)
        resized.save(out / name)
        listing.append({"in": [w, h], "out": [ow, oh], "file": name})
    with open(out / "cases.json", "w") as f:
        json.dump({"pillow": PIL.__version__, "cases": listing}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(listing)} cases to {out} (Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
