//! Reading entropy-coded data: a bit reader over a scan's bytes (0xff 0x00 unstuffed, stopping at
//! the next marker) and canonical Huffman tables (ITU T.81 Annex C and F.2.2.3). Where the data
//! runs out, the reader goes on with zero bits and remembers it, as libjpeg does ("premature end of
//! data segment"); a bit pattern that is no code decodes as symbol 0 after 17 bits, as libjpeg's
//! `jpeg_huff_decode` does.

use super::JpegError;

/// Codes up to this many bits are found with one table look-up.
const LOOKUP_BITS: u32 = 9;

/// Which coefficients a table codes: DC differences (symbols are bit counts, at most 15) or AC
/// run/size pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Dc,
    Ac,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Class::Dc => "DC",
            Class::Ac => "AC",
        })
    }
}

/// One Huffman table, ready to decode.
pub struct Huffman {
    /// For each `LOOKUP_BITS`-bit prefix: code length << 8 | symbol; 0 when the code is longer.
    lookup: Vec<u16>,
    /// Per code length 1..=16 (index 0 unused): the largest code of that length, −1 if none.
    max_code: [i32; 17],
    /// Per code length: the first code of that length and the index of its symbol.
    first_code: [i32; 17],
    first_index: [usize; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    /// The table whose code counts per length 1..=16 are `counts` and whose symbols are `symbols`
    /// (a DHT segment's entry).
    pub fn new(counts: &[u8; 16], symbols: &[u8], class: Class) -> Result<Huffman, String> {
        if class == Class::Dc {
            if let Some(bad) = symbols.iter().find(|&&s| s > 15) {
                return Err(format!("DC Huffman table has symbol {bad} (at most 15)"));
            }
        }
        let mut table = Huffman {
            lookup: vec![0; 1 << LOOKUP_BITS],
            max_code: [-1; 17],
            first_code: [0; 17],
            first_index: [0; 17],
            symbols: symbols.to_vec(),
        };
        let (mut code, mut index) = (0i32, 0usize);
        for length in 1..=16 {
            let n = usize::from(counts[length - 1]);
            // Every code of this length must fit in `length` bits.
            if code + n as i32 > 1 << length {
                return Err("Huffman table has more codes than its lengths allow".into());
            }
            table.first_code[length] = code;
            table.first_index[length] = index;
            for k in 0..n {
                let symbol = symbols[index + k];
                if length <= LOOKUP_BITS as usize {
                    let shift = LOOKUP_BITS as usize - length;
                    let start = ((code as usize) + k) << shift;
                    let entry = (length as u16) << 8 | u16::from(symbol);
                    table.lookup[start..start + (1 << shift)].fill(entry);
                }
            }
            code += n as i32;
            index += n;
            if n > 0 {
                table.max_code[length] = code - 1;
            }
            code <<= 1;
        }
        Ok(table)
    }

    /// The next symbol, and whether it was a code of this table (if not: 0, as libjpeg reads it).
    pub fn decode(&self, bits: &mut BitReader) -> (u8, bool) {
        bits.fill(32);
        let entry = self.lookup[bits.peek(LOOKUP_BITS) as usize];
        if entry != 0 {
            bits.consume(u32::from(entry >> 8));
            return ((entry & 0xff) as u8, true);
        }
        for length in LOOKUP_BITS + 1..=16 {
            let code = bits.peek(length) as i32;
            if code <= self.max_code[length as usize] {
                bits.consume(length);
                let l = length as usize;
                return (self.symbols[self.first_index[l] + (code - self.first_code[l]) as usize], true);
            }
        }
        bits.consume(17);
        (0, false)
    }
}

/// A table's counts and symbols as a DHT segment gives them (built when a scan uses it, as
/// libjpeg does, so that a bad table that no scan uses is no error).
#[derive(Clone)]
struct TableSpec {
    counts: [u8; 16],
    symbols: Vec<u8>,
}

/// The DC and AC table specs defined so far, by slot 0..=3.
#[derive(Default, Clone)]
pub struct TableSpecs {
    dc: [Option<TableSpec>; 4],
    ac: [Option<TableSpec>; 4],
}

impl TableSpecs {
    /// The table of `class` in `slot`, built.
    pub fn build(&self, class: Class, slot: usize) -> Result<Huffman, JpegError> {
        let specs = if class == Class::Dc { &self.dc } else { &self.ac };
        let spec = specs[slot].as_ref().ok_or_else(|| {
            JpegError::Invalid(format!(
                "a scan uses {class} Huffman table {slot}, which no DHT segment defines"
            ))
        })?;
        Huffman::new(&spec.counts, &spec.symbols, class)
            .map_err(|what| JpegError::Invalid(format!("{class} Huffman table {slot}: {what}")))
    }

