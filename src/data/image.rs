//! Image decoding (PNG, JPEG, GIF with every frame) and the "gacha-triangle" preprocessing shared
//! with the Python reference (the project's CONVENTIONS.md §1), output CHW f32 in [-1, 1], S×S:
//!
//! 1. RGBA on a 0..255 scale in f32: 8-bit v → v, 16-bit v → v/257; grey → R=G=B; no alpha → 255.
//!    JPEG (CMYK too) arrives as RGB from the decoder.
//! 2. Alpha over white: c' = c·(a/255) + 255·(1 − a/255).
//! 3. Resize to S×S ignoring aspect ratio, horizontal pass then vertical. Per axis, n inputs to m
//!    outputs: scale = n/m, support = max(scale, 1); output i has center (i + 0.5)·scale and takes
//!    inputs j in [max(0, ⌊center − support⌋), min(n, ⌈center + support⌉)) with weight
//!    max(0, 1 − |(j + 0.5 − center)/support|); out_i = Σ w_j·in_j / Σ w_j. No rounding.
//! 4. x/127.5 − 1.
//!
//! The format comes from the file's first bytes, never its extension (a mismatch is warned about).
//! Sizes are checked from the header before any pixel buffer is allocated: see `MAX_PIXELS`,
//! `MAX_GIF_PIXELS`, `MAX_GIF_FRAMES` and `MAX_FILE_BYTES`. GIF frames are composited by the
//! `image` crate (disposal methods applied), counted from 1 in messages.

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use image::codecs::gif::GifDecoder;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::error::DataError;
use super::{GifFrames, Pixels};

/// Largest image (or GIF canvas) accepted, in pixels: 50 megapixels, e.g. 8660×5773.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Largest total over all frames of a GIF, in pixels (frames × canvas).
pub const MAX_GIF_PIXELS: u64 = 500_000_000;
/// Most frames accepted in one GIF (each kept frame is one training example).
pub const MAX_GIF_FRAMES: usize = 1000;
/// Largest image file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The image formats gacha reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageFormatKind {
    Png,
    Jpeg,
    Gif,
}

impl ImageFormatKind {
    /// Recognise a format from a file's first bytes (its magic number).
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormatKind> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormatKind::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageFormatKind::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageFormatKind::Gif)
        } else {
            None
        }
    }

    /// The format a file name's extension claims, if it names one of ours.
    fn from_extension(path: &Path) -> Option<ImageFormatKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(ImageFormatKind::Png),
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(ImageFormatKind::Jpeg),
            "gif" => Some(ImageFormatKind::Gif),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            ImageFormatKind::Png => ImageFormat::Png,
            ImageFormatKind::Jpeg => ImageFormat::Jpeg,
            ImageFormatKind::Gif => ImageFormat::Gif,
        }
    }
}

impl fmt::Display for ImageFormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormatKind::Png => "PNG",
            ImageFormatKind::Jpeg => "JPEG",
            ImageFormatKind::Gif => "GIF",
        })
    }
}

/// One decoded image file.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub format: ImageFormatKind,
    /// Size of the file's image (a GIF's canvas), before resizing.
    pub width: u32,
    pub height: u32,
    /// Frames in the file (1 for PNG and JPEG).
    pub frame_count: usize,
    /// The frames the `GifFrames` policy keeps, preprocessed, in file order.
    pub frames: Vec<Pixels>,
}

/// Read, decode and preprocess one image file to `size`×`size`; every frame of a GIF is decoded
/// (so a broken frame is found whatever the policy), then `policy` picks the frames kept.
pub fn load_image(path: &Path, policy: GifFrames, size: usize) -> Result<DecodedImage, DataError> {
    let bytes = read_image_file(path)?;
    decode_image(path, &bytes, policy, size)
}

