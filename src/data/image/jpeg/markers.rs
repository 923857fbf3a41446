//! The marker segments of a JPEG file (ITU T.81 B.1): finding the next marker as libjpeg does
//! (bytes between segments are skipped), and reading the frame header (SOF), scan headers (SOS),
//! quantization tables (DQT) and the APP0/APP14 facts that decide the colour space.

use super::JpegError;

/// Zigzag order: the natural (row-major) position of the k-th coefficient of a block.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
    14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39,
    46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Marker codes (the byte after 0xff) that this decoder acts on.
pub const SOI: u8 = 0xd8;
pub const EOI: u8 = 0xd9;
pub const SOS: u8 = 0xda;
pub const DQT: u8 = 0xdb;
pub const DHT: u8 = 0xc4;
pub const DRI: u8 = 0xdd;
pub const APP0: u8 = 0xe0;
pub const APP1: u8 = 0xe1;
pub const APP14: u8 = 0xee;
pub const RST0: u8 = 0xd0;

/// The next marker at or after `at`: its code and the position just after it. Bytes before it
/// that are not a marker are skipped, and so is a run of 0xff fill bytes; `None` at the file's end.
pub fn next_marker(bytes: &[u8], mut at: usize) -> Option<(u8, usize)> {
    loop {
        while *bytes.get(at)? != 0xff {
            at += 1;
        }
        while *bytes.get(at)? == 0xff {
            at += 1;
        }
        let code = bytes[at];
        at += 1;
        if code != 0 {
            return Some((code, at));
        }
    }
}

/// Whether a marker starts a frame header (SOF0–SOF15, which share their codes with DHT, JPG and
/// DAC).
pub fn is_frame_header(code: u8) -> bool {
    (0xc0..=0xcf).contains(&code) && !matches!(code, DHT | 0xc8 | 0xcc)
}

/// Whether a marker has a length and a body (all but SOI, EOI, TEM and the restart markers).
pub fn has_body(code: u8) -> bool {
    !matches!(code, SOI | EOI | 0x01 | 0xd0..=0xd7)
}

/// The body of the segment whose length field is at `at`, and the position after it.
pub fn segment(bytes: &[u8], at: usize, code: u8) -> Result<(&[u8], usize), JpegError> {
    let length = bytes.get(at..at + 2).ok_or(JpegError::Truncated)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    if length < 2 {
        return Err(JpegError::Invalid(format!("marker 0x{code:02x} at byte {}: length {length}", at - 2)));
    }
    let body = bytes.get(at + 2..at + length).ok_or(JpegError::Truncated)?;
    Ok((body, at + length))
}

/// How the frame's scans are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Sequential DCT with Huffman coding (SOF0 baseline, SOF1 extended).
    Sequential,
    /// Progressive DCT with Huffman coding (SOF2).
    Progressive,
}

/// One component of the frame.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: u8,
    /// Sampling factors, 1..=4.
    pub h: usize,
    pub v: usize,
    /// Quantization table slot, 0..=3.
    pub quant_slot: usize,
    /// Samples across and down (the image size scaled by the sampling factors, rounded up).
    pub width: usize,
    pub height: usize,
    /// Blocks holding samples, across and down.
    pub blocks_wide: usize,
    pub blocks_high: usize,
    /// Blocks stored, across and down: whole MCUs of an interleaved scan.
    pub stored_wide: usize,
    pub stored_high: usize,
}

/// The frame header: image size, coding and components.
#[derive(Debug, Clone)]
pub struct Frame {
    pub coding: Coding,
    pub width: usize,
    pub height: usize,
    pub components: Vec<Component>,
    pub h_max: usize,
    pub v_max: usize,
    /// MCUs of an interleaved scan, across and down.
    pub mcus_wide: usize,
    pub mcus_high: usize,
}

