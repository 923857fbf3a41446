//! Reading the users' JSONL datasets, line by line, collecting every problem instead of stopping
//! at the first; and decoding all of a dataset's images in parallel.
//!
//! A line is one JSON object: `"suffix"` (required, one of the answer words), `"image"` (required,
//! relative to the JSONL file's folder) and `"prefix"` (optional, default ""); other keys are
//! ignored. Blank lines and CRLF endings are fine. Image paths that are absolute, climb out of
//! the dataset folder with `..`, or lead out of it through a symbolic link (the real path is
//! checked, after links) are refused unless `PathPolicy::AllowOutside`. The same image asked the
//! same question (prefix) on two lines with different answers is a problem on the later line.
//! The JSONL itself is read only once it is known to be a regular file of at most
//! [`MAX_DATASET_BYTES`] (`fsutil::input`).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use serde_json::{Map, Value};

use super::error::{DataError, DatasetProblems};
use super::image::{load_image, DecodedImage};
use super::{DataOptions, Dataset, Example, ImageOptions, Label, PathPolicy, Preprocessing};
use crate::fsutil::input::{kind_of, read_regular};

/// Largest dataset file read, in bytes: a JSONL line is some 100 bytes, so this is millions of
/// examples, and a device or a runaway file is refused before it is read.
pub const MAX_DATASET_BYTES: u64 = 1 << 30;

/// How to allow image paths outside the dataset's folder, said with each refusal.
const ALLOW_OUTSIDE: &str =
    "allow it with --allow-outside-paths, or allow_outside_paths = true under [data] in a spec";

/// Read and check a whole dataset; on failure, every problem found, in line order.
pub fn load_dataset(path: &Path, opts: &DataOptions) -> Result<Dataset, DatasetProblems> {
    let (dataset, problems) = read_dataset(path, opts);
    if problems.is_empty() {
        Ok(dataset)
    } else {
        Err(DatasetProblems { path: path.to_path_buf(), problems })
    }
}

/// What some editors put at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read a dataset, keeping the good lines as examples and every problem beside them (a file
/// that cannot be read or has no lines at all is one problem), so a check can go on to the images
/// of the good lines.
pub fn read_dataset(path: &Path, opts: &DataOptions) -> (Dataset, Vec<DataError>) {
    match read_regular(path, MAX_DATASET_BYTES) {
        Ok(bytes) => parse_dataset(path, &bytes, opts),
        Err(source) => (
            Dataset { path: path.to_path_buf(), examples: Vec::new() },
            vec![DataError::DatasetRead { path: path.to_path_buf(), source }],
        ),
    }
}

/// `read_dataset` of the bytes of the file at `path`, already read.
pub(super) fn parse_dataset(path: &Path, bytes: &[u8], opts: &DataOptions) -> (Dataset, Vec<DataError>) {
    let mut dataset = Dataset { path: path.to_path_buf(), examples: Vec::new() };
    let base = path.parent().unwrap_or(Path::new(""));
    let folder = Folder::new(base, opts.paths);
    let mut problems = Vec::new();
    let mut answered = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line == 1 && raw.starts_with(UTF8_BOM) {
            problems.push(DataError::Line {
                file: path.to_path_buf(),
                line,
                message: "starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON Lines does not \
                          allow: save the file as UTF-8 without BOM"
                    .into(),
            });
            continue;
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(raw, &folder, opts) {
            Ok(example) => {
                if let Some(message) = contradiction(&mut answered, &example, line, opts) {
                    problems.push(DataError::Line { file: path.to_path_buf(), line, message });
                }
                dataset.examples.push(Example { line, ..example })
            }
            Err(messages) => problems.extend(messages.into_iter().map(|message| DataError::Line {
                file: path.to_path_buf(),
                line,
                message,
            })),
        }
    }
    if dataset.examples.is_empty() && problems.is_empty() {
        problems.push(DataError::EmptyDataset { path: path.to_path_buf() });
    }
    (dataset, problems)
}

