//! One scan's entropy-coded data into the frame's DCT coefficients: sequential (baseline) scans
//! and the four kinds of progressive scan (DC first and refinement, AC first and refinement; ITU
//! T.81 F.2 and G.1.2), with restart markers.
//!
//! Damaged data is read past the way libjpeg (and so Pillow) reads it: where the data runs out,
//! the rest of the MCU is decoded from zero bits and the MCUs after it, up to the next restart
//! marker, are left as they are; an unknown code is symbol 0; a restart marker out of order is
//! resynchronised on with libjpeg's rules (`jpeg_resync_to_restart`). The first such place is
//! kept as a `Problem`, for `gacha check`: the same checks libjpeg warns about, plus a block that
//! runs past its last coefficient and data bytes left over before a marker.

use super::huffman::{BitReader, Class, Huffman, TableSpecs};
use super::markers::{Coding, Frame, ScanHeader, RST0, ZIGZAG};
use super::JpegError;

/// Where `ZIGZAG` is looked up with a position past 63 (a damaged run), libjpeg's table gives
/// coefficient 63.
fn natural(k: usize) -> usize {
    ZIGZAG[k.min(63)]
}

/// What a scan decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

/// A place where the data is damaged, first found only.
#[derive(Default)]
pub struct Problem(pub Option<String>);

impl Problem {
    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.0.is_none() {
            self.0 = Some(what());
        }
    }
}

/// What went wrong in one block, for `Problem`.
#[derive(Default, Clone, Copy)]
struct BlockFaults {
    bad_code: bool,
    /// The coefficient past which a run went (63, or the band's end in a progressive scan).
    past: Option<usize>,
}

/// The Huffman tables one scan uses, by slot.
struct Tables {
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
}

impl Tables {
    fn build(specs: &TableSpecs, header: &ScanHeader, kind: Kind) -> Result<Tables, JpegError> {
        let mut tables = Tables { dc: Default::default(), ac: Default::default() };
        let needs_dc = matches!(kind, Kind::Sequential | Kind::DcFirst);
        let needs_ac = matches!(kind, Kind::Sequential | Kind::AcFirst | Kind::AcRefine);
        for component in &header.components {
            if needs_dc {
                tables.dc[component.dc_slot] = Some(specs.build(Class::Dc, component.dc_slot)?);
            }
            if needs_ac {
                tables.ac[component.ac_slot] = Some(specs.build(Class::Ac, component.ac_slot)?);
            }
        }
        Ok(tables)
    }

    /// A table `build` made for the scan.
    fn get(tables: &[Option<Huffman>; 4], slot: usize) -> &Huffman {
        tables[slot].as_ref().expect("built for each component of the scan")
    }
}

/// Everything one scan needs.
pub struct Scan<'a> {
    pub frame: &'a Frame,
    pub header: &'a ScanHeader,
    /// MCUs per restart interval; 0: no restart markers.
    pub restart_interval: usize,
    /// Counted from 1, for messages.
    pub number: usize,
}