    /// Read one DHT segment (`body`, starting at byte `at` of the file) into the slots.
    pub fn read_dht(&mut self, body: &[u8], at: usize) -> Result<(), JpegError> {
        let mut rest = body;
        while !rest.is_empty() {
            let bad = |what: &str| JpegError::Invalid(format!("DHT segment at byte {at}: {what}"));
            if rest.len() < 17 {
                return Err(bad("ends inside a table"));
            }
            let (class, slot) = (rest[0] >> 4, usize::from(rest[0] & 15));
            if class > 1 || slot > 3 {
                return Err(bad(&format!("table class {class} slot {slot} (class 0 or 1, slot 0 to 3)")));
            }
            let counts: [u8; 16] = rest[1..17].try_into().expect("16 bytes");
            let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
            if n > 256 {
                return Err(bad(&format!("table of {n} codes (at most 256)")));
            }
            let symbols = rest.get(17..17 + n).ok_or_else(|| bad("ends inside a table"))?.to_vec();
            let spec = Some(TableSpec { counts, symbols });
            if class == 0 {
                self.dc[slot] = spec;
            } else {
                self.ac[slot] = spec;
            }
            rest = &rest[17 + n..];
        }
        Ok(())
    }
}

/// The bits of entropy-coded data from a position of the file up to the next marker.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte to read; at a marker, the marker's first 0xff.
    pos: usize,
    /// Bits not yet used, the next one highest.
    acc: u64,
    count: u32,
    /// How many of the `count` bits (the last ones) are zeros made up past the data's end.
    padding: u32,
    at_marker: bool,
    /// A made-up bit has been used since the last `take_overrun`.
    overrun: bool,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> BitReader<'a> {
        BitReader { data, pos, acc: 0, count: 0, padding: 0, at_marker: false, overrun: false }
    }

    /// Make sure at least `n` (≤ 57) bits are buffered, zeros past the data's end.
    pub fn fill(&mut self, n: u32) {
        while self.count < n {
            if self.fill_fast() {
                continue;
            }
            let byte = self.next_byte().unwrap_or_else(|| {
                self.padding += 8;
                0
            });
            self.acc |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    /// Take as many whole bytes as fit (up to 7) in one step, when the next 8 bytes hold no 0xff
    /// (so neither stuffing nor a marker); false if they do.
    fn fill_fast(&mut self) -> bool {
        let Some(next) = self.data.get(self.pos..self.pos + 8) else { return false };
        let word = u64::from_be_bytes(next.try_into().expect("8 bytes"));
        // Whether some byte of `!word` is zero, i.e. some byte of `word` is 0xff.
        let inverted = !word;
        if inverted.wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080 != 0 || self.at_marker
        {
            return false;
        }
        let take = ((64 - self.count) / 8).min(7);
        self.acc |= (word >> (64 - 8 * take)) << (64 - self.count - 8 * take);
        self.count += 8 * take;
        self.pos += take as usize;
        true
    }

    /// The next data byte, or `None` at a marker (0xff then neither 0x00 nor 0xff) or the end.
    fn next_byte(&mut self) -> Option<u8> {
        if self.at_marker {
            return None;
        }
        let byte = *self.data.get(self.pos).or_else(|| {
            self.at_marker = true;
            None
        })?;
        if byte != 0xff {
            self.pos += 1;
            return Some(byte);
        }
        // Fill bytes (0xff 0xff …) may precede a stuffed zero or a marker.
        let mut next = self.pos + 1;
        while self.data.get(next) == Some(&0xff) {
            next += 1;
        }
        if self.data.get(next) == Some(&0) {
            self.pos = next + 1;
            return Some(0xff);
        }
        self.at_marker = true;
        None
    }

    /// The next `n` (1..=16) bits without using them; call `fill` first.
    pub fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    pub fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.count -= n;
        if self.count < self.padding {
            self.padding = self.count;
            self.overrun = true;
        }
    }

    /// The next `n` (0..=16) bits as a number.
    pub fn bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        self.fill(n);
        let value = self.peek(n) as i32;
        self.consume(n);
        value
    }

    /// The next `n` bits as a signed magnitude category value (T.81 F.2.2.1, `EXTEND`).
    pub fn extended(&mut self, n: u32) -> i32 {
        let value = self.bits(n);
        if n > 0 && value < 1 << (n - 1) {
            value - (1 << n) + 1
        } else {
            value
        }
    }

    /// Whether made-up bits were used since the last call.
    pub fn take_overrun(&mut self) -> bool {
        std::mem::take(&mut self.overrun)
    }

    /// Drop the buffered bits and skip to the next marker; the whole data bytes left unused
    /// (unstuffed), which an encoder never leaves.
    pub fn skip_to_marker(&mut self) -> usize {
        let mut unused = ((self.count - self.padding) / 8) as usize;
        while self.next_byte().is_some() {
            unused += 1;
        }
        (self.acc, self.count, self.padding) = (0, 0, 0);
        unused
    }

    /// The marker the reader stopped at (the code after the 0xff bytes) and the position of its
    /// first 0xff; `None` at the end of the file. Call after `skip_to_marker`.
    pub fn marker(&self) -> Option<(u8, usize)> {
        let mut at = self.pos;
        while self.data.get(at) == Some(&0xff) {
            at += 1;
        }
        self.data.get(at).map(|&code| (code, self.pos))
    }

    /// Go past the marker the reader stopped at (a restart marker) and read on after it.
    pub fn resume_after_marker(&mut self) {
        while self.data.get(self.pos) == Some(&0xff) {
            self.pos += 1;
        }
        self.pos += 1;
        self.at_marker = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(per_length: &[u8]) -> [u8; 16] {
        std::array::from_fn(|i| per_length.get(i).copied().unwrap_or(0))
    }

    #[test]
    fn canonical_codes_decode_and_overfull_tables_are_refused() {
        // One code each of 1, 2 and 3 bits, canonical: 0 → a, 10 → b, 110 → c; 111… is none.
        let table = Huffman::new(&counts(&[1, 1, 1]), b"abc", Class::Ac).unwrap();
        // Bits 0 10 110 111…: a, b, c, then no code (read as 0, libjpeg's reading).
        let data = [0b0101_1011, 0b1111_1111, 0x00, 0xff, 0x00, 0xff, 0x00];
        let mut bits = BitReader::new(&data, 0);
        let symbols: Vec<(u8, bool)> = (0..4).map(|_| table.decode(&mut bits)).collect();
        assert_eq!(symbols, [(b'a', true), (b'b', true), (b'c', true), (0, false)]);
        assert!(Huffman::new(&counts(&[3]), b"abc", Class::Ac).is_err());
        assert!(Huffman::new(&counts(&[1]), &[16], Class::Dc).is_err());
    }

    #[test]
    fn stuffed_bytes_markers_and_the_end() {
        // 0xff 0x00 is a data byte 0xff; 0xff 0xd9 ends the data, after which bits are zeros.
        let data = [0xab, 0xff, 0x00, 0xcd, 0xff, 0xd9];
        let mut bits = BitReader::new(&data, 0);
        assert_eq!(bits.bits(16), 0xabff);
        assert!(!bits.take_overrun());
        assert_eq!(bits.bits(8), 0xcd);
        assert!(!bits.take_overrun());
        assert_eq!(bits.bits(4), 0);
        assert!(bits.take_overrun());
        assert_eq!(bits.skip_to_marker(), 0);
        assert_eq!(bits.marker(), Some((0xd9, 4)));
    }
}
