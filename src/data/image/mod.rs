//! Image decoding (PNG and APNG, JPEG, GIF, WebP still and animated, BMP, TIFF) and the
//! preprocessing: by default the "gacha-triangle" recipe shared with the Python reference (the
//! project's docs/design.md §5), output CHW f32 in [-1, 1], S×S:
//!
//! 1. RGBA on a 0..255 scale in f32: 8-bit v → v, 16-bit v → v/257; grey → R=G=B; no alpha → 255.
//!    JPEG (CMYK too) arrives as RGB from the decoder. The EXIF orientation tag is applied first
//!    (`ExifOrientation::Apply`, the default), as transformers does.
//! 2. Alpha over white: c' = c·(a/255) + 255·(1 − a/255).
//! 3. Resize to S×S ignoring aspect ratio, by `Preprocessing::resize`. Bilinear ("gacha-triangle"),
//!    horizontal pass then vertical. Per axis, n inputs to m outputs: scale = n/m,
//!    support = max(scale, 1); output i has center (i + 0.5)·scale and takes inputs j in
//!    [max(0, ⌊center − support⌋), min(n, ⌈center + support⌉)) with weight
//!    max(0, 1 − |(j + 0.5 − center)/support|); out_i = Σ w_j·in_j / Σ w_j. No rounding.
//!    Bicubic: the samples rounded to 8 bits, then PIL's bicubic (`bicubic`).
//! 4. `Normalize::apply`: x·rescale_factor, then (· − mean)/std per channel; big_vision's recipe
//!    (1/255, 0.5, 0.5) is x/127.5 − 1.
//!
//! The format comes from the file's first bytes, never its extension (a mismatch is warned about).
//! Sizes are checked from the header before any pixel buffer is allocated: see `MAX_PIXELS`,
//! `MAX_ANIMATION_PIXELS`, `MAX_FRAMES` and `MAX_FILE_BYTES`. Animation frames are composited as
//! browsers show them (see `decode`), counted from 1 in messages.

mod bicubic;
mod damage;
mod decode;
mod format;
mod gif;
mod jpeg;
mod orient;
mod png_meta;
mod preprocess;

use std::path::Path;

use image::DynamicImage;

pub use format::ImageFormatKind;
pub use preprocess::preprocess_rgba;

use super::error::DataError;
use super::{ImageOptions, Pixels, Preprocessing};
use crate::fsutil::input::{read_regular, InputError};

/// Largest image (or animation canvas, or GIF frame) accepted, in pixels: 50 megapixels, e.g.
/// 8660×5773.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Largest total over all frames of an animation, in pixels (frames × canvas).
pub const MAX_ANIMATION_PIXELS: u64 = 500_000_000;
/// Most frames accepted in one animation (each kept frame is one training example).
pub const MAX_FRAMES: usize = 1000;
/// Largest image file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// One decoded image file.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub format: ImageFormatKind,
    /// Size of the file's image (an animation's canvas), before resizing and after the EXIF
    /// orientation is applied.
    pub width: u32,
    pub height: u32,
    /// Frames in the file (1 for a still image).
    pub frame_count: usize,
    /// The frames the frame policy keeps, preprocessed, in file order.
    pub frames: Vec<Pixels>,
    /// The first of `frames` before steps 2–4 (alpha over white, resize, normalisation): the
    /// decoder's samples, EXIF orientation applied (an animation's frame composited, RGBA 8-bit).
    /// Only with `ImageOptions::keep_input`.
    pub input: Option<DynamicImage>,
    /// The file's EXIF orientation tag, 1 (upright) when it has none; applied to `frames` unless
    /// `ExifOrientation::Ignore`.
    pub exif_orientation: u8,
    /// What a strict JPEG decoder refused in a file the lenient one decoded (training decodes
    /// such files); looked for only under `CodingCheck::Strict`.
    pub coding_error: Option<String>,
}

/// Read, decode and preprocess one image file (`images.resize` is not looked at: `prep` is the
/// resolved preprocessing, `Preprocessing::with_resize` of the model's).
pub fn load_image(
    path: &Path,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let bytes = read_image_file(path)?;
    decode_image(path, &bytes, images, prep)
}