/// Decode an image already in memory; `path` is only used in messages.
pub fn decode_image(
    path: &Path,
    bytes: &[u8],
    policy: GifFrames,
    size: usize,
) -> Result<DecodedImage, DataError> {
    let format = ImageFormatKind::sniff(bytes)
        .ok_or_else(|| DataError::NotAnImage { path: path.to_path_buf(), what: describe_unknown(bytes) })?;
    if let Some(claimed) = ImageFormatKind::from_extension(path).filter(|&claimed| claimed != format) {
        crate::warn!(
            "{}: content is {format}, not {claimed} as the extension says; reading it as {format}",
            path.display()
        );
    }
    match format {
        ImageFormatKind::Gif => decode_gif(path, bytes, policy, size),
        ImageFormatKind::Png | ImageFormatKind::Jpeg => decode_still(path, bytes, format, size),
    }
}

/// Preprocess one RGBA frame (0..255 scale, interleaved, `width`×`height`): steps 2–4 above.
pub fn preprocess_rgba(width: usize, height: usize, rgba: &[f32], size: usize) -> Pixels {
    assert_eq!(rgba.len(), width * height * 4, "preprocess_rgba: buffer is not width×height RGBA");
    // Alpha over white, into three planes.
    let mut planes = vec![0f32; 3 * width * height];
    for (p, px) in rgba.chunks_exact(4).enumerate() {
        let t = px[3] / 255.0;
        for c in 0..3 {
            planes[c * width * height + p] = px[c] * t + 255.0 * (1.0 - t);
        }
    }
    let horizontal = axis_weights(width, size);
    let vertical = axis_weights(height, size);
    let mut chw = Vec::with_capacity(3 * size * size);
    let mut rows = vec![0f32; height * size];
    for plane in planes.chunks_exact(width * height) {
        for (y, row) in plane.chunks_exact(width).enumerate() {
            for (x, taps) in horizontal.iter().enumerate() {
                rows[y * size + x] = taps.apply(|j| row[j]);
            }
        }
        for taps in &vertical {
            for x in 0..size {
                chw.push(taps.apply(|j| rows[j * size + x]) / 127.5 - 1.0);
            }
        }
    }
    Pixels { size, chw }
}

/// The inputs `left..left + weights.len()` that make one output of a triangle resize.
struct Taps {
    left: usize,
    weights: Vec<f32>,
}

impl Taps {
    /// Σ w_j·in_j / Σ w_j, summed in input order.
    fn apply(&self, input: impl Fn(usize) -> f32) -> f32 {
        let (mut sum, mut norm) = (0f32, 0f32);
        for (k, &w) in self.weights.iter().enumerate() {
            sum += w * input(self.left + k);
            norm += w;
        }
        sum / norm
    }
}

/// Triangle-filter taps for resizing one axis from `n` to `m` samples (step 3 above).
fn axis_weights(n: usize, m: usize) -> Vec<Taps> {
    let scale = n as f32 / m as f32;
    let support = scale.max(1.0);
    (0..m)
        .map(|i| {
            let center = (i as f32 + 0.5) * scale;
            let left = (center - support).floor().max(0.0) as usize;
            let right = ((center + support).ceil() as usize).min(n);
            let weights =
                (left..right).map(|j| (1.0 - ((j as f32 + 0.5 - center) / support).abs()).max(0.0)).collect();
            Taps { left, weights }
        })
        .collect()
}

/// The whole file, after refusing folders, empty files and files over `MAX_FILE_BYTES`.
fn read_image_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let read_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::ImageMissing { path: path.to_path_buf() },
        _ => DataError::ImageRead { path: path.to_path_buf(), source },
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.is_dir() {
        return Err(DataError::ImageIsFolder { path: path.to_path_buf() });
    }
    if meta.len() == 0 {
        return Err(DataError::ImageEmpty { path: path.to_path_buf() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            what: format!("a file of {} bytes", meta.len()),
            cap: format!("{MAX_FILE_BYTES} bytes"),
        });
    }
    std::fs::read(path).map_err(read_error)
}

/// Say what a file that is none of our formats looks like.
fn describe_unknown(bytes: &[u8]) -> String {
    match image::guess_format(bytes) {
        Ok(format) => format!("it looks like {format:?}; convert it to PNG"),
        Err(_) => {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("unrecognised content starting with bytes {}", head.join(" "))
        }
    }
}

