//! Damaged files in plain words: a decoder error becomes a message that names what is wrong
//! (truncation, a bomb-guard limit, a damaged PNG chunk) without the decoders' debug dumps, and
//! PNG and JPEG files cut before their end marker are refused although their decoders accept them.

use std::path::Path;

use image::ImageError;

use super::format::ImageFormatKind;
use super::MAX_PIXELS;
use crate::data::DataError;

pub const TRUNCATED: &str = "truncated (the file ends early)";

/// A decoder error as a `DataError` for `path` (`frame` counts from 1, for animations).
pub fn decode_error(path: &Path, bytes: &[u8], frame: Option<usize>, err: ImageError) -> DataError {
    let message = match err {
        ImageError::Limits(limit) => {
            format!("{limit} (decoder cap of {} bytes, decompression-bomb guard)", MAX_PIXELS * 8)
        }
        err if is_truncation(&err) => TRUNCATED.to_string(),
        err => match ImageFormatKind::sniff(bytes) {
            Some(ImageFormatKind::Png) => png_damage(bytes).unwrap_or_else(|| without_debug_dumps(&err)),
            _ => without_debug_dumps(&err),
        },
    };
    DataError::ImageDecode { path: path.to_path_buf(), frame, message }
}

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

/// The png crate prints chunk types with `{:?}` (`ChunkType { type: IDAT, critical: true, … }`):
/// keep the four letters.
fn without_debug_dumps(err: &ImageError) -> String {
    let pattern =
        regex::Regex::new(r"ChunkType \{ type: (.*?), critical: .*? \}").expect("a valid regular expression");
    pattern.replace_all(&err.to_string(), "$1").into_owned()
}

/// The first chunk of a PNG whose type is not four letters or whose checksum is wrong, said in
/// words; `None` when every chunk up to IEND (or the file's end) is sound.
fn png_damage(bytes: &[u8]) -> Option<String> {
    let mut offset = 8;
    let mut number = 1;
    while offset + 12 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let kind = &bytes[offset + 4..offset + 8];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            let hex: Vec<String> = kind.iter().map(|b| format!("{b:02x}")).collect();
            return Some(format!(
                "damaged PNG: chunk {number} at byte {offset} has type bytes {}, not a chunk name",
                hex.join(" ")
            ));
        }
        let end = offset + 8 + length;
        if end + 4 > bytes.len() {
            return None;
        }
        let stored = u32::from_be_bytes(bytes[end..end + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[offset + 4..end]) != stored {
            return Some(format!(
                "damaged PNG: chunk {number} ({}) at byte {offset} fails its checksum",
                String::from_utf8_lossy(kind)
            ));
        }
        if kind == b"IEND" {
            return None;
        }
        offset = end + 4;
        number += 1;
    }
    None
}

/// Refuse a PNG or JPEG whose end marker is missing: both decoders accept a file cut after its
/// last pixel data and fill in silently. Bytes after the marker are allowed. The other formats'
/// decoders report short files themselves.
pub fn check_complete(path: &Path, bytes: &[u8], format: ImageFormatKind) -> Result<(), DataError> {
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
        ImageFormatKind::Gif | ImageFormatKind::WebP | ImageFormatKind::Bmp | ImageFormatKind::Tiff => true,
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
