//! Shared pieces of the integration tests: a real upstream on loopback, palisade started
//! in-process or as the real binary, and small HTTP and raw-TCP clients.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod sessions;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use palisade_gateway::admin::AdminRoutes;
use palisade_gateway::config::{ConfigSource, Overrides};
use palisade_gateway::serve::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type TestBody = BoxBody<Bytes, Infallible>;

/// A real upstream application on loopback that reports what it received.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests that reached the upstream.
    pub hits: Arc<AtomicUsize>,
    /// Connections the upstream accepted (TLS ones once their handshake succeeded).
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The same application speaking only TLS, with `tls`'s certificate; a connection whose
    /// handshake fails never reaches it (and is not counted in `hits`).
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                let accepted = Arc::clone(&accepted);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            serve_upstream(stream, counter).await;
                        }
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                accepted.fetch_add(1, Ordering::SeqCst);
                                serve_upstream(stream, counter).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            hits,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`, for an upstream started with [`Upstream::start_tls`].
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Serves the test application's routes on one connection, counting requests in `hits`.
async fn serve_upstream<S>(stream: S, hits: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        hits.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(answer(request).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

/// The upstream's routes. Any route adds the response headers asked for in
/// `x-test-response-header: name: value` request headers (how tests make the upstream send
/// palisade's session directives).
async fn answer(mut request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let path = request.uri().path().to_string();
    let asked = asked_response_headers(request.headers());
    let mut response = match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            text("slow done")
        }
        "/sink" => {
            let mut total: u64 = 0;
            let mut body = request.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => return status(StatusCode::BAD_REQUEST),
                }
            }
            text(&total.to_string())
        }
        "/big" => {
            let size: u64 = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            stream_of(size)
        }
        "/cookie" => {
            let mut response = text("cookie");
            response.headers_mut().insert(
                http::header::SET_COOKIE,
                http::HeaderValue::from_static("sid=abc; Path=/"),
            );
            response
        }
        // `partial`, then nothing more, the answer never ended.
        "/stall" => stalling(),
        "/ws" => upgrade_echo(&mut request),
        "/trailers" => with_trailers(&request),
        "/early" => early_answer(request),
        p if p.starts_with("/upload") => mirror(request).await,
        // `/status/NNN`: an empty answer with that status.
        p if p.starts_with("/status/") => p["/status/".len()..]
            .parse()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .map_or_else(|| status(StatusCode::BAD_REQUEST), status),
        _ => echo(request).await,
    };
    let headers = response.headers_mut();
    headers.insert(
        "server",
        http::HeaderValue::from_static("test-upstream/1.0"),
    );
    headers.insert("x-powered-by", http::HeaderValue::from_static("tests"));
    for (name, value) in asked {
        headers.append(name, value);
    }
    response
}

fn asked_response_headers(request: &HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    request
        .get_all("x-test-response-header")
        .iter()
        .filter_map(|v| {
            let (name, value) = v.to_str().ok()?.split_once(':')?;
            let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(value.trim_start()).ok()?;
            Some((name, value))
        })
        .collect()
}

/// Echoes the request as JSON: method, path, headers, body.
async fn echo(request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let (head, body) = request.into_parts();
    let collected = body.collect().await.ok();
    let trailers: Vec<String> = collected
        .as_ref()
        .and_then(|c| c.trailers())
        .map(|t| t.keys().map(|k| k.to_string()).collect())
        .unwrap_or_default();
    let body = collected.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = head
        .headers
        .keys()
        .map(|name| {
            let values: Vec<String> = head
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
                .collect();
            (name.to_string(), serde_json::Value::from(values.join(", ")))
        })
        .collect();
    let json = serde_json::json!({
        "method": head.method.as_str(),
        "uri": head.uri.to_string(),
        "version": format!("{:?}", head.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "trailers": trailers,
    });
    let mut response = Response::new(full(json.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Answers with the request body's exact bytes, and the `Content-Type` and
/// `Content-Length` it came with in `x-seen-content-type` and `x-seen-content-length`.
async fn mirror(request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let (head, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut response = Response::new(full(body));
    for (seen, name) in [
        ("x-seen-content-type", http::header::CONTENT_TYPE),
        ("x-seen-content-length", http::header::CONTENT_LENGTH),
    ] {
        if let Some(value) = head.headers.get(name) {
            response.headers_mut().insert(seen, value.clone());
        }
    }
    response
}

/// `grpc` with the trailer `grpc-status: 0` after it, as a gRPC server answers, and the
/// request's `TE` in `x-seen-te`. More trailers come from `x-test-trailer: name: value`
/// request headers; `?grpc` makes it a gRPC answer (`Content-Type: application/grpc`).
fn with_trailers(request: &Request<hyper::body::Incoming>) -> Response<TestBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    for value in request.headers().get_all("x-test-trailer") {
        let Some((name, value)) = value.to_str().ok().and_then(|v| v.split_once(':')) else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        trailers.append(name, value);
    }
    let grpc = request.uri().query() == Some("grpc");
    let request = request.headers();
    let frames = vec![
        Frame::trailers(trailers),
        Frame::data(Bytes::from_static(b"grpc")),
    ];
    let mut response = Response::new(BodyExt::boxed(Frames(frames)));
    if let Some(te) = request.get(http::header::TE) {
        response.headers_mut().insert("x-seen-te", te.clone());
    }
    if grpc {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
    }
    response
}

/// Accepts any upgrade and echoes the bytes of the upgraded connection.
fn upgrade_echo(request: &mut Request<hyper::body::Incoming>) -> Response<TestBody> {
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    response
}

/// Answers at once, before reading the request body, then writes `got N` for each body frame
/// of N bytes as it arrives, and ends when the body ends or fails: a streaming API.
fn early_answer(request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut body = request.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, Bytes::len);
            if tx.send(Bytes::from(format!("got {len}\n"))).await.is_err() {
                return;
            }
        }
    });
    Response::new(BodyExt::boxed(ChannelBody(rx)))
}

/// A body whose data frames come from a channel, ending when every sender is gone: a
/// client (or server) that sends its body piece by piece, when the test says.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(Frame::data(d))))
    }
}

/// A body of the frames given, last first (popped as polled).
struct Frames(Vec<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop().map(Ok))
    }
}

/// `partial`, then a body that never goes on: its sender waits until the body is dropped.
fn stalling() -> Response<TestBody> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.try_send(Bytes::from_static(b"partial"));
    tokio::spawn(async move { tx.closed().await });
    Response::new(BodyExt::boxed(ChannelBody(rx)))
}

/// A streamed body of `size` bytes in 64 KiB frames of one shared buffer.
pub fn stream_of(size: u64) -> Response<TestBody> {
    Response::new(streamed(size))
}

pub fn streamed(size: u64) -> TestBody {
    BodyExt::boxed(Repeat {
        left: size,
        chunk: Bytes::from(vec![b'x'; 64 * 1024]),
    })
}

/// `left` bytes of `x`, produced as they are polled: nothing is buffered.
struct Repeat {
    left: u64,
    chunk: Bytes,
}

impl hyper::body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let len = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= len as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

pub fn full(text: impl Into<Bytes>) -> TestBody {
    BodyExt::boxed(Full::new(text.into()))
}

pub fn text(body: &str) -> Response<TestBody> {
    Response::new(full(body.to_string()))
}

pub fn status(code: StatusCode) -> Response<TestBody> {
    let mut response = text("");
    *response.status_mut() = code;
    response
}

/// Writes `toml` to a fresh temporary file.
pub fn config_file(toml: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "palisade-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("palisade.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// Palisade in this process, on free loopback ports, in front of `upstream`.
pub async fn start_palisade(upstream: &str, toml: &str) -> Running {
    let file = config_file(&format!("{toml}\n[log]\nsecurity = \"off\"\n"));
    start_palisade_at(upstream, file).await
}

/// Palisade in this process with the configuration file `file` as it is (files it names,
/// such as a rules file, sit beside it).
pub async fn start_palisade_at(upstream: &str, file: PathBuf) -> Running {
    let source = ConfigSource {
        file: Some(file),
        overrides: Overrides {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            upstream: Some(upstream.parse().expect("upstream url")),
            admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
        },
    };
    palisade_gateway::serve::start(source, AdminRoutes::standard())
        .await
        .expect("palisade starts")
}

/// The events named `name` in the JSON-lines security log at `log`, as written so far.
pub fn logged_events(log: &std::path::Path, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == name)
        .collect()
}

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("json body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("missing header {name}: {:?}", self.headers))
    }
}

/// Sends `request` with a fresh HTTP/1.1 client and reads the whole response.
pub async fn send(request: Request<TestBody>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<TestBody>();
    let response = client.request(request).await.expect("response");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

/// `GET url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(full("")).expect("request")).await
}

