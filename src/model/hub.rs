//! Hugging Face hub ids (`google/paligemma-3b-pt-224`, optionally `@revision`) found offline in
//! the local hub cache, where `huggingface_hub` (`hf download`, `from_pretrained`) puts them:
//!
//! ```text
//! $HF_HUB_CACHE/models--google--paligemma-3b-pt-224/refs/main         holds a commit sha
//! $HF_HUB_CACHE/models--google--paligemma-3b-pt-224/snapshots/<sha>/  the checkpoint folder
//! ```
//!
//! The cache folder is chosen as `huggingface_hub/constants.py` chooses it: `HF_HUB_CACHE` (or
//! the older `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`. A revision is a full commit sha (its snapshot is used as is)
//! or a branch or tag named by a file under `refs/`; without one it is `main`. Nothing here
//! touches the network: a model not in the cache is an error saying where it looked, and
//! `download` fetches it.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// The revision used when an id names none.
const DEFAULT_REVISION: &str = "main";

/// Hex digits of a full git commit sha.
const SHA_HEX_DIGITS: usize = 40;

/// A hub model id as written: `owner/name`, with `@revision` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `owner/name`.
    pub repo: String,
    pub revision: Option<String>,
}

impl HubId {
    /// `text` as a hub id, or `None` when it is not shaped like one: exactly one `/`, not
    /// starting with `.` or `/`, owner and name of letters, digits, `-`, `_` and `.`, not ending
    /// in `.npz` (a big_vision file), and a non-empty revision after `@` if there is one.
    pub fn parse(text: &str) -> Option<HubId> {
        let (repo, revision) = match text.split_once('@') {
            Some((repo, revision)) => (repo, Some(revision)),
            None => (text, None),
        };
        let (owner, name) = repo.split_once('/')?;
        let part_ok = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let revision_ok = revision.is_none_or(|r| {
            !r.is_empty() && !r.starts_with('/') && r.split('/').all(|part| !part.is_empty() && part != "..")
        });
        let is_id = part_ok(owner) && part_ok(name) && !name.ends_with(".npz") && revision_ok;
        is_id.then(|| HubId { repo: repo.to_string(), revision: revision.map(str::to_string) })
    }

    /// The revision to resolve: the one given, else `main`.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }

    /// The repository's folder in the cache: `models--owner--name`.
    pub(super) fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }

    /// The command that puts this model into the cache.
    pub fn download_command(&self) -> String {
        match &self.revision {
            Some(revision) => format!("hf download {} --revision {revision}", self.repo),
            None => format!("hf download {}", self.repo),
        }
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.revision {
            Some(revision) => write!(f, "{}@{revision}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

/// The hub cache folder and the setting that chose it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    pub dir: PathBuf,
    /// Why this folder: `from $HF_HUB_CACHE`, `from $HF_HOME`, … .
    pub chosen_by: String,
}

/// The cache folder, chosen from the environment `var` as huggingface_hub chooses it. Empty
/// variables count as unset; a leading `~/` is the home folder.
pub fn cache_dir(var: impl Fn(&str) -> Option<OsString>) -> CacheDir {
    let set = |name: &str| var(name).filter(|value| !value.is_empty());
    let home = || set("HOME").map(PathBuf::from).unwrap_or_default();
    let expand = |value: OsString| match value.to_str().and_then(|s| s.strip_prefix("~/")) {
        Some(rest) => home().join(rest),
        None => PathBuf::from(value),
    };
    for name in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(value) = set(name) {
            return CacheDir { dir: expand(value), chosen_by: format!("from ${name}") };
        }
    }
    if let Some(value) = set("HF_HOME") {
        return CacheDir { dir: expand(value).join("hub"), chosen_by: "from $HF_HOME".into() };
    }
    if let Some(value) = set("XDG_CACHE_HOME") {
        return CacheDir {
            dir: expand(value).join("huggingface/hub"),
            chosen_by: "from $XDG_CACHE_HOME".into(),
        };
    }
    CacheDir {
        dir: home().join(".cache/huggingface/hub"),
        chosen_by: "the default: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME is set".into(),
    }
}

/// A model found in the cache: the commit and its checkpoint folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: HubId,
    /// The commit sha the revision pointed to.
    pub sha: String,
    /// `snapshots/<sha>/`: a Hugging Face checkpoint folder.
    pub dir: PathBuf,
}

impl fmt::Display for Snapshot {
    /// `owner/name@sha`: parsed again, the same snapshot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id.repo, self.sha)
    }
}

/// A model not in the cache: each place looked at, and what was missing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub id: HubId,
    pub cache: CacheDir,
    pub looked: Vec<(PathBuf, &'static str)>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hub model {} is not in the local Hugging Face cache {} ({}); looked at:",
            self.id,
            self.cache.dir.display(),
            self.cache.chosen_by
        )?;
        for (path, missing) in &self.looked {
            write!(f, "\n  {}: {missing}", path.display())?;
        }
        Ok(())
    }
}

