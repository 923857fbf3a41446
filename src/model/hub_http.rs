//! The hub's HTTP API as gacha uses it, on a small blocking client (ureq, rustls: no system
//! OpenSSL), with huggingface_hub's conventions (`file_download.py`, `utils/_http.py`):
//!
//! - `GET {endpoint}/api/models/{repo}/revision/{revision}`: the commit sha and the file list;
//! - `HEAD {endpoint}/{repo}/resolve/{sha}/{file}`, redirects not followed: the blob's name
//!   (`X-Linked-Etag`, else `ETag`, quotes and `W/` dropped: the SHA-256 of a large file, the git
//!   blob id of a small one), its size (`X-Linked-Size`, else `Content-Length`) and where to get it
//!   (`Location`, else the same URL);
//! - `GET` of that, following redirects (the token is sent to the endpoint's host only), with
//!   `Range: bytes=N-` to resume.
//!
//! Failures are [`HubError`]s whose message says what to do: a gated or private model (401/403:
//! how to get access and set `HF_TOKEN`), an unknown repository, revision or file (404), no
//! network. Every wait is bounded: connecting, the response, and each read of the body.

use std::fmt;
use std::time::Duration;

use super::hub_env::{HubEnv, Token};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long to wait for a response's headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one read of a body may wait for bytes before the download counts as stalled.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest API answer read (a file list).
const MAX_API_BYTES: u64 = 32 << 20;

/// Redirects followed to reach a file (the hub sends large files to its CDN).
const MAX_REDIRECTS: u32 = 10;

/// A failed exchange with the hub, with what to do about it.
#[derive(Debug)]
pub enum HubError {
    /// No answer at all: no network, a wrong `HF_ENDPOINT`, a timeout.
    Unreachable { url: String, cause: String },
    /// 401 or 403: the model is gated or private, or the token is refused.
    Denied { repo: String, url: String, status: u16, token: Option<String>, server: String, env: Box<HubEnv> },
    /// 404: no such repository, revision or file.
    Missing { url: String, server: String },
    /// Any other failure status, or an answer gacha cannot read.
    Failed { url: String, what: String },
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Unreachable { url, cause } => write!(
                f,
                "cannot reach the Hugging Face hub ({url}: {cause}); check the network (a proxy goes in \
                 HTTPS_PROXY) or HF_ENDPOINT, or download the model on a machine that is online and \
                 set HF_HUB_OFFLINE=1 here"
            ),
            HubError::Denied { repo, url, status, token, server, env } => {
                let page = format!("{}/{repo}", env.endpoint);
                write!(f, "{repo}: access denied (HTTP {status} for {url}{})", server_says(server))?;
                match token {
                    None => write!(
                        f,
                        "; gacha sent no token, and this model is gated or private. To get access: log \
                         in at {}, accept the model's terms at {page}, create a read token at {}/settings/tokens, \
                         then set HF_TOKEN=<token> (or run `hf auth login`, which saves it to {})",
                        env.endpoint,
                        env.endpoint,
                        env.token_path.display()
                    ),
                    Some(from) => write!(
                        f,
                        "; the token from {from} was refused or has no access to this model: accept the \
                         model's terms at {page} with the account the token belongs to, and check that the \
                         token may read gated repositories ({}/settings/tokens)",
                        env.endpoint
                    ),
                }
            }
            HubError::Missing { url, server } => write!(
                f,
                "not found on the hub: {url}{} (check the model id and the revision after @; a private \
                 repository is found only with a token that may read it, in HF_TOKEN)",
                server_says(server)
            ),
            HubError::Failed { url, what } => write!(f, "{url}: {what}"),
        }
    }
}

impl std::error::Error for HubError {}

fn server_says(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": \"{message}\"")
    }
}

/// What a HEAD of a file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The blob's name in the cache.
    pub etag: String,
    pub size: Option<u64>,
    /// Where to GET it.
    pub location: String,
}

/// A client for one repository on one endpoint.
pub struct HubClient {
    agent: ureq::Agent,
    env: HubEnv,
    repo: String,
}

/// A streaming body and the offset it starts at (0 unless a range was granted).
pub struct Body {
    pub reader: Box<dyn std::io::Read + Send>,
    pub start: u64,
}

