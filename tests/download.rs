//! Issue 31: a hub id not in the cache is downloaded, from a local HTTP server that plays the hub
//! (`HF_ENDPOINT` points at it, `HF_HOME` is a temp folder). The server serves the tiny fixture
//! the way huggingface.co does: the revision API, HEAD and GET on `resolve/<sha>/<file>`, the
//! weights (an LFS file: `X-Linked-Etag` is its SHA-256) redirected to a CDN path that honours
//! `Range`. Every loop of the server is bounded in time and connections.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::{assert_exit, fixtures, run, texts, TestDir};

const REPO: &str = "google/tiny-pg";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// How long a server lives at most, and how many connections it takes.
const SERVER_LIFETIME: Duration = Duration::from_secs(300);
const MAX_CONNECTIONS: usize = 500;

/// The files the repository lists; only the first three are gacha's to fetch.
const SERVED: [&str; 5] =
    ["config.json", "tokenizer.json", "model.safetensors", "README.md", "reference.json"];

/// How the server plays the hub.
#[derive(Clone, Default)]
struct Behaviour {
    /// Resolve paths answer 401 (gated) unless this bearer token comes.
    token: Option<String>,
    /// The first GET of the weights sends its headers and half its bytes, then hangs up.
    cut_first_weights: bool,
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

struct Hub {
    endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    fn start(behaviour: Behaviour) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_by, stop_by) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut weights_cut = false;
            for _ in 0..MAX_CONNECTIONS {
                let stream = loop {
                    if stop_by.load(Ordering::Relaxed) || started.elapsed() > SERVER_LIFETIME {
                        return;
                    }
                    match listener.accept() {
                        Ok((stream, _)) => break stream,
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                if let Some(request) = read_request(&stream) {
                    seen_by.lock().unwrap().push(request.clone());
                    let _ = answer(stream, &request, &behaviour, &mut weights_cut);
                }
            }
        });
        Hub { endpoint, seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    for _ in 0..100 {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            return Some(Seen { method, path, headers });
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    None
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("tiny-paligemma").join(file)).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A small file's ETag: the hub's is its git blob id (40 hex digits); any stable name will do.
fn small_etag(bytes: &[u8]) -> String {
    sha256(bytes)[..40].to_string()
}

fn answer(
    mut stream: TcpStream,
    request: &Seen,
    behaviour: &Behaviour,
    weights_cut: &mut bool,
) -> std::io::Result<()> {
    let mut reply = |status: &str, headers: &[(&str, String)], body: &[u8]| -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !headers.iter().any(|(name, _)| *name == "Content-Length") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        stream.write_all(format!("{head}\r\n").as_bytes())?;
        if request.method != "HEAD" {
            stream.write_all(body)?;
        }
        stream.flush()
    };
    let api = format!("/api/models/{REPO}/revision/main");
    let resolve = format!("/{REPO}/resolve/{SHA}/");
    if request.path == api {
        let siblings: Vec<String> = SERVED.iter().map(|f| format!("{{\"rfilename\": \"{f}\"}}")).collect();
        let body =
            format!("{{\"id\": \"{REPO}\", \"sha\": \"{SHA}\", \"siblings\": [{}]}}", siblings.join(", "));
        return reply("200 OK", &[], body.as_bytes());
    }
    if request.path.starts_with("/api/models/") {
        let not_found = [("X-Error-Code", "RepoNotFound".to_string())];
        return reply("404 Not Found", &not_found, b"Repository not found");
    }
    if let Some(file) = request.path.strip_prefix(&resolve) {
        let wanted = behaviour.token.as_ref().map(|token| format!("Bearer {token}"));
        if wanted.is_some() && request.headers.get("authorization") != wanted.as_ref() {
            let gated = [
                ("X-Error-Code", "GatedRepo".to_string()),
                ("X-Error-Message", format!("Access to model {REPO} is restricted.")),
            ];
            return reply("401 Unauthorized", &gated, b"");
        }
        if !SERVED.contains(&file) {
            return reply("404 Not Found", &[("X-Error-Code", "EntryNotFound".to_string())], b"");
        }
        let bytes = fixture(file);
        let commit = ("X-Repo-Commit", SHA.to_string());
        if file == "model.safetensors" {
            let headers = [
                commit,
                ("X-Linked-Etag", format!("\"{}\"", sha256(&bytes))),
                ("X-Linked-Size", bytes.len().to_string()),
                ("Location", format!("/cdn/{}", sha256(&bytes))),
            ];
            return reply("302 Found", &headers, b"");
        }
        return reply("200 OK", &[commit, ("ETag", format!("\"{}\"", small_etag(&bytes)))], &bytes);
    }
    if request.path.starts_with("/cdn/") && request.method == "GET" {
        let bytes = fixture("model.safetensors");
        let from: Option<usize> = request
            .headers
            .get("range")
            .and_then(|range| range.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok());
        if let Some(from) = from {
            let range = format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len());
            return reply("206 Partial Content", &[("Content-Range", range)], &bytes[from..]);
        }
        if behaviour.cut_first_weights && !*weights_cut {
            *weights_cut = true;
            let half = bytes.len() / 2;
            let length = [("Content-Length", bytes.len().to_string())];
            let mut head = "HTTP/1.1 200 OK\r\nConnection: close\r\n".to_string();
            head.push_str(&format!("{}: {}\r\n\r\n", length[0].0, length[0].1));
            stream.write_all(head.as_bytes())?;
            stream.write_all(&bytes[..half])?;
            return stream.flush();
        }
        return reply("200 OK", &[], &bytes);
    }
    reply("404 Not Found", &[], b"")
}

