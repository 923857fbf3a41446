//! Image file bytes for the demo ads: PNG, JPEG (fixed quality) and animated GIF, with fixed
//! encoder settings so the same pixels always give the same bytes.

use std::io::Cursor;

use anyhow::Context;
use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{Delay, DynamicImage, Frame, ImageEncoder, RgbImage};

/// JPEG quality of the demo images (typical of web ads; visible but mild artefacts).
const JPEG_QUALITY: u8 = 85;
/// How long each GIF frame shows.
const GIF_FRAME_MS: u32 = 400;
/// NeuQuant speed for GIF frames with more than 256 colours (1 best .. 30 fastest). The demo
/// frames use banded gradients and usually fit an exact palette, so this rarely matters.
const GIF_QUANT_SPEED: i32 = 10;

/// A file format of the demo dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DemoFormat {
    Png,
    Jpeg,
    Gif,
}

impl DemoFormat {
    pub const ALL: [DemoFormat; 3] = [DemoFormat::Png, DemoFormat::Jpeg, DemoFormat::Gif];

    /// The file extension (also the name shown in summaries).
    pub fn extension(self) -> &'static str {
        match self {
            DemoFormat::Png => "png",
            DemoFormat::Jpeg => "jpg",
            DemoFormat::Gif => "gif",
        }
    }
}

/// Encode `frames` (one for PNG and JPEG, several for GIF) as a file of `format`.
pub fn encode(format: DemoFormat, frames: &[RgbImage]) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match (format, frames) {
        (DemoFormat::Png, [img]) => {
            PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
                .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
                .context("encoding PNG")?;
        }
        (DemoFormat::Jpeg, [img]) => {
            JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
                .encode_image(img)
                .context("encoding JPEG")?;
        }
        (DemoFormat::Gif, frames) if !frames.is_empty() => {
            let mut encoder = GifEncoder::new_with_speed(Cursor::new(&mut bytes), GIF_QUANT_SPEED);
            encoder.set_repeat(Repeat::Infinite).context("encoding GIF")?;
            for img in frames {
                let rgba = DynamicImage::ImageRgb8(img.clone()).into_rgba8();
                let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(GIF_FRAME_MS, 1));
                encoder.encode_frame(frame).context("encoding GIF frame")?;
            }
            // Dropping the encoder writes the GIF trailer.
            drop(encoder);
        }
        (format, frames) => {
            anyhow::bail!("cannot encode {} frame(s) as {}", frames.len(), format.extension())
        }
    }
    Ok(bytes)
}
