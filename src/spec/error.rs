//! `SpecError`: what is wrong with a sweep spec, as `file: line N: field: message`.
//!
//! The toml parser reports byte spans; `Locator` turns a span into a line number and the dotted
//! key it falls in (`train.learning_rate`), and rewrites serde's type names for people
//! (`expected f64` → `expected a float`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Why a spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read the spec", file.display())]
    Read { file: PathBuf, source: crate::fsutil::input::InputError },

    /// A problem at a place in the file; `field` is empty when no key applies (a syntax error).
    #[error("{}: line {line}: {}{message}", file.display(), field_prefix(field))]
    At { file: PathBuf, line: usize, field: String, message: String },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// Maps spans of one spec file to lines and keys.
pub struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<&'a Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// A locator that can give lines only (before the document has parsed).
    pub fn lines_only(file: &'a Path, text: &'a str) -> Locator<'a> {
        Locator { file, text, doc: None }
    }

    pub fn new(file: &'a Path, text: &'a str, doc: &'a Spanned<DeTable<'a>>) -> Locator<'a> {
        Locator { file, text, doc: Some(doc) }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// An error at `span`, naming the innermost key whose key or value holds the span.
    /// An empty span (the whole document's) names no key.
    pub fn at_span(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        let field = match self.doc {
            Some(doc) if !span.is_empty() => field_at(doc.get_ref(), span.start).join("."),
            _ => String::new(),
        };
        self.at(span, field, message)
    }

    /// An error at `span` about a named field.
    pub fn at(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError::At {
            file: self.file.to_path_buf(),
            line: self.line(span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A toml or serde error, located by its span (line 1 when it has none).
    pub fn toml(&self, err: &toml::de::Error) -> SpecError {
        self.at_span(err.span().unwrap_or(0..0), humanize(err.message()))
    }

    /// The span of the value at a dotted path, if the file has it.
    pub fn span_of(&self, path: &[&str]) -> Option<Range<usize>> {
        self.value_at(path).map(Spanned::span)
    }

    /// The span of the string `value` at a dotted path: the list element equal to it where the
    /// path holds a list (a `[sweep]` axis), else the whole value.
    pub fn span_of_string(&self, path: &[&str], value: &str) -> Option<Range<usize>> {
        let at = self.value_at(path)?;
        let DeValue::Array(items) = at.get_ref() else { return Some(at.span()) };
        let equal = |item: &&Spanned<DeValue>| matches!(item.get_ref(), DeValue::String(s) if s == value);
        Some(items.iter().find(equal).unwrap_or(at).span())
    }

    fn value_at(&self, path: &[&str]) -> Option<&'a Spanned<DeValue<'a>>> {
        let mut table = self.doc?.get_ref();
        let (last, parents) = path.split_last()?;
        for key in parents {
            match table.get(*key)?.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => return None,
            }
        }
        table.get(*last)
    }
}

/// The keys from the root down to the innermost entry whose key or value holds `offset`. (A
/// `[table]`'s own span is its header only, so every table is searched.)
fn field_at(table: &DeTable<'_>, offset: usize) -> Vec<String> {
    for (key, value) in table.iter() {
        let inner = match value.get_ref() {
            DeValue::Table(inner) => field_at(inner, offset),
            _ => Vec::new(),
        };
        let holds = key.span().contains(&offset) || value.span().contains(&offset);
        if holds || !inner.is_empty() {
            let mut path = vec![key.get_ref().to_string()];
            path.extend(inner);
            return path;
        }
    }
    Vec::new()
}

/// serde's Rust type names, as a user of the spec would say them.
const TYPE_WORDS: [(&str, &str); 8] = [
    ("expected f64", "expected a number (such as 0.03)"),
    ("expected u64", "expected a whole number ≥ 0"),
    ("expected u32", "expected a whole number ≥ 0"),
    ("expected usize", "expected a whole number ≥ 0"),
    ("expected a sequence", "expected a list [ … ]"),
    ("expected a boolean", "expected true or false"),
    ("expected a string", "expected a string in quotes"),
    ("expected a borrowed string", "expected a string in quotes"),
];

/// Rewrites `invalid type: string "x", expected f64` as `expected a number (such as 0.03),
/// found string "x"`; other messages pass through with Rust type names replaced.
fn humanize(message: &str) -> String {
    let message = message.trim_end();
    let replace =
        |text: &str| TYPE_WORDS.iter().fold(text.to_string(), |acc, (rust, human)| acc.replace(rust, human));
    match message.strip_prefix("invalid type: ").and_then(|rest| rest.split_once(", expected ")) {
        Some((found, expected)) => replace(&format!("expected {expected}, found {found}")),
        None => replace(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes_type_errors() {
        assert_eq!(
            humanize("invalid type: string \"x\", expected f64\n"),
            "expected a number (such as 0.03), found string \"x\""
        );
        assert_eq!(humanize("unknown field `lr`"), "unknown field `lr`");
    }

    #[test]
    fn finds_line_and_field_of_an_offset() {
        let text = "name = \"a\"\n[train]\nlearning_rate = \"x\"\n";
        let doc = DeTable::parse(text).unwrap();
        let at = Locator::new(Path::new("a.toml"), text, &doc);
        let offset = text.find("\"x\"").unwrap();
        let err = at.at_span(offset..offset + 3, "bad");
        assert_eq!(err.to_string(), "a.toml: line 3: train.learning_rate: bad");
        assert_eq!(at.span_of(&["train", "learning_rate"]), Some(offset..offset + 3));
    }

    #[test]
    fn finds_the_list_element_holding_a_string() {
        let text = "[sweep]\nprompt = [\n  \"a\",\n  \"b\",\n]\nseeds = 1\n";
        let doc = DeTable::parse(text).unwrap();
        let at = Locator::new(Path::new("a.toml"), text, &doc);
        let line = |span: Option<Range<usize>>| at.line(span.unwrap().start);
        assert_eq!(line(at.span_of_string(&["sweep", "prompt"], "b")), 4);
        // Not in the list: the list itself; not a list: the value.
        assert_eq!(line(at.span_of_string(&["sweep", "prompt"], "c")), 2);
        assert_eq!(line(at.span_of_string(&["sweep", "seeds"], "c")), 6);
    }
}