/// A gacha command that talks to `hub` (or to `endpoint`), with its cache in `dir/hf`.
fn gacha(dir: &TestDir, endpoint: &str) -> Command {
    let mut cmd = dir.gacha();
    for name in [
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("HF_HOME", dir.join("hf")).env("HF_ENDPOINT", endpoint);
    cmd
}

fn repo_dir(dir: &TestDir) -> PathBuf {
    dir.join("hf/hub/models--google--tiny-pg")
}

/// `gacha score --model REPO` on the fixture's data: the exit status, the CSV and stderr.
fn score(cmd: &mut Command, dir: &TestDir, out: &str) -> (Option<i32>, String, String) {
    let output = run(cmd
        .args(["score", "--model", REPO, "--data"])
        .arg(fixtures().join("tiny-paligemma/data.jsonl"))
        .args(["--out", out]));
    let (_, stderr) = texts(&output);
    (output.status.code(), std::fs::read_to_string(dir.join(out)).unwrap_or_default(), stderr)
}

/// The fixture scored from its folder: what a download must reproduce.
fn folder_scores(dir: &TestDir) -> String {
    let output = run(dir
        .gacha()
        .args(["score", "--model"])
        .arg(fixtures().join("tiny-paligemma"))
        .arg("--data")
        .arg(fixtures().join("tiny-paligemma/data.jsonl"))
        .args(["--out", "folder.csv"]));
    assert_exit(&output, 0);
    std::fs::read_to_string(dir.join("folder.csv")).unwrap()
}

/// Download from `hub` and score: the scores of the fixture's folder.
fn scores_as_the_folder(dir: &TestDir, hub: &Hub) {
    let (code, scores, stderr) = score(&mut gacha(dir, &hub.endpoint), dir, "hub.csv");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(scores, folder_scores(dir));
}

/// The Range header of each request for the weights at the CDN path so far.
fn cdn_ranges(hub: &Hub) -> Vec<Option<String>> {
    hub.seen()
        .iter()
        .filter(|s| s.path.starts_with("/cdn/"))
        .map(|s| s.headers.get("range").cloned())
        .collect()
}

#[test]
fn a_hub_id_is_downloaded_into_the_cache_layout_once() {
    let dir = TestDir::new();
    let hub = Hub::start(Behaviour::default());
    let (code, scores, stderr) = score(&mut gacha(&dir, &hub.endpoint), &dir, "hub.csv");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(scores, folder_scores(&dir));
    assert!(stderr.contains(&format!("downloading {REPO}@0123456789ab model.safetensors (")), "{stderr}");

    // huggingface_hub's layout: refs/main → the sha; links into blobs named by ETag.
    let repo = repo_dir(&dir);
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), SHA);
    let weights = fixture("model.safetensors");
    let link = std::fs::read_link(repo.join(format!("snapshots/{SHA}/model.safetensors"))).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(sha256(&weights)));
    assert_eq!(std::fs::read(repo.join("blobs").join(sha256(&weights))).unwrap(), weights);
    let config = fixture("config.json");
    let link = std::fs::read_link(repo.join(format!("snapshots/{SHA}/config.json"))).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(small_etag(&config)));
    // The file list, then HEAD and GET per file, the weights from where the HEAD sent them;
    // README.md and reference.json are not gacha's.
    let asked: Vec<String> = hub.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    let resolve = format!("/{REPO}/resolve/{SHA}");
    assert_eq!(
        asked,
        [
            format!("GET /api/models/{REPO}/revision/main"),
            format!("HEAD {resolve}/config.json"),
            format!("GET {resolve}/config.json"),
            format!("HEAD {resolve}/tokenizer.json"),
            format!("GET {resolve}/tokenizer.json"),
            format!("HEAD {resolve}/model.safetensors"),
            format!("GET /cdn/{}", sha256(&weights)),
        ]
    );

    // Again: from the cache, without a request.
    let before = hub.seen().len();
    let (code, again, stderr) = score(&mut gacha(&dir, &hub.endpoint), &dir, "again.csv");
    assert_eq!((code, again), (Some(0), scores), "{stderr}");
    assert_eq!(hub.seen().len(), before);
}

