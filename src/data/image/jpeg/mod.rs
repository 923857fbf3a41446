//! JPEG decoded to the pixels Pillow gives (`Image.open(f).convert("RGB")`, what transformers
//! loads), not merely close to them: Pillow decodes with libjpeg-turbo at its defaults, and each
//! step here does the same integer arithmetic, written from reading libjpeg-turbo's C (no code
//! copied): Huffman decoding of sequential and progressive scans (`scan`), the "islow" inverse DCT
//! (`idct`), "fancy" chroma upsampling (`upsample`) and the colour conversion, with Pillow's own
//! CMYK → RGB (`colour`). Damaged entropy-coded data is read past as libjpeg reads it, and the
//! first damage found is kept for `gacha check` (`scan::Problem`, with `strict`).
//!
//! Not decoded (an error): 12-bit samples and 2-component files (Pillow refuses them too);
//! arithmetic coding, lossless and hierarchical JPEG (rare; libjpeg-turbo reads the first two).
//! A progressive file whose scans leave some of the first AC coefficients unfinished (a cut or
//! incomplete progression) is smoothed by libjpeg's block smoothing, which is not done here.
//! The inverse DCT follows libjpeg-turbo's x86-64 SIMD code (see `idct`), which other builds'
//! code equals on undamaged data.

mod colour;
mod huffman;
mod idct;
mod markers;
mod scan;
mod strict;
mod upsample;

pub use strict::strict_error;

use colour::{convert_row, ColourSpace};
use huffman::TableSpecs;
use markers::{ColourHints, Frame, ScanHeader};
use scan::{Problem, Scan};
use upsample::{upsample_row, Method, Plane};

/// Why a JPEG could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegError {
    /// The file ends inside its headers.
    Truncated,
    /// A header breaks the format; says which and where.
    Invalid(String),
    /// A kind of JPEG this decoder does not read.
    Unsupported(String),
}

impl std::fmt::Display for JpegError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JpegError::Truncated => write!(f, "the file ends inside its headers"),
            JpegError::Invalid(what) => write!(f, "{what}"),
            JpegError::Unsupported(what) => write!(f, "unsupported JPEG: {what}"),
        }
    }
}

/// What an APP1 segment holding an XMP packet starts with.
const XMP_HEADER: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// A JPEG whose headers have been read up to its first scan.
pub struct Jpeg<'a> {
    bytes: &'a [u8],
    frame: Frame,
    /// How each component is upsampled.
    methods: Vec<Method>,
    tables: Tables,
    space: ColourSpace,
    /// The first APP1 "Exif" segment's TIFF data (Pillow reads the first).
    exif: Option<&'a [u8]>,
    /// The last APP1 XMP segment's packet (Pillow keeps the last).
    xmp: Option<&'a [u8]>,
    /// Where the first scan header's length field is.
    first_scan: usize,
}

/// The tables a scan reads, as defined so far.
#[derive(Default, Clone)]
struct Tables {
    huffman: TableSpecs,
    quant: [Option<[i16; 64]>; 4],
    restart_interval: usize,
}