/// Limits handed to the decoders, on top of our own header checks: enough for `MAX_PIXELS` in
/// 16-bit RGBA (8 bytes a pixel), nothing more.
fn decoder_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    limits
}

fn check_pixels(path: &Path, width: u32, height: u32) -> Result<(), DataError> {
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            what: format!("{width}×{height} = {} pixels", u64::from(width) * u64::from(height)),
            cap: format!("{MAX_PIXELS} pixels"),
        });
    }
    Ok(())
}

fn decode_error(path: &Path, frame: Option<usize>, err: ImageError) -> DataError {
    let message = match err {
        ImageError::Limits(limit) => {
            format!("{limit} (decoder cap of {} bytes, decompression-bomb guard)", MAX_PIXELS * 8)
        }
        err if is_truncation(&err) => TRUNCATED.to_string(),
        err => err.to_string(),
    };
    DataError::ImageDecode { path: path.to_path_buf(), frame, message }
}

const TRUNCATED: &str = "truncated (the file ends early)";

/// The decoders report a short file as an `UnexpectedEof` I/O error (PNG), or only in words (GIF:
/// "Unexpected End of File"; JPEG: "Not enough bytes").
fn is_truncation(err: &ImageError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        source = e.source();
    }
    let text = err.to_string().to_ascii_lowercase();
    text.contains("end of file") || text.contains("not enough bytes")
}

/// Refuse a PNG or JPEG whose end marker is missing: both decoders accept a file cut after its
/// last pixel data and fill in silently. Bytes after the marker are allowed.
fn check_complete(path: &Path, bytes: &[u8], format: ImageFormatKind) -> Result<(), DataError> {
    let complete = match format {
        // The IEND chunk: zero length, type, and its fixed CRC.
        ImageFormatKind::Png => find_last(bytes, b"\0\0\0\0IEND\xaeB`\x82").is_some(),
        // End-of-image after the last start-of-scan (an EXIF thumbnail has its own pair earlier;
        // neither marker can occur inside entropy-coded data, where 0xff is stuffed as ff 00).
        ImageFormatKind::Jpeg => {
            let eoi = find_last(bytes, &[0xff, 0xd9]);
            let sos = find_last(bytes, &[0xff, 0xda]);
            matches!((eoi, sos), (Some(e), Some(s)) if e > s)
        }
        // The GIF decoder itself reports a missing trailer.
        ImageFormatKind::Gif => true,
    };
    if complete {
        Ok(())
    } else {
        Err(DataError::ImageDecode { path: path.to_path_buf(), frame: None, message: TRUNCATED.to_string() })
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn decode_still(
    path: &Path,
    bytes: &[u8],
    format: ImageFormatKind,
    size: usize,
) -> Result<DecodedImage, DataError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(decoder_limits());
    let decoder = reader.into_decoder().map_err(|e| decode_error(path, None, e))?;
    let (width, height) = decoder.dimensions();
    check_pixels(path, width, height)?;
    check_complete(path, bytes, format)?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, None, e))?;
    let rgba = rgba_samples(&image).ok_or_else(|| DataError::ImageDecode {
        path: path.to_path_buf(),
        frame: None,
        message: format!("unsupported pixel layout {:?}", image.color()),
    })?;
    let pixels = preprocess_rgba(width as usize, height as usize, &rgba, size);
    Ok(DecodedImage { format, width, height, frame_count: 1, frames: vec![pixels] })
}