#[test]
fn a_cut_download_is_resumed_with_a_range() {
    let dir = TestDir::new();
    let hub = Hub::start(Behaviour { cut_first_weights: true, ..Default::default() });
    let weights = fixture("model.safetensors");
    // A partial file left by a run that was killed: its first 1000 bytes.
    let blobs = repo_dir(&dir).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{}.incomplete", sha256(&weights))), &weights[..1000]).unwrap();

    scores_as_the_folder(&dir, &hub);
    assert_eq!(cdn_ranges(&hub), [Some("bytes=1000-".to_string())]);

    // A fresh cache: the server hangs up halfway through the weights; gacha asks for the rest.
    let dir = TestDir::new();
    scores_as_the_folder(&dir, &hub);
    assert_eq!(cdn_ranges(&hub)[1..], [None, Some(format!("bytes={}-", weights.len() / 2))]);
    let left: Vec<_> =
        std::fs::read_dir(repo_dir(&dir).join("blobs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|name| !name.to_string_lossy().ends_with(".incomplete")), "{left:?}");
}

#[test]
fn a_gated_model_needs_a_token_and_says_how_to_get_one() {
    let dir = TestDir::new();
    let hub = Hub::start(Behaviour { token: Some("hf_good".into()), ..Default::default() });
    let (code, _, stderr) = score(&mut gacha(&dir, &hub.endpoint), &dir, "x.csv");
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        format!("{REPO}: access denied (HTTP 401 for {}/{REPO}/resolve/{SHA}/config.json", hub.endpoint),
        "Access to model google/tiny-pg is restricted.".to_string(),
        "gacha sent no token".to_string(),
        format!("accept the model's terms at {}/{REPO}", hub.endpoint),
        "then set HF_TOKEN=<token>".to_string(),
        format!("saves it to {}", dir.join("hf/token").display()),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    let (code, _, stderr) = score(gacha(&dir, &hub.endpoint).env("HF_TOKEN", "hf_bad"), &dir, "x.csv");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the token from $HF_TOKEN was refused or has no access"), "{stderr}");
    // The token `hf auth login` stored in $HF_HOME/token.
    dir.write("hf/token", "hf_good\n");
    scores_as_the_folder(&dir, &hub);
}

#[test]
fn offline_mode_no_network_and_unknown_repos_are_refused_clearly() {
    let dir = TestDir::new();
    let hub = Hub::start(Behaviour::default());
    let (code, _, stderr) = score(gacha(&dir, &hub.endpoint).env("HF_HUB_OFFLINE", "1"), &dir, "x.csv");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("HF_HUB_OFFLINE is set, so gacha does not download it"), "{stderr}");
    assert!(hub.seen().is_empty(), "{:?}", hub.seen());

    // Nothing listens on a port just freed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, stderr) = score(&mut gacha(&dir, &format!("http://{closed}")), &dir, "x.csv");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot reach the Hugging Face hub"), "{stderr}");
    assert!(stderr.contains("set HF_HUB_OFFLINE=1"), "{stderr}");

    let output = run(gacha(&dir, &hub.endpoint)
        .args(["score", "--model", "google/nothing", "--data"])
        .arg(fixtures().join("tiny-paligemma/data.jsonl"))
        .args(["--out", "x.csv"]));
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    let url = format!("{}/api/models/google/nothing/revision/main", hub.endpoint);
    assert!(stderr.contains(&format!("not found on the hub: {url}")), "{stderr}");
}

#[test]
fn a_sweep_of_a_downloaded_model_pins_its_commit() {
    let dir = TestDir::new();
    let hub = Hub::start(Behaviour::default());
    let spec = format!(
        "name = \"hub\"\n[model]\npath = \"{REPO}\"\n[data]\npath = {:?}\n[train]\ntrainable = \"attention\"\n\
         optimizer = \"sgd\"\nsteps = 1\nbatch_size = 2\n[sweep]\nseeds = [1]\nvalid = [2]\nlearning_rate = [0.01]\n",
        fixtures().join("tiny-paligemma/data.jsonl").display().to_string()
    );
    dir.write("s.toml", spec);
    let output = run(gacha(&dir, &hub.endpoint).args(["sweep", "s.toml", "--results", "results"]));
    assert_exit(&output, 0);
    let trials: Vec<PathBuf> =
        std::fs::read_dir(dir.join("results/trials")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(trials.len(), 1);
    let config = std::fs::read_to_string(trials[0].join("config.toml")).unwrap();
    assert!(config.contains(&format!("model_sha = \"{SHA}\"\n")), "{config}");

    // Reading the results folder never downloads: with the cache gone, an error and no request.
    std::fs::remove_dir_all(dir.join("hf")).unwrap();
    let before = hub.seen().len();
    let output = run(gacha(&dir, &hub.endpoint).args(["leaderboard", "results"]));
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    assert!(stderr.contains("reading a results folder never downloads its model"), "{stderr}");
    assert_eq!(hub.seen().len(), before);
}
