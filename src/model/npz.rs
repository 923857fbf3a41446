//! `.npz` archives as `np.savez` writes them: a zip of uncompressed `.npy` members, one per array,
//! named `<key>.npy`. Arrays are read straight from the file, one at a time or one slice of the
//! leading axis at a time (a layer of a stacked big_vision array), so a checkpoint is never held
//! in memory as a whole; writing streams the same way, each member's bytes as they come.
//!
//! Compressed members (`np.savez_compressed`) are refused: checkpoints are stored uncompressed,
//! and reading in place needs it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use candle_core::{Device, Tensor};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::npy::{NpyDtype, NpyHeader};

/// Enough bytes for any header NumPy writes for a checkpoint array.
const MAX_HEADER_BYTES: u64 = 4096;

/// One array of an archive.
#[derive(Debug, Clone)]
pub struct NpzEntry {
    /// The member's name in the zip (`params/llm/final_norm/scale.npy`).
    pub member: String,
    pub header: NpyHeader,
    /// File offset of the member's first byte (its `.npy` header).
    member_start: u64,
    /// File offset of the array's first data byte.
    data_start: u64,
}

impl NpzEntry {
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }
}

/// An open `.npz`, its arrays listed by key: the member name without `.npy` and without a leading
/// `params/` (how big_vision flattens its parameter tree).
#[derive(Debug)]
pub struct NpzReader {
    path: PathBuf,
    file: File,
    entries: BTreeMap<String, NpzEntry>,
}