/// Writes raw bytes on a new TCP connection and reads until the server closes it (or
/// `wait` passes), returning what came back.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

/// A rustls server configuration (ring) for the PEM `cert` chain and `key`, offering `alpn`.
pub fn rustls_server(
    cert: &std::path::Path,
    key: &std::path::Path,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    rustls_server_checking_clients(cert, key, None, alpn)
}

/// [`rustls_server`] that, given `client_ca` (a PEM file), requires every client to present
/// a certificate that CA signed (mutual TLS).
pub fn rustls_server_checking_clients(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(ca).expect("client CA file") {
                roots
                    .add(ca.expect("client CA"))
                    .expect("a usable client CA");
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A WebSocket handshake through the proxy at `addr` to the upstream's `/ws` echo: asserts
/// the 101 and that a masked frame comes back unchanged, each within 10 s.
pub async fn websocket_echo_round_trip(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let handshake = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\
                     Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream
        .write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut head = Vec::new();
    let read_head = async {
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.expect("response head");
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .expect("a response head in time");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked text frame "hi"; the echo server returns the bytes unchanged.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    stream.write_all(&frame).await.expect("frame");
    let mut echoed = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed))
        .await
        .expect("an echo in time")
        .expect("echo");
    assert_eq!(echoed, frame);
}

/// 3 MB up to the upstream's `/sink` and 3 MB down from its `/big`, both streamed, through
/// the proxy at `base` (`http://addr`): asserts both arrive whole. Two upstream requests.
pub async fn streams_3mb_both_ways(base: &str) {
    let size: u64 = 3 * 1024 * 1024;
    let upload = Request::post(format!("{base}/sink"))
        .body(streamed(size))
        .expect("request");
    let reply = send(upload).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, size.to_string());
    let reply = get(&format!("{base}/big?bytes={size}"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len() as u64, size);
    assert!(reply.body.bytes().all(|b| b == b'x'));
}

/// The `request.failed` events in the JSON-lines security log `log`, waiting (at most 3 s)
/// for at least one.
pub async fn request_failures(log: &std::path::Path) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..150 {
        found = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "request.failed")
            .collect();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}

/// The one `request.failed` event in `log`, checked to be `source`'s with `kind` (`case`
/// names the run in failure messages).
pub async fn one_request_failure(
    log: &std::path::Path,
    source: &str,
    kind: &str,
    case: &str,
) -> serde_json::Value {
    let events = request_failures(log).await;
    assert_eq!(events.len(), 1, "{case}: {events:?}");
    let event = events.into_iter().next().expect("one");
    assert_eq!(event["error.source"], source, "{case}: {event}");
    assert_eq!(event["error.kind"], kind, "{case}: {event}");
    event
}

/// A free loopback port for a process a test starts, below the kernel's ephemeral range
/// (32768-60999 here): a port from `bind(0)` could be handed to another test in between, or
/// be a client's own source port, whose TCP self-connect looks like the process listening.
/// Each test binary starts at its own place in 25000-29999 and counts up (own_redis keeps
/// to 21000-24999).
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = (std::process::id() as usize % 500) * 10;
    for _ in 0..5_000 {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 5_000;
        let port = u16::try_from(25_000 + offset).expect("below 30000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 25000-29999");
}
