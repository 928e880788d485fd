//! `[upstream] protocol = "http2"` end to end: a real upstream speaking HTTP/2 (h2c with
//! prior knowledge, or ALPN `h2` over TLS) behind a real palisade, real HTTP clients.
//! Requests share connections (up to 32 streams each, per worker), bodies stream both ways,
//! trailers (gRPC) pass, WebSocket upgrades still work, and an upstream that cannot speak
//! HTTP/2 is a 502.

mod common;
#[path = "../../palisade-store/tests/support/own_redis.rs"]
mod own_redis;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use own_redis::TestPki;
use palisade_gateway::config::UpstreamUrl;
use palisade_gateway::serve::Running;
use palisade_gateway::upstream_tls::{CaCertificates, UpstreamTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One worker (so, under 32 requests at once, one upstream connection), no rate limits,
/// HTTP/2 upstream.
const HTTP2: &str = "rate_limit = []\n[server]\nworkers = 1\n[upstream]\nprotocol = \"http2\"\n";

/// [`HTTP2`] trusting `ca` for an `https://` upstream.
fn http2_trusting(ca: &Path) -> String {
    format!("{HTTP2}ca_file = \"{}\"\n", ca.display())
}

/// The rustls server configuration for `pki`'s server certificate, offering `alpn`.
fn server_tls(pki: &TestPki, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    rustls_server(&pki.cert_file, &pki.key_file, alpn)
}

#[tokio::test]
async fn requests_reach_an_h2c_upstream_as_http2_over_one_connection() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), HTTP2).await;
    let base = format!("http://{}", palisade.proxy_addr);

    let request = Request::post(format!("{base}/submit?q=1"))
        .header("host", "shop.example")
        .header("x-forwarded-for", "6.6.6.6")
        .body(full(r#"{"name":"ünïcode"}"#))
        .expect("request");
    let reply = send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let echo = reply.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["method"], "POST");
    // The client's host is the request's :authority; no `Host` travels beside it.
    assert_eq!(echo["uri"], "http://shop.example/submit?q=1");
    assert!(echo["headers"].get("host").is_none(), "{echo}");
    assert_eq!(echo["body"], r#"{"name":"ünïcode"}"#);
    // Forwarding headers as for HTTP/1.1: the spoofed hop is not believed.
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-host"], "shop.example");
    // Responses get the security headers and lose the revealing ones, as always.
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert!(reply.headers.get("server").is_none());

    // Concurrent requests from separate client connections share the one upstream one.
    let requests = (0..16).map(|n| {
        let url = format!("{base}/concurrent/{n}");
        async move { get(&url, &[]).await }
    });
    for reply in futures_join_all(requests).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.json()["version"], "HTTP/2.0");
    }

    streams_3mb_both_ways(&base).await;

    assert_eq!(upstream.hits(), 19);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    palisade.shutdown().await;
}

/// Runs the futures at once (no extra crate for it) and returns their outputs in order.
async fn futures_join_all<F: std::future::Future<Output = Reply> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Reply> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut replies = Vec::new();
    for handle in handles {
        replies.push(handle.await.expect("request task"));
    }
    replies
}

