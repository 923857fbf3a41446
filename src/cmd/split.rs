//! `gacha split DATA --valid N|F --seed S [--stratify] --out DIR`: the users' shuffle script,
//! reproducibly. Writes DIR/train.jsonl and DIR/valid.jsonl; each line keeps its original keys
//! (in their order), with `image` rewritten so that it resolves from DIR.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::cli::SplitArgs;
use crate::data::jsonl::load_dataset;
use crate::data::split::{split_indices, Stratify, ValidSize};
use crate::data::{Dataset, Example, Label};
use crate::fsutil::write_atomic;
use crate::Outcome;

pub fn run(args: &SplitArgs) -> anyhow::Result<Outcome> {
    let opts = super::data_options(&args.options)?;
    let valid: ValidSize = args.valid.parse().context("--valid")?;
    let dataset = load_dataset(&args.data, &opts)?;
    let labels: Vec<Label> = dataset.examples.iter().map(|e| e.label).collect();
    let stratify = if args.stratify { Stratify::ByLabel } else { Stratify::No };
    let split = split_indices(&labels, &valid, args.seed, stratify)
        .with_context(|| format!("{}: cannot split", args.data.display()))?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create folder", args.out.display()))?;
    let lines = original_lines(&dataset)?;
    let rebase = Rebase::new(&dataset.path, &args.out)?;
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
        write_atomic(&args.out.join(name), text.as_bytes())?;
    }

    let count = |indices: &[usize], label: Label| indices.iter().filter(|&&i| labels[i] == label).count();
    let describe = |indices: &[usize]| {
        format!(
            "{} ({} {}, {} {})",
            indices.len(),
            opts.answers.positive,
            count(indices, Label::Positive),
            opts.answers.negative,
            count(indices, Label::Negative)
        )
    };
    println!(
        "{}: train {}, valid {} (seed {}, {}) -> {}",
        args.data.display(),
        describe(&split.train),
        describe(&split.valid),
        args.seed,
        if args.stratify { "stratified" } else { "not stratified" },
        args.out.display()
    );
    if escaping {
        crate::warn!(
            "image paths in {} point outside its folder; read these files with --allow-outside-paths",
            args.out.display()
        );
    }
    Ok(Outcome::Success)
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