impl Scan<'_> {
    /// Decode the scan whose data starts at `start` into `coefficients` (per component, whole
    /// stored blocks of 64, natural order). Returns where the data ends: the position of the
    /// marker after it (or the file's end).
    pub fn decode(
        &self,
        bytes: &[u8],
        start: usize,
        specs: &TableSpecs,
        coefficients: &mut [Vec<i16>],
        problem: &mut Problem,
    ) -> Result<usize, JpegError> {
        let header = self.header;
        let kind = match (self.frame.coding, header.ss, header.ah) {
            (Coding::Sequential, _, _) => Kind::Sequential,
            (Coding::Progressive, 0, 0) => Kind::DcFirst,
            (Coding::Progressive, 0, _) => Kind::DcRefine,
            (Coding::Progressive, _, 0) => Kind::AcFirst,
            (Coding::Progressive, _, _) => Kind::AcRefine,
        };
        let tables = Tables::build(specs, header, kind)?;
        let mcus = self.mcu_count();
        let at_mcu =
            |mcu: usize, what: &str| format!("scan {}: {what} in MCU {} of {mcus}", self.number, mcu + 1);
        let mut bits = BitReader::new(bytes, start);
        let mut state = State::default();
        // libjpeg's `insufficient_data`: the data of this restart interval has run out.
        let mut ran_out = false;
        let mut expected_restart = 0u8;
        for mcu in 0..mcus {
            if self.restart_interval > 0 && mcu > 0 && mcu % self.restart_interval == 0 {
                self.end_interval(&mut bits, mcu, mcus, problem);
                if let Some((code, _)) = bits.marker().filter(|&(code, _)| is_restart(code)) {
                    if code != RST0 + expected_restart {
                        problem.note(|| {
                            let (number, found, due) = (self.number, code - RST0, expected_restart);
                            format!("scan {number}: restart marker RST{found} where RST{due} was due")
                        });
                    }
                }
                if resync(&mut bits, expected_restart) {
                    ran_out = false;
                }
                expected_restart = (expected_restart + 1) % 8;
                state = State::default();
            }
            if ran_out {
                continue;
            }
            let faults = self.decode_mcu(mcu, kind, &tables, &mut bits, &mut state, coefficients);
            if bits.take_overrun() {
                ran_out = true;
                problem.note(|| at_mcu(mcu, "premature end of data"));
            }
            if faults.bad_code {
                problem.note(|| at_mcu(mcu, "bad Huffman code"));
            }
            if let Some(last) = faults.past {
                problem.note(|| at_mcu(mcu, &format!("block runs past coefficient {last}")));
            }
        }
        self.end_interval(&mut bits, mcus, mcus, problem);
        let (code, end) = bits.marker().unwrap_or((0, bytes.len()));
        if is_restart(code) {
            problem.note(|| format!("scan {}: data continues past all {mcus} MCUs", self.number));
        }
        Ok(end)
    }

    /// After the MCUs of a restart interval (`mcu` of `mcus` decoded): skip to the marker that
    /// ends it, noting data left unread.
    fn end_interval(&self, bits: &mut BitReader, mcu: usize, mcus: usize, problem: &mut Problem) {
        let unused = bits.skip_to_marker();
        if unused > 0 {
            let interval = if self.restart_interval > 0 { mcu.div_ceil(self.restart_interval) } else { 1 };
            problem.note(|| {
                let number = self.number;
                format!(
                    "scan {number}: {unused} extraneous bytes after MCU {mcu} of {mcus} (restart interval \
                     {interval})"
                )
            });
        }
    }

    /// MCUs in the scan: whole MCUs of the frame when interleaved, else the component's blocks.
    fn mcu_count(&self) -> usize {
        match self.header.components.as_slice() {
            [only] => {
                let c = &self.frame.components[only.index];
                c.blocks_wide * c.blocks_high
            }
            _ => self.frame.mcus_wide * self.frame.mcus_high,
        }
    }

    fn decode_mcu(
        &self,
        mcu: usize,
        kind: Kind,
        tables: &Tables,
        bits: &mut BitReader,
        state: &mut State,
        coefficients: &mut [Vec<i16>],
    ) -> BlockFaults {
        let mut faults = BlockFaults::default();
        let interleaved = self.header.components.len() > 1;
        for (slot, sc) in self.header.components.iter().enumerate() {
            let c = &self.frame.components[sc.index];
            let (blocks_h, blocks_v) = if interleaved { (c.h, c.v) } else { (1, 1) };
            let (origin_x, origin_y) = if interleaved {
                (mcu % self.frame.mcus_wide * c.h, mcu / self.frame.mcus_wide * c.v)
            } else {
                (mcu % c.blocks_wide, mcu / c.blocks_wide)
            };
            for by in 0..blocks_v {
                for bx in 0..blocks_h {
                    let index = (origin_y + by) * c.stored_wide + origin_x + bx;
                    let block = &mut coefficients[sc.index][index * 64..index * 64 + 64];
                    let dc = || Tables::get(&tables.dc, sc.dc_slot);
                    let ac = || Tables::get(&tables.ac, sc.ac_slot);
                    let prediction = &mut state.predictions[slot];
                    let h = self.header;
                    let band = |table| Band { table, first: h.ss, last: h.se, shift: h.al };
                    let block_faults = match kind {
                        Kind::Sequential => sequential(bits, dc(), ac(), prediction, block),
                        Kind::DcFirst => dc_first(bits, dc(), prediction, block, h.al),
                        Kind::DcRefine => {
                            if bits.bits(1) != 0 {
                                block[0] |= 1 << h.al;
                            }
                            BlockFaults::default()
                        }
                        Kind::AcFirst => ac_first(bits, &band(ac()), &mut state.eob_run, block),
                        Kind::AcRefine => ac_refine(bits, &band(ac()), &mut state.eob_run, block),
                    };
                    faults.bad_code |= block_faults.bad_code;
                    faults.past = faults.past.or(block_faults.past);
                }
            }
        }
        faults
    }
}

/// The coefficients a progressive AC scan codes (zigzag positions `first..=last`, scaled up by
/// `shift` bits) and its table.
struct Band<'t> {
    table: &'t Huffman,
    first: usize,
    last: usize,
    shift: u32,
}

/// What carries from one MCU to the next within a restart interval.
#[derive(Default)]
struct State {
    /// DC predictions per scan component.
    predictions: [i32; 4],
    /// Blocks left in an end-of-band run (progressive AC scans).
    eob_run: u32,
}

fn is_restart(code: u8) -> bool {
    (RST0..RST0 + 8).contains(&code)
}

