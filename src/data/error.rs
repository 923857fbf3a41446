//! `DataError`: everything that can be wrong with a dataset, an image or a split request, each
//! message naming where (file and line, or image path and frame) and, when known, the fix.

use super::split::ValidSize;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("invalid validation size {text:?}: expected a count (10) or a fraction between 0 and 1 (0.1)")]
    InvalidValidSize { text: String },

    #[error("validation size {valid} of {n} examples gives an empty validation set; ask for more")]
    EmptyValid { valid: ValidSize, n: usize },

    #[error(
        "validation size {valid} of {n} examples is {count}, leaving no training examples; ask for fewer"
    )]
    ValidTakesAll { valid: ValidSize, n: usize, count: usize },

    #[error("k-fold needs 2 ≤ k ≤ the number of examples ({n}) and at least one repeat; got k = {k}, repeats = {repeats}")]
    InvalidFolds { k: usize, n: usize, repeats: usize },
}
