//! Each format into preprocessed frames. JPEG goes through our own decoder (`jpeg`: Pillow's
//! pixels exactly), other still images through the `image` crate's decoders; animations (GIF,
//! APNG, animated WebP) frame by frame, every frame composited onto the canvas as browsers show it
//! (disposal and blending applied; the canvas starts transparent, so it shows white after alpha
//! over white, whatever background colour the file names). That is not what PIL's `seek()` gives
//! for every file: PIL hands out some frames uncomposited or in palette mode. Sizes are checked
//! from the headers before any pixel buffer is allocated. With `ImageOptions::keep_input`, an
//! animation's frames are all held at full size until the policy has picked (`gacha check
//! --save-inputs` only).

use std::io::Cursor;
use std::path::Path;

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, DynamicImage, Frames, ImageBuffer, ImageDecoder, ImageReader, Limits};

use super::damage::{check_complete, decode_error, TRUNCATED};
use super::format::ImageFormatKind;
use super::jpeg::{self, Jpeg, JpegError};
use super::preprocess::{preprocess_rgba, rgba_samples};
use super::{gif, orient, png_meta, DecodedImage, MAX_ANIMATION_PIXELS, MAX_FRAMES, MAX_PIXELS};
use crate::data::{CodingCheck, DataError, FramePolicy, ImageOptions, Pixels, Preprocessing};

/// Decode `bytes`, holding `format`, into the frames `images` asks for, preprocessed by `prep`.
pub fn decode(
    path: &Path,
    bytes: &[u8],
    format: ImageFormatKind,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let fail = |err| decode_error(path, bytes, None, err);
    match format {
        ImageFormatKind::Gif => decode_gif(path, bytes, images, prep),
        ImageFormatKind::Png => {
            let metadata = png_meta::read(bytes);
            let tag = orient::tag_of(metadata.exif.as_deref(), metadata.xmp.as_deref());
            let mut decoder = PngDecoder::with_limits(Cursor::new(bytes), decoder_limits()).map_err(fail)?;
            if decoder.is_apng().map_err(fail)? {
                let canvas = canvas_of(path, &mut decoder, format, tag)?;
                let frames = decoder.apng().map_err(fail)?.into_frames();
                decode_animation(path, bytes, frames, canvas, images, prep)
            } else {
                decode_still(path, bytes, format, decoder, tag, images, prep)
            }
        }
        ImageFormatKind::WebP => {
            let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(fail)?;
            decoder.set_limits(decoder_limits()).map_err(fail)?;
            let tag = orient::read_tag(&mut decoder, path);
            if decoder.has_animation() {
                let canvas = canvas_of(path, &mut decoder, format, tag)?;
                decode_animation(path, bytes, decoder.into_frames(), canvas, images, prep)
            } else {
                decode_still(path, bytes, format, decoder, tag, images, prep)
            }
        }
        ImageFormatKind::Jpeg => decode_jpeg(path, bytes, images, prep),
        ImageFormatKind::Bmp | ImageFormatKind::Tiff => {
            let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
            reader.limits(decoder_limits());
            let mut decoder = reader.into_decoder().map_err(fail)?;
            let tag = orient::read_tag(&mut decoder, path);
            decode_still(path, bytes, format, decoder, tag, images, prep)
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

fn check_pixels(path: &Path, what: &str, width: u32, height: u32) -> Result<(), DataError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            what: format!("{what}{width}×{height} = {pixels} pixels"),
            cap: format!("{MAX_PIXELS} pixels"),
        });
    }
    Ok(())
}

/// Width and height after the orientation tag is applied (tags 5–8 swap them).
fn oriented_size(width: u32, height: u32, tag: u8, images: ImageOptions) -> (u32, u32) {
    if images.orientation == crate::data::ExifOrientation::Apply && (5..=8).contains(&tag) {
        (height, width)
    } else {
        (width, height)
    }
}

fn decode_still(
    path: &Path,
    bytes: &[u8],
    format: ImageFormatKind,
    decoder: impl ImageDecoder,
    tag: u8,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let (width, height) = decoder.dimensions();
    check_pixels(path, "", width, height)?;
    check_complete(path, bytes, format)?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, bytes, None, e))?;
    still_image(path, format, image, tag, images, prep)
}

/// A JPEG by our own decoder; under `CodingCheck::Strict`, with the damage it read past.
fn decode_jpeg(
    path: &Path,
    bytes: &[u8],
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let fail = |err: JpegError| DataError::ImageDecode {
        path: path.to_path_buf(),
        frame: None,
        message: match err {
            JpegError::Truncated => TRUNCATED.to_string(),
            err => err.to_string(),
        },
    };
    let file = Jpeg::read_header(bytes).map_err(fail)?;
    check_pixels(path, "", file.width(), file.height())?;
    check_complete(path, bytes, ImageFormatKind::Jpeg)?;
    let tag = orient::tag_of(file.exif(), file.xmp());
    let decoded = file.decode().map_err(fail)?;
    let (width, height) = (decoded.width, decoded.height);
    let image = if decoded.grey {
        ImageBuffer::from_raw(width, height, decoded.samples).map(DynamicImage::ImageLuma8)
    } else {
        ImageBuffer::from_raw(width, height, decoded.samples).map(DynamicImage::ImageRgb8)
    };
    let image = image.expect("the decoder gives width × height pixels");
    let mut still = still_image(path, ImageFormatKind::Jpeg, image, tag, images, prep)?;
    if images.coding == CodingCheck::Strict {
        still.coding_error = jpeg::strict_error(bytes, decoded.problem);
    }
    Ok(still)
}