/// Find `id` in `cache`, without touching the network.
pub fn resolve(id: &HubId, cache: &CacheDir) -> Result<Snapshot, NotFound> {
    let not_found =
        |looked: Vec<(PathBuf, &'static str)>| NotFound { id: id.clone(), cache: cache.clone(), looked };
    let repo = cache.dir.join(id.folder_name());
    if !repo.is_dir() {
        return Err(not_found(vec![(repo, "no such folder")]));
    }
    let revision = id.revision();
    let sha = if is_full_sha(revision) {
        revision.to_ascii_lowercase()
    } else {
        let reference = repo.join("refs").join(revision);
        match std::fs::read_to_string(&reference) {
            Ok(text) if is_full_sha(text.trim()) => text.trim().to_ascii_lowercase(),
            Ok(_) => return Err(not_found(vec![(reference, "does not hold a commit sha")])),
            Err(_) => return Err(not_found(vec![(reference, "no such branch or tag file")])),
        }
    };
    let dir = repo.join("snapshots").join(&sha);
    if !dir.is_dir() {
        return Err(not_found(vec![(dir, "no such snapshot folder")]));
    }
    Ok(Snapshot { id: id.clone(), sha, dir })
}

fn is_full_sha(text: &str) -> bool {
    text.len() == SHA_HEX_DIGITS && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SHA_A: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA_B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    /// A cache with `google/pg` at two snapshots, `main` → A, tag `v1` → B.
    fn fake_cache() -> (tempfile::TempDir, CacheDir) {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("models--google--pg");
        for sha in [SHA_A, SHA_B] {
            std::fs::create_dir_all(repo.join("snapshots").join(sha)).unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), SHA_A).unwrap();
        std::fs::write(repo.join("refs/v1"), format!("{SHA_B}\n")).unwrap();
        let cache = CacheDir { dir: root.path().to_path_buf(), chosen_by: "from $HF_HUB_CACHE".into() };
        (root, cache)
    }

    #[test]
    fn ids_are_told_from_paths() {
        let id = HubId::parse("google/paligemma-3b-pt-224").unwrap();
        assert_eq!((id.repo.as_str(), id.revision()), ("google/paligemma-3b-pt-224", "main"));
        let id = HubId::parse("google/pg@v1.0").unwrap();
        assert_eq!((id.revision.as_deref(), id.to_string().as_str()), (Some("v1.0"), "google/pg@v1.0"));
        assert_eq!(id.download_command(), "hf download google/pg --revision v1.0");
        for path in [
            "./google/pg",
            "/google/pg",
            "../pg/x",
            "a/b/c",
            "pg",
            "a/b.npz",
            "a/",
            "a/b@",
            "a b/c",
            "a/b@../x",
        ] {
            assert_eq!(HubId::parse(path), None, "{path}");
        }
    }

    #[test]
    fn the_cache_folder_is_chosen_as_huggingface_hub_does() {
        fn env<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
            move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        }
        let all = [("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/u")];
        assert_eq!(cache_dir(env(&all)).dir, Path::new("/c"));
        assert_eq!(cache_dir(env(&all[1..])).dir, Path::new("/h/hub"));
        assert_eq!(cache_dir(env(&all[2..])).dir, Path::new("/x/huggingface/hub"));
        assert_eq!(cache_dir(env(&all[3..])).dir, Path::new("/u/.cache/huggingface/hub"));
        let tilde = cache_dir(env(&[("HF_HOME", "~/hf"), ("HOME", "/u")]));
        assert_eq!(
            (tilde.dir.as_path(), tilde.chosen_by.as_str()),
            (Path::new("/u/hf/hub"), "from $HF_HOME")
        );
        assert_eq!(cache_dir(env(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/h")])).dir, Path::new("/h/hub"));
    }

    #[test]
    fn revisions_resolve_by_ref_and_by_sha() {
        let (_root, cache) = fake_cache();
        let snapshots = cache.dir.join("models--google--pg/snapshots");
        let main = resolve(&HubId::parse("google/pg").unwrap(), &cache).unwrap();
        assert_eq!((main.sha.as_str(), main.dir.clone()), (SHA_A, snapshots.join(SHA_A)));
        assert_eq!(resolve(&HubId::parse("google/pg@v1").unwrap(), &cache).unwrap().sha, SHA_B);
        let by_sha = resolve(&HubId::parse(&format!("google/pg@{}", SHA_B.to_uppercase())).unwrap(), &cache);
        assert_eq!(by_sha.unwrap().dir, snapshots.join(SHA_B));
    }

    #[test]
    fn not_found_says_where_it_looked_and_how_to_download() {
        let (_root, cache) = fake_cache();
        let err = resolve(&HubId::parse("google/other").unwrap(), &cache).unwrap_err().to_string();
        let repo = cache.dir.join("models--google--other");
        assert_eq!(
            err,
            format!(
                "hub model google/other is not in the local Hugging Face cache {} (from $HF_HUB_CACHE); \
                 looked at:\n  {}: no such folder",
                cache.dir.display(),
                repo.display()
            )
        );
        let err = resolve(&HubId::parse("google/pg@dev").unwrap(), &cache).unwrap_err().to_string();
        assert!(err.contains("refs/dev: no such branch or tag file"), "{err}");
        let missing = "fedcba9876543210fedcba9876543210fedcba98";
        let err = resolve(&HubId::parse(&format!("google/pg@{missing}")).unwrap(), &cache).unwrap_err();
        assert!(err.to_string().contains(&format!("snapshots/{missing}: no such snapshot folder")), "{err}");
    }
}
