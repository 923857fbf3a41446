//! What the environment says about the Hugging Face hub, read as `huggingface_hub/constants.py`
//! and `utils/_auth.py` read it: the cache folder ([`hub::cache_dir`]), the endpoint
//! (`HF_ENDPOINT`, default `https://huggingface.co`), the token (`HF_TOKEN`, else the older
//! `HUGGING_FACE_HUB_TOKEN`, else the file `hf auth login` writes: `HF_TOKEN_PATH`, else
//! `$HF_HOME/token`) and offline mode (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE` set to 1, ON,
//! YES or TRUE).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use super::hub::{self, CacheDir};

/// The hub everyone uses, when `HF_ENDPOINT` names no other.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// huggingface_hub's `ENV_VARS_TRUE_VALUES`.
const TRUE_VALUES: [&str; 4] = ["1", "ON", "YES", "TRUE"];

/// Whether resolving a hub id may download it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubAccess {
    /// Download what the cache lacks (unless `HF_HUB_OFFLINE`): running, checking, scoring.
    Download,
    /// The cache only: reading a results folder (`status`, `leaderboard`, `report`) never
    /// downloads its model.
    CacheOnly,
}

/// A token and where it came from (for messages; the token itself is never shown).
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    /// `$HF_TOKEN`, or the token file's path.
    pub from: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {})", self.from)
    }
}

/// The hub settings of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEnv {
    pub cache: CacheDir,
    /// Without a trailing `/`.
    pub endpoint: String,
    pub token: Option<Token>,
    /// Where `hf auth login` keeps the token (named in messages about access).
    pub token_path: PathBuf,
    /// Never touch the network.
    pub offline: bool,
}

impl HubEnv {
    /// The settings from the environment `var` (empty variables count as unset); the token file
    /// is read with `read_file`.
    pub fn from_env(
        var: impl Fn(&str) -> Option<OsString>,
        read_file: impl Fn(&std::path::Path) -> Option<String>,
    ) -> HubEnv {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        let text = |name: &str| set(name).map(|value| value.to_string_lossy().into_owned());
        let endpoint = text("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let home = || set("HOME").map(PathBuf::from).unwrap_or_default();
        let expand = |value: OsString| match value.to_str().and_then(|s| s.strip_prefix("~/")) {
            Some(rest) => home().join(rest),
            None => PathBuf::from(value),
        };
        let hf_home = match (set("HF_HOME"), set("XDG_CACHE_HOME")) {
            (Some(hf_home), _) => expand(hf_home),
            (None, Some(xdg)) => expand(xdg).join("huggingface"),
            (None, None) => home().join(".cache/huggingface"),
        };
        let token_path = set("HF_TOKEN_PATH").map(expand).unwrap_or_else(|| hf_home.join("token"));
        let clean = |token: String| {
            Some(token.replace(['\r', '\n'], "").trim().to_string()).filter(|t| !t.is_empty())
        };
        let token = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
            .into_iter()
            .find_map(|name| Some(Token { value: clean(text(name)?)?, from: format!("${name}") }))
            .or_else(|| {
                let value = clean(read_file(&token_path)?)?;
                Some(Token { value, from: token_path.display().to_string() })
            });
        let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
            .into_iter()
            .find_map(text)
            .is_some_and(|value| TRUE_VALUES.contains(&value.to_ascii_uppercase().as_str()));
        HubEnv {
            cache: hub::cache_dir(&var),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            token_path,
            offline,
        }
    }

    /// The settings of this process.
    pub fn of_process() -> HubEnv {
        HubEnv::from_env(|name| std::env::var_os(name), |path| std::fs::read_to_string(path).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn env(pairs: &[(&str, &str)], token_file: Option<&str>) -> HubEnv {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HubEnv::from_env(
            |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| OsString::from(v)),
            |path| (path == Path::new("/h/token")).then(|| token_file.map(str::to_string)).flatten(),
        )
    }

    #[test]
    fn endpoint_token_and_offline_are_read_as_huggingface_hub_reads_them() {
        let plain = env(&[("HOME", "/u")], None);
        assert_eq!(plain.endpoint, "https://huggingface.co");
        assert_eq!((plain.token, plain.offline), (None, false));
        assert_eq!(plain.token_path, Path::new("/u/.cache/huggingface/token"));
        assert_eq!(env(&[("HF_ENDPOINT", "http://127.0.0.1:9/")], None).endpoint, "http://127.0.0.1:9");

        let from_file = env(&[("HF_HOME", "/h")], Some(" hf_abc\n"));
        let token = from_file.token.unwrap();
        assert_eq!((token.value.as_str(), token.from.as_str()), ("hf_abc", "/h/token"));
        let from_env = env(&[("HF_HOME", "/h"), ("HF_TOKEN", "hf_env")], Some("hf_abc")).token.unwrap();
        assert_eq!((from_env.value.as_str(), from_env.from.as_str()), ("hf_env", "$HF_TOKEN"));
        let old = env(&[("HUGGING_FACE_HUB_TOKEN", "hf_old")], None).token.unwrap();
        assert_eq!(old.from, "$HUGGING_FACE_HUB_TOKEN");
        assert_eq!(env(&[("HF_HOME", "/h")], Some("\n")).token, None);
        assert_eq!(env(&[("HF_TOKEN_PATH", "/t")], None).token_path, Path::new("/t"));

        for (value, offline) in [("1", true), ("yes", true), ("True", true), ("0", false), ("no", false)] {
            assert_eq!(env(&[("HF_HUB_OFFLINE", value)], None).offline, offline, "{value}");
        }
        assert!(env(&[("TRANSFORMERS_OFFLINE", "1")], None).offline);
    }
}