fn decode_gif(path: &Path, bytes: &[u8], policy: GifFrames, size: usize) -> Result<DecodedImage, DataError> {
    let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(|e| decode_error(path, None, e))?;
    let (width, height) = decoder.dimensions();
    check_pixels(path, width, height)?;
    decoder.set_limits(decoder_limits()).map_err(|e| decode_error(path, None, e))?;
    let canvas = u64::from(width) * u64::from(height);
    let mut frames = Vec::new();
    for (index, frame) in decoder.into_frames().enumerate() {
        let number = index + 1;
        if number > MAX_GIF_FRAMES || number as u64 * canvas > MAX_GIF_PIXELS {
            return Err(DataError::ImageTooLarge {
                path: path.to_path_buf(),
                what: format!("an animation of more than {} frames of {width}×{height}", number - 1),
                cap: format!("{MAX_GIF_FRAMES} frames or {MAX_GIF_PIXELS} pixels over all frames"),
            });
        }
        let frame = frame.map_err(|e| decode_error(path, Some(number), e))?;
        let rgba: Vec<f32> = frame.into_buffer().into_raw().into_iter().map(f32::from).collect();
        frames.push(preprocess_rgba(width as usize, height as usize, &rgba, size));
    }
    let frame_count = frames.len();
    if frame_count == 0 {
        return Err(DataError::ImageDecode {
            path: path.to_path_buf(),
            frame: None,
            message: "no frames".into(),
        });
    }
    let frames = match policy {
        GifFrames::All => frames,
        GifFrames::First => vec![frames.swap_remove(0)],
        GifFrames::Last => vec![frames.pop().expect("frame_count > 0")],
        GifFrames::Middle => vec![frames.swap_remove(frame_count / 2)],
    };
    Ok(DecodedImage { format: ImageFormatKind::Gif, width, height, frame_count, frames })
}

/// RGBA on a 0..255 scale: 8-bit v → v, 16-bit v → v/257; grey replicated; missing alpha = 255.
fn rgba_samples(image: &DynamicImage) -> Option<Vec<f32>> {
    let from8 = f32::from;
    let from16 = |v: u16| f32::from(v) / 257.0;
    Some(match image {
        DynamicImage::ImageLuma8(b) => expand(b.as_raw(), 1, from8),
        DynamicImage::ImageLumaA8(b) => expand(b.as_raw(), 2, from8),
        DynamicImage::ImageRgb8(b) => expand(b.as_raw(), 3, from8),
        DynamicImage::ImageRgba8(b) => expand(b.as_raw(), 4, from8),
        DynamicImage::ImageLuma16(b) => expand(b.as_raw(), 1, from16),
        DynamicImage::ImageLumaA16(b) => expand(b.as_raw(), 2, from16),
        DynamicImage::ImageRgb16(b) => expand(b.as_raw(), 3, from16),
        DynamicImage::ImageRgba16(b) => expand(b.as_raw(), 4, from16),
        _ => return None,
    })
}