impl Tables {
    /// Take in a table-defining segment; false if `code` is not one.
    fn read(&mut self, code: u8, body: &[u8], at: usize) -> Result<bool, JpegError> {
        match code {
            markers::DHT => self.huffman.read_dht(body, at)?,
            markers::DQT => markers::read_dqt(body, &mut self.quant, at)?,
            markers::DRI => {
                let value = body
                    .get(..2)
                    .ok_or_else(|| JpegError::Invalid(format!("DRI segment at byte {at}: too short")))?;
                self.restart_interval = usize::from(u16::from_be_bytes([value[0], value[1]]));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What all the scans of a file hold.
struct Scans {
    /// Per component, whole stored blocks of 64 coefficients (natural order).
    coefficients: Vec<Vec<i16>>,
    /// Per component, its quantization table as it stood at the component's first scan (libjpeg
    /// latches it then); `None`: the component is in no scan.
    quant: Vec<Option<[i16; 64]>>,
    problem: Problem,
}

/// Decoded pixels: grey (1 sample a pixel) or RGB (3), row by row.
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub grey: bool,
    pub samples: Vec<u8>,
    /// The first damage in the entropy-coded data that decoding read past (see `scan`).
    pub problem: Option<String>,
}

impl<'a> Jpeg<'a> {
    /// Read the headers of `bytes` (which start with SOI) up to the first scan.
    pub fn read_header(bytes: &'a [u8]) -> Result<Jpeg<'a>, JpegError> {
        if !bytes.starts_with(&[0xff, markers::SOI]) {
            return Err(JpegError::Invalid("no start-of-image marker".into()));
        }
        let (mut tables, mut hints, mut frame, mut exif, mut xmp) =
            (Tables::default(), ColourHints::default(), None, None, None);
        let mut at = 2;
        loop {
            let (code, after) = markers::next_marker(bytes, at).ok_or(JpegError::Truncated)?;
            let marker_at = after - 2;
            if !markers::has_body(code) {
                if code == markers::EOI {
                    return Err(JpegError::Invalid(
                        "the file has no image data (no scan before its end)".into(),
                    ));
                }
                at = after;
                continue;
            }
            let (body, next) = markers::segment(bytes, after, code)?;
            match code {
                markers::SOS => {
                    let frame: Frame = frame.ok_or_else(|| {
                        JpegError::Invalid(format!("scan at byte {marker_at} before any frame header"))
                    })?;
                    let methods =
                        frame.components.iter().map(|c| Method::of(c, &frame)).collect::<Result<_, _>>()?;
                    let space = ColourSpace::guess(&frame, hints);
                    return Ok(Jpeg { bytes, frame, methods, tables, space, exif, xmp, first_scan: after });
                }
                code if markers::is_frame_header(code) => {
                    if frame.is_some() {
                        return Err(JpegError::Invalid(format!("a second frame header at byte {marker_at}")));
                    }
                    frame = Some(Frame::read(code, body, marker_at)?);
                }
                markers::APP1 if exif.is_none() && body.starts_with(b"Exif\0\0") => exif = Some(&body[6..]),
                markers::APP1 if body.starts_with(XMP_HEADER) => xmp = Some(&body[XMP_HEADER.len()..]),
                _ => {
                    if !tables.read(code, body, marker_at)? {
                        hints.note(code, body);
                    }
                }
            }
            at = next;
        }
    }

    pub fn width(&self) -> u32 {
        self.frame.width as u32
    }

    pub fn height(&self) -> u32 {
        self.frame.height as u32
    }

    pub fn exif(&self) -> Option<&'a [u8]> {
        self.exif
    }

    pub fn xmp(&self) -> Option<&'a [u8]> {
        self.xmp
    }

    /// Decode every scan, then the pixels.
    pub fn decode(self) -> Result<Decoded, JpegError> {
        let Scans { coefficients, quant, problem } = self.read_scans()?;
        let planes: Vec<Plane> = self
            .frame
            .components
            .iter()
            .zip(&coefficients)
            .zip(&quant)
            .map(|((component, coefficients), quant)| to_plane(component, coefficients, quant.as_ref()))
            .collect();
        Ok(Decoded {
            width: self.width(),
            height: self.height(),
            grey: self.space == ColourSpace::Grey,
            samples: self.pixels(&planes),
            problem: problem.0,
        })
    }

    fn read_scans(&self) -> Result<Scans, JpegError> {
        let frame = &self.frame;
        let mut coefficients: Vec<Vec<i16>> =
            frame.components.iter().map(|c| vec![0; c.stored_wide * c.stored_high * 64]).collect();
        let mut quant = vec![None; frame.components.len()];
        let (mut tables, mut problem) = (self.tables.clone(), Problem::default());
        let (mut at, mut number) = (Some(self.first_scan), 0);
        while let Some(header_at) = at {
            let (body, data) = markers::segment(self.bytes, header_at, markers::SOS)?;
            let header = ScanHeader::read(body, frame, header_at - 2)?;
            for component in &header.components {
                let c = &frame.components[component.index];
                if quant[component.index].is_none() {
                    quant[component.index] = Some(tables.quant[c.quant_slot].ok_or_else(|| {
                        JpegError::Invalid(format!(
                            "component {} uses quantization table {}, which no DQT segment defines",
                            c.id, c.quant_slot
                        ))
                    })?);
                }
            }
            number += 1;
            let scan = Scan { frame, header: &header, restart_interval: tables.restart_interval, number };
            let end = scan.decode(self.bytes, data, &tables.huffman, &mut coefficients, &mut problem)?;
            at = self.next_scan(end, &mut tables)?;
        }
        Ok(Scans { coefficients, quant, problem })
    }

    /// From the end of a scan's data at `at`, past any tables (taken into `tables`), to the next
    /// scan header's length field; `None` at the end of the image (EOI, or the file's end).
    fn next_scan(&self, mut at: usize, tables: &mut Tables) -> Result<Option<usize>, JpegError> {
        while let Some((code, after)) = markers::next_marker(self.bytes, at) {
            match code {
                markers::SOS => return Ok(Some(after)),
                markers::EOI => return Ok(None),
                code if !markers::has_body(code) => at = after,
                code => {
                    let (body, next) = markers::segment(self.bytes, after, code)?;
                    tables.read(code, body, after - 2)?;
                    at = next;
                }
            }
        }
        Ok(None)
    }

    /// Upsample and convert the planes, row by row.
    fn pixels(&self, planes: &[Plane]) -> Vec<u8> {
        let (width, channels) = (self.frame.width, self.space.channels());
        let mut rows = vec![vec![0u8; width]; planes.len()];
        let mut samples = vec![0u8; width * self.frame.height * channels];
        for (y, out) in samples.chunks_exact_mut(width * channels).enumerate() {
            for ((plane, &method), row) in planes.iter().zip(&self.methods).zip(&mut rows) {
                upsample_row(plane, method, y, row);
            }
            convert_row(self.space, &rows, out);
        }
        samples
    }
}

/// A component's samples: the inverse DCT of each block that holds image samples. A component no
/// scan covered has no table and stays mid-grey (all coefficients zero).
fn to_plane(component: &markers::Component, coefficients: &[i16], quant: Option<&[i16; 64]>) -> Plane {
    let stride = component.blocks_wide * 8;
    let mut samples = vec![128u8; stride * component.blocks_high * 8];
    if let Some(quant) = quant {
        for by in 0..component.blocks_high {
            for bx in 0..component.blocks_wide {
                let index = by * component.stored_wide + bx;
                let out = &mut samples[by * 8 * stride + bx * 8..];
                idct::idct_block(&coefficients[index * 64..index * 64 + 64], quant, out, stride);
            }
        }
    }
    Plane { samples, stride, width: component.width, height: component.height }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg")
    }

    fn decode(bytes: &[u8]) -> Decoded {
        Jpeg::read_header(bytes).and_then(Jpeg::decode).expect("decodes")
    }

    /// Every fixture against Pillow's `convert("RGB")` of it (tools/jpeg_fixtures.py), exactly.
    #[test]
    fn fixtures_decode_as_pillow_does() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 21, "{names:?}");
        for path in names {
            let decoded = decode(&std::fs::read(&path).unwrap());
            let want = image::open(path.with_extension("png")).unwrap().to_rgb8();
            assert_eq!((decoded.width, decoded.height), want.dimensions(), "{path:?}");
            let rgb: Vec<u8> = if decoded.grey {
                decoded.samples.iter().flat_map(|&v| [v, v, v]).collect()
            } else {
                decoded.samples
            };
            let differing = rgb.chunks(3).zip(want.as_raw().chunks(3)).filter(|(a, b)| a != b).count();
            assert_eq!(differing, 0, "{path:?}: {differing} pixels differ from Pillow's");
        }
    }

    #[test]
    fn damage_read_past_is_named() {
        let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
        assert_eq!(decode(&read("restart_53x37.jpg")).problem, None);
        assert_eq!(decode(&read("s420_prog_33x21.jpg")).problem, None);
        // tools/jpeg_fixtures.py renumbered the third restart marker (RST2) by 3.
        assert_eq!(
            decode(&read("restart_damaged_53x37.jpg")).problem.as_deref(),
            Some("scan 1: restart marker RST5 where RST2 was due")
        );
        // A progressive file whose first scan is cut in half, then closed.
        let bytes = read("s420_prog_33x21.jpg");
        let sos = bytes.windows(2).position(|w| w == [0xff, markers::SOS]).unwrap();
        let next = sos + 2 + bytes[sos + 2..].windows(2).position(|w| w[0] == 0xff && w[1] != 0).unwrap();
        let mut cut = bytes[..(sos + next) / 2].to_vec();
        cut.extend_from_slice(&[0xff, markers::EOI]);
        let problem = decode(&cut).problem.unwrap();
        assert!(problem.starts_with("scan 1: premature end of data in MCU "), "{problem}");
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        let bytes = std::fs::read(fixtures().join("s444_17x11.jpg")).unwrap();
        let sof = bytes.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        let mut arithmetic = bytes.clone();
        arithmetic[sof + 1] = 0xc9;
        assert_eq!(
            Jpeg::read_header(&arithmetic).err(),
            Some(JpegError::Unsupported("arithmetic-coded JPEG (SOF9–SOF11)".into()))
        );
        assert_eq!(Jpeg::read_header(&bytes[..sof + 6]).err(), Some(JpegError::Truncated));
    }
}
