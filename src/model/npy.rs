//! The `.npy` array header (NumPy's format 1.0/2.0/3.0): magic, version, then a Python-dict text
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (18, 2048), }` padded so the data starts at
//! a multiple of 64 bytes (C order when written; Fortran order is read too, as `np.save` writes a
//! transposed view). Only what PaliGemma checkpoints hold is read: little-endian f32 and f16,
//! and bf16, which NumPy cannot name and so stores as a 2-byte void (`|V2`, or `<V2` from
//! ml_dtypes); big_vision's `recover_dtype` reads every 2-byte void back as bf16, and so do we.

use candle_core::DType;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data starts at a multiple of this (NumPy ≥ 1.16 writes 64).
const ALIGN: usize = 64;

/// An array's element type, as its `descr` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyDtype {
    pub dtype: DType,
    /// The `descr` string as read (`<f4`, `<f2`, `|V2`, `<V2`), written back unchanged.
    pub descr: String,
}

impl NpyDtype {
    /// The descr NumPy writes for `dtype` (bf16 as a 2-byte void, as `np.save` stores it).
    pub fn of(dtype: DType) -> Result<NpyDtype, String> {
        let descr = match dtype {
            DType::F32 => "<f4",
            DType::F16 => "<f2",
            DType::BF16 => "|V2",
            other => return Err(format!("dtype {other:?} cannot be written (f32, f16 or bf16)")),
        };
        Ok(NpyDtype { dtype, descr: descr.into() })
    }

    fn parse(descr: &str) -> Result<NpyDtype, String> {
        let dtype = match descr {
            "<f4" => DType::F32,
            "<f2" => DType::F16,
            "|V2" | "<V2" => DType::BF16,
            other => {
                return Err(format!(
                    "dtype {other:?} is not supported (expected little-endian f32 '<f4', f16 '<f2' or bf16 stored as '|V2')"
                ))
            }
        };
        Ok(NpyDtype { dtype, descr: descr.into() })
    }
}

/// A parsed header: element type, C-order shape, and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: NpyDtype,
    pub shape: Vec<usize>,
    /// Column-major data (`fortran_order: True`).
    pub fortran_order: bool,
    /// Bytes from the start of the `.npy` to its first data byte.
    pub data_offset: usize,
}

impl NpyHeader {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn data_len(&self) -> usize {
        self.elem_count() * self.dtype.dtype.size_in_bytes()
    }

    /// Parse the header at the start of `bytes` (which may hold more than the header).
    pub fn parse(bytes: &[u8]) -> Result<NpyHeader, String> {
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err("not a .npy array (bad magic)".into());
        }
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => {
                (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
            }
            v => return Err(format!(".npy format version {v} is not supported")),
        };
        let text = bytes.get(start..start + len).ok_or("truncated .npy header")?;
        let text = std::str::from_utf8(text).map_err(|_| "the .npy header is not text")?;
        let descr = dict_value(text, "descr")?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let fortran_order = match dict_value(text, "fortran_order")? {
            "False" => false,
            "True" => true,
            other => return Err(format!("bad fortran_order {other:?}")),
        };
        let shape = dict_value(text, "shape")?;
        let shape = shape
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape entry {s:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NpyHeader { dtype: NpyDtype::parse(descr)?, shape, fortran_order, data_offset: start + len })
    }

    /// The header bytes of a C-order array of `dtype` and `shape` (format 1.0, or 2.0 when the text needs it),
    /// padded with spaces and a newline to a multiple of 64 bytes, as `np.save` writes it.
    pub fn encode(dtype: &NpyDtype, shape: &[usize]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut text = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", dtype.descr);
        let prefix = if text.len() + 11 < u16::MAX as usize { 10 } else { 12 };
        let padded = (prefix + text.len() + 1).div_ceil(ALIGN) * ALIGN;
        text.push_str(&" ".repeat(padded - prefix - text.len() - 1));
        text.push('\n');
        let mut out = MAGIC.to_vec();
        if prefix == 10 {
            out.extend([1, 0]);
            out.extend((text.len() as u16).to_le_bytes());
        } else {
            out.extend([2, 0]);
            out.extend((text.len() as u32).to_le_bytes());
        }
        out.extend(text.as_bytes());
        out
    }
}

/// The raw text of `key`'s value in the header dict (up to the next top-level comma).
fn dict_value<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let missing = || format!("the .npy header has no {key:?}: {text:?}");
    let at =
        text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\""))).ok_or_else(missing)?;
    let rest = &text[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':').ok_or_else(missing)?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')').map(|i| i + 1) } else { rest.find([',', '}']) };
    Ok(rest[..end.ok_or_else(missing)?].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_numpy_writes() {
        // `np.save` of np.zeros((2, 3), np.float16), numpy 2.4.
        let mut bytes =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }".to_vec();
        bytes.extend(std::iter::repeat_n(b' ', 128 - bytes.len() - 1));
        bytes.push(b'\n');
        let header = NpyHeader::parse(&bytes).unwrap();
        assert_eq!(
            (header.dtype.dtype, header.shape.clone(), header.data_offset),
            (DType::F16, vec![2, 3], 128)
        );
        assert!(!header.fortran_order);
        assert_eq!(
            NpyHeader::encode(&header.dtype, &header.shape),
            bytes,
            "encode writes what np.save writes"
        );
    }

    #[test]
    fn round_trips_every_dtype_and_rank() {
        for descr in ["<f4", "<f2", "|V2", "<V2"] {
            for shape in [vec![], vec![7], vec![18, 2, 1, 2048, 256]] {
                let dtype = NpyDtype::parse(descr).unwrap();
                let bytes = NpyHeader::encode(&dtype, &shape);
                assert_eq!(bytes.len() % ALIGN, 0);
                let back = NpyHeader::parse(&bytes).unwrap();
                assert_eq!((back.dtype, back.shape, back.data_offset), (dtype, shape, bytes.len()));
            }
        }
        assert_eq!(NpyDtype::parse("|V2").unwrap().dtype, DType::BF16);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let header = |descr: &str, order: &str| {
            let text = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': (2,), }}\n");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend((text.len() as u16).to_le_bytes());
            bytes.extend(text.as_bytes());
            NpyHeader::parse(&bytes)
        };
        assert!(header("<f8", "False").unwrap_err().contains("\"<f8\" is not supported"));
        assert!(header(">f4", "False").unwrap_err().contains("\">f4\""));
        assert!(header("<f4", "True").unwrap().fortran_order);
        assert!(NpyHeader::parse(b"PK\x03\x04 not npy").unwrap_err().contains("magic"));
    }
}