/// Decode and preprocess every example's image in parallel, in example order.
pub fn load_images(
    dataset: &Dataset,
    images: ImageOptions,
    prep: &Preprocessing,
) -> Result<Vec<DecodedImage>, DatasetProblems> {
    let mut decoded = Vec::with_capacity(dataset.examples.len());
    let mut problems = Vec::new();
    for result in decode_each(dataset, images, prep, |_, image| image) {
        match result {
            Ok(image) => decoded.push(image),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(decoded)
    } else {
        Err(DatasetProblems { path: dataset.path.clone(), problems })
    }
}

/// Decode every example's image in parallel, in example order, keeping only `f` of each example
/// and its image (so a caller that needs a summary, like `gacha check`, never holds all the pixels
/// at once) or the problem, which names the line.
pub fn decode_each<T: Send>(
    dataset: &Dataset,
    images: ImageOptions,
    prep: &Preprocessing,
    f: impl Fn(&Example, DecodedImage) -> T + Sync,
) -> Vec<Result<T, DataError>> {
    dataset
        .examples
        .par_iter()
        .map(|example| {
            let image = load_image(&example.image_path, images, prep);
            image.map(|image| f(example, image)).map_err(|err| DataError::AtLine {
                file: dataset.path.clone(),
                line: example.line,
                source: Box::new(err),
            })
        })
        .collect()
}

/// The dataset's folder as lines name images in it: its path as given, and its real path
/// (symbolic links resolved) when images must stay inside it.
struct Folder<'a> {
    base: &'a Path,
    real: Option<PathBuf>,
}

impl Folder<'_> {
    fn new(base: &Path, policy: PathPolicy) -> Folder<'_> {
        let here = if base.as_os_str().is_empty() { Path::new(".") } else { base };
        let real =
            (policy == PathPolicy::InsideDatasetOnly).then(|| std::fs::canonicalize(here).ok()).flatten();
        Folder { base, real }
    }

    /// Refuse an image that is a device, a named pipe or a socket (after symbolic links: never
    /// read, it could not end), and one whose real path is outside the folder. A file that does
    /// not exist is left to the image reader, which says so.
    fn check_file(&self, image: &str) -> Result<(), String> {
        let path = self.base.join(image);
        if let Ok(meta) = std::fs::metadata(&path) {
            if !meta.is_file() && !meta.is_dir() {
                return Err(format!("image path {image:?} is {}, not an image file", kind_of(&meta)));
            }
        }
        let Some(folder) = &self.real else { return Ok(()) };
        match std::fs::canonicalize(&path) {
            Ok(real) if !real.starts_with(folder) => Err(format!(
                "image path {image:?} leads out of the dataset's folder through a symbolic link, to {} ({ALLOW_OUTSIDE})",
                real.display()
            )),
            _ => Ok(()),
        }
    }
}

/// The same image with the same prompt (prefix) labelled both ways: a message for the later
/// line, naming the earlier. `answered` holds each (image, prefix) seen so far, with its label
/// and line. The image is known by its real path, else by its path as written.
fn contradiction(
    answered: &mut HashMap<(PathBuf, String), (Label, usize)>,
    example: &Example,
    line: usize,
    opts: &DataOptions,
) -> Option<String> {
    let image = std::fs::canonicalize(&example.image_path).unwrap_or_else(|_| example.image_path.clone());
    let key = (image, example.prefix.clone());
    match answered.get(&key) {
        Some(&(label, first)) if label != example.label => Some(format!(
            "image {:?} is labelled {:?} here and {:?} on line {first}, with the same prefix; \
             remove the wrong line",
            example.image,
            opts.answers.word(example.label),
            opts.answers.word(label)
        )),
        Some(_) => None,
        None => {
            answered.insert(key, (example.label, line));
            None
        }
    }
}

