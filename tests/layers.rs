//! The house rules (docs/contributing.md), read off the source: a module imports only from layers below it
//! (`use crate::…` lines and paths), and the files inside one module import each other without
//! a circle. Test code (after `#[cfg(test)]`) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Top-level modules, lowest layer first; a module may import its own layer's peers only where
/// listed together and never a later layer.
const LAYERS: &[&[&str]] = &[
    &["fsutil", "clock", "logging", "device", "machine"],
    &["data", "demo"],
    &["model"],
    &["features"],
    &["train"],
    &["eval", "adapter"],
    &["spec"],
    &["results"],
    &["sweep", "bench"],
    &["report"],
    &["cli"],
    &["cmd"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file's path under src/ and its text before its tests.
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let body = text.split("#[cfg(test)]").next().unwrap().to_string();
            (path.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/"), body)
        })
        .collect()
}

/// The names after `prefix` in `text`: `prefix name` or each name of `prefix {a, b::c}`.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let re = Regex::new(&format!(r"{}(\{{[^}}]*\}}|[a-z_][a-z0-9_]*)", regex::escape(prefix))).unwrap();
    let word = Regex::new(r"(?:^|[{,\s])([a-z_][a-z0-9_]*)").unwrap();
    let mut out = BTreeSet::new();
    for m in re.captures_iter(text) {
        let group = &m[1];
        if let Some(inner) = group.strip_prefix('{') {
            out.extend(word.captures_iter(inner).map(|w| w[1].to_string()));
        } else {
            out.insert(group.to_string());
        }
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut upward = Vec::new();
    for (path, body) in sources() {
        let top = path.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let own =
            layer_of(&top).unwrap_or_else(|| panic!("src/{path}: module {top} is in no layer of LAYERS"));
        for used in names_after(&body, "crate::") {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own || (layer == own && LAYERS[own].contains(&used.as_str())) => {}
                Some(_) => upward.push(format!("src/{path}: {top} imports {used}")),
                None => {}
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_files_of_a_module_import_each_other_without_a_circle() {
    let mut files: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (path, body) in sources() {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 {
            continue;
        }
        let (module, file) = (parts[0], parts[1].trim_end_matches(".rs"));
        let mut used = names_after(&body, "super::");
        used.extend(names_after(&body, &format!("crate::{module}::")));
        used.remove(file);
        files.entry(module.to_string()).or_default().entry(file.to_string()).or_default().extend(used);
    }
    for (module, graph) in &files {
        // Only edges between sibling files (not `mod.rs`, which declares them all).
        let siblings: BTreeSet<&String> = graph.keys().filter(|f| *f != "mod").collect();
        let edges = |f: &String| -> Vec<String> {
            graph[f].iter().filter(|u| siblings.contains(u)).cloned().collect()
        };
        // Depth-first search for a back edge.
        fn visit(
            f: &String,
            edges: &dyn Fn(&String) -> Vec<String>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(f) {
                Some(2) => return None,
                Some(1) => {
                    let at = path.iter().position(|p| p == f).unwrap();
                    return Some(path[at..].iter().cloned().chain([f.clone()]).collect());
                }
                _ => {}
            }
            state.insert(f.clone(), 1);
            path.push(f.clone());
            for next in edges(f) {
                if let Some(circle) = visit(&next, edges, state, path) {
                    return Some(circle);
                }
            }
            path.pop();
            state.insert(f.clone(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for f in &siblings {
            if let Some(circle) = visit(f, &edges, &mut state, &mut Vec::new()) {
                panic!("src/{module}/: the files import in a circle: {}", circle.join(" → "));
            }
        }
    }
}
