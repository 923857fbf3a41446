//! `DataError`: everything that can be wrong with a dataset, an image or a split request, each
//! message naming where (file and line, or image path and frame) and, when known, the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("invalid validation size {text:?}: expected a count (10) or a fraction between 0 and 1 (0.1)")]
    InvalidValidSize { text: String },

    #[error("validation size {valid} of {n} examples gives an empty validation set; ask for more")]
    EmptyValid { valid: String, n: usize },

    #[error(
        "validation size {valid} of {n} examples is {count}, leaving no training examples; ask for fewer"
    )]
    ValidTakesAll { valid: String, n: usize, count: usize },

    #[error(
        "k-fold needs 2 ≤ k ≤ the number of examples ({n}) and at least one repeat; \
         got k = {k}, repeats = {repeats}"
    )]
    InvalidFolds { k: usize, n: usize, repeats: usize },

    #[error("{}: file not found", path.display())]
    ImageMissing { path: PathBuf },

    #[error("{}: is a folder, not an image file", path.display())]
    ImageIsFolder { path: PathBuf },

    #[error("{}: empty file (0 bytes)", path.display())]
    ImageEmpty { path: PathBuf },

    /// A device, a named pipe or a socket (after symbolic links): never read.
    #[error("{}: is {kind}, not an image file", path.display())]
    ImageNotRegular { path: PathBuf, kind: &'static str },

    #[error("{}: cannot read: {source}", path.display())]
    ImageRead { path: PathBuf, source: std::io::Error },

    #[error("{}: not a PNG, JPEG, GIF, WebP, BMP or TIFF image ({what})", path.display())]
    NotAnImage { path: PathBuf, what: String },

    /// Refused before decoding, from the sizes in the file's header or on disk.
    #[error("{}: {what} exceeds the cap of {cap} (decompression-bomb guard)", path.display())]
    ImageTooLarge { path: PathBuf, what: String, cap: String },

    /// `frame` counts from 1 and is set for GIFs only.
    #[error("{}: {}{message}", path.display(), frame.map(|f| format!("frame {f}: ")).unwrap_or_default())]
    ImageDecode { path: PathBuf, frame: Option<usize>, message: String },

    #[error("{}: {source}", path.display())]
    DatasetRead { path: PathBuf, source: crate::fsutil::input::InputError },

    #[error("{}: no examples (the file has only blank lines, if any)", path.display())]
    EmptyDataset { path: PathBuf },

    /// A problem with one JSONL line; `line` counts from 1.
    #[error("{}:{line}: {message}", file.display())]
    Line { file: PathBuf, line: usize, message: String },

    /// A problem with the image that a JSONL line names.
    #[error("{}:{line}: {source}", file.display())]
    AtLine { file: PathBuf, line: usize, source: Box<DataError> },
}

impl DataError {
    /// The dataset line a problem is on, if it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::Line { line, .. } | DataError::AtLine { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Every problem found in a dataset, in file order, so one run of `gacha check` lists them all.
#[derive(Debug)]
pub struct DatasetProblems {
    pub path: PathBuf,
    pub problems: Vec<DataError>,
}

impl std::fmt::Display for DatasetProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.problems.len();
        write!(f, "{}: {count} problem{}", self.path.display(), if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DatasetProblems {}