/// gRPC over palisade: the client's `TE: trailers` reaches the upstream, and the
/// upstream's trailers (`grpc-status`, its own metadata) reach the client, without what the
/// response stages remove from heads (cookies, software names, palisade's directives,
/// security headers). A response that is not gRPC's loses its trailers: nothing would check
/// them.
#[tokio::test]
async fn trailers_and_te_trailers_pass_between_http2_client_and_upstream() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), HTTP2).await;
    let tcp = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c prior knowledge");
    tokio::spawn(connection);
    for (target, grpc) in [("/trailers?grpc", true), ("/trailers", false)] {
        let mut request = Request::post(format!("http://{}{target}", palisade.proxy_addr))
            .header("te", "trailers")
            .header("content-type", "application/grpc");
        for extra in [
            "x-request-cost: 3",
            "set-cookie: sid=trailer",
            "server: trailerleak",
            "palisade-session-login: 42",
            "strict-transport-security: max-age=0",
        ] {
            request = request.header("x-test-trailer", extra);
        }
        let request = request.body(full("request")).expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-seen-te"], "trailers");
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let names: Vec<&str> = trailers.keys().map(|n| n.as_str()).collect();
        if grpc {
            assert_eq!(names, ["grpc-status", "x-request-cost"], "{target}");
            assert_eq!(trailers["grpc-status"], "0");
        } else {
            assert!(names.is_empty(), "{target}: {names:?}");
        }
        assert_eq!(collected.to_bytes(), "grpc");
    }
    palisade.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrades_go_over_http1_beside_an_http2_upstream() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), HTTP2).await;
    websocket_echo_round_trip(palisade.proxy_addr).await;
    // A plain request beside it still goes as HTTP/2.
    let reply = get(&format!("http://{}/echo", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    palisade.shutdown().await;
}

/// An upstream that answers HTTP/2's connection preface as HTTP/1.1 (a 400 and a close).
async fn http1_only_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_upstream_that_cannot_speak_http2_is_a_502_with_no_detail() {
    let (addr, task) = http1_only_upstream().await;
    let palisade = start_palisade(&format!("http://{addr}"), HTTP2).await;
    let reply = get(
        &format!("http://{}/", palisade.proxy_addr),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert!(!reply.body.contains("400"), "{}", reply.body);
    palisade.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn an_https_upstream_speaks_http2_when_it_picks_h2_by_alpn() {
    let pki = TestPki::loopback();
    let upstream = Upstream::start_tls(server_tls(&pki, &[b"h2", b"http/1.1"])).await;
    let palisade = start_palisade(&upstream.https_url(), &http2_trusting(&pki.ca_file)).await;
    let base = format!("http://{}", palisade.proxy_addr);
    for _ in 0..3 {
        let reply = get(&format!("{base}/echo?x=1"), &[("host", "shop.example")]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let echo = reply.json();
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(echo["uri"], "https://shop.example/echo?x=1");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    palisade.shutdown().await;
}

/// An `https://` upstream offering only HTTP/1.1 refuses the `h2` offer: a 502 to the
/// client, and a log line that says to set `protocol = "http1"`.
#[tokio::test]
async fn an_https_upstream_without_h2_is_a_502_that_names_the_protocol_setting() {
    let pki = TestPki::loopback();
    let upstream = Upstream::start_tls(server_tls(&pki, &[b"http/1.1"])).await;
    let palisade = start_palisade(&upstream.https_url(), &http2_trusting(&pki.ca_file)).await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;

    // What the log is told, from the same handshake.
    let url: UpstreamUrl = upstream.https_url().parse().expect("url");
    let ca = CaCertificates::from_file(&pki.ca_file).expect("a usable CA file");
    let tls = UpstreamTls::new(&url, Some(&ca), None).expect("tls");
    let tcp = tokio::net::TcpStream::connect(upstream.addr)
        .await
        .expect("tcp");
    let why = tls.handshake_h2(tcp).await.map(drop).expect_err("no h2");
    assert!(why.contains("did not agree to HTTP/2"), "{why}");
    assert!(why.contains("protocol = \"http1\""), "{why}");
    // An upstream ignoring ALPN altogether is caught as well.
    let upstream = Upstream::start_tls(server_tls(&pki, &[])).await;
    let tcp = tokio::net::TcpStream::connect(upstream.addr)
        .await
        .expect("tcp");
    let why = tls.handshake_h2(tcp).await.map(drop).expect_err("no ALPN");
    assert!(why.contains("did not agree to HTTP/2"), "{why}");
    assert!(why.contains("protocol = \"http1\""), "{why}");
}

/// Targets and hosts with no plain HTTP/2 spelling: `OPTIONS *` goes up as `:path *`, an
/// HTTP/1.0 request without `Host` with the upstream's own authority, a `Host` that is no
/// `host[:port]` is the client's 400 and never reaches the upstream.
#[tokio::test]
async fn unusual_targets_and_hosts_map_onto_http2_or_are_refused() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), HTTP2).await;
    let exchange = |raw: &'static str| async move {
        let out = raw_exchange(palisade.proxy_addr, raw.as_bytes(), Duration::from_secs(5)).await;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head.split(' ').nth(1).unwrap_or_default().to_owned();
        (status, body.to_owned())
    };
    let (status, body) =
        exchange("OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, "200", "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo");
    assert_eq!(echo["method"], "OPTIONS");
    assert_eq!(echo["version"], "HTTP/2.0");

    let (status, body) = exchange("GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, "200", "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo");
    assert_eq!(echo["uri"], format!("http://{}/", upstream.addr));
    let before = upstream.hits();
    for raw in [
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@evil.example\r\nConnection: close\r\n\r\n",
    ] {
        let (status, body) = exchange(raw).await;
        assert_eq!(status, "400", "{raw:?}: {body}");
    }
    assert_eq!(upstream.hits(), before);
    palisade.shutdown().await;
}

/// Palisade over `protocol` with a 200 KB body limit and the security log in `dir`; managed
/// detection off when `managed` is false (it reads the first 64 KB before forwarding).
async fn limited(upstream: &Upstream, protocol: &str, managed: bool, dir: &Path) -> Running {
    let toml = format!(
        "rate_limit = []\n[server]\nworkers = 1\nmax_body_size = \"200KB\"\n\
         [upstream]\nprotocol = \"{protocol}\"\n[waf]\nmanaged = {managed}\n\
         [log]\nsecurity = \"{}\"\n",
        dir.join("events.log").display()
    );
    let file = dir.join("palisade.toml");
    std::fs::write(&file, toml).expect("config");
    start_palisade_at(&upstream.url(), file).await
}

/// A POST of `target` whose chunked body (no length: checked only as it streams) the
/// returned sender feeds, on a new HTTP/1.1 connection to palisade.
async fn streaming_post(
    palisade: std::net::SocketAddr,
    target: &str,
) -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    impl std::future::Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>,
) {
    let tcp = tokio::net::TcpStream::connect(palisade)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = Request::post(target)
        .header("host", "a")
        .header("content-type", "application/octet-stream")
        .body(ChannelBody(rx))
        .expect("request");
    (tx, sender.send_request(request))
}

/// Regression: a streamed body past `max_body_size` going to an HTTP/2 upstream was a 502
/// blamed on the upstream (the HTTP/2 client reports only "stream error sent by user").
#[tokio::test]
async fn a_streamed_body_past_the_limit_is_the_clients_413_over_either_protocol() {
    let upstream = Upstream::start().await;
    for protocol in ["http1", "http2"] {
        let dir = tempfile::tempdir().expect("dir");
        let palisade = limited(&upstream, protocol, true, dir.path()).await;
        let (tx, response) = streaming_post(palisade.proxy_addr, "/sink").await;
        tokio::spawn(async move {
            for _ in 0..8 {
                if tx
                    .send(bytes::Bytes::from(vec![b'a'; 64 * 1024]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let response = response.await.expect("answered");
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{protocol}"
        );
        one_request_failure(
            &dir.path().join("events.log"),
            "client",
            "body_too_large",
            protocol,
        )
        .await;
        palisade.shutdown().await;
    }
}

/// A streaming exchange (the upstream answers at once and reads the body as it comes, as a
/// bidirectional gRPC call does) whose body then passes the limit: the answer breaks off,
/// and the failure is reported as the client's, with the status already sent. It was
/// reported nowhere.
#[tokio::test]
async fn a_body_failing_after_the_answer_began_is_reported_as_the_clients() {
    let upstream = Upstream::start().await;
    for protocol in ["http1", "http2"] {
        let dir = tempfile::tempdir().expect("dir");
        let palisade = limited(&upstream, protocol, false, dir.path()).await;
        let (tx, response) = streaming_post(palisade.proxy_addr, "/early").await;
        let response = tokio::spawn(response);
        tx.send(bytes::Bytes::from_static(b"hello"))
            .await
            .expect("first piece");
        let response = response.await.expect("task").expect("answered early");
        assert_eq!(response.status(), StatusCode::OK, "{protocol}");
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "got 5\n", "{protocol}");
        // Now past the 200 KB limit.
        for _ in 0..4 {
            if tx
                .send(bytes::Bytes::from(vec![b'a'; 64 * 1024]))
                .await
                .is_err()
            {
                break;
            }
        }
        // The answer ends (cut off), whatever the frames before.
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
        assert!(drained.is_ok(), "{protocol}: the answer never ended");
        drop(body);
        let event = one_request_failure(
            &dir.path().join("events.log"),
            "client",
            "body_too_large",
            protocol,
        )
        .await;
        assert_eq!(event["http.status"], 200, "{protocol}");
        palisade.shutdown().await;
    }
}

/// Regression: request trailers reached an HTTP/2 upstream unfiltered (the identity,
/// forwarding and override headers palisade strips from request heads), and one named
/// like a connection field (`Connection`, `TE`) hung the request until the response
/// timeout. Request trailers are never forwarded, whatever the protocol.
#[tokio::test]
async fn request_trailers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    for protocol in ["http1", "http2"] {
        let toml = format!("rate_limit = []\n[upstream]\nprotocol = \"{protocol}\"\n");
        let palisade = start_palisade(&upstream.url(), &toml).await;
        for trailer in [
            "Palisade-User-Id: admin\r\nX-Forwarded-For: 10.0.0.1\r\nX-Original-URL: /admin",
            "Connection: close",
            "TE: gzip",
        ] {
            let raw = format!(
                "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 5\r\nhello\r\n0\r\n{trailer}\r\n\r\n"
            );
            // A hung request (the regression) has no answer within the 10 s read.
            let out =
                raw_exchange(palisade.proxy_addr, raw.as_bytes(), Duration::from_secs(10)).await;
            assert!(
                out.starts_with("HTTP/1.1 200"),
                "{protocol} {trailer:?}: {out}"
            );
            let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let json = body.find('{').map_or("", |at| &body[at..]);
            let json = &json[..=json.rfind('}').unwrap_or(0)];
            let echo: serde_json::Value = serde_json::from_str(json).expect("echo");
            assert_eq!(echo["body"], "hello", "{protocol}");
            assert_eq!(
                echo["trailers"],
                serde_json::json!([]),
                "{protocol}: {echo}"
            );
        }
        palisade.shutdown().await;
    }
}

/// Regression: a client that closed its connection mid-body was logged (at `warn`) as an
/// upstream failure with an HTTP/2 upstream; it is the client's doing, over either protocol.
#[tokio::test]
async fn a_client_closing_mid_body_is_never_the_upstreams_fault() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start().await;
    for protocol in ["http1", "http2"] {
        let dir = tempfile::tempdir().expect("dir");
        let palisade = limited(&upstream, protocol, true, dir.path()).await;
        let mut stream = tokio::net::TcpStream::connect(palisade.proxy_addr)
            .await
            .expect("connect");
        stream
            .write_all(
                b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
                  Content-Length: 150000\r\n\r\n",
            )
            .await
            .expect("head");
        stream.write_all(&[b'a'; 70_000]).await.expect("part");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Gone for good: the connection reset (SO_LINGER 0), not half-closed (a body cut
        // short by a half-close is a truncated body: 400, `bad_body`).
        stream.set_zero_linger().expect("linger");
        drop(stream);
        // A cancelled request, not a malformed one (it was `bad_body`, counted as blocked).
        let event = one_request_failure(
            &dir.path().join("events.log"),
            "client",
            "client_closed",
            protocol,
        )
        .await;
        assert_eq!(event["http.status"], 499, "{protocol}");
        let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
        assert!(
            !metrics.body.contains("decision=\"blocked\""),
            "{protocol}: {}",
            metrics.body
        );
        palisade.shutdown().await;
    }
}

/// Regression: an answer that broke off after its head had gone out (the upstream closed
/// mid-body, or ended the connection the answer was on) was cut short at the client with no
/// log line or event. It is now the upstream's `request.failed` event, with the status sent.
#[tokio::test]
async fn an_answer_that_breaks_off_after_its_head_is_reported_as_the_upstreams() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly ten b")
                    .await;
                // Closed with 990 bytes owed.
            });
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let toml = format!(
        "rate_limit = []\n[log]\nsecurity = \"{}\"\n",
        dir.path().join("events.log").display()
    );
    let file = dir.path().join("palisade.toml");
    std::fs::write(&file, toml).expect("config");
    let palisade = start_palisade_at(&format!("http://{addr}"), file).await;
    let out = raw_exchange(
        palisade.proxy_addr,
        b"GET /file HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let event = one_request_failure(
        &dir.path().join("events.log"),
        "upstream",
        "upstream_protocol",
        "broken off",
    )
    .await;
    assert_eq!(event["http.status"], 200, "{event}");
    assert_eq!(event["url.path"], "/file", "{event}");
    palisade.shutdown().await;
    task.abort();
}

/// Palisade over `protocol` with a 400 ms response timeout (which bounds each wait for more
/// of an answer's body), managed detection off (it would read a request body before
/// forwarding it) and the security log in `dir`.
async fn stall_limited(upstream: &Upstream, protocol: &str, dir: &Path) -> Running {
    let toml = format!(
        "rate_limit = []\n[upstream]\nprotocol = \"{protocol}\"\nresponse_timeout = \"400ms\"\n\
         [waf]\nmanaged = false\n[log]\nsecurity = \"{}\"\n",
        dir.join("events.log").display()
    );
    let file = dir.join("palisade.toml");
    std::fs::write(&file, toml).expect("config");
    start_palisade_at(&upstream.url(), file).await
}

/// An answer whose body stops coming over HTTP/2 (or HTTP/1.1 through the same test
/// upstream) is ended after `response_timeout` without a byte, and logged as the upstream's
/// timeout, rather than holding the client's connection and the stream.
#[tokio::test]
async fn an_answer_body_that_stops_coming_is_ended_over_either_protocol() {
    let upstream = Upstream::start().await;
    for protocol in ["http2", "http1"] {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("events.log");
        let palisade = stall_limited(&upstream, protocol, dir.path()).await;
        let out = raw_exchange(
            palisade.proxy_addr,
            b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n",
            Duration::from_secs(30),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200"), "{protocol}: {out}");
        assert!(out.contains("partial"), "{protocol}: {out}");
        let event = one_request_failure(&log, "upstream", "upstream_timeout", protocol).await;
        assert_eq!(event["url.path"], "/stall", "{event}");
        palisade.shutdown().await;
    }
}

/// A two-way exchange: the upstream answers (and goes quiet) while the client's body is
/// still open. That quiet may be the upstream waiting for the client, so the stall clock
/// does not end the answer, over either protocol.
#[tokio::test]
async fn an_answer_to_a_request_whose_body_is_still_open_is_not_cut() {
    use tokio::io::AsyncReadExt;
    let upstream = Upstream::start().await;
    for protocol in ["http2", "http1"] {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("events.log");
        let palisade = stall_limited(&upstream, protocol, dir.path()).await;
        let mut client = tokio::net::TcpStream::connect(palisade.proxy_addr)
            .await
            .expect("connect");
        let head = "POST /stall HTTP/1.1\r\nHost: a\r\ncontent-type: application/octet-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        client.write_all(head.as_bytes()).await.expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("partial") {
            let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
                .await
                .expect("the answer begins")
                .expect("read");
            assert!(
                n > 0,
                "{protocol}: closed early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        // Four times the response timeout: the answer stays open.
        let more = tokio::time::timeout(Duration::from_millis(1600), client.read(&mut buf)).await;
        assert!(more.is_err(), "{protocol}: the answer ended: {more:?}");
        let events = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!events.contains("request.failed"), "{protocol}: {events}");
        drop(client);
        palisade.shutdown().await;
    }
}

/// A request with a large header block goes on a connection apart from the others'; its
/// answer, however long, arrives whole, and the others' connection is left to them.
#[tokio::test]
async fn a_large_header_block_goes_apart_and_gets_its_whole_answer() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), HTTP2).await;
    let base = format!("http://{}", palisade.proxy_addr);
    assert_eq!(
        get(&format!("{base}/echo"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    let size: u64 = 3 * 1024 * 1024;
    let token = "t".repeat(5000);
    let reply = get(&format!("{base}/big?bytes={size}"), &[("x-token", &token)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len() as u64, size);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        get(&format!("{base}/echo"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    palisade.shutdown().await;
}

/// A call through palisade to an HTTP/2 upstream, as a gRPC client makes it.
async fn grpc_call(
    sender: &mut hyper::client::conn::http2::SendRequest<TestBody>,
    base: &str,
    path: &str,
) -> (http::response::Parts, bytes::Bytes, Option<http::HeaderMap>) {
    let request = Request::post(format!("{base}{path}"))
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers")
        .body(full("\0\0\0\0\0"))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes(), trailers)
}

/// Palisade's own refusals of a gRPC call (rate limited, blocked, the service unreachable)
/// are gRPC answers a gRPC client reads: HTTP 200, `grpc-status` saying what happened,
/// `grpc-message` naming palisade, its headers kept as metadata, no body. The service's own
/// answers, errors included, pass unchanged.
#[tokio::test]
async fn palisade_refuses_grpc_calls_with_grpc_statuses_and_leaves_the_services_alone() {
    let upstream = Upstream::start().await;
    let toml = r#"
[server]
workers = 1
[upstream]
protocol = "http2"
[[rate_limit]]
name = "calls"
path = "/trailers"
limit = 2
window = "60s"
[[waf.rule]]
name = "no admin calls"
expression = 'starts_with(http.request.uri.path, "/demo.Admin/")'
action = "block"
"#;
    let palisade = start_palisade(&upstream.url(), toml).await;
    let tcp = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c");
    tokio::spawn(connection);
    let base = format!("http://{}", palisade.proxy_addr);

    for _ in 0..2 {
        let (head, body, trailers) = grpc_call(&mut sender, &base, "/trailers?grpc").await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.get("grpc-status").is_none());
        assert_eq!(
            trailers.expect("the service's trailers")["grpc-status"],
            "0"
        );
        assert_eq!(body, "grpc");
    }
    let (head, body, trailers) = grpc_call(&mut sender, &base, "/trailers?grpc").await;
    assert_eq!(head.status, StatusCode::OK, "{head:?}");
    assert_eq!(head.headers["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    let message = head.headers["grpc-message"].to_str().expect("ascii");
    assert!(message.starts_with("palisade: rate limited"), "{message}");
    assert_eq!(head.headers["content-type"], "application/grpc+proto");
    assert!(head.headers.contains_key("retry-after"));
    assert_eq!(head.headers["palisade-mitigated"], "rate_limit");
    assert!(body.is_empty() && trailers.is_none(), "Trailers-Only");

    let (head, body, _) = grpc_call(&mut sender, &base, "/demo.Admin/Delete").await;
    assert_eq!(
        head.headers["grpc-status"], "7",
        "PERMISSION_DENIED: {head:?}"
    );
    assert!(body.is_empty());

    // The service's own error is its answer, not palisade's.
    let (head, _, _) = grpc_call(&mut sender, &base, "/status/403").await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
    assert!(head.headers.get("grpc-status").is_none());

    // Not a gRPC call: the usual page.
    let reply = get(&format!("{base}/demo.Admin/Delete"), &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    palisade.shutdown().await;

    // The service down: UNAVAILABLE.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let palisade = start_palisade(&dead, HTTP2).await;
    let tcp = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c");
    tokio::spawn(connection);
    let base = format!("http://{}", palisade.proxy_addr);
    let (head, _, _) = grpc_call(&mut sender, &base, "/demo.Demo/Sum").await;
    assert_eq!(head.headers["grpc-status"], "14", "UNAVAILABLE: {head:?}");
    let message = head.headers["grpc-message"].to_str().expect("ascii");
    assert!(message.contains("HTTP 502"), "{message}");
    palisade.shutdown().await;
}