fn expand<T: Copy>(samples: &[T], channels: usize, to_f32: impl Fn(T) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples.len() / channels * 4);
    for px in samples.chunks_exact(channels) {
        let v = |i: usize| to_f32(px[i]);
        out.extend_from_slice(&match channels {
            1 => [v(0), v(0), v(0), 255.0],
            2 => [v(0), v(0), v(0), v(1)],
            3 => [v(0), v(1), v(2), 255.0],
            _ => [v(0), v(1), v(2), v(3)],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use image::codecs::gif::GifEncoder;
    use image::{Frame, ImageBuffer, Luma, LumaA, Rgba, RgbaImage};

    use super::*;

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    /// Values on the 0..255 scale → the normalised values §1.4 gives.
    fn norm(values: &[f32]) -> Vec<f32> {
        values.iter().map(|v| v / 127.5 - 1.0).collect()
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
    fn identity_when_size_matches() {
        // 2×2 opaque grey levels 0, 51, 204, 255 → CHW planes equal, values v/127.5 − 1.
        let rgba: Vec<f32> = [0.0, 51.0, 204.0, 255.0].iter().flat_map(|&v| [v, v, v, 255.0]).collect();
        let pixels = preprocess_rgba(2, 2, &rgba, 2);
        let plane = norm(&[0.0, 51.0, 204.0, 255.0]);
        close(&pixels.chw, &plane.repeat(3));
    }

    #[test]
    fn chw_layout_keeps_channels_apart() {
        let pixels = preprocess_rgba(1, 1, &[255.0, 0.0, 127.5, 255.0], 1);
        close(&pixels.chw, &[1.0, -1.0, 0.0]);
    }

    #[test]
    fn half_transparent_black_over_white_is_mid_grey() {
        // 0·0.5 + 255·(1 − 0.5) = 127.5 → 0.0 after normalising.
        let pixels = preprocess_rgba(1, 1, &[0.0, 0.0, 0.0, 127.5], 1);
        close(&pixels.chw, &[0.0, 0.0, 0.0]);
        // Fully transparent red is white.
        close(&preprocess_rgba(1, 1, &[255.0, 0.0, 0.0, 0.0], 1).chw, &[1.0, 1.0, 1.0]);
    }

    #[test]
    fn two_to_one_downscale_averages() {
        // n=2, m=1: scale 2, support 2, center 1, taps j=0,1 with weight 1 − 0.5/2 = 0.75 each.
        let rgba = [0.0, 0.0, 0.0, 255.0, 255.0, 102.0, 51.0, 255.0];
        close(&preprocess_rgba(2, 1, &rgba, 1).chw, &norm(&[127.5, 51.0, 25.5]));
    }

    #[test]
    fn three_to_two_downscale_by_hand() {
        // n=3, m=2: scale 1.5, support 1.5. Output 0: center 0.75, weights (5/6, 1/2, 0):
        // (0·5/6 + 30·1/2) / (4/3) = 11.25. Output 1: center 2.25, weights (0, 1/2, 5/6):
        // (30·1/2 + 90·5/6) / (4/3) = 67.5. Height 1 → 2 copies the row (weight 0.75 on one tap).
        let rgba: Vec<f32> = [0.0, 30.0, 90.0].iter().flat_map(|&v| [v, v, v, 255.0]).collect();
        let plane = norm(&[11.25, 67.5, 11.25, 67.5]);
        close(&preprocess_rgba(3, 1, &rgba, 2).chw, &plane.repeat(3));
    }

    #[test]
    fn upscale_interpolates_linearly() {
        // n=2, m=4: scale 0.5, support 1; centers 0.25, 0.75, 1.25, 1.75 give weights
        // (0.75, 0), (0.75, 0.25), (0.25, 0.75), (0, 0.75) on inputs (0, 255).
        let rgba = [0.0, 0.0, 0.0, 255.0, 255.0, 255.0, 255.0, 255.0];
        let pixels = preprocess_rgba(2, 1, &rgba, 4);
        let row = norm(&[0.0, 63.75, 191.25, 255.0]);
        close(&pixels.chw[..4], &row);
        close(&pixels.chw[12..16], &row);
    }

    #[test]
    fn png_sixteen_bit_grey_and_grey_alpha() {
        // 16-bit 13107 = 51·257 → 51; 65535 → 255.
        let grey16 =
            ImageBuffer::from_raw(2, 1, vec![13107u16, 65535]).map(DynamicImage::ImageLuma16).unwrap();
        let decoded =
            decode_image(&PathBuf::from("a.png"), &encode(grey16, ImageFormat::Png), GifFrames::All, 2)
                .unwrap();
        assert_eq!(
            (decoded.format, decoded.width, decoded.height, decoded.frame_count),
            (ImageFormatKind::Png, 2, 1, 1)
        );
        // Height 1 → 2 duplicates the row.
        close(&decoded.frames[0].chw, &norm(&[51.0, 255.0, 51.0, 255.0]).repeat(3));

        // Grey 0 with alpha 128: 255·(1 − 128/255) = 127 on white.
        let grey_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(1, 1, LumaA([0u8, 128])));
        let decoded =
            decode_image(&PathBuf::from("b.png"), &encode(grey_alpha, ImageFormat::Png), GifFrames::All, 1)
                .unwrap();
        close(&decoded.frames[0].chw, &norm(&[127.0, 127.0, 127.0]));

        let grey8 = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([204u8])));
        let decoded =
            decode_image(&PathBuf::from("c.png"), &encode(grey8, ImageFormat::Png), GifFrames::All, 1)
                .unwrap();
        close(&decoded.frames[0].chw, &norm(&[204.0, 204.0, 204.0]));
    }

    #[test]
    fn jpeg_decodes_to_rgb() {
        // A flat colour survives JPEG up to a few levels.
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 16, image::Rgb([200u8, 100, 50])));
        let decoded =
            decode_image(&PathBuf::from("a.jpg"), &encode(image, ImageFormat::Jpeg), GifFrames::All, 4)
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
        let decoded = load_image(&path, GifFrames::All, 16).unwrap();
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
        let load = |policy| decode_image(&PathBuf::from("a.gif"), &bytes, policy, 1).unwrap();
        let all = load(GifFrames::All);
        assert_eq!((all.format, all.width, all.height, all.frame_count), (ImageFormatKind::Gif, 4, 2, 3));
        let chw: Vec<Vec<f32>> = all.frames.iter().map(|f| f.chw.clone()).collect();
        close(&chw.concat(), &[red, green, blue].concat().chunks(2).map(|c| c[0]).collect::<Vec<_>>());
        close(&load(GifFrames::First).frames[0].chw, &[1.0, -1.0, -1.0]);
        close(&load(GifFrames::Middle).frames[0].chw, &[-1.0, 1.0, -1.0]);
        close(&load(GifFrames::Last).frames[0].chw, &[-1.0, -1.0, 1.0]);
        assert_eq!(load(GifFrames::Last).frame_count, 3);
    }

    #[test]
    fn truncated_gif_names_the_frame() {
        // The last 12 bytes are the trailer and the end of frame 3's image data.
        let bytes = rgb_gif();
        let err = decode_image(&PathBuf::from("img/3.gif"), &bytes[..bytes.len() - 12], GifFrames::First, 1)
            .unwrap_err();
        assert_eq!(err.to_string(), "img/3.gif: frame 3: truncated (the file ends early)");
    }

    #[test]
    fn truncated_png_is_an_error() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(8, 8, image::Rgb([1u8, 2, 3])));
        let bytes = encode(image, ImageFormat::Png);
        let err =
            decode_image(&PathBuf::from("t.png"), &bytes[..bytes.len() / 2], GifFrames::All, 1).unwrap_err();
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
            assert!(decode_image(&PathBuf::from("whole"), &bytes, GifFrames::All, 1).is_ok());
            let mut padded = bytes.clone();
            padded.extend_from_slice(b"trailing junk");
            assert!(decode_image(&PathBuf::from("padded"), &padded, GifFrames::All, 1).is_ok(), "{format:?}");
            for cut in [1, 2, 4, bytes.len() / 2] {
                let err = decode_image(&PathBuf::from("t"), &bytes[..bytes.len() - cut], GifFrames::All, 1)
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
        let err = decode_image(&PathBuf::from("x.png"), b"hello world", GifFrames::All, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.png: not a PNG, JPEG or GIF image \
             (unrecognised content starting with bytes 68 65 6c 6c 6f 20 77 6f)"
        );
        let err =
            decode_image(&PathBuf::from("x.bmp"), b"BM\x3a\0\0\0\0\0\0\0", GifFrames::All, 1).unwrap_err();
        assert!(err.to_string().contains("looks like Bmp"), "{err}");
    }

    #[test]
    fn gif_bomb_is_refused_from_the_header() {
        // Header and logical screen descriptor only: 65535×65535, no colour table, then the trailer.
        let mut bytes = b"GIF89a".to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
        // One image descriptor covering the canvas, LZW minimum code size 2, no data, trailer.
        bytes.extend_from_slice(&[0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x02, 0x00, 0x3b]);
        let err = decode_image(&PathBuf::from("bomb.gif"), &bytes, GifFrames::All, 1).unwrap_err();
        assert!(matches!(err, DataError::ImageTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("65535×65535 = 4294836225 pixels"), "{err}");
    }
}
