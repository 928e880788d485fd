//! A palisade in this process with `[[upload]]` rules in front of the real test upstream,
//! its security log in a file (to read `upload.*` events), its own spool directory (to
//! prove nothing is left in it), and clients that speak raw HTTP/1.1 when a test needs to
//! stop sending halfway.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_gateway::admin::AdminRoutes;
use palisade_gateway::config::{ConfigSource, Overrides};
use palisade_gateway::serve::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestBody, Upstream, config_file, full};

/// Palisade with upload rules, and what a test looks at around it.
pub struct UploadGateway {
    pub running: Running,
    pub upstream: Upstream,
    pub spool: tempfile::TempDir,
    pub log: PathBuf,
}

/// A response read whole, body as bytes.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("json body ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `[scanner]` for the test clamd (`PALISADE_TEST_CLAMD`, or one started for this binary).
pub fn real_scanner() -> String {
    format!(
        "[scanner]\nclamd = \"{}\"\n",
        crate::upload_support::clamd_address()
    )
}

/// `[scanner]` for an address where nothing listens.
pub fn dead_scanner() -> String {
    let port = crate::common::free_port();
    format!("[scanner]\nclamd = \"tcp://127.0.0.1:{port}\"\ntimeout = \"2s\"\n")
}

impl UploadGateway {
    /// Starts palisade with `sections` (upload rules, scanner) and no rate limits.
    pub async fn start(sections: &str) -> Self {
        Self::start_with_spool("", sections).await
    }

    /// The same, with `spool_keys` (such as `max_total = "1MB"`) added to `[spool]`.
    pub async fn start_with_spool(spool_keys: &str, sections: &str) -> Self {
        let upstream = Upstream::start().await;
        let spool = tempfile::Builder::new()
            .prefix("palisade-upload-spool-")
            .tempdir()
            .expect("spool dir");
        let log = config_file("").with_file_name("security.jsonl");
        let toml = format!(
            "rate_limit = []\n\n[server]\nworkers = 1\nmax_body_size = \"64MB\"\n\n\
             [spool]\ndir = \"{}\"\nmemory_limit = \"16KB\"\n{spool_keys}\n\n\
             [log]\nsecurity = \"{}\"\n\n{sections}",
            spool.path().display(),
            log.display(),
        );
        let source = ConfigSource {
            file: Some(config_file(&toml)),
            overrides: Overrides {
                listen: Some("127.0.0.1:0".parse().expect("addr")),
                upstream: Some(upstream.url().parse().expect("upstream url")),
                admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
            },
        };
        let running = palisade_gateway::serve::start(source, AdminRoutes::standard())
            .await
            .expect("palisade starts");
        Self {
            running,
            upstream,
            spool,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.proxy_addr)
    }

    /// `method path` with `content_type` and `body`, plus extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", content_type)
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request.body(full(body)).expect("request")).await
    }

    /// A multipart POST of `parts` (see `upload_support::multipart`).
    pub async fn post_form(&self, path: &str, parts: &[(&str, &[u8])]) -> Answer {
        let body = crate::upload_support::multipart(parts);
        let form = crate::upload_support::MULTIPART;
        self.send("POST", path, form, body, &[]).await
    }

    /// The security events named `name` written so far.
    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event"] == name)
            .collect()
    }

    /// Waits (up to 10 s: the log is written by its own task) for the first event `name`.
    pub async fn event(&self, name: &str) -> serde_json::Value {
        for _ in 0..200 {
            if let Some(event) = self.events(name).into_iter().next() {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {name} event in {}", self.log.display());
    }

    /// Asserts the upstream saw no request and the spool holds no file, named or open.
    pub async fn assert_nothing_forwarded_nor_left(&self) {
        assert_eq!(self.upstream.hits(), 0, "the upstream saw the request");
        // The request's task drops its spool as it ends, which may be a moment after the
        // answer left.
        for _ in 0..100 {
            if leftovers(self.spool.path()) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} files left in the spool", leftovers(self.spool.path()));
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.running.admin_addr);
        crate::common::get(&url, &[]).await.body
    }
}

/// Files in `spool`, plus descriptors of this process pointing into it (an unlinked
/// temporary file still open shows as `spool/#123 (deleted)`).
pub fn leftovers(spool: &Path) -> usize {
    let entries = std::fs::read_dir(spool).map_or(0, |d| d.count());
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(spool))
                .count()
        })
        .unwrap_or(0);
    entries + open
}

/// Sends `request` and reads the whole answer as bytes.
pub async fn send(request: Request<TestBody>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<TestBody>();
    let response = client.request(request).await.expect("response");
    let (head, body) = response.into_parts();
    Answer {
        status: head.status,
        headers: head.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// How a raw client ends its request.
pub enum Ending {
    /// Keeps the connection open, sending nothing more.
    Stall,
    /// Shuts down its sending side (the server sees the end of the stream).
    HalfClose,
}

/// Writes `head` and `body` on a new connection, then ends as told, and returns what the
/// server answered within 20 s (until it closed the connection).
pub async fn raw_request(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    ending: Ending,
) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer and stop reading before everything is written.
    let _ = stream.write_all(body).await;
    if let Ending::HalfClose = ending {
        let _ = stream.shutdown().await;
    }
    let mut out = Vec::new();
    let mut buf = vec![0; 64 << 10];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if complete(&out) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `response` holds a whole head and the body its `content-length` announces.
fn complete(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|n| body.len() >= n)
}

/// The status code of a raw response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}
