//! Datasets: labelled examples read from the users' JSONL format, their images decoded and
//! preprocessed for the model, and seeded train/valid splits.
//!
//! One line per example: `{"prefix": "", "suffix": "yes", "image": "images/OK_1.jpg"}`.
//! `suffix` is the expected answer; `image` is relative to the JSONL file's folder.

pub mod digest;
pub mod error;
pub mod image;
pub mod jsonl;
pub mod preprocessing;
pub mod split;
pub mod split_files;

use std::path::PathBuf;

pub use error::DataError;
pub use preprocessing::{Normalize, Preprocessing, Resize};

/// Which answer an example expects, in terms of the two configured answer words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// The first answer word (default `yes`): the class precision and recall are about.
    Positive,
    /// The second answer word (default `no`).
    Negative,
}

/// The two answer words, positive first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub positive: String,
    pub negative: String,
}

impl Default for Answers {
    fn default() -> Self {
        Answers { positive: "yes".into(), negative: "no".into() }
    }
}

impl Answers {
    pub fn word(&self, label: Label) -> &str {
        match label {
            Label::Positive => &self.positive,
            Label::Negative => &self.negative,
        }
    }

    pub fn label_of(&self, word: &str) -> Option<Label> {
        if word == self.positive {
            Some(Label::Positive)
        } else if word == self.negative {
            Some(Label::Negative)
        } else {
            None
        }
    }
}

/// Which frames of an animated image (GIF, PNG or WebP) become model inputs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum FramePolicy {
    /// The first frame only.
    First,
    /// The last frame only.
    Last,
    /// Frame ⌊count/2⌋ only (counted from 0).
    Middle,
    /// Every frame: one training example per frame; scored by the worst frame.
    #[default]
    All,
}

impl std::fmt::Display for FramePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FramePolicy::First => "first",
            FramePolicy::Last => "last",
            FramePolicy::Middle => "middle",
            FramePolicy::All => "all",
        })
    }
}

/// Whether the EXIF orientation tag turns the pixels before resizing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ExifOrientation {
    /// Rotate or flip as the tag says, as transformers (PIL's `exif_transpose`) does.
    #[default]
    Apply,
    /// Use the pixels as stored.
    Ignore,
}

impl ExifOrientation {
    pub fn is_apply(&self) -> bool {
        *self == ExifOrientation::Apply
    }
}

impl std::fmt::Display for ExifOrientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExifOrientation::Apply => "apply",
            ExifOrientation::Ignore => "ignore",
        })
    }
}

/// Whether a JPEG is also decoded strictly, to find the coding errors the lenient decoder that
/// training uses decodes past (see `DecodedImage::coding_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CodingCheck {
    #[default]
    Lenient,
    Strict,
}

/// How image files are turned into model inputs, beyond the model's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ImageOptions {
    pub frames: FramePolicy,
    pub orientation: ExifOrientation,
    pub coding: CodingCheck,
    /// The resize filter asked for (`--resize`, `[data] resize`); `None`: the model's own. Applied
    /// with `Preprocessing::with_resize` where the model is known.
    pub resize: Option<Resize>,
    /// Keep each image's first kept frame as decoded, before resizing, in `DecodedImage::input`
    /// (`gacha check --save-inputs`); off everywhere else, so no full-size pixels are held.
    pub keep_input: bool,
}

impl std::fmt::Display for ImageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frames: {}", self.frames)?;
        if self.orientation == ExifOrientation::Ignore {
            f.write_str(", EXIF orientation ignored")?;
        }
        if let Some(resize) = self.resize {
            write!(f, ", resize: {resize}")?;
        }
        Ok(())
    }
}

/// Whether image paths may leave the dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathPolicy {
    #[default]
    InsideDatasetOnly,
    AllowOutside,
}

/// How to read a dataset.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    pub answers: Answers,
    pub images: ImageOptions,
    pub paths: PathPolicy,
}

/// One labelled line of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The `image` value exactly as written in the JSONL (used in outputs).
    pub image: String,
    /// The resolved file path.
    pub image_path: PathBuf,
    /// The `prefix` value (the prompt, when none is given on the command line or in a spec).
    pub prefix: String,
    pub label: Label,
    /// 1-based line number in the JSONL file.
    pub line: usize,
}

/// A whole JSONL file, read and checked.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Example>,
}

/// One preprocessed frame: RGB, `size`×`size`, channel-major (CHW), values in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub size: usize,
    pub chw: Vec<f32>,
}
