//! A split written as two JSONL files, `train.jsonl` and `valid.jsonl`, that read like the
//! dataset's own: each line keeps its original keys (in their order), with `image` rewritten so
//! that it resolves from the output folder.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use super::split::SplitIndices;
use super::{Dataset, Example};
use crate::fsutil::write_atomic;

/// Write `split` of `dataset` into `out` (created if missing) as `train.jsonl` and
/// `valid.jsonl`. Returns whether some image path now points outside `out`.
pub fn write_split(dataset: &Dataset, split: &SplitIndices, out: &Path) -> anyhow::Result<bool> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create folder", out.display()))?;
    let lines = original_lines(dataset)?;
    let rebase = Rebase::new(&dataset.path, out)?;
    let mut escaping = false;
    for (name, indices) in [("train.jsonl", &split.train), ("valid.jsonl", &split.valid)] {
        let mut text = String::new();
        for &i in indices {
            let example = &dataset.examples[i];
            let image = rebase.image(&example.image);
            escaping |= image.starts_with("../") || Path::new(&image).is_absolute();
            text.push_str(&rewrite_line(&lines[example.line - 1], &image, example)?);
            text.push('\n');
        }
        write_atomic(&out.join(name), text.as_bytes())?;
    }
    Ok(escaping)
}

/// The dataset's lines as text (already known to be UTF-8: the dataset loaded).
fn original_lines(dataset: &Dataset) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(&dataset.path)
        .with_context(|| format!("{}: cannot read", dataset.path.display()))?;
    Ok(text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line).to_string()).collect())
}

/// One JSON line again, keys in their original order, with a new `image` value. (Objects nested
/// inside a value come back with their keys sorted.)
fn rewrite_line(line: &str, image: &str, example: &Example) -> anyhow::Result<String> {
    let OrderedObject(entries) = serde_json::from_str(line)
        .with_context(|| format!("line {}: changed while splitting", example.line))?;
    let mut fields = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let value = if key == "image" { serde_json::Value::String(image.to_string()) } else { value };
        fields.push(format!("{}: {}", serde_json::to_string(&key)?, serde_json::to_string(&value)?));
    }
    Ok(format!("{{{}}}", fields.join(", ")))
}

/// A JSON object's entries in file order (serde_json's `Map` sorts them).
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Rewrites image paths written relative to the dataset's folder so they resolve from the output
/// folder: relative when both folders are on one root, else absolute. Absolute image paths (only
/// there with --allow-outside-paths) stay as they are.
struct Rebase {
    /// The dataset's folder, absolute and without symlinks.
    from: PathBuf,
    /// The output folder, likewise.
    to: PathBuf,
}

impl Rebase {
    fn new(dataset: &Path, out: &Path) -> anyhow::Result<Rebase> {
        let dataset_dir = match dataset.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let canonical = |dir: &Path| {
            std::fs::canonicalize(dir).with_context(|| format!("{}: cannot resolve folder", dir.display()))
        };
        Ok(Rebase { from: canonical(dataset_dir)?, to: canonical(out)? })
    }

    fn image(&self, image: &str) -> String {
        if Path::new(image).is_absolute() {
            return image.to_string();
        }
        let target = normalize(&self.from.join(image));
        let common = target.components().zip(self.to.components()).take_while(|(a, b)| a == b).count();
        if common == 0 {
            return target.to_string_lossy().into_owned();
        }
        let ups = self.to.components().count() - common;
        let parts: Vec<String> = std::iter::repeat_n("..".to_string(), ups)
            .chain(target.components().skip(common).map(|c| c.as_os_str().to_string_lossy().into_owned()))
            .collect();
        parts.join("/")
    }
}

/// Remove `.` and resolve `..` textually (the folder part is already canonical).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Label;

    fn rebase(from: &str, to: &str) -> Rebase {
        Rebase { from: PathBuf::from(from), to: PathBuf::from(to) }
    }

    #[test]
    fn image_paths_resolve_from_the_output_folder() {
        assert_eq!(rebase("/d", "/d").image("images/a.png"), "images/a.png");
        assert_eq!(rebase("/d", "/d/split").image("images/a.png"), "../images/a.png");
        assert_eq!(rebase("/d", "/out/s1").image("./images/../a.png"), "../../d/a.png");
        assert_eq!(rebase("/d/sub", "/d").image("a.png"), "sub/a.png");
        assert_eq!(rebase("/d", "/out").image("/abs/a.png"), "/abs/a.png");
    }

    #[test]
    fn lines_keep_key_order_and_extra_keys() {
        let example = Example {
            image: "a.png".into(),
            image_path: PathBuf::from("a.png"),
            prefix: String::new(),
            label: Label::Positive,
            line: 1,
        };
        let line = r#"{"suffix":"yes","z":{"b":1,"a":[1,2]},"image":"a.png","prefix":"p"}"#;
        assert_eq!(
            rewrite_line(line, "../a.png", &example).unwrap(),
            r#"{"suffix": "yes", "z": {"a":[1,2],"b":1}, "image": "../a.png", "prefix": "p"}"#
        );
    }
}
