//! A walk over a GIF's blocks that reads each frame's declared rectangle and whether it has a
//! colour table, without decoding pixels: so a huge frame is refused from its descriptor (with its
//! size), and frames that have no colour table at all (neither local nor global) are read as grey
//! levels, as PIL does, by giving the file a grey global table.

/// One image descriptor of a GIF: where its frame lies and whether it carries its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRect {
    pub left: u16,
    pub top: u16,
    pub width: u16,
    pub height: u16,
    pub local_table: bool,
}

/// What the walk found. It stops quietly where the file ends or stops making sense: the decoder
/// reports those places itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GifLayout {
    pub global_table: bool,
    pub frames: Vec<FrameRect>,
}

/// Offset of the global colour table, right after the 6-byte signature and 7-byte screen descriptor.
const GLOBAL_TABLE_AT: usize = 13;

/// Size in bytes of a colour table whose packed-field size bits are `bits`.
fn table_bytes(bits: u8) -> usize {
    3 << ((bits & 0x07) + 1)
}

pub fn walk(bytes: &[u8]) -> GifLayout {
    let global_table = bytes.get(10).is_some_and(|packed| packed & 0x80 != 0);
    let mut layout = GifLayout { global_table, frames: Vec::new() };
    let mut at = GLOBAL_TABLE_AT + if global_table { table_bytes(bytes[10]) } else { 0 };
    let word = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    loop {
        match bytes.get(at) {
            // Extension: introducer, label, then data sub-blocks.
            Some(0x21) => at = skip_sub_blocks(bytes, at + 2),
            // Image descriptor: position, size, packed field; then its table, LZW code size, data.
            Some(0x2c) => {
                let (Some(left), Some(top), Some(width), Some(height), Some(&packed)) =
                    (word(at + 1), word(at + 3), word(at + 5), word(at + 7), bytes.get(at + 9))
                else {
                    break;
                };
                let local_table = packed & 0x80 != 0;
                layout.frames.push(FrameRect { left, top, width, height, local_table });
                at += 10 + if local_table { table_bytes(packed) } else { 0 };
                at = skip_sub_blocks(bytes, at + 1);
            }
            _ => break,
        }
        if at >= bytes.len() {
            break;
        }
    }
    layout
}

/// The offset after the sub-blocks starting at `at` (each a length byte, then that many bytes,
/// until a zero length).
fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> usize {
    while let Some(&length) = bytes.get(at) {
        at += 1 + usize::from(length);
        if length == 0 {
            break;
        }
    }
    at
}

/// The file with a 256-level grey global colour table (index i shows grey i) when it has no
/// global table and some frame has no local one; `None` when every frame has a table.
pub fn with_grey_table(bytes: &[u8], layout: &GifLayout) -> Option<Vec<u8>> {
    if layout.global_table || layout.frames.iter().all(|f| f.local_table) || bytes.len() < GLOBAL_TABLE_AT {
        return None;
    }
    let mut patched = Vec::with_capacity(bytes.len() + 768);
    patched.extend_from_slice(&bytes[..GLOBAL_TABLE_AT]);
    // Table present, 2^(7+1) = 256 entries; colour resolution and sort flag kept.
    patched[10] |= 0x80 | 0x07;
    patched.extend((0..=255u8).flat_map(|v| [v, v, v]));
    patched.extend_from_slice(&bytes[GLOBAL_TABLE_AT..]);
    Some(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2×1 GIF without any colour table whose one frame holds indices 0 and 1 (hand-made, see
    /// the comments), then the trailer.
    pub fn tableless_gif() -> Vec<u8> {
        let mut bytes = b"GIF89a".to_vec();
        // Screen 2×1, no global table.
        bytes.extend_from_slice(&[2, 0, 1, 0, 0x00, 0, 0]);
        // Image descriptor at (0, 0), 2×1, no local table.
        bytes.extend_from_slice(&[0x2c, 0, 0, 0, 0, 2, 0, 1, 0, 0x00]);
        // LZW minimum code size 2; codes (3 bits): clear 4, 0, 1, end 5 → one sub-block.
        bytes.extend_from_slice(&[2, 2, 0x44, 0x0a, 0]);
        bytes.push(0x3b);
        bytes
    }

    #[test]
    fn walk_reads_descriptors_and_tables() {
        let bytes = tableless_gif();
        let layout = walk(&bytes);
        assert_eq!(
            layout,
            GifLayout {
                global_table: false,
                frames: vec![FrameRect { left: 0, top: 0, width: 2, height: 1, local_table: false }],
            }
        );
        let patched = with_grey_table(&bytes, &layout).unwrap();
        assert_eq!(patched.len(), bytes.len() + 768);
        assert_eq!(&patched[13..19], &[0, 0, 0, 1, 1, 1]);
        assert_eq!(walk(&patched).frames, layout.frames);
        assert!(walk(&patched).global_table);
        assert_eq!(with_grey_table(&patched, &walk(&patched)), None);
    }
}