/// After the MCUs of a restart interval, at the marker that ends it: go on as libjpeg's
/// `read_restart_marker` and `jpeg_resync_to_restart` do. True when reading goes on after a
/// restart marker; false when it stays before a marker (the next interval then reads as empty).
fn resync(bits: &mut BitReader, expected: u8) -> bool {
    loop {
        let Some((code, _)) = bits.marker() else { return false };
        let distance = code.wrapping_sub(RST0 + expected) & 7;
        let scan_on = if code < 0xc0 {
            true // not a valid marker
        } else if !is_restart(code) {
            return false; // some other marker: the scan is over
        } else {
            match distance {
                1 | 2 => return false, // one of the next two restarts: this interval is missing
                6 | 7 => true,         // an earlier restart: look further
                _ => false,            // the one due, or one too far off to judge
            }
        };
        bits.resume_after_marker();
        if !scan_on {
            return true;
        }
        bits.skip_to_marker();
    }
}

fn sequential(
    bits: &mut BitReader,
    dc: &Huffman,
    ac: &Huffman,
    prediction: &mut i32,
    block: &mut [i16],
) -> BlockFaults {
    let mut faults = dc_first(bits, dc, prediction, block, 0);
    let mut k = 1;
    while k < 64 {
        let (symbol, known) = ac.decode(bits);
        faults.bad_code |= !known;
        let (run, size) = (usize::from(symbol >> 4), u32::from(symbol & 15));
        if size == 0 {
            if run != 15 {
                break;
            }
            k += 16;
            continue;
        }
        k += run;
        if k > 63 {
            faults.past = Some(63);
        }
        block[natural(k)] = bits.extended(size) as i16;
        k += 1;
    }
    if k > 64 {
        faults.past = Some(63);
    }
    faults
}

/// A DC difference added to the prediction; the coefficient scaled by the point transform.
fn dc_first(
    bits: &mut BitReader,
    dc: &Huffman,
    prediction: &mut i32,
    block: &mut [i16],
    al: u32,
) -> BlockFaults {
    let (size, known) = dc.decode(bits);
    // 8-bit samples have DC differences of at most 11 bits.
    let bad_code = !known || size > 11;
    *prediction = prediction.wrapping_add(bits.extended(u32::from(size)));
    block[0] = prediction.wrapping_shl(al) as i16;
    BlockFaults { bad_code, past: None }
}

fn ac_first(bits: &mut BitReader, band: &Band, eob_run: &mut u32, block: &mut [i16]) -> BlockFaults {
    let mut faults = BlockFaults::default();
    if *eob_run > 0 {
        *eob_run -= 1;
        return faults;
    }
    let mut k = band.first;
    while k <= band.last {
        let (symbol, known) = band.table.decode(bits);
        faults.bad_code |= !known;
        let (run, size) = (u32::from(symbol >> 4), u32::from(symbol & 15));
        if size != 0 {
            k += run as usize;
            if k > band.last {
                faults.past = Some(band.last);
            }
            block[natural(k)] = bits.extended(size).wrapping_shl(band.shift) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            *eob_run = (1 << run) + bits.bits(run) as u32 - 1;
            break;
        }
        k += 1;
    }
    faults
}

/// A correction bit for each coefficient already nonzero, and new coefficients of ±1 (scaled).
fn ac_refine(bits: &mut BitReader, band: &Band, eob_run: &mut u32, block: &mut [i16]) -> BlockFaults {
    let mut faults = BlockFaults::default();
    let (plus, minus) = (1i16 << band.shift, (-1i16) << band.shift);
    let refine = |bits: &mut BitReader, coefficient: &mut i16| {
        if bits.bits(1) != 0 && *coefficient & plus == 0 {
            *coefficient = coefficient.wrapping_add(if *coefficient >= 0 { plus } else { minus });
        }
    };
    let mut k = band.first;
    if *eob_run == 0 {
        while k <= band.last {
            let (symbol, known) = band.table.decode(bits);
            faults.bad_code |= !known;
            let (mut run, size) = (i32::from(symbol >> 4), symbol & 15);
            let mut value = 0;
            if size != 0 {
                // A new coefficient is always ±1 at this bit.
                faults.bad_code |= size != 1;
                value = if bits.bits(1) != 0 { plus } else { minus };
            } else if run != 15 {
                *eob_run = (1 << run) + bits.bits(run as u32) as u32;
                break;
            }
            // Skip `run` zero coefficients, refining the nonzero ones passed on the way.
            loop {
                let coefficient = &mut block[natural(k)];
                if *coefficient != 0 {
                    refine(bits, coefficient);
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
                if k > band.last {
                    break;
                }
            }
            if value != 0 {
                if k > band.last {
                    faults.past = Some(band.last);
                }
                block[natural(k)] = value;
            }
            k += 1;
        }
    }
    if *eob_run > 0 {
        while k <= band.last {
            let coefficient = &mut block[natural(k)];
            if *coefficient != 0 {
                refine(bits, coefficient);
            }
            k += 1;
        }
        *eob_run -= 1;
    }
    faults
}
