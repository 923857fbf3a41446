//! A PNG's EXIF and XMP blocks, from the chunks PIL reads them from (`PngImagePlugin`): the EXIF
//! block from `eXIf` or a `tEXt` chunk named `exif`, else from ImageMagick's hex "Raw profile
//! type exif" text (what `convert photo.jpg photo.png` keeps); XMP from the text chunk
//! `XML:com.adobe.xmp`. Like PIL after `load()`, chunks after the image data count too (up to
//! the next frame of an animation); of two chunks for one block the last wins, as PIL keeps it.

use std::io::Read;

/// The largest text PIL decompresses from a `zTXt` or `iTXt` chunk (`MAX_TEXT_CHUNK`); a larger
/// one is skipped.
const MAX_TEXT_BYTES: u64 = 1 << 20;

const RAW_PROFILE: &[u8] = b"Raw profile type exif";
const XMP: &[u8] = b"XML:com.adobe.xmp";

/// The blocks found in a PNG file.
#[derive(Debug, Default, PartialEq)]
pub struct PngMetadata {
    pub exif: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
}

/// Walk `bytes` (a PNG file, signature included) chunk by chunk; a damaged chunk list ends the
/// walk with what was found so far (the pixel decoder reports the damage).
pub fn read(bytes: &[u8]) -> PngMetadata {
    let (mut exif, mut raw_profile, mut xmp) = (None, None, None);
    let mut seen_image_data = false;
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let kind = &header[4..8];
        let Some(data) = bytes.get(at + 8..).and_then(|rest| rest.get(..length)) else { break };
        match kind {
            b"IEND" => break,
            b"fcTL" if seen_image_data => break,
            b"IDAT" => seen_image_data = true,
            b"eXIf" => exif = Some([b"Exif\0\0".as_slice(), data].concat()),
            b"tEXt" | b"zTXt" | b"iTXt" => match text(kind, data) {
                Some((b"exif", value)) if kind == b"tEXt" => exif = Some(value),
                Some((RAW_PROFILE, value)) => raw_profile = Some(value),
                Some((XMP, value)) => xmp = Some(value),
                _ => {}
            },
            _ => {}
        }
        at += 12 + length;
    }
    PngMetadata { exif: exif.or_else(|| raw_profile.as_deref().and_then(unhex_raw_profile)), xmp }
}

/// A text chunk's keyword and text (decompressed), or None if it cannot be read.
fn text<'a>(kind: &[u8], data: &'a [u8]) -> Option<(&'a [u8], Vec<u8>)> {
    let split = data.iter().position(|&b| b == 0)?;
    let (keyword, rest) = (&data[..split], &data[split + 1..]);
    let value = match kind {
        b"tEXt" => rest.to_vec(),
        // Compression method (0, zlib), then the compressed text.
        b"zTXt" => inflate(rest.strip_prefix(&[0])?)?,
        _ => {
            // Compressed flag, method, language tag, translated keyword, text.
            let (&[flag, method], rest) = rest.split_first_chunk::<2>()?;
            let mut parts = rest.splitn(3, |&b| b == 0);
            let text = parts.nth(2)?;
            match (flag, method) {
                (0, _) => text.to_vec(),
                (_, 0) => inflate(text)?,
                _ => return None,
            }
        }
    };
    Some((keyword, value))
}

fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = flate2::read::ZlibDecoder::new(compressed).take(MAX_TEXT_BYTES + 1);
    reader.read_to_end(&mut out).ok()?;
    (out.len() as u64 <= MAX_TEXT_BYTES).then_some(out)
}

/// ImageMagick's "Raw profile type exif": "\nexif\n<length>\n<hex lines>"; PIL takes the lines
/// from the fourth on as hex, whitespace between bytes allowed.
fn unhex_raw_profile(text: &[u8]) -> Option<Vec<u8>> {
    let hex: Vec<u8> =
        text.split(|&b| b == b'\n').skip(3).flatten().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let digit = |b: u8| (b as char).to_digit(16);
    hex.chunks(2)
        .map(|pair| match pair {
            &[high, low] => Some((digit(high)? * 16 + digit(low)?) as u8),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let crc = crc32fast::hash(&[kind, data].concat());
        [&(data.len() as u32).to_be_bytes()[..], kind, data, &crc.to_be_bytes()].concat()
    }

    fn png(chunks: &[Vec<u8>]) -> Vec<u8> {
        [b"\x89PNG\r\n\x1a\n".to_vec(), chunks.concat()].concat()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn exif_comes_from_the_last_exif_or_text_chunk_then_the_raw_profile() {
        let raw = chunk(b"tEXt", b"Raw profile type exif\0\nexif\n       8\n4d4d002a 000000\n08\n");
        let found = read(&png(std::slice::from_ref(&raw)));
        assert_eq!(found.exif.as_deref(), Some(b"MM\0*\0\0\0\x08".as_slice()));
        let both =
            read(&png(&[chunk(b"eXIf", b"II*\0"), raw, chunk(b"IDAT", b""), chunk(b"tEXt", b"exif\0A")]));
        assert_eq!(both.exif.as_deref(), Some(b"A".as_slice()));
        let only = read(&png(&[chunk(b"eXIf", b"II*\0")]));
        assert_eq!(only.exif.as_deref(), Some(b"Exif\0\0II*\0".as_slice()));
    }

    #[test]
    fn xmp_from_plain_and_compressed_text() {
        let packet = b"<x tiff:Orientation=\"6\"/>";
        let itxt = [b"XML:com.adobe.xmp\0\x01\0en\0\0".as_slice(), &zlib(packet)].concat();
        assert_eq!(read(&png(&[chunk(b"iTXt", &itxt)])).xmp.as_deref(), Some(packet.as_slice()));
        let ztxt = [b"XML:com.adobe.xmp\0\0".as_slice(), &zlib(packet)].concat();
        assert_eq!(read(&png(&[chunk(b"zTXt", &ztxt)])).xmp.as_deref(), Some(packet.as_slice()));
    }

    #[test]
    fn the_walk_stops_at_the_end_the_next_frame_or_damage() {
        let exif = chunk(b"eXIf", b"II*\0");
        let after = |stop: &[u8]| read(&png(&[chunk(b"IDAT", b""), chunk(stop, b""), exif.clone()]));
        assert_eq!(after(b"IEND"), PngMetadata::default());
        assert_eq!(after(b"fcTL"), PngMetadata::default());
        assert!(after(b"tIME").exif.is_some());
        let mut cut = png(std::slice::from_ref(&exif));
        cut.truncate(cut.len() - 5);
        assert_eq!(read(&cut), PngMetadata::default());
        let bomb = [b"XML:com.adobe.xmp\0\0".as_slice(), &zlib(&vec![b' '; 1 << 21])].concat();
        assert_eq!(read(&png(&[chunk(b"zTXt", &bomb)])), PngMetadata::default());
    }
}
