"""Writes tests/fixtures/orientation/ (do not edit by hand): small images whose EXIF orientation
tag sits where real writers put it, each beside `<name>.upright.png`, Pillow's
`ImageOps.exif_transpose(Image.open(f)).convert("RGB")` (what transformers loads), which
`data::image::tests::orientation_fixtures_turn_as_pillow_does` requires gacha's decode to equal.

Where the tag sits, by writer:
- WebP `EXIF` chunk: Pillow ≥ 9.3 (`im.save(f, exif=...)`) writes the TIFF data alone, as libwebp's
  `cwebp -metadata exif` does (it drops the JPEG's `Exif\\0\\0`); Pillow < 9.3 kept the `Exif\\0\\0`
  header (Pillow's own `Tests/images/hopper_orientation_*.webp`), and Pillow 13's animated writer
  (`save_all=True`, two frames or more) still does. Pillow 13 cannot write the old still form, so
  `webp_prefixed_3` is `webp_6`'s bytes with the header put back and the tag changed.
- PNG: Pillow writes `eXIf`; ImageMagick keeps a JPEG's EXIF as zTXt "Raw profile type exif"
  (hex); Adobe tools write XMP (`tiff:Orientation`) in an iTXt chunk, which PIL reads when the EXIF
  block has no orientation entry.
- TIFF: Pillow writes tag 274 into the image's directory. JPEG: Pillow's APP1.

All lossless except the JPEG. The picture is 7×4 seeded colours, so every turn and flip shows.
Run from the repository root:

    python tools/orientation_fixtures.py
"""

import struct
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageOps, PngImagePlugin

OUT = Path("tests/fixtures/orientation")


def picture() -> Image.Image:
    rng = np.random.default_rng(31)
    return Image.fromarray(rng.integers(0, 256, (4, 7, 3), dtype=np.uint8))


def exif(tag: int) -> Image.Exif:
    block = Image.Exif()
    block[274] = tag
    return block


def xmp(tag: int) -> str:
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{tag}"/>'
            '</rdf:RDF></x:xmpmeta>')


def with_exif_header(webp: bytes, tag: int) -> bytes:
    """`webp` with `Exif\\0\\0` put before its EXIF chunk's TIFF data and the tag set to `tag`."""
    out, at = bytearray(webp[:12]), 12
    while at < len(webp):
        kind, size = webp[at:at + 4], struct.unpack("<I", webp[at + 4:at + 8])[0]
        data = webp[at + 8:at + 8 + size]
        if kind == b"EXIF":
            fixed = Image.Exif()
            fixed.load(data)
            fixed[274] = tag
            data = fixed.tobytes()
            assert data.startswith(b"Exif\x00\x00")
        out += kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
        at += 8 + size + size % 2
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix != ".md":
            old.unlink()
    image = picture()
    image.save(OUT / "webp_6.webp", lossless=True, exif=exif(6))
    (OUT / "webp_prefixed_3.webp").write_bytes(with_exif_header((OUT / "webp_6.webp").read_bytes(), 3))
    second = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image.save(OUT / "webp_animated_prefixed_8.webp", save_all=True, append_images=[second], lossless=True,
               exif=exif(8).tobytes(), duration=100)
    image.save(OUT / "png_6.png", exif=exif(6))
    raw = exif(7).tobytes()  # ImageMagick keeps the "Exif\0\0" header in the hex
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8}\n{raw.hex()}\n", zip=True)
    image.save(OUT / "png_raw_profile_7.png", pnginfo=info)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp(2), zip=True)
    image.save(OUT / "png_xmp_2.png", pnginfo=info)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp(6))
    image.save(OUT / "png_xmp_6_exif_1.png", exif=exif(1), pnginfo=info)
    image.save(OUT / "tiff_5.tif", exif=exif(5))
    image.save(OUT / "jpeg_6.jpg", exif=exif(6), quality=95)
    names = sorted(p.name for p in OUT.iterdir() if p.suffix != ".md")
    for name in names:
        with Image.open(OUT / name) as opened:
            tag = opened.getexif().get(274, 1)
            expected_tag = int(Path(name).stem.rsplit("_", 1)[1])
            assert tag == expected_tag, (name, tag)
            ImageOps.exif_transpose(opened).convert("RGB").save(OUT / f"{Path(name).stem}.upright.png")
    print(f"{len(names)} fixtures; Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