/// One non-blank line → an example (its `line` is filled in by the caller), or all its problems.
fn parse_line(raw: &[u8], folder: &Folder, opts: &DataOptions) -> Result<Example, Vec<String>> {
    let text = std::str::from_utf8(raw)
        .map_err(|e| vec![format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1)])?;
    let value: Value = serde_json::from_str(text).map_err(|e| vec![json_error(&e)])?;
    let Value::Object(object) = value else {
        return Err(vec![format!("expected a JSON object, found {}", kind(&value))]);
    };
    let prefix = string_field(&object, "prefix", Required::No);
    let suffix = string_field(&object, "suffix", Required::Yes);
    let image = string_field(&object, "image", Required::Yes);
    let mut problems = Vec::new();
    let label = match suffix {
        Ok(Some(word)) => match opts.answers.label_of(word) {
            Some(label) => Some(label),
            None => {
                problems.push(format!(
                    "unknown answer {word:?} (expected {} or {})",
                    opts.answers.positive, opts.answers.negative
                ));
                None
            }
        },
        Ok(None) => None,
        Err(message) => {
            problems.push(message);
            None
        }
    };
    let image = match image {
        Ok(Some(image)) => {
            match check_image_path(image, opts.paths).and_then(|()| folder.check_file(image)) {
                Ok(()) => Some(image),
                Err(message) => {
                    problems.push(message);
                    None
                }
            }
        }
        Ok(None) => None,
        Err(message) => {
            problems.push(message);
            None
        }
    };
    let prefix = prefix.unwrap_or_else(|message| {
        problems.push(message);
        None
    });
    match (label, image) {
        (Some(label), Some(image)) if problems.is_empty() => Ok(Example {
            image: image.to_string(),
            image_path: folder.base.join(image),
            prefix: prefix.unwrap_or("").to_string(),
            label,
            line: 0,
        }),
        _ => Err(problems),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    Yes,
    No,
}

/// A string-valued key: `Ok(None)` if absent and optional, an error message if absent and
/// required or not a string.
fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    required: Required,
) -> Result<Option<&'a str>, String> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key:?} must be a string, found {}", kind(other))),
        None if required == Required::Yes => Err(format!("missing key {key:?}")),
        None => Ok(None),
    }
}

