//! Which format a file holds, from its first bytes (its magic number), never its extension; and
//! what to say about a file that holds none of ours.

use std::fmt;
use std::path::Path;

use image::ImageFormat;

/// The image formats gacha reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageFormatKind {
    Png,
    Jpeg,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

impl ImageFormatKind {
    /// Recognise a format from a file's first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormatKind> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormatKind::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageFormatKind::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageFormatKind::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(ImageFormatKind::WebP)
        } else if bytes.starts_with(b"BM") {
            Some(ImageFormatKind::Bmp)
        } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|magic| bytes.starts_with(*magic)) {
            // Classic TIFF, then BigTIFF (64-bit offsets), each in both byte orders.
            Some(ImageFormatKind::Tiff)
        } else {
            None
        }
    }

    /// The format a file name's extension claims, if it names one of ours.
    pub fn from_extension(path: &Path) -> Option<ImageFormatKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" | "apng" => Some(ImageFormatKind::Png),
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(ImageFormatKind::Jpeg),
            "gif" => Some(ImageFormatKind::Gif),
            "webp" => Some(ImageFormatKind::WebP),
            "bmp" | "dib" => Some(ImageFormatKind::Bmp),
            "tif" | "tiff" => Some(ImageFormatKind::Tiff),
            _ => None,
        }
    }

    pub fn image_format(self) -> ImageFormat {
        match self {
            ImageFormatKind::Png => ImageFormat::Png,
            ImageFormatKind::Jpeg => ImageFormat::Jpeg,
            ImageFormatKind::Gif => ImageFormat::Gif,
            ImageFormatKind::WebP => ImageFormat::WebP,
            ImageFormatKind::Bmp => ImageFormat::Bmp,
            ImageFormatKind::Tiff => ImageFormat::Tiff,
        }
    }
}

impl fmt::Display for ImageFormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormatKind::Png => "PNG",
            ImageFormatKind::Jpeg => "JPEG",
            ImageFormatKind::Gif => "GIF",
            ImageFormatKind::WebP => "WebP",
            ImageFormatKind::Bmp => "BMP",
            ImageFormatKind::Tiff => "TIFF",
        })
    }
}

/// Say what a file that is none of our formats looks like.
pub fn describe_unknown(bytes: &[u8]) -> String {
    match image::guess_format(bytes) {
        Ok(format) => format!("it looks like {format:?}; convert it to PNG"),
        Err(_) => {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("unrecognised content starting with bytes {}", head.join(" "))
        }
    }
}