impl Frame {
    /// Read an SOF segment's body (`code`: the marker, `at`: the marker's position).
    pub fn read(code: u8, body: &[u8], at: usize) -> Result<Frame, JpegError> {
        let coding = match code {
            0xc0 | 0xc1 => Coding::Sequential,
            0xc2 => Coding::Progressive,
            0xc9..=0xcb => {
                return Err(JpegError::Unsupported("arithmetic-coded JPEG (SOF9–SOF11)".into()));
            }
            0xc3 => return Err(JpegError::Unsupported("lossless JPEG (SOF3)".into())),
            _ => return Err(JpegError::Unsupported(format!("hierarchical JPEG (marker 0x{code:02x})"))),
        };
        let bad = |what: String| JpegError::Invalid(format!("frame header (SOF) at byte {at}: {what}"));
        if body.len() < 6 {
            return Err(bad(format!("{} bytes long", body.len())));
        }
        if body[0] != 8 {
            return Err(JpegError::Unsupported(format!("{}-bit samples (8-bit only, as Pillow)", body[0])));
        }
        let height = usize::from(u16::from_be_bytes([body[1], body[2]]));
        let width = usize::from(u16::from_be_bytes([body[3], body[4]]));
        if width == 0 || height == 0 {
            return Err(bad(format!("image size {width}×{height}")));
        }
        let count = usize::from(body[5]);
        if ![1, 3, 4].contains(&count) {
            return Err(JpegError::Unsupported(format!("{count} components (1, 3 or 4, as Pillow)")));
        }
        if body.len() != 6 + 3 * count {
            return Err(bad(format!("{} bytes long for {count} components", body.len())));
        }
        let mut factors = Vec::with_capacity(count);
        for c in body[6..].chunks_exact(3) {
            let (h, v, quant_slot) = (usize::from(c[1] >> 4), usize::from(c[1] & 15), usize::from(c[2]));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(bad(format!("component {} has sampling factors {h}×{v} (1 to 4)", c[0])));
            }
            if quant_slot > 3 {
                return Err(bad(format!("component {} uses quantization table {quant_slot}", c[0])));
            }
            factors.push((c[0], h, v, quant_slot));
        }
        let h_max = factors.iter().map(|f| f.1).max().expect("1 component at least");
        let v_max = factors.iter().map(|f| f.2).max().expect("1 component at least");
        let mcus_wide = width.div_ceil(8 * h_max);
        let mcus_high = height.div_ceil(8 * v_max);
        let components = factors
            .into_iter()
            .map(|(id, h, v, quant_slot)| {
                let (width, height) = ((width * h).div_ceil(h_max), (height * v).div_ceil(v_max));
                Component {
                    id,
                    h,
                    v,
                    quant_slot,
                    width,
                    height,
                    blocks_wide: width.div_ceil(8),
                    blocks_high: height.div_ceil(8),
                    stored_wide: mcus_wide * h,
                    stored_high: mcus_high * v,
                }
            })
            .collect();
        Ok(Frame { coding, width, height, components, h_max, v_max, mcus_wide, mcus_high })
    }
}

/// One component of a scan: its index in the frame and its Huffman table slots.
#[derive(Debug, Clone, Copy)]
pub struct ScanComponent {
    pub index: usize,
    pub dc_slot: usize,
    pub ac_slot: usize,
}

/// A scan header (SOS).
#[derive(Debug, Clone)]
pub struct ScanHeader {
    pub components: Vec<ScanComponent>,
    /// Spectral selection (first and last coefficient, zigzag order) and successive
    /// approximation (previous and current point transform).
    pub ss: usize,
    pub se: usize,
    pub ah: u32,
    pub al: u32,
}

