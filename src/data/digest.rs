//! Content digests: what a dataset (or a model's files) held, as one SHA-256, so trial ids change
//! when the bytes do and stay put when only paths' mtimes do.
//!
//! A digest is the SHA-256 of a manifest in `sha256sum`'s output format, one line per file in a
//! fixed order: `<sha256 of the file's bytes>  <name>\n`. For a dataset the files are the JSONL
//! (named by its file name), then each example's image in line order, named as the JSONL writes
//! it, so renaming an image changes the digest even when its bytes do not. `sha256sum data.jsonl
//! images/a.png … | sha256sum` gives the same value. Files are streamed (and hashed in parallel),
//! never held whole. A file that cannot be read is listed as `(unreadable)`: reading the dataset
//! or loading the model reports it with its line; the digest only has to differ. So is one that
//! is not a regular file (a device, a named pipe: never opened for reading) or, for a dataset's
//! images, one over the image reader's size cap (never read), so that checking a dataset can
//! neither hang nor read gigabytes before the reader refuses the file (`fsutil::input`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::image::MAX_FILE_BYTES;
use super::jsonl::{parse_dataset, MAX_DATASET_BYTES};
use super::DataOptions;
use crate::fsutil::input::{open_regular, read_regular, InputError};

/// Read size while streaming a file into the hash (large enough for multi-GB weights).
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Hex digits of a digest shown to people (`gacha check`); the full 64 are recorded.
pub const SHORT_HEX_DIGITS: usize = 12;

/// What a manifest line holds in place of a hash for a file that cannot be read.
const UNREADABLE: &str = "(unreadable)";

/// The SHA-256 of a regular file of at most `cap` bytes, in lowercase hex, read in chunks.
pub fn sha256_file(path: &Path, cap: u64) -> Result<String, InputError> {
    let (file, _) = open_regular(path, cap)?;
    let mut file = file.take(cap.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut read: u64 = 0;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(InputError::Unreadable(err)),
        }
    }
    if read > cap {
        return Err(InputError::TooLarge { bytes: read, cap });
    }
    Ok(hex(&hasher.finalize()))
}

/// The digest of named files (name, path), in the given order (a model's files: no size cap).
pub fn manifest_sha256(files: &[(String, PathBuf)]) -> String {
    hash_lines(manifest_lines(files, u64::MAX))
}

/// The digest of a dataset: its JSONL and every image its good lines name (lines with problems
/// count through the JSONL's bytes; reading the dataset reports them). An error only when the
/// JSONL itself cannot be read.
pub fn dataset_sha256(path: &Path, opts: &DataOptions) -> Result<String, InputError> {
    let bytes = read_regular(path, MAX_DATASET_BYTES)?;
    let (dataset, _) = parse_dataset(path, &bytes, opts);
    let jsonl_name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let jsonl_line = format!("{}  {jsonl_name}\n", hex(&Sha256::digest(&bytes)));
    let images: Vec<(String, PathBuf)> =
        dataset.examples.into_iter().map(|e| (e.image, e.image_path)).collect();
    Ok(hash_lines(std::iter::once(jsonl_line).chain(manifest_lines(&images, MAX_FILE_BYTES))))
}

/// Each file's manifest line, the files (each at most `cap` bytes) hashed in parallel.
fn manifest_lines(files: &[(String, PathBuf)], cap: u64) -> Vec<String> {
    files
        .par_iter()
        .map(|(name, path)| {
            let hash = sha256_file(path, cap).unwrap_or_else(|_| UNREADABLE.to_string());
            format!("{hash}  {name}\n")
        })
        .collect()
}

fn hash_lines(lines: impl IntoIterator<Item = String>) -> String {
    let mut manifest = Sha256::new();
    for line in lines {
        manifest.update(line.as_bytes());
    }
    hex(&manifest.finalize())
}

/// The first `SHORT_HEX_DIGITS` of a digest.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(SHORT_HEX_DIGITS)]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of "abc" and of nothing (FIPS 180-2, appendix B.1; the empty-string test vector).
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha256_text(text: &str) -> String {
        hex(&Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn a_file_hashes_to_its_test_vector() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc"), "abc").unwrap();
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(sha256_file(&dir.path().join("abc"), 3).unwrap(), SHA256_ABC);
        assert_eq!(sha256_file(&dir.path().join("empty"), 0).unwrap(), SHA256_EMPTY);
        assert!(matches!(sha256_file(&dir.path().join("abc"), 2), Err(InputError::TooLarge { .. })));
        // Longer than one read chunk: the chunks are hashed as one stream.
        let big = vec![b'a'; READ_CHUNK_BYTES + 3];
        std::fs::write(dir.path().join("big"), &big).unwrap();
        assert_eq!(sha256_file(&dir.path().join("big"), u64::MAX).unwrap(), hex(&Sha256::digest(&big)));
    }

    #[test]
    fn a_manifest_is_sha256sum_output_in_the_given_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "abc").unwrap();
        std::fs::write(dir.path().join("b"), "").unwrap();
        let files = |names: &[&str]| -> Vec<(String, PathBuf)> {
            names.iter().map(|n| (n.to_string(), dir.path().join(n))).collect()
        };
        let listed = format!("{SHA256_ABC}  a\n{SHA256_EMPTY}  b\n");
        assert_eq!(manifest_sha256(&files(&["a", "b"])), sha256_text(&listed));
        assert_ne!(manifest_sha256(&files(&["b", "a"])), sha256_text(&listed));
        let missing = format!("{SHA256_ABC}  a\n(unreadable)  gone\n");
        assert_eq!(manifest_sha256(&files(&["a", "gone"])), sha256_text(&missing));
    }

    #[test]
    fn a_dataset_digest_lists_the_jsonl_then_each_image_by_its_written_name() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = "{\"suffix\": \"yes\", \"image\": \"img/a.png\"}\n\n\
                     {\"suffix\": \"maybe\", \"image\": \"img/bad.png\"}\n\
                     {\"suffix\": \"no\", \"image\": \"img/./b.png\"}\n";
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, jsonl).unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        std::fs::write(dir.path().join("img/a.png"), "abc").unwrap();
        std::fs::write(dir.path().join("img/b.png"), "").unwrap();
        // The line with an unknown answer counts through the JSONL's bytes only.
        let listed = format!(
            "{}  data.jsonl\n{SHA256_ABC}  img/a.png\n{SHA256_EMPTY}  img/./b.png\n",
            sha256_text(jsonl)
        );
        let opts = DataOptions::default();
        assert_eq!(dataset_sha256(&path, &opts).unwrap(), sha256_text(&listed));
        assert!(dataset_sha256(&dir.path().join("none.jsonl"), &opts).is_err());
    }
}