/// A decoded still image, `tag` its EXIF orientation, into its one preprocessed frame.
fn still_image(
    path: &Path,
    format: ImageFormatKind,
    image: DynamicImage,
    tag: u8,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let image = orient::apply(image, tag, images.orientation);
    let rgba = rgba_samples(&image).ok_or_else(|| DataError::ImageDecode {
        path: path.to_path_buf(),
        frame: None,
        message: format!("unsupported pixel layout {:?}", image.color()),
    })?;
    let pixels = preprocess_rgba(image.width() as usize, image.height() as usize, &rgba, prep);
    let (width, height) = (image.width(), image.height());
    Ok(DecodedImage {
        format,
        width,
        height,
        frame_count: 1,
        frames: vec![pixels],
        input: images.keep_input.then_some(image),
        exif_orientation: tag,
        coding_error: None,
    })
}

/// What an animation's frames are drawn on.
struct Canvas {
    format: ImageFormatKind,
    width: u32,
    height: u32,
    /// EXIF orientation tag, applied to every frame.
    tag: u8,
}

fn canvas_of(
    path: &Path,
    decoder: &mut impl ImageDecoder,
    format: ImageFormatKind,
    tag: u8,
) -> Result<Canvas, DataError> {
    let (width, height) = decoder.dimensions();
    check_pixels(path, "", width, height)?;
    Ok(Canvas { format, width, height, tag })
}

fn decode_gif(
    path: &Path,
    bytes: &[u8],
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let layout = gif::walk(bytes);
    for (index, frame) in layout.frames.iter().enumerate() {
        let what = format!("frame {} of ", index + 1);
        check_pixels(path, &what, u32::from(frame.width), u32::from(frame.height))?;
    }
    let patched = gif::with_grey_table(bytes, &layout);
    let bytes = patched.as_deref().unwrap_or(bytes);
    let fail = |err| decode_error(path, bytes, None, err);
    let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(fail)?;
    decoder.set_limits(decoder_limits()).map_err(fail)?;
    // PIL reads no EXIF or XMP from a GIF.
    let canvas = canvas_of(path, &mut decoder, ImageFormatKind::Gif, 1)?;
    decode_animation(path, bytes, decoder.into_frames(), canvas, images, prep).map_err(|err| match err {
        // Say how much the cut frame claimed: a huge frame in a tiny file is no ordinary cut.
        DataError::ImageDecode { path, frame: Some(number), message } if message == TRUNCATED => {
            let declared = layout.frames.get(number - 1).map(|f| {
                format!(
                    " (the frame declares {}×{} pixels at ({}, {}); the file has {} bytes)",
                    f.width,
                    f.height,
                    f.left,
                    f.top,
                    bytes.len()
                )
            });
            DataError::ImageDecode {
                path,
                frame: Some(number),
                message: message + &declared.unwrap_or_default(),
            }
        }
        err => err,
    })
}

/// Every frame of an animation is decoded (so a broken frame is found whatever the policy), then
/// `images.frames` picks the frames kept.
fn decode_animation(
    path: &Path,
    bytes: &[u8],
    frames: Frames<'_>,
    canvas: Canvas,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<DecodedImage, DataError> {
    let Canvas { format, width, height, tag } = canvas;
    let area = u64::from(width) * u64::from(height);
    let mut kept = Vec::new();
    for (index, frame) in frames.enumerate() {
        let number = index + 1;
        if number > MAX_FRAMES || number as u64 * area > MAX_ANIMATION_PIXELS {
            return Err(DataError::ImageTooLarge {
                path: path.to_path_buf(),
                what: format!("an animation of more than {} frames of {width}×{height}", number - 1),
                cap: format!("{MAX_FRAMES} frames or {MAX_ANIMATION_PIXELS} pixels over all frames"),
            });
        }
        let frame = frame.map_err(|e| decode_error(path, bytes, Some(number), e))?;
        let image = orient::apply(DynamicImage::ImageRgba8(frame.into_buffer()), tag, images.orientation);
        let rgba: Vec<f32> = image.to_rgba8().into_raw().into_iter().map(f32::from).collect();
        let pixels = preprocess_rgba(image.width() as usize, image.height() as usize, &rgba, prep);
        kept.push((pixels, images.keep_input.then_some(image)));
    }
    let frame_count = kept.len();
    if frame_count == 0 {
        return Err(DataError::ImageDecode {
            path: path.to_path_buf(),
            frame: None,
            message: "no frames".into(),
        });
    }
    let (width, height) = oriented_size(width, height, tag, images);
    let (frames, mut inputs): (Vec<Pixels>, Vec<_>) = pick(kept, images.frames).into_iter().unzip();
    Ok(DecodedImage {
        format,
        width,
        height,
        frame_count,
        frames,
        input: inputs.swap_remove(0),
        exif_orientation: tag,
        coding_error: None,
    })
}

/// The frames `policy` keeps of `frames` (not empty), in file order.
fn pick<T>(mut frames: Vec<T>, policy: FramePolicy) -> Vec<T> {
    let count = frames.len();
    match policy {
        FramePolicy::All => frames,
        FramePolicy::First => vec![frames.swap_remove(0)],
        FramePolicy::Last => vec![frames.pop().expect("frames is not empty")],
        FramePolicy::Middle => vec![frames.swap_remove(count / 2)],
    }
}
