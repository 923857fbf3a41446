//! A strict look at a JPEG's entropy-coded data, for `gacha check`. The `image` crate runs
//! zune-jpeg leniently, and even zune-jpeg's strict mode pads a scan that stops early with zeros
//! and reads garbage as coefficients without a word; training sees whatever comes out. libjpeg
//! (PIL, transformers) warns in those places. So baseline (sequential Huffman) scans are walked
//! here code by code, as libjpeg does: every Huffman code must exist in its table, every block
//! must end by coefficient 63, and each scan (each restart interval) must hold exactly its MCUs,
//! with restart markers in order. Progressive and arithmetic-coded files get zune-jpeg's strict
//! decode only.

use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;

/// The first coding error in `bytes` that the lenient decoder reads past, if any.
pub fn coding_error(bytes: &[u8]) -> Option<String> {
    let options =
        DecoderOptions::default().set_strict_mode(true).set_max_width(usize::MAX).set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    // zune-jpeg prints its messages with `{:?}`, so they arrive quoted.
    if let Err(err) = decoder.decode() {
        return Some(err.to_string().trim_matches('"').to_string());
    }
    walk_baseline(bytes).err()
}

/// A Huffman table in libjpeg's canonical form: codes of each length are consecutive.
struct Huffman {
    maxcode: [i32; 17],
    mincode: [i32; 17],
    valptr: [usize; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Huffman {
        let mut table =
            Huffman { maxcode: [-1; 17], mincode: [0; 17], valptr: [0; 17], values: values.to_vec() };
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16 {
            let n = usize::from(counts[len - 1]);
            table.valptr[len] = k;
            table.mincode[len] = code;
            code += n as i32;
            k += n;
            if n > 0 {
                table.maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        table
    }

    fn decode(&self, bits: &mut Bits) -> Result<u8, Stop> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | bits.bit()?;
            if code <= self.maxcode[len] {
                let index = self.valptr[len] + (code - self.mincode[len]) as usize;
                return self.values.get(index).copied().ok_or(Stop::BadCode);
            }
        }
        Err(Stop::BadCode)
    }
}

/// Why a block could not be read.
enum Stop {
    /// The data ran out (libjpeg: "premature end of data segment").
    End,
    BadCode,
    PastCoefficient63,
}

/// The bits of one restart interval, 0xff 0x00 already unstuffed.
struct Bits {
    bytes: Vec<u8>,
    at: usize,
}

impl Bits {
    fn bit(&mut self) -> Result<i32, Stop> {
        let byte = *self.bytes.get(self.at / 8).ok_or(Stop::End)?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Ok(i32::from(bit))
    }

    fn skip(&mut self, n: u8) -> Result<(), Stop> {
        self.at += usize::from(n);
        if self.at > self.bytes.len() * 8 {
            return Err(Stop::End);
        }
        Ok(())
    }
}

/// One component of the frame: sampling factors.
#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
}

fn walk_baseline(bytes: &[u8]) -> Result<(), String> {
    let mut tables: [Option<Huffman>; 8] = Default::default();
    let (mut components, mut width, mut height, mut restart) = (Vec::new(), 0usize, 0usize, 0usize);
    let mut at = 2;
    let mut scan = 0;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xff {
            return Ok(()); // zune-jpeg's strict mode has judged what lies between segments.
        }
        let marker = bytes[at + 1];
        if marker == 0xff {
            at += 1;
            continue;
        }
        if marker == 0xd9 {
            return Ok(());
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let Some(body) = bytes.get(at + 4..at + 2 + length) else { return Ok(()) };
        match marker {
            0xc0 | 0xc1 if body.len() >= 6 => {
                height = usize::from(u16::from_be_bytes([body[1], body[2]]));
                width = usize::from(u16::from_be_bytes([body[3], body[4]]));
                components = body[6..]
                    .chunks_exact(3)
                    .map(|c| Component { id: c[0], h: usize::from(c[1] >> 4), v: usize::from(c[1] & 15) })
                    .collect();
            }
            // Progressive, lossless, hierarchical or arithmetic: not walked here.
            0xc2 | 0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => return Ok(()),
            0xc4 => {
                let mut rest = body;
                while rest.len() >= 17 {
                    let n: usize = rest[1..17].iter().map(|&c| usize::from(c)).sum();
                    let Some(values) = rest.get(17..17 + n) else { break };
                    let slot = usize::from(rest[0] >> 4 & 1) * 4 + usize::from(rest[0] & 3);
                    tables[slot] = Some(Huffman::new(&rest[1..17], values));
                    rest = &rest[17 + n..];
                }
            }
            0xdd if body.len() >= 2 => restart = usize::from(u16::from_be_bytes([body[0], body[1]])),
            0xda => {
                scan += 1;
                let data_start = at + 2 + length;
                let data_end = entropy_end(bytes, data_start);
                let in_scan: Vec<(Component, usize, usize)> = body
                    .get(1..1 + 2 * usize::from(body[0]))
                    .unwrap_or_default()
                    .chunks_exact(2)
                    .filter_map(|c| {
                        let component = *components.iter().find(|k| k.id == c[0])?;
                        Some((component, usize::from(c[1] >> 4), 4 + usize::from(c[1] & 3)))
                    })
                    .collect();
                let geometry = ScanGeometry::new(&components, &in_scan, width, height);
                walk_scan(&bytes[data_start..data_end], &tables, &in_scan, &geometry, restart)
                    .map_err(|message| format!("scan {scan}: {message}"))?;
                at = data_end;
                continue;
            }
            _ => {}
        }
        at += 2 + length;
    }
    Ok(())
}

