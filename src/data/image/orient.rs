//! The EXIF orientation tag applied to the pixels before resizing, as transformers' image loading
//! does with PIL's `ImageOps.exif_transpose`: a phone photo stored sideways is seen upright.
//! `ExifOrientation::Ignore` keeps the stored pixels.
//!
//! The tag is found where PIL's `Image.getexif` finds it: in the file's EXIF block (JPEG APP1,
//! PNG `eXIf` or text chunks (`png_meta`), the WebP `EXIF` chunk, the TIFF image's own directory),
//! with or without the `Exif\0\0` header that JPEG uses (old Pillow wrote it into WebP too;
//! libwebp's `cwebp` and Pillow ≥ 9.3 do not); and when the EXIF block has no orientation entry,
//! in the file's XMP packet (`tiff:Orientation`).

use std::sync::LazyLock;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder};

use crate::data::ExifOrientation;

/// The orientation tag of a file read by an `image` decoder, from its EXIF and XMP blocks (or,
/// for TIFF, its directory's tag 274), as its EXIF number (1 = upright, also when there is no
/// usable tag). Metadata that cannot be read counts as none, with a warning: the pixels are
/// still good.
pub fn read_tag(decoder: &mut impl ImageDecoder, path: &std::path::Path) -> u8 {
    let warn = |err: image::ImageError| {
        crate::logging::warn!("{}: unreadable metadata ({err}); reading the image as stored", path.display());
    };
    // The TIFF decoder reads tag 274 of the image's directory, which is PIL's EXIF there.
    let stored = decoder.orientation().map_err(warn).ok().map(Orientation::to_exif).filter(|&tag| tag != 1);
    let exif = decoder.exif_metadata().map_err(warn).ok().flatten();
    let xmp = decoder.xmp_metadata().map_err(warn).ok().flatten();
    stored.unwrap_or_else(|| tag_of(exif.as_deref(), xmp.as_deref()))
}

/// The tag as PIL's `getexif` reads it: the EXIF block's orientation entry if it has one, else
/// the XMP packet's `tiff:Orientation`; 1 when neither has a tag from 1 to 8.
pub fn tag_of(exif: Option<&[u8]>, xmp: Option<&[u8]>) -> u8 {
    let tag = match exif.and_then(exif_entry) {
        Some(value) => Some(value),
        None => xmp.and_then(xmp_entry),
    };
    tag.and_then(|t| u8::try_from(t).ok()).filter(|t| (1..=8).contains(t)).unwrap_or(1)
}

/// The orientation entry (tag 0x0112, one SHORT or LONG) of an EXIF block's first directory,
/// after at most two `Exif\0\0` headers (as PIL's `Exif.load` strips them).
fn exif_entry(exif: &[u8]) -> Option<u32> {
    let mut tiff = exif;
    for _ in 0..2 {
        tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    }
    let little = match tiff.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at: usize| {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let directory = usize::try_from(u32_at(4)?).ok()?;
    let entries = u16_at(directory)?;
    (0..usize::from(entries)).find_map(|index| {
        let entry = directory + 2 + 12 * index;
        if u16_at(entry)? != 0x0112 || u32_at(entry + 4)? != 1 {
            return None;
        }
        match u16_at(entry + 2)? {
            3 => u16_at(entry + 8).map(u32::from),
            4 => u32_at(entry + 8),
            _ => None,
        }
    })
}

/// PIL's search for `tiff:Orientation` in an XMP packet (attribute or element form).
fn xmp_entry(xmp: &[u8]) -> Option<u32> {
    static PATTERN: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        regex::bytes::Regex::new(r#"tiff:Orientation(="|>)([0-9])"#).expect("the pattern is valid")
    });
    let digit = PATTERN.captures(xmp)?.get(2)?.as_bytes()[0];
    Some(u32::from(digit - b'0'))
}

/// `image` turned as the tag says, or as stored under `ExifOrientation::Ignore`.
pub fn apply(mut image: DynamicImage, tag: u8, policy: ExifOrientation) -> DynamicImage {
    if policy == ExifOrientation::Apply {
        if let Some(orientation) = Orientation::from_exif(tag) {
            image.apply_orientation(orientation);
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::data::image::decode_image;
    use crate::data::{FramePolicy, ImageOptions, Preprocessing};

    /// Every file of tests/fixtures/orientation (tools/orientation_fixtures.py: the tag where
    /// Pillow, libwebp, ImageMagick or Adobe put it) against Pillow's `exif_transpose` of it,
    /// exactly, and its tag as Pillow reads it (the file name's last number).
    #[test]
    fn orientation_fixtures_turn_as_pillow_does() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orientation");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| !path.to_string_lossy().ends_with(".upright.png") && !path.ends_with("README.md"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 9, "{files:?}");
        let options = ImageOptions { frames: FramePolicy::First, keep_input: true, ..Default::default() };
        for path in files {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let decoded =
                decode_image(&path, &std::fs::read(&path).unwrap(), options, &Preprocessing::big_vision(4))
                    .unwrap();
            let tag: u8 = stem.rsplit('_').next().unwrap().parse().unwrap();
            assert_eq!(decoded.exif_orientation, tag, "{stem}");
            let want = image::open(folder.join(format!("{stem}.upright.png"))).unwrap().to_rgb8();
            let got = decoded.input.unwrap().to_rgb8();
            assert_eq!(got.dimensions(), want.dimensions(), "{stem}");
            assert!(got == want, "{stem}: pixels differ from Pillow's upright ones");
        }
    }

    /// A little-endian TIFF block whose directory holds `entries` (tag, type, value), each with
    /// count 1, the value in the entry's 4 bytes.
    fn block(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, kind, value) in entries {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        tiff.extend_from_slice(&[0; 4]);
        tiff
    }

    #[test]
    fn exif_headers_are_optional_as_pil_strips_up_to_two() {
        let tiff = block(&[(0x0100, 3, 7), (0x0112, 3, 6)]);
        let with = |headers: usize| [b"Exif\0\0".repeat(headers), tiff.clone()].concat();
        assert_eq!([0, 1, 2, 3].map(|n| tag_of(Some(&with(n)), None)), [6, 6, 6, 1]);
    }

    #[test]
    fn big_endian_and_long_entries_are_read() {
        let mut big = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0".to_vec();
        big.extend_from_slice(&[0; 4]);
        assert_eq!(tag_of(Some(&big), None), 8);
        assert_eq!(tag_of(Some(&block(&[(0x0112, 4, 5)])), None), 5);
    }

    #[test]
    fn xmp_counts_only_when_exif_has_no_entry() {
        let xmp = br#"<rdf:Description tiff:Orientation="3"/>"#.as_slice();
        let element = b"<tiff:Orientation>7</tiff:Orientation>".as_slice();
        assert_eq!(tag_of(None, Some(xmp)), 3);
        assert_eq!(tag_of(None, Some(element)), 7);
        assert_eq!(tag_of(Some(&block(&[(0x0100, 3, 7)])), Some(xmp)), 3);
        assert_eq!(tag_of(Some(&block(&[(0x0112, 3, 1)])), Some(xmp)), 1);
    }

    #[test]
    fn unusable_tags_count_as_upright() {
        assert_eq!(tag_of(Some(&block(&[(0x0112, 3, 9)])), None), 1);
        assert_eq!(tag_of(Some(&block(&[(0x0112, 3, 0)])), None), 1);
        assert_eq!(tag_of(Some(b"Exif\0\0II*\0\xff\xff\0\0"), None), 1);
        assert_eq!(tag_of(Some(b"II"), None), 1);
        assert_eq!(tag_of(None, None), 1);
    }
}