impl HubClient {
    pub fn new(env: &HubEnv, repo: &str) -> HubClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .max_redirects(MAX_REDIRECTS)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(format!("gacha/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HubClient { agent, env: env.clone(), repo: repo.to_string() }
    }

    /// The commit `revision` names and the repository's file names at it.
    pub fn revision(&self, revision: &str) -> Result<(String, Vec<String>), HubError> {
        #[derive(serde::Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            sha: String,
            #[serde(default)]
            siblings: Vec<Sibling>,
        }
        let url = format!("{}/api/models/{}/revision/{}", self.env.endpoint, self.repo, encode(revision, ""));
        let response = self.checked(&url, self.authorized(self.agent.get(&url)).call())?;
        let text =
            response.into_body().with_config().limit(MAX_API_BYTES).read_to_string().map_err(|err| {
                HubError::Failed { url: url.clone(), what: format!("cannot read the answer: {err}") }
            })?;
        let info: Info = serde_json::from_str(&text).map_err(|err| HubError::Failed {
            url: url.clone(),
            what: format!("not the hub's answer ({err})"),
        })?;
        Ok((info.sha, info.siblings.into_iter().map(|s| s.rfilename).collect()))
    }

    /// The URL of `file` at commit `sha`.
    pub fn file_url(&self, sha: &str, file: &str) -> String {
        format!("{}/{}/resolve/{sha}/{}", self.env.endpoint, self.repo, encode(file, "/"))
    }

    /// HEAD `file` at `sha`, as `get_hf_file_metadata` does (redirects not followed).
    pub fn file_meta(&self, sha: &str, file: &str) -> Result<FileMeta, HubError> {
        let url = self.file_url(sha, file);
        let request =
            self.agent.head(&url).header("Accept-Encoding", "identity").config().max_redirects(0).build();
        let response = self.checked(&url, self.authorized(request).call())?;
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let etag = header("X-Linked-Etag")
            .or_else(|| header("ETag"))
            .map(|etag| etag.trim_start_matches("W/").trim_matches('"').to_string());
        let etag = etag.filter(|e| !e.is_empty() && !e.contains(['/', '\\']) && e != "." && e != "..");
        let Some(etag) = etag else {
            return Err(HubError::Failed { url, what: "the answer names no ETag for the file".into() });
        };
        let redirected = response.status().is_redirection();
        let size = header("X-Linked-Size")
            .or_else(|| if redirected { None } else { header("Content-Length") })
            .and_then(|size| size.parse().ok());
        let location = match header("Location") {
            Some(location) if location.starts_with('/') => format!("{}{location}", origin(&url)),
            Some(location) => location,
            None => url,
        };
        Ok(FileMeta { etag, size, location })
    }

    /// GET `url` from byte `from` on.
    pub fn get(&self, url: &str, from: u64) -> Result<Body, HubError> {
        let mut request = self.agent.get(url).header("Accept-Encoding", "identity");
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let request = if url.starts_with(&self.env.endpoint) { self.authorized(request) } else { request };
        let response = self.checked(url, request.call())?;
        let start = if response.status().as_u16() == 206 { from } else { 0 };
        Ok(Body { reader: Box::new(response.into_body().into_reader()), start })
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.env.token {
            Some(Token { value, .. }) => request.header("Authorization", format!("Bearer {value}")),
            None => request,
        }
    }

    /// The response if its status is a success (or, for a HEAD, a redirect); else the error.
    fn checked(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, HubError> {
        let response =
            result.map_err(|err| HubError::Unreachable { url: url.to_string(), cause: err.to_string() })?;
        let status = response.status().as_u16();
        if response.status().is_success() || response.status().is_redirection() {
            return Ok(response);
        }
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        };
        let server = header("X-Error-Message");
        let code = header("X-Error-Code");
        let not_found = ["RepoNotFound", "RevisionNotFound", "EntryNotFound"].contains(&code.as_str());
        Err(match status {
            _ if not_found || status == 404 => HubError::Missing { url: url.to_string(), server },
            401 | 403 => HubError::Denied {
                repo: self.repo.clone(),
                url: url.to_string(),
                status,
                token: self.env.token.as_ref().map(|t| t.from.clone()),
                server,
                env: Box::new(self.env.clone()),
            },
            _ => HubError::Failed {
                url: url.to_string(),
                what: format!("HTTP {status}{}", server_says(&server)),
            },
        })
    }
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |at| after_scheme + at);
    &url[..end]
}

/// `text` percent-encoded for a URL path, keeping letters, digits, `-._~` and `keep`.
fn encode(text: &str, keep: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.as_bytes().contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_as_huggingface_hub_quotes_them() {
        assert_eq!(encode("refs/pr/1", ""), "refs%2Fpr%2F1");
        assert_eq!(encode("sub dir/model-00001.safetensors", "/"), "sub%20dir/model-00001.safetensors");
        assert_eq!(origin("https://huggingface.co/a/b/resolve/x"), "https://huggingface.co");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
