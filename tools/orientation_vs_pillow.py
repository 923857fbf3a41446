"""gacha's EXIF orientation against Pillow's, file by file (issue 31).

For each image given (files, or folders searched for PNG, WebP, TIFF and JPEG files), Pillow's
`ImageOps.exif_transpose(Image.open(f)).convert("RGB")` (what transformers loads) is compared with
gacha's decode with the orientation applied, read back from `gacha check --save-inputs` (the
decoded image before any resize, as a lossless PNG). Lossy WebP pixels differ a little between
libwebp (Pillow's) and gacha's decoder, so the orientation is judged on its own: of the eight
turns and flips of Pillow's upright image, the one nearest gacha's pixels must be no turn at all.
(Pillow turns a TIFF upright as it loads it, so its stored pixels are not at hand.) Prints one line per file (Pillow's tag, whether the turns agree, the pixel
difference) and a summary.

With `--model`, also scores the files with `gacha score` and prints P(yes) per file and its
spread (max − min) per format: Pillow's `hopper_orientation_2..8` all show the same upright
picture, so their scores should agree, within the compression difference between the WebP and
JPEG versions.

    python tools/orientation_vs_pillow.py [--gacha target/release/gacha] [--model DIR] PATH...

E.g. on Pillow's test images: `fetch` github:python-pillow/Pillow, then
`git -C <mirror> archive HEAD Tests/images | tar -x -C /tmp/pillow` and
`python tools/orientation_vs_pillow.py --model tests/fixtures/tiny-paligemma
/tmp/pillow/Tests/images/hopper_orientation_*`.
"""

import argparse
import csv
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageOps

from jpeg_vs_pillow import files_with

SUFFIXES = {".png", ".apng", ".webp", ".tif", ".tiff", ".jpg", ".jpeg"}

# The transposes of Pillow's exif_transpose, by tag.
T = Image.Transpose
TURNS = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
         6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}


def pillow(path: Path) -> tuple[int, np.ndarray]:
    """Pillow's orientation tag and its upright RGB pixels."""
    with Image.open(path) as image:
        tag = image.getexif().get(274, 1)
        return tag, np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def gacha_rgb(gacha: str, path: Path, tmp: Path) -> np.ndarray:
    """gacha's decode of `path`, oriented, or a RuntimeError with what gacha said."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    shutil.copyfile(path, tmp / path.name)
    (tmp / "data.jsonl").write_text(json.dumps({"prefix": "", "suffix": "yes", "image": path.name}) + "\n")
    out = subprocess.run(
        [gacha, "-q", "check", str(tmp / "data.jsonl"), "--lenient", "--save-inputs", str(tmp / "saved")],
        capture_output=True, text=True)
    saved = tmp / "saved" / f"1-{path.stem}.decoded.png"
    if out.returncode != 0 or not saved.exists():
        lines = [line for line in out.stderr.splitlines() if f"{path.name}: " in line]
        said = lines[-1].split(f"{path.name}: ", 1)[1] if lines else out.stderr.strip() or f"exit {out.returncode}"
        raise RuntimeError(said)
    with Image.open(saved) as image:
        return np.asarray(image.convert("RGB"))


def nearest_turn(upright: np.ndarray, got: np.ndarray) -> int:
    """The tag whose turn of `upright` is nearest `got` (mean absolute difference; 1 on a tie)."""
    def distance(tag: int) -> float:
        method = TURNS[tag]
        turned = upright if method is None else np.asarray(Image.fromarray(upright).transpose(method))
        if turned.shape != got.shape:
            return float("inf")
        return float(np.abs(turned.astype(np.int16) - got.astype(np.int16)).mean())
    return min(TURNS, key=distance)


def compare(gacha: str, files: list[Path], tmp: Path) -> None:
    counts = {"equal": 0, "turned alike, pixels differ": 0, "turned differently": 0, "refused": 0}
    for path in files:
        try:
            tag, want = pillow(path)
            got = gacha_rgb(gacha, path, tmp)
        except (RuntimeError, OSError, SyntaxError, ValueError) as err:
            counts["refused"] += 1
            print(f"{path.name}: refused ({type(err).__name__}: {err})")
            continue
        if got.shape == want.shape and not np.any(got != want):
            counts["equal"] += 1
            print(f"{path.name}: tag {tag}, equal ({want.shape[1]}x{want.shape[0]})")
            continue
        turned = nearest_turn(want, got)
        if turned != 1:
            counts["turned differently"] += 1
            print(f"{path.name}: Pillow's tag {tag}; gacha's pixels are Pillow's turned as tag {turned}")
            continue
        counts["turned alike, pixels differ"] += 1
        delta = np.abs(got.astype(np.int16) - want.astype(np.int16))
        print(f"{path.name}: tag {tag}, turned alike; pixels differ by max |Δ| {delta.max()}, "
              f"mean |Δ| {delta.mean():.3f} levels")
    print(", ".join(f"{kind}: {n}" for kind, n in counts.items()))


def scores(gacha: str, model: str, files: list[Path], tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    lines = []
    for path in files:
        shutil.copyfile(path, tmp / path.name)
        # Pillow's upright pixels, losslessly: what transformers would score.
        Image.fromarray(pillow(path)[1]).save(tmp / f"{path.name}.pillow.png")
        for name in (path.name, f"{path.name}.pillow.png"):
            lines.append(json.dumps({"prefix": "is it upright?", "suffix": "yes", "image": name}))
    (tmp / "data.jsonl").write_text("\n".join(lines) + "\n")
    for orientation in ("apply", "ignore"):
        out = tmp / f"scores-{orientation}.csv"
        subprocess.run([gacha, "-q", "score", "--model", model, "--data", str(tmp / "data.jsonl"),
                        "--exif-orientation", orientation, "--out", str(out)], check=True)
        with out.open() as f:
            rows = {Path(row["image"]).name: float(row["p_yes"]) for row in csv.DictReader(f)}
        by_format: dict[str, list[float]] = {}
        for path in files:
            by_format.setdefault(path.suffix.lower(), []).append(rows[path.name])
        print(f"EXIF orientation {orientation}: " + "; ".join(
            f"{suffix} P(yes) {min(ps):.4f}..{max(ps):.4f} (spread {max(ps) - min(ps):.4f}, {len(ps)} files)"
            for suffix, ps in sorted(by_format.items())))
        if orientation == "apply":
            gap = max(abs(rows[p.name] - rows[f"{p.name}.pillow.png"]) for p in files)
            print(f"  max |P(yes) of the file - P(yes) of Pillow's upright pixels as PNG|: {gap:.2e}")
            for path in files:
                print(f"  {path.name}: P(yes) {rows[path.name]:.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gacha", default="target/release/gacha")
    parser.add_argument("--model", help="also score the files with this model (gacha score --model)")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    print(f"Pillow {PIL.__version__}")
    files = files_with(SUFFIXES, args.paths)
    with tempfile.TemporaryDirectory() as tmp:
        compare(args.gacha, files, Path(tmp) / "work")
        if args.model:
            scores(args.gacha, args.model, files, Path(tmp) / "scores")


if __name__ == "__main__":
    main()
