"""gacha's JPEG pixels against Pillow's, file by file (issue 31).

For each JPEG given (files, or folders searched for *.jpg, *.jpeg, *.jfif, *.mpo), Pillow's
`Image.open(f).convert("RGB")` (what transformers loads) is compared with gacha's decode, read
back from `gacha check --save-inputs` (the decoded image before any resize, as a lossless PNG;
EXIF orientation ignored on both sides, since Pillow's `open` does not apply it). Prints one line
per file (equal, or how many pixels differ and by how much, or which side refused the file) and a
summary.

    python tools/jpeg_vs_pillow.py [--gacha target/release/gacha] PATH...

E.g. on Pillow's test images: `fetch` github:python-pillow/Pillow, then
`git -C <mirror> archive HEAD Tests/images | tar -x -C /tmp/pillow` and
`python tools/jpeg_vs_pillow.py /tmp/pillow/Tests/images`.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

SUFFIXES = {".jpg", ".jpeg", ".jfif", ".mpo"}


def files_with(suffixes: set[str], paths: list[str]) -> list[Path]:
    """The files given, and those under the folders given whose suffix is one of `suffixes`."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
        else:
            found.append(path)
    return found


def pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def gacha_rgb(gacha: str, path: Path, tmp: Path) -> np.ndarray:
    """gacha's decode of `path`, or a RuntimeError with what gacha said."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # The copy keeps gacha from warning about extensions such as .mpo.
    shutil.copyfile(path, tmp / "image.jpg")
    (tmp / "data.jsonl").write_text(json.dumps({"prefix": "", "suffix": "yes", "image": "image.jpg"}) + "\n")
    out = subprocess.run(
        [gacha, "-q", "check", str(tmp / "data.jsonl"), "--lenient", "--exif-orientation", "ignore",
         "--save-inputs", str(tmp / "saved")],
        capture_output=True, text=True)
    saved = tmp / "saved" / "1-image.decoded.png"
    if out.returncode != 0 or not saved.exists():
        lines = [line for line in out.stderr.splitlines() if "image.jpg: " in line]
        said = lines[-1].split("image.jpg: ", 1)[1] if lines else out.stderr.strip() or f"exit {out.returncode}"
        raise RuntimeError(said)
    with Image.open(saved) as image:
        return np.asarray(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gacha", default="target/release/gacha")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    print(f"Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}")
    counts = {"equal": 0, "differ": 0, "Pillow refuses": 0, "gacha refuses": 0, "both refuse": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for path in files_with(SUFFIXES, args.paths):
            try:
                want = pillow_rgb(path)
            except Exception as err:  # noqa: BLE001 (any Pillow failure is reported)
                want = f"{type(err).__name__}: {err}"
            try:
                got = gacha_rgb(args.gacha, path, Path(tmp) / "work")
            except RuntimeError as err:
                got = str(err)
            if isinstance(want, str) or isinstance(got, str):
                kind = ("both refuse" if isinstance(want, str) and isinstance(got, str)
                        else "Pillow refuses" if isinstance(want, str) else "gacha refuses")
                counts[kind] += 1
                said = [f"Pillow: {want}" if isinstance(want, str) else "",
                        f"gacha: {got}" if isinstance(got, str) else ""]
                print(f"{path.name}: {kind} ({'; '.join(s for s in said if s)})")
                continue
            if got.shape != want.shape:
                counts["differ"] += 1
                print(f"{path.name}: size {got.shape[1]}x{got.shape[0]}, Pillow {want.shape[1]}x{want.shape[0]}")
                continue
            delta = np.abs(got.astype(np.int16) - want.astype(np.int16))
            if not delta.any():
                counts["equal"] += 1
                print(f"{path.name}: equal ({want.shape[1]}x{want.shape[0]})")
                continue
            counts["differ"] += 1
            differing = int(delta.any(axis=2).sum())
            print(f"{path.name}: {differing} of {delta.shape[0] * delta.shape[1]} pixels differ, "
                  f"max |Δ| {delta.max()}, mean |Δ| {delta.mean():.4f} levels")
    print(", ".join(f"{kind}: {n}" for kind, n in counts.items()))


if __name__ == "__main__":
    main()