/// Refuse empty, absolute and escaping image paths (unless allowed).
fn check_image_path(image: &str, policy: PathPolicy) -> Result<(), String> {
    if image.is_empty() {
        return Err("\"image\" is empty".to_string());
    }
    if policy == PathPolicy::AllowOutside {
        return Ok(());
    }
    let path = Path::new(image);
    if path.has_root() || path.is_absolute() {
        return Err(format!(
            "image path {image:?} is absolute; write it relative to the dataset's folder ({ALLOW_OUTSIDE})"
        ));
    }
    let mut depth: usize = 0;
    for component in path.components() {
        match component {
            Component::ParentDir if depth == 0 => {
                return Err(format!("image path {image:?} leaves the dataset's folder ({ALLOW_OUTSIDE})"));
            }
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}

/// serde_json's message without its " at line 1 column N" tail (the line is ours), with the column.
fn json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    format!("malformed JSON at column {}: {message}", err.column())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Answers, Label};

    /// Write `contents` as `data.jsonl` in a fresh folder and load it.
    fn load(contents: &[u8], opts: &DataOptions) -> (tempfile::TempDir, Result<Dataset, DatasetProblems>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, contents).unwrap();
        let result = load_dataset(&path, opts);
        (dir, result)
    }

    /// The problems as `line: message`, without the temp folder.
    fn problems(contents: &[u8]) -> Vec<String> {
        let (_dir, result) = load(contents, &DataOptions::default());
        result
            .unwrap_err()
            .problems
            .iter()
            .map(|p| match p {
                DataError::Line { line, message, .. } => format!("{line}: {message}"),
                other => other.to_string(),
            })
            .collect()
    }

    #[test]
    fn reads_examples_with_crlf_blank_lines_and_extra_keys() {
        let text =
            b"{\"prefix\": \"is it ok?\", \"suffix\": \"yes\", \"image\": \"images/a.png\", \"w\": 1}\r\n\
                     \r\n   \n{\"suffix\": \"no\", \"image\": \"./b.jpg\"}\n";
        let (dir, result) = load(text, &DataOptions::default());
        let dataset = result.unwrap();
        let examples = &dataset.examples;
        assert_eq!(examples.len(), 2);
        assert_eq!(
            examples[0],
            Example {
                image: "images/a.png".into(),
                image_path: dir.path().join("images/a.png"),
                prefix: "is it ok?".into(),
                label: Label::Positive,
                line: 1,
            }
        );
        assert_eq!(
            (examples[1].line, examples[1].label, examples[1].prefix.as_str()),
            (4, Label::Negative, "")
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = b"{\"suffix\": \"yes\", \"image\": \"a.png\"}\n\
                     {\"suffix\": \"yes\", \"image\": \"a.png\"\n\
                     [1, 2]\n\
                     {\"image\": \"a.png\"}\n\
                     {\"suffix\": 1, \"image\": [\"a.png\"], \"prefix\": null}\n\
                     {\"suffix\": \"maybe\", \"image\": \"a.png\"}\n\
                     {\"suffix\": \"no\", \"image\": \"../a.png\"}\n\
                     {\"suffix\": \"no\", \"image\": \"/tmp/a.png\"}\n\
                     {\"suffix\": \"no\", \"image\": \"\xff.png\"}\n\
                     {\"suffix\": \"no\", \"image\": \"\"}\n";
        assert_eq!(
            problems(text),
            [
                // The line is 34 characters long; serde_json reports EOF at its last one.
                "2: malformed JSON at column 34: EOF while parsing an object",
                "3: expected a JSON object, found an array",
                "4: missing key \"suffix\"",
                "5: \"suffix\" must be a string, found a number",
                "5: \"image\" must be a string, found an array",
                "5: \"prefix\" must be a string, found null",
                "6: unknown answer \"maybe\" (expected yes or no)",
                "7: image path \"../a.png\" leaves the dataset's folder (allow it with --allow-outside-paths, or \
                 allow_outside_paths = true under [data] in a spec)",
                "8: image path \"/tmp/a.png\" is absolute; write it relative to the dataset's folder \
                 (allow it with --allow-outside-paths, or allow_outside_paths = true under [data] in a spec)",
                // The 0xff byte is the 28th of its line.
                "9: invalid UTF-8 at byte 28 of the line",
                "10: \"image\" is empty",
            ]
        );
    }

    #[test]
    fn dot_dot_inside_the_folder_is_fine_and_outside_can_be_allowed() {
        assert_eq!(check_image_path("a/../b.png", PathPolicy::InsideDatasetOnly), Ok(()));
        assert!(check_image_path("a/../../b.png", PathPolicy::InsideDatasetOnly).is_err());
        assert_eq!(check_image_path("../b.png", PathPolicy::AllowOutside), Ok(()));
        assert_eq!(check_image_path("/b.png", PathPolicy::AllowOutside), Ok(()));
    }

    #[test]
    fn custom_answer_words() {
        let opts = DataOptions {
            answers: Answers { positive: "ok".into(), negative: "ng".into() },
            ..DataOptions::default()
        };
        let (_dir, result) = load(b"{\"suffix\": \"ng\", \"image\": \"a.png\"}\n", &opts);
        assert_eq!(result.unwrap().examples[0].label, Label::Negative);
        let (_dir, result) = load(b"{\"suffix\": \"yes\", \"image\": \"a.png\"}\n", &opts);
        let err = result.unwrap_err();
        assert!(err.to_string().ends_with(":1: unknown answer \"yes\" (expected ok or ng)"), "{err}");
    }

    #[test]
    fn empty_dataset_is_an_error() {
        for text in [&b""[..], b"\n\r\n  \n"] {
            let (_dir, result) = load(text, &DataOptions::default());
            let err = result.unwrap_err();
            assert!(matches!(err.problems[..], [DataError::EmptyDataset { .. }]), "{err}");
            assert!(
                err.to_string().ends_with("data.jsonl: no examples (the file has only blank lines, if any)"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_named_not_called_malformed_json() {
        let text = b"\xEF\xBB\xBF{\"suffix\": \"yes\", \"image\": \"a.png\"}\n{\"suffix\": \"no\", \"image\": \"b.png\"}\n";
        assert_eq!(
            problems(text),
            ["1: starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON Lines does not allow: \
              save the file as UTF-8 without BOM"]
        );
    }

    #[test]
    fn problems_display_lists_all() {
        let (_dir, result) = load(b"1\n2\n", &DataOptions::default());
        let text = result.unwrap_err().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("data.jsonl: 2 problems"));
        assert!(lines[1].ends_with("data.jsonl:1: expected a JSON object, found a number"));
        assert!(lines[2].ends_with("data.jsonl:2: expected a JSON object, found a number"));
    }
}
