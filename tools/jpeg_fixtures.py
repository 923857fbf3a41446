"""Writes tests/fixtures/jpeg/ (do not edit by hand): small JPEGs covering what the decoder must
get exactly right, each beside `<name>.png`, Pillow's `Image.open(<name>.jpg).convert("RGB")`
(lossless), which `jpeg::tests::fixtures_decode_as_pillow_does` requires equal.

Pillow writes the common kinds (baseline and progressive; 4:4:4, 4:2:2, 4:2:0; grey; CMYK),
libjpeg-turbo's `cjpeg` the rest (4:4:0, 4:1:1, 3:1 and mixed sampling; RGB; restart markers).
Two files are damaged on purpose, from seeded byte edits: the expected pixels are what Pillow
(libjpeg-turbo's x86-64 SIMD build) makes of them. Sizes are odd and small; the pictures are
seeded gradients, edges and noise. Run from the repository root (`cjpeg` from Debian's
libjpeg-turbo-progs):

    python tools/jpeg_fixtures.py
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

OUT = Path("tests/fixtures/jpeg")


def picture(seed: int, w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 255, y / h * 255, (x + 2 * y) % 37 * 7], axis=2)
    edges = ((x // 5 + y // 3) % 2)[..., None] * rng.uniform(-90, 90, 3)
    noise = rng.normal(0, 18, (h, w, 3))
    return Image.fromarray(np.clip(base + edges + noise, 0, 255).astype(np.uint8))


def pillow(name: str, w: int, h: int, mode: str = "RGB", **options) -> None:
    image = picture(len(name), w, h)
    image = image.convert(mode) if mode != "RGB" else image
    image.save(OUT / f"{name}.jpg", **options)


def cjpeg(name: str, w: int, h: int, *args: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.ppm"
        picture(len(name), w, h).save(source)
        subprocess.run(["cjpeg", *args, "-outfile", str(OUT / f"{name}.jpg"), str(source)], check=True)


def scan_data(data: bytes) -> tuple[int, int]:
    """Start and end of the first scan's entropy-coded data."""
    start = data.index(b"\xff\xda")
    start += 2 + int.from_bytes(data[start + 2:start + 4], "big")
    end = start
    while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
        end += 1
    return start, end


def damaged(name: str, source: str, seed: int, garbage: int, renumber_restart: bool) -> None:
    """`source` with `garbage` random non-0xff bytes written over the middle of its first scan and,
    if asked, its third restart marker renumbered out of order."""
    data = bytearray((OUT / f"{source}.jpg").read_bytes())
    start, end = scan_data(data)
    rng = np.random.default_rng(seed)
    at = (start + end) // 2
    for i in range(min(garbage, end - at - 2)):
        if data[at + i] != 0xFF and (i == 0 or data[at + i - 1] != 0xFF):
            data[at + i] = int(rng.integers(0, 0xFF))
    if renumber_restart:
        markers = [i for i in range(start, end) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
        data[markers[2] + 1] = 0xD0 + (data[markers[2] + 1] - 0xD0 + 3) % 8
    (OUT / f"{name}.jpg").write_bytes(bytes(data))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.jpg"):
        old.unlink()
    pillow("s444_17x11", 17, 11, quality=90, subsampling=0)
    pillow("s422_23x9", 23, 9, quality=75, subsampling=1)
    pillow("s420_31x19", 31, 19, quality=75, subsampling=2)
    pillow("s420_1x1", 1, 1, quality=75, subsampling=2)
    pillow("s420_2x3", 2, 3, quality=75, subsampling=2)
    pillow("s422_4x5", 4, 5, quality=75, subsampling=1)
    pillow("s420_prog_33x21", 33, 21, quality=80, subsampling=2, progressive=True)
    pillow("s444_prog_20x14", 20, 14, quality=95, subsampling=0, progressive=True)
    pillow("grey_13x7", 13, 7, mode="L", quality=85)
    pillow("grey_prog_19x23", 19, 23, mode="L", quality=85, progressive=True)
    pillow("cmyk_15x9", 15, 9, mode="CMYK", quality=90)
    # The same file with its Adobe segment's transform flag set to 2: its components read as YCCK.
    data = bytearray((OUT / "cmyk_15x9.jpg").read_bytes())
    adobe = data.index(b"Adobe")
    data[adobe + 11] = 2
    (OUT / "ycck_15x9.jpg").write_bytes(bytes(data))
    cjpeg("s440_21x17", 21, 17, "-sample", "1x2,1x1,1x1", "-quality", "80")
    cjpeg("s411_26x9", 26, 9, "-sample", "4x1,1x1,1x1", "-quality", "80")
    cjpeg("s31_25x10", 25, 10, "-sample", "3x1,1x1,1x1", "-quality", "80")
    cjpeg("mixed_prog_27x19", 27, 19, "-sample", "2x2,1x1,2x1", "-progressive", "-quality", "85")
    cjpeg("rgb_12x10", 12, 10, "-rgb", "-quality", "90")
    cjpeg("restart_53x37", 53, 37, "-restart", "1B", "-quality", "85")
    damaged("restart_damaged_53x37", "restart_53x37", seed=5, garbage=40, renumber_restart=True)
    # Low quality (large quantizers), so that garbage gives values that overflow 16 bits.
    pillow("q10_32x24", 32, 24, quality=10, subsampling=2)
    damaged("damaged_q10_32x24", "q10_32x24", seed=3, garbage=60, renumber_restart=False)
    names = sorted(p.stem for p in OUT.glob("*.jpg"))
    for name in names:
        Image.open(OUT / f"{name}.jpg").convert("RGB").save(OUT / f"{name}.png")
    print(f"{len(names)} fixtures; Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}")


if __name__ == "__main__":
    main()
