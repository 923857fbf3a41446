//! The EXIF orientation tag (JPEG APP1, PNG eXIf, WebP EXIF, TIFF tag 274) applied to the pixels
//! before resizing, as transformers' image loading does with PIL's `exif_transpose`: a phone
//! photo stored sideways is seen upright. `ExifOrientation::Ignore` keeps the stored pixels.

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder};

use crate::data::ExifOrientation;

/// The file's orientation tag as its EXIF number (1 = upright, also when there is no tag). An
/// EXIF block that cannot be read counts as no tag, with a warning: the pixels are still good.
pub fn read_tag(decoder: &mut impl ImageDecoder, path: &std::path::Path) -> u8 {
    match decoder.orientation() {
        Ok(orientation) => orientation.to_exif(),
        Err(err) => {
            crate::logging::warn!(
                "{}: unreadable EXIF metadata ({err}); reading the image as stored",
                path.display()
            );
            1
        }
    }
}

/// The orientation tag in an EXIF block (TIFF data, after the "Exif\0\0" of a JPEG APP1 segment),
/// 1 when there is none or it cannot be read.
pub fn tag_of_exif(exif: Option<&[u8]>) -> u8 {
    exif.and_then(Orientation::from_exif_chunk).map_or(1, Orientation::to_exif)
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