/// Decode an image already in memory; `path` is only used in messages.
pub fn decode_image(
    path: &Path,
    bytes: &[u8],
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let format = ImageFormatKind::sniff(bytes).ok_or_else(|| DataError::NotAnImage {
        path: path.to_path_buf(),
        what: format::describe_unknown(bytes),
    })?;
    if let Some(claimed) = ImageFormatKind::from_extension(path).filter(|&claimed| claimed != format) {
        crate::logging::warn!(
            "{}: content is {format}, not {claimed} as the extension says; reading it as {format}",
            path.display()
        );
    }
    decode::decode(path, bytes, format, images, prep)
}

/// The whole file, after refusing what is not a regular file (a folder, a device, a named pipe),
/// files over `MAX_FILE_BYTES` and empty files (`fsutil::input`: nothing else is read).
fn read_image_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let path_buf = || path.to_path_buf();
    let bytes = read_regular(path, MAX_FILE_BYTES).map_err(|err| match err {
        InputError::Missing => DataError::ImageMissing { path: path_buf() },
        InputError::Folder => DataError::ImageIsFolder { path: path_buf() },
        InputError::NotRegular { kind } => DataError::ImageNotRegular { path: path_buf(), kind },
        InputError::TooLarge { bytes, cap } => DataError::ImageTooLarge {
            path: path_buf(),
            what: format!("a file of {bytes} bytes"),
            cap: format!("{cap} bytes"),
        },
        InputError::Unreadable(source) => DataError::ImageRead { path: path_buf(), source },
    })?;
    if bytes.is_empty() {
        return Err(DataError::ImageEmpty { path: path_buf() });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use image::codecs::gif::GifEncoder;
    use image::{DynamicImage, Frame, ImageBuffer, ImageFormat, Luma, LumaA, Rgba, RgbaImage};

    use super::preprocess::tests::{close, norm};
    use super::*;
    use crate::data::{CodingCheck, ExifOrientation, FramePolicy};

    fn opts(frames: FramePolicy) -> ImageOptions {
        ImageOptions { frames, ..Default::default() }
    }

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    /// A 4×2 GIF whose frames are solid red, green and blue.
    fn rgb_gif() -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut bytes);
            for color in [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]] {
                encoder.encode_frame(Frame::new(RgbaImage::from_pixel(4, 2, Rgba(color)))).unwrap();
            }
        }
        bytes
    }

    #[test]
    fn png_sixteen_bit_grey_and_grey_alpha() {
        // 16-bit 13107 = 51·257 → 51; 65535 → 255.
        let grey16 =
            ImageBuffer::from_raw(2, 1, vec![13107u16, 65535]).map(DynamicImage::ImageLuma16).unwrap();
        let decoded = decode_image(
            &PathBuf::from("a.png"),
            &encode(grey16, ImageFormat::Png),
            opts(FramePolicy::All),
            &Preprocessing::big_vision(2),
        )
        .unwrap();
        assert_eq!(
            (decoded.format, decoded.width, decoded.height, decoded.frame_count),
            (ImageFormatKind::Png, 2, 1, 1)
        );
        // Height 1 → 2 duplicates the row.
        close(&decoded.frames[0].chw, &norm(&[51.0, 255.0, 51.0, 255.0]).repeat(3));

        // Grey 0 with alpha 128: 255·(1 − 128/255) = 127 on white.
        let grey_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(1, 1, LumaA([0u8, 128])));
        let decoded = decode_image(
            &PathBuf::from("b.png"),
            &encode(grey_alpha, ImageFormat::Png),
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap();
        close(&decoded.frames[0].chw, &norm(&[127.0, 127.0, 127.0]));

        let grey8 = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([204u8])));
        let decoded = decode_image(
            &PathBuf::from("c.png"),
            &encode(grey8, ImageFormat::Png),
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap();
        close(&decoded.frames[0].chw, &norm(&[204.0, 204.0, 204.0]));
    }

    #[test]
    fn jpeg_decodes_to_rgb() {
        // A flat colour survives JPEG up to a few levels.
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 16, image::Rgb([200u8, 100, 50])));
        let decoded = decode_image(
            &PathBuf::from("a.jpg"),
            &encode(image, ImageFormat::Jpeg),
            opts(FramePolicy::All),
            &Preprocessing::big_vision(4),
        )
        .unwrap();
        assert_eq!(decoded.format, ImageFormatKind::Jpeg);
        for (c, want) in [200.0, 100.0, 50.0].into_iter().enumerate() {
            for &v in &decoded.frames[0].chw[c * 16..(c + 1) * 16] {
                assert!(((v + 1.0) * 127.5 - want).abs() < 3.0, "channel {c}: {v}");
            }
        }
    }

    #[test]
    fn cmyk_jpeg_decodes_like_pillow() {
        // tests/fixtures/images/cmyk.jpg (made with Pillow, see the README there) stores
        // CMYK (16x, 16y, 64, 32). Pillow 13.0.0 `convert("RGB")` gives these pixels (and agrees
        // with us on all 256 within 4e-6, checked once by dumping both).
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/cmyk.jpg");
        let decoded = load_image(&path, opts(FramePolicy::All), &Preprocessing::big_vision(16)).unwrap();
        assert_eq!((decoded.format, decoded.width, decoded.height), (ImageFormatKind::Jpeg, 16, 16));
        let chw = &decoded.frames[0].chw;
        let pixel = |x: usize, y: usize| -> Vec<f32> { (0..3).map(|c| chw[c * 256 + y * 16 + x]).collect() };
        let pillow = [
            ((0, 0), [223.0, 223.0, 167.0]),
            ((15, 0), [13.0, 223.0, 167.0]),
            ((0, 15), [223.0, 13.0, 167.0]),
            ((15, 15), [13.0, 13.0, 167.0]),
            ((8, 8), [111.0, 111.0, 167.0]),
        ];
        for ((x, y), rgb) in pillow {
            close(&pixel(x, y), &norm(&rgb));
        }
    }

    #[test]
    fn gif_frame_policy_picks_frames() {
        let bytes = rgb_gif();
        let red = [1.0, 1.0, -1.0, -1.0, -1.0, -1.0];
        let green = [-1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
        let blue = [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0];
        let load = |policy| {
            decode_image(&PathBuf::from("a.gif"), &bytes, policy, &Preprocessing::big_vision(1)).unwrap()
        };
        let all = load(opts(FramePolicy::All));
        assert_eq!((all.format, all.width, all.height, all.frame_count), (ImageFormatKind::Gif, 4, 2, 3));
        let chw: Vec<Vec<f32>> = all.frames.iter().map(|f| f.chw.clone()).collect();
        close(&chw.concat(), &[red, green, blue].concat().chunks(2).map(|c| c[0]).collect::<Vec<_>>());
        close(&load(opts(FramePolicy::First)).frames[0].chw, &[1.0, -1.0, -1.0]);
        close(&load(opts(FramePolicy::Middle)).frames[0].chw, &[-1.0, 1.0, -1.0]);
        close(&load(opts(FramePolicy::Last)).frames[0].chw, &[-1.0, -1.0, 1.0]);
        assert_eq!(load(opts(FramePolicy::Last)).frame_count, 3);
    }

    #[test]
    fn truncated_gif_names_the_frame() {
        // The last 12 bytes are the trailer and the end of frame 3's image data.
        let bytes = rgb_gif();
        let err = decode_image(
            &PathBuf::from("img/3.gif"),
            &bytes[..bytes.len() - 12],
            opts(FramePolicy::First),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "img/3.gif: frame 3: truncated (the file ends early) \
                 (the frame declares 4×2 pixels at (0, 0); the file has {} bytes)",
                bytes.len() - 12
            )
        );
    }

    #[test]
    fn truncated_png_is_an_error() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(8, 8, image::Rgb([1u8, 2, 3])));
        let bytes = encode(image, ImageFormat::Png);
        let err = decode_image(
            &PathBuf::from("t.png"),
            &bytes[..bytes.len() / 2],
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("t.png: "), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn missing_end_markers_mean_truncated() {
        // Both decoders accept a file cut just before its end marker; we must not.
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let image = DynamicImage::ImageRgb8(ImageBuffer::from_fn(32, 32, |x, y| {
                image::Rgb([x as u8, y as u8, 7])
            }));
            let bytes = encode(image, format);
            assert!(decode_image(
                &PathBuf::from("whole"),
                &bytes,
                opts(FramePolicy::All),
                &Preprocessing::big_vision(1)
            )
            .is_ok());
            let mut padded = bytes.clone();
            padded.extend_from_slice(b"trailing junk");
            assert!(
                decode_image(
                    &PathBuf::from("padded"),
                    &padded,
                    opts(FramePolicy::All),
                    &Preprocessing::big_vision(1)
                )
                .is_ok(),
                "{format:?}"
            );
            for cut in [1, 2, 4, bytes.len() / 2] {
                let err = decode_image(
                    &PathBuf::from("t"),
                    &bytes[..bytes.len() - cut],
                    opts(FramePolicy::All),
                    &Preprocessing::big_vision(1),
                )
                .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "t: truncated (the file ends early)",
                    "{format:?} minus {cut} bytes"
                );
            }
        }
    }

    #[test]
    fn unknown_content_is_named() {
        let err = decode_image(
            &PathBuf::from("x.png"),
            b"hello world",
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.png: not a PNG, JPEG, GIF, WebP, BMP or TIFF image \
             (unrecognised content starting with bytes 68 65 6c 6c 6f 20 77 6f)"
        );
        let err = decode_image(
            &PathBuf::from("x.qoi"),
            b"qoif\0\0\0\x01\0\0\0\x01\x03\0",
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("looks like Qoi"), "{err}");
    }

    #[test]
    fn gif_bomb_is_refused_from_the_header() {
        // Header and logical screen descriptor only: 65535×65535, no colour table, then the trailer.
        let mut bytes = b"GIF89a".to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
        // One image descriptor covering the canvas, LZW minimum code size 2, no data, trailer.
        bytes.extend_from_slice(&[0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x02, 0x00, 0x3b]);
        let err = decode_image(
            &PathBuf::from("bomb.gif"),
            &bytes,
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::ImageTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("65535×65535 = 4294836225 pixels"), "{err}");
    }

    /// An EXIF block (little-endian TIFF) holding only the orientation tag.
    fn exif_orientation_block(tag: u16) -> Vec<u8> {
        let mut exif = b"II*\0\x08\0\0\0\x01\0".to_vec();
        // Tag 0x0112, type SHORT, count 1, value, padding; then no next IFD.
        exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
        exif.extend_from_slice(&tag.to_le_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        exif
    }

    fn encode_with_exif(image: &DynamicImage, format: ImageFormat, tag: u16) -> Vec<u8> {
        use image::codecs::{jpeg::JpegEncoder, png::PngEncoder, webp::WebPEncoder};
        use image::ImageEncoder;
        let mut bytes = Vec::new();
        let (w, h, color) = (image.width(), image.height(), image.color().into());
        let exif = exif_orientation_block(tag);
        match format {
            ImageFormat::Png => {
                let mut encoder = PngEncoder::new(&mut bytes);
                encoder.set_exif_metadata(exif).unwrap();
                encoder.write_image(image.as_bytes(), w, h, color).unwrap();
            }
            ImageFormat::Jpeg => {
                let mut encoder = JpegEncoder::new_with_quality(&mut bytes, 95);
                encoder.set_exif_metadata(exif).unwrap();
                encoder.write_image(image.as_bytes(), w, h, color).unwrap();
            }
            _ => {
                let mut encoder = WebPEncoder::new_lossless(&mut bytes);
                encoder.set_exif_metadata(exif).unwrap();
                encoder.write_image(image.as_bytes(), w, h, color).unwrap();
            }
        }
        bytes
    }

    /// The stored pixels of `upright` under EXIF orientation `tag`, from the EXIF 2.3 table
    /// (which visual side row 0 and column 0 of the stored image are), written out per tag.
    fn stored_under(upright: &image::RgbImage, tag: u16) -> image::RgbImage {
        let (w, h) = upright.dimensions();
        let u = |x: u32, y: u32| *upright.get_pixel(x, y);
        match tag {
            1 => ImageBuffer::from_fn(w, h, u),
            2 => ImageBuffer::from_fn(w, h, |x, y| u(w - 1 - x, y)),
            3 => ImageBuffer::from_fn(w, h, |x, y| u(w - 1 - x, h - 1 - y)),
            4 => ImageBuffer::from_fn(w, h, |x, y| u(x, h - 1 - y)),
            5 => ImageBuffer::from_fn(h, w, |x, y| u(y, x)),
            6 => ImageBuffer::from_fn(h, w, |x, y| u(w - 1 - y, x)),
            7 => ImageBuffer::from_fn(h, w, |x, y| u(w - 1 - y, h - 1 - x)),
            _ => ImageBuffer::from_fn(h, w, |x, y| u(y, h - 1 - x)),
        }
    }

    /// A 3×2 picture with six different colours, so every turn and flip shows.
    fn picture() -> image::RgbImage {
        ImageBuffer::from_fn(3, 2, |x, y| {
            image::Rgb([x as u8 * 100, y as u8 * 200, 50 + (x + 3 * y) as u8 * 30])
        })
    }

    #[test]
    fn exif_orientations_1_to_8_give_the_upright_pixels() {
        let upright = decode_image(
            &PathBuf::from("up.png"),
            &encode(DynamicImage::ImageRgb8(picture()), ImageFormat::Png),
            ImageOptions::default(),
            &Preprocessing::big_vision(4),
        )
        .unwrap();
        for tag in 1..=8u16 {
            let stored = DynamicImage::ImageRgb8(stored_under(&picture(), tag));
            let bytes = encode_with_exif(&stored, ImageFormat::Png, tag);
            let decoded = decode_image(
                &PathBuf::from("t.png"),
                &bytes,
                ImageOptions::default(),
                &Preprocessing::big_vision(4),
            )
            .unwrap();
            assert_eq!(
                (decoded.width, decoded.height, decoded.exif_orientation),
                (3, 2, tag as u8),
                "tag {tag}"
            );
            assert_eq!(decoded.frames, upright.frames, "tag {tag}");
            let ignored = ImageOptions { orientation: ExifOrientation::Ignore, ..Default::default() };
            let as_stored =
                decode_image(&PathBuf::from("t.png"), &bytes, ignored, &Preprocessing::big_vision(4))
                    .unwrap();
            assert_eq!(as_stored.frames == upright.frames, tag == 1, "tag {tag} ignored");
        }
        // WebP (lossless) and JPEG carry the tag too; JPEG within its coding error.
        let stored = DynamicImage::ImageRgb8(stored_under(&picture(), 6));
        let webp = encode_with_exif(&stored, ImageFormat::WebP, 6);
        let decoded = decode_image(
            &PathBuf::from("t.webp"),
            &webp,
            ImageOptions::default(),
            &Preprocessing::big_vision(4),
        )
        .unwrap();
        assert_eq!((decoded.format, decoded.frames.clone()), (ImageFormatKind::WebP, upright.frames.clone()));
        let big =
            |p: &image::RgbImage| image::imageops::resize(p, 48, 32, image::imageops::FilterType::Nearest);
        let jpeg = encode_with_exif(
            &DynamicImage::ImageRgb8(stored_under(&big(&picture()), 6)),
            ImageFormat::Jpeg,
            6,
        );
        let decoded = decode_image(
            &PathBuf::from("t.jpg"),
            &jpeg,
            ImageOptions::default(),
            &Preprocessing::big_vision(3),
        )
        .unwrap();
        let want = decode_image(
            &PathBuf::from("up.png"),
            &encode(DynamicImage::ImageRgb8(big(&picture())), ImageFormat::Png),
            ImageOptions::default(),
            &Preprocessing::big_vision(3),
        )
        .unwrap();
        assert_eq!((decoded.width, decoded.height), (48, 32));
        for (g, w) in decoded.frames[0].chw.iter().zip(&want.frames[0].chw) {
            assert!((g - w).abs() * 127.5 < 8.0, "JPEG {g} vs {w}");
        }
    }

    /// Raw chunk data of the first chunk named `kind` in a RIFF (WebP) or PNG byte stream.
    fn riff_chunk(bytes: &[u8], kind: &[u8; 4]) -> Vec<u8> {
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            if &bytes[at..at + 4] == kind {
                return bytes[at..at + 8 + len + len % 2].to_vec();
            }
            at += 8 + len + len % 2;
        }
        panic!("no {kind:?} chunk");
    }

    fn le24(v: u32) -> [u8; 3] {
        [v as u8, (v >> 8) as u8, (v >> 16) as u8]
    }

    fn riff(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
        chunk.extend_from_slice(data);
        if data.len() % 2 == 1 {
            chunk.push(0);
        }
        chunk
    }

    /// Two frames as browsers draw them on a 4×4 canvas: frame 1 white all over, frame 2 a 2×2
    /// red patch at (2, 2) drawn over it (no disposal), as `(x, y, w, h, picture)`.
    fn two_frame_patches() -> [(u32, u32, RgbaImage); 2] {
        [
            (0, 0, RgbaImage::from_pixel(4, 4, Rgba([255; 4]))),
            (2, 2, RgbaImage::from_pixel(2, 2, Rgba([255, 0, 0, 255]))),
        ]
    }

    /// An animated WebP built by hand (VP8X, ANIM, one ANMF per frame around a lossless VP8L
    /// bitstream from `image`'s encoder), per Google's WebP container specification.
    fn animated_webp() -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        let mut vp8x = vec![0x12, 0, 0, 0];
        vp8x.extend_from_slice(&le24(3));
        vp8x.extend_from_slice(&le24(3));
        body.extend(riff(b"VP8X", &vp8x));
        body.extend(riff(b"ANIM", &[0, 0, 0, 0, 0, 0]));
        for (x, y, image) in two_frame_patches() {
            let still = encode(DynamicImage::ImageRgba8(image.clone()), ImageFormat::WebP);
            let mut anmf =
                [le24(x / 2), le24(y / 2), le24(image.width() - 1), le24(image.height() - 1), le24(100)]
                    .concat();
            anmf.push(0x02); // no blending (the frames are opaque), no disposal
            anmf.extend(riff_chunk(&still, b"VP8L"));
            body.extend(riff(b"ANMF", &anmf));
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    /// The same two frames as an APNG: acTL, then fcTL + IDAT and fcTL + fdAT, the image data
    /// taken from `image`'s PNG encoder (same colour type), per the APNG specification.
    fn animated_png() -> Vec<u8> {
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut typed = kind.to_vec();
            typed.extend_from_slice(data);
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(&typed);
            c.extend_from_slice(&crc32fast::hash(&typed).to_be_bytes());
            c
        };
        let idat = |png: &[u8]| {
            let mut at = 8;
            loop {
                let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
                if &png[at + 4..at + 8] == b"IDAT" {
                    return png[at + 8..at + 8 + len].to_vec();
                }
                at += 12 + len;
            }
        };
        let frames = two_frame_patches();
        let first = encode(DynamicImage::ImageRgba8(frames[0].2.clone()), ImageFormat::Png);
        let mut file = first[..33].to_vec(); // signature and IHDR (4×4 RGBA8)
        file.extend(chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0]));
        let mut sequence = 0u32;
        for (index, (x, y, image)) in frames.iter().enumerate() {
            let mut fctl = sequence.to_be_bytes().to_vec();
            for v in [image.width(), image.height(), *x, *y] {
                fctl.extend_from_slice(&v.to_be_bytes());
            }
            fctl.extend_from_slice(&[0, 1, 0, 10, 0, 0]); // delay 1/10 s, dispose none, blend source
            file.extend(chunk(b"fcTL", &fctl));
            sequence += 1;
            let data = idat(&encode(DynamicImage::ImageRgba8(image.clone()), ImageFormat::Png));
            if index == 0 {
                file.extend(chunk(b"IDAT", &data));
            } else {
                let mut fdat = sequence.to_be_bytes().to_vec();
                fdat.extend(data);
                file.extend(chunk(b"fdAT", &fdat));
                sequence += 1;
            }
        }
        file.extend(chunk(b"IEND", &[]));
        file
    }

    #[test]
    fn animated_webp_and_png_frames_are_composited_and_picked() {
        // At 4×4 (no resize): frame 1 all white; frame 2 white with the red patch at x, y ≥ 2.
        let white = vec![1.0f32; 48];
        let mut patched = white.clone();
        for (c, level) in [(1usize, -1.0f32), (2, -1.0)] {
            for y in 2..4 {
                for x in 2..4 {
                    patched[c * 16 + y * 4 + x] = level;
                }
            }
        }
        for (name, bytes, format) in [
            ("a.webp", animated_webp(), ImageFormatKind::WebP),
            ("a.png", animated_png(), ImageFormatKind::Png),
        ] {
            let load = |frames| {
                decode_image(&PathBuf::from(name), &bytes, opts(frames), &Preprocessing::big_vision(4))
                    .unwrap()
            };
            let all = load(FramePolicy::All);
            assert_eq!((all.format, all.width, all.height, all.frame_count), (format, 4, 4, 2), "{name}");
            close(&all.frames[0].chw, &white);
            close(&all.frames[1].chw, &patched);
            let first = load(FramePolicy::First);
            assert_eq!(first.frames.len(), 1);
            close(&first.frames[0].chw, &white);
            close(&load(FramePolicy::Last).frames[0].chw, &patched);
        }
    }

    #[test]
    fn gif_without_colour_table_reads_as_grey_like_pil() {
        // Pillow 13 opens this file in mode L with pixels [0, 1] (checked once).
        let mut bytes = b"GIF89a".to_vec();
        bytes.extend_from_slice(&[2, 0, 1, 0, 0x00, 0, 0, 0x2c, 0, 0, 0, 0, 2, 0, 1, 0, 0x00]);
        bytes.extend_from_slice(&[2, 2, 0x44, 0x0a, 0, 0x3b]);
        let decoded = decode_image(
            &PathBuf::from("g.gif"),
            &bytes,
            opts(FramePolicy::All),
            &Preprocessing::big_vision(2),
        )
        .unwrap();
        let row = norm(&[0.0, 1.0, 0.0, 1.0]);
        close(&decoded.frames[0].chw, &row.repeat(3));
    }

    #[test]
    fn huge_gif_frame_in_a_tiny_file_is_refused_with_its_size() {
        // A 1×1 canvas whose one frame declares 65535×65535: 30 bytes in all.
        let mut bytes = b"GIF89a".to_vec();
        bytes.extend_from_slice(&[
            1, 0, 1, 0, 0x00, 0, 0, 0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 2, 0, 0x3b,
        ]);
        let err = decode_image(
            &PathBuf::from("h.gif"),
            &bytes,
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "h.gif: frame 1 of 65535×65535 = 4294836225 pixels exceeds the cap of 50000000 pixels \
             (decompression-bomb guard)"
        );
    }

    #[test]
    fn damaged_png_chunks_are_named_without_debug_dumps() {
        let png = encode(DynamicImage::ImageRgb8(picture()), ImageFormat::Png);
        // The chunk after IHDR starts at byte 33; garble its type, then (separately) its data.
        let mut bad_type = png.clone();
        bad_type[37..41].copy_from_slice(&[0xf4, 0xa8, 0x81, 0xe1]);
        let err = decode_image(
            &PathBuf::from("b.png"),
            &bad_type,
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.png: damaged PNG: chunk 2 at byte 33 has type bytes f4 a8 81 e1, not a chunk name"
        );
        let mut bad_crc = png.clone();
        bad_crc[42] ^= 0x55;
        let err = decode_image(
            &PathBuf::from("c.png"),
            &bad_crc,
            opts(FramePolicy::All),
            &Preprocessing::big_vision(1),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("c.png: damaged PNG: chunk 2 ("), "{err}");
        assert!(err.to_string().ends_with(") at byte 33 fails its checksum"), "{err}");
    }

    #[test]
    fn webp_bmp_and_tiff_decode() {
        for format in [ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff] {
            let bytes = encode(DynamicImage::ImageRgb8(picture()), format);
            let want = decode_image(
                &PathBuf::from("p.png"),
                &encode(DynamicImage::ImageRgb8(picture()), ImageFormat::Png),
                ImageOptions::default(),
                &Preprocessing::big_vision(3),
            )
            .unwrap();
            let got = decode_image(
                &PathBuf::from("p"),
                &bytes,
                ImageOptions::default(),
                &Preprocessing::big_vision(3),
            )
            .unwrap();
            assert_eq!(got.frames, want.frames, "{format:?}");
        }
    }

    #[test]
    fn strict_check_finds_a_jpeg_scan_that_ends_early() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 48, |x, y| {
            image::Rgb([x as u8 * 4, y as u8 * 5, 90])
        }));
        let bytes = encode(image, ImageFormat::Jpeg);
        let strict = ImageOptions { coding: CodingCheck::Strict, ..Default::default() };
        assert_eq!(
            decode_image(&PathBuf::from("ok.jpg"), &bytes, strict, &Preprocessing::big_vision(1))
                .unwrap()
                .coding_error,
            None
        );
        // Cut the scan in half and end the file there: the lenient decoder fills the rest in.
        let sos = bytes.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let mut cut = bytes[..sos + (bytes.len() - sos) / 2].to_vec();
        cut.extend_from_slice(&[0xff, 0xd9]);
        let lenient = decode_image(
            &PathBuf::from("cut.jpg"),
            &cut,
            ImageOptions::default(),
            &Preprocessing::big_vision(1),
        )
        .unwrap();
        assert_eq!(lenient.coding_error, None);
        let error = decode_image(&PathBuf::from("cut.jpg"), &cut, strict, &Preprocessing::big_vision(1))
            .unwrap()
            .coding_error
            .unwrap();
        assert!(error.starts_with("scan 1: premature end of data in MCU "), "{error}");
    }
}