/// Where a scan's entropy-coded data ends: at the first marker that is not a restart marker.
fn entropy_end(bytes: &[u8], mut at: usize) -> usize {
    while at + 1 < bytes.len() {
        if bytes[at] == 0xff && bytes[at + 1] != 0 && !(0xd0..=0xd7).contains(&bytes[at + 1]) {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

/// How many MCUs a scan holds and how many blocks of each of its components make one.
struct ScanGeometry {
    mcus: usize,
    blocks_per_mcu: Vec<usize>,
}

impl ScanGeometry {
    fn new(all: &[Component], in_scan: &[(Component, usize, usize)], width: usize, height: usize) -> Self {
        let hmax = all.iter().map(|c| c.h).max().unwrap_or(1).max(1);
        let vmax = all.iter().map(|c| c.v).max().unwrap_or(1).max(1);
        if let [(only, _, _)] = in_scan {
            // Non-interleaved: one block per MCU over the component's own size.
            let w = (width * only.h).div_ceil(hmax);
            let h = (height * only.v).div_ceil(vmax);
            ScanGeometry { mcus: w.div_ceil(8) * h.div_ceil(8), blocks_per_mcu: vec![1] }
        } else {
            ScanGeometry {
                mcus: width.div_ceil(8 * hmax) * height.div_ceil(8 * vmax),
                blocks_per_mcu: in_scan.iter().map(|(c, _, _)| c.h * c.v).collect(),
            }
        }
    }
}

fn walk_scan(
    data: &[u8],
    tables: &[Option<Huffman>; 8],
    in_scan: &[(Component, usize, usize)],
    geometry: &ScanGeometry,
    restart: usize,
) -> Result<(), String> {
    let per_interval = if restart > 0 { restart } else { geometry.mcus };
    let mut intervals = split_restarts(data)?;
    let count = intervals.len();
    let mut mcu = 0;
    for (index, bits) in intervals.iter_mut().enumerate() {
        let last = (mcu + per_interval).min(geometry.mcus);
        while mcu < last {
            for ((_, dc, ac), &blocks) in in_scan.iter().zip(&geometry.blocks_per_mcu) {
                let (Some(dc), Some(ac)) = (&tables[*dc], &tables[*ac]) else {
                    return Err("a Huffman table it uses is not defined".into());
                };
                for _ in 0..blocks {
                    block(bits, dc, ac).map_err(|stop| stop_message(stop, mcu, geometry.mcus))?;
                }
            }
            mcu += 1;
        }
        let left = bits.bytes.len() * 8 - bits.at.min(bits.bytes.len() * 8);
        if left >= 8 {
            return Err(format!(
                "{} extraneous bytes after MCU {mcu} of {} (restart interval {})",
                left / 8,
                geometry.mcus,
                index + 1
            ));
        }
        if mcu == geometry.mcus && index + 1 < count {
            return Err(format!("data continues past all {} MCUs", geometry.mcus));
        }
    }
    if mcu < geometry.mcus {
        return Err(stop_message(Stop::End, mcu, geometry.mcus));
    }
    Ok(())
}

fn stop_message(stop: Stop, mcu: usize, mcus: usize) -> String {
    let what = match stop {
        Stop::End => "premature end of data",
        Stop::BadCode => "bad Huffman code",
        Stop::PastCoefficient63 => "block runs past coefficient 63",
    };
    format!("{what} in MCU {} of {mcus}", mcu + 1)
}

/// One 8×8 block: a DC difference, then AC run/size codes up to end-of-block or coefficient 63.
fn block(bits: &mut Bits, dc: &Huffman, ac: &Huffman) -> Result<(), Stop> {
    let size = dc.decode(bits)?;
    if size > 11 {
        return Err(Stop::BadCode);
    }
    bits.skip(size)?;
    let mut k = 1;
    while k < 64 {
        let rs = ac.decode(bits)?;
        let (run, size) = (usize::from(rs >> 4), rs & 15);
        if size == 0 {
            if run != 15 {
                return Ok(());
            }
            k += 16;
            continue;
        }
        k += run;
        if k > 63 {
            return Err(Stop::PastCoefficient63);
        }
        bits.skip(size)?;
        k += 1;
    }
    if k > 64 {
        return Err(Stop::PastCoefficient63);
    }
    Ok(())
}

/// The scan's data cut at its restart markers (which must count 0..7 in turn), unstuffed.
fn split_restarts(data: &[u8]) -> Result<Vec<Bits>, String> {
    let mut intervals = vec![Bits { bytes: Vec::new(), at: 0 }];
    let mut expected = 0xd0;
    let mut at = 0;
    while at < data.len() {
        let byte = data[at];
        if byte == 0xff && at + 1 < data.len() {
            let next = data[at + 1];
            if next == 0 {
                intervals.last_mut().expect("one interval at least").bytes.push(0xff);
            } else if next == expected {
                expected = 0xd0 + (expected - 0xd0 + 1) % 8;
                intervals.push(Bits { bytes: Vec::new(), at: 0 });
            } else {
                return Err(format!(
                    "restart marker RST{} where RST{} was due",
                    next - 0xd0,
                    expected - 0xd0
                ));
            }
            at += 2;
            continue;
        }
        intervals.last_mut().expect("one interval at least").bytes.push(byte);
        at += 1;
    }
    Ok(intervals)
}