impl ScanHeader {
    pub fn read(body: &[u8], frame: &Frame, at: usize) -> Result<ScanHeader, JpegError> {
        let bad = |what: String| JpegError::Invalid(format!("scan header (SOS) at byte {at}: {what}"));
        let count = usize::from(*body.first().ok_or_else(|| bad("empty".into()))?);
        if count == 0 || count > 4 || body.len() != 4 + 2 * count {
            return Err(bad(format!("{} bytes long for {count} components", body.len())));
        }
        let mut components: Vec<ScanComponent> = Vec::with_capacity(count);
        for c in body[1..1 + 2 * count].chunks_exact(2) {
            let index = frame
                .components
                .iter()
                .position(|k| k.id == c[0])
                .ok_or_else(|| bad(format!("component {} is not in the frame", c[0])))?;
            if components.iter().any(|k| k.index == index) {
                return Err(bad(format!("component {} twice", c[0])));
            }
            let (dc_slot, ac_slot) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
            if dc_slot > 3 || ac_slot > 3 {
                return Err(bad(format!("Huffman table slots {dc_slot}/{ac_slot} (0 to 3)")));
            }
            components.push(ScanComponent { index, dc_slot, ac_slot });
        }
        let tail = &body[1 + 2 * count..];
        let (ss, se) = (usize::from(tail[0]), usize::from(tail[1]));
        let (ah, al) = (u32::from(tail[2] >> 4), u32::from(tail[2] & 15));
        if count > 1 {
            let blocks: usize =
                components.iter().map(|k| frame.components[k.index].h * frame.components[k.index].v).sum();
            if blocks > 10 {
                return Err(bad(format!("{blocks} blocks per MCU (at most 10)")));
            }
        }
        if frame.coding == Coding::Progressive {
            // libjpeg's checks (jdphuff.c): a DC scan holds only coefficient 0; an AC scan one
            // component and a band within 1..=63; a refinement lowers the point transform by one.
            let band_ok = if ss == 0 { se == 0 } else { ss <= se && se <= 63 && count == 1 };
            if !band_ok || (ah != 0 && al != ah - 1) || al > 13 {
                return Err(bad(format!("invalid progressive parameters Ss={ss} Se={se} Ah={ah} Al={al}")));
            }
        }
        Ok(ScanHeader { components, ss, se, ah, al })
    }
}

/// Read one DQT segment into the four table slots (natural order). As libjpeg does, a table cut
/// short is filled with 1s, and values are kept as the 16-bit signed multipliers that
/// libjpeg-turbo's SIMD builds (Pillow's) use.
pub fn read_dqt(body: &[u8], tables: &mut [Option<[i16; 64]>; 4], at: usize) -> Result<(), JpegError> {
    let mut rest = body;
    while !rest.is_empty() {
        let (precision, slot) = (rest[0] >> 4, usize::from(rest[0] & 15));
        if precision > 1 || slot > 3 {
            return Err(JpegError::Invalid(format!(
                "DQT segment at byte {at}: precision {precision}, slot {slot} (0 or 1, 0 to 3)"
            )));
        }
        let width = usize::from(precision) + 1;
        let values = &rest[1..];
        let n = (values.len() / width).min(64);
        let mut table = [1i16; 64];
        for (k, value) in values.chunks_exact(width).take(n).enumerate() {
            let value =
                if width == 1 { u16::from(value[0]) } else { u16::from_be_bytes([value[0], value[1]]) };
            table[ZIGZAG[k]] = value as i16;
        }
        tables[slot] = Some(table);
        rest = &values[(n * width).min(values.len())..];
        if n < 64 {
            break;
        }
    }
    Ok(())
}

/// What the APP0 (JFIF) and APP14 (Adobe) segments say about the colour space.
#[derive(Debug, Default, Clone, Copy)]
pub struct ColourHints {
    pub jfif: bool,
    /// The Adobe segment's transform flag, if the segment is there and long enough.
    pub adobe_transform: Option<u8>,
}

impl ColourHints {
    /// Note an APPn segment's body (libjpeg's `examine_app0`/`examine_app14`).
    pub fn note(&mut self, code: u8, body: &[u8]) {
        if code == APP0 && body.len() >= 14 && body.starts_with(b"JFIF\0") {
            self.jfif = true;
        }
        if code == APP14 && body.len() >= 12 && body.starts_with(b"Adobe") {
            self.adobe_transform = Some(body[11]);
        }
    }
}