impl NpzReader {
    pub fn open(path: &Path) -> anyhow::Result<NpzReader> {
        let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut zip = ZipArchive::new(&file)
            .with_context(|| format!("{}: not an .npz (zip) archive", path.display()))?;
        let mut entries = BTreeMap::new();
        for i in 0..zip.len() {
            let member = zip.by_index_raw(i)?;
            let name = member.name()?.to_string();
            let Some(key) = name.strip_suffix(".npy") else { continue };
            let key = key.strip_prefix("params/").unwrap_or(key).to_string();
            ensure!(
                member.compression() == CompressionMethod::Stored,
                "{}: {name} is compressed ({}); gacha reads uncompressed archives: re-save with np.savez",
                path.display(),
                member.compression()
            );
            let data_start = member.data_start().context("zip member without a data offset")?;
            let size = member.size();
            drop(member);
            let mut head = Vec::new();
            (&file).seek(SeekFrom::Start(data_start))?;
            (&file).take(size.min(MAX_HEADER_BYTES)).read_to_end(&mut head)?;
            let header =
                NpyHeader::parse(&head).map_err(|e| anyhow::anyhow!("{}: {name}: {e}", path.display()))?;
            ensure!(
                (header.data_offset + header.data_len()) as u64 == size,
                "{}: {name}: {} bytes of data for shape {:?} of {:?}",
                path.display(),
                size as usize - header.data_offset.min(size as usize),
                header.shape,
                header.dtype.dtype
            );
            let member_start = data_start;
            let data_start = data_start + header.data_offset as u64;
            entries.insert(key, NpzEntry { member: name, header, member_start, data_start });
        }
        Ok(NpzReader { path: path.to_path_buf(), file, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &BTreeMap<String, NpzEntry> {
        &self.entries
    }

    /// The array `key`; a missing key is an error naming it and the file.
    pub fn entry(&self, key: &str) -> anyhow::Result<&NpzEntry> {
        self.entries.get(key).with_context(|| format!("{}: missing key {key}", self.path.display()))
    }

    /// The whole array `key` (`index` None) or its slice `index` along the leading axis, in the
    /// array's own dtype, on the CPU. A Fortran-order array is read whole and transposed (rare:
    /// JAX writes C order).
    pub fn read(&self, key: &str, index: Option<usize>) -> anyhow::Result<Tensor> {
        let entry = self.entry(key)?;
        let shape = entry.shape();
        if let Some(i) = index {
            let Some(&len) = shape.first() else {
                bail!("{}: key {key} is a scalar, expected stacked layers", self.path.display())
            };
            ensure!(i < len, "{}: key {key} has {len} layers, not {}", self.path.display(), i + 1);
        }
        if entry.header.fortran_order {
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            let axes: Vec<usize> = (0..shape.len()).rev().collect();
            let whole = self.read_bytes(entry, 0, &reversed)?.permute(axes)?.contiguous()?;
            return Ok(match index {
                None => whole,
                Some(i) => whole.get(i)?,
            });
        }
        match index {
            None => self.read_bytes(entry, 0, shape),
            Some(i) => {
                let rest = &shape[1..];
                let slice_bytes = rest.iter().product::<usize>() * entry.header.dtype.dtype.size_in_bytes();
                self.read_bytes(entry, i * slice_bytes, rest)
            }
        }
    }

    /// `shape`'s worth of values from `offset` bytes into the data of `entry`.
    fn read_bytes(&self, entry: &NpzEntry, offset: usize, shape: &[usize]) -> anyhow::Result<Tensor> {
        let dtype = entry.header.dtype.dtype;
        let mut bytes = vec![0u8; shape.iter().product::<usize>() * dtype.size_in_bytes()];
        (&self.file).seek(SeekFrom::Start(entry.data_start + offset as u64))?;
        (&self.file)
            .read_exact(&mut bytes)
            .with_context(|| format!("{}: {}: truncated data", self.path.display(), entry.member))?;
        Ok(Tensor::from_raw_buffer(&bytes, dtype, shape, &Device::Cpu)?)
    }

    /// Copy the member of `key` (header and data) unchanged into `out`.
    pub fn copy_member(&self, key: &str, out: &mut NpzWriter) -> anyhow::Result<()> {
        let entry = self.entry(key)?;
        out.start_raw(&entry.member)?;
        let len = entry.data_start - entry.member_start + entry.header.data_len() as u64;
        (&self.file).seek(SeekFrom::Start(entry.member_start))?;
        let copied = std::io::copy(&mut (&self.file).take(len), &mut out.zip)?;
        ensure!(copied == len, "{}: key {key}: truncated data", self.path.display());
        Ok(())
    }
}

/// An `.npz` being written member by member (uncompressed, zip64 so members may pass 4 GiB).
pub struct NpzWriter<'a> {
    zip: ZipWriter<&'a mut File>,
}

impl<'a> NpzWriter<'a> {
    pub fn new(file: &'a mut File) -> NpzWriter<'a> {
        NpzWriter { zip: ZipWriter::new(file) }
    }

    /// Start the member `name` (`….npy`) holding an array of `dtype` and `shape`; its data follows
    /// with [`NpzWriter::write_tensor`].
    pub fn start(&mut self, name: &str, dtype: &NpyDtype, shape: &[usize]) -> anyhow::Result<()> {
        self.start_raw(name)?;
        self.zip.write_all(&NpyHeader::encode(dtype, shape))?;
        Ok(())
    }

    /// Start the member `name`, header and data to follow as bytes.
    fn start_raw(&mut self, name: &str) -> anyhow::Result<()> {
        let options =
            SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(true);
        self.zip.start_file(name, options)?;
        Ok(())
    }

    /// Append `tensor`'s values, in C order and its own dtype, to the current member.
    pub fn write_tensor(&mut self, tensor: &Tensor) -> anyhow::Result<()> {
        let flat = tensor.flatten_all()?;
        let bytes: Vec<u8> = match flat.dtype() {
            candle_core::DType::F32 => {
                flat.to_vec1::<f32>()?.into_iter().flat_map(f32::to_le_bytes).collect()
            }
            candle_core::DType::F16 => {
                flat.to_vec1::<half::f16>()?.into_iter().flat_map(half::f16::to_le_bytes).collect()
            }
            candle_core::DType::BF16 => {
                flat.to_vec1::<half::bf16>()?.into_iter().flat_map(half::bf16::to_le_bytes).collect()
            }
            other => bail!("cannot write a {other:?} array (f32, f16 or bf16)"),
        };
        self.zip.write_all(&bytes)?;
        Ok(())
    }

    /// Write the zip's central directory.
    pub fn finish(self) -> anyhow::Result<()> {
        self.zip.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn writes_and_reads_back_arrays_and_layer_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let stacked = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((3, 2, 4)).unwrap();
        let half = stacked.to_dtype(DType::BF16).unwrap();
        crate::fsutil::write_atomic_with(&path, |file| {
            let mut out = NpzWriter::new(file);
            out.start("params/llm/w.npy", &NpyDtype::of(DType::F32).unwrap(), &[3, 2, 4])?;
            out.write_tensor(&stacked)?;
            out.start("b.npy", &NpyDtype::of(DType::BF16).unwrap(), &[3, 2, 4])?;
            for i in 0..3 {
                out.write_tensor(&half.get(i)?)?;
            }
            out.finish()
        })
        .unwrap();
        let npz = NpzReader::open(&path).unwrap();
        assert_eq!(npz.entries().keys().collect::<Vec<_>>(), ["b", "llm/w"]);
        assert_eq!(npz.entry("llm/w").unwrap().member, "params/llm/w.npy");
        let layer = npz.read("llm/w", Some(1)).unwrap();
        assert_eq!(layer.to_vec2::<f32>().unwrap(), stacked.get(1).unwrap().to_vec2::<f32>().unwrap());
        let b = npz.read("b", None).unwrap();
        assert_eq!(b.dtype(), DType::BF16);
        assert_eq!(
            b.to_dtype(DType::F32).unwrap().to_vec3::<f32>().unwrap(),
            stacked.to_vec3::<f32>().unwrap()
        );
        let err = npz.read("llm/w", Some(3)).unwrap_err().to_string();
        assert!(err.ends_with("a.npz: key llm/w has 3 layers, not 4"), "{err}");
        let err = npz.read("llm/x", None).unwrap_err().to_string();
        assert!(err.ends_with("a.npz: missing key llm/x"), "{err}");
    }

    #[test]
    fn reads_fortran_order_as_numpy_saves_a_transposed_view() {
        // np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3).T): shape (3, 2), Fortran
        // order, data 0..6 as stored, so a[i][j] = 3·j + i.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npz");
        let text = "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((text.len() as u16).to_le_bytes());
        npy.extend(text.as_bytes());
        npy.extend((0..6).flat_map(|v| (v as f32).to_le_bytes()));
        crate::fsutil::write_atomic_with(&path, |file| {
            let mut out = NpzWriter::new(file);
            out.start_raw("a.npy")?;
            out.zip.write_all(&npy)?;
            out.finish()
        })
        .unwrap();
        let npz = NpzReader::open(&path).unwrap();
        let want = vec![vec![0f32, 3.0], vec![1.0, 4.0], vec![2.0, 5.0]];
        assert_eq!(npz.read("a", None).unwrap().to_vec2::<f32>().unwrap(), want);
        assert_eq!(npz.read("a", Some(2)).unwrap().to_vec1::<f32>().unwrap(), want[2]);
    }
}
