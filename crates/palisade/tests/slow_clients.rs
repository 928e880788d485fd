//! Clients that send their request body slowly or not at all, against a real palisade and
//! a real upstream: each is answered 408 and closed once `body_read_timeout` passes without
//! a byte, or once the body falls behind `min_body_rate`, instead of holding a connection
//! (and an upstream connection) for ever.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = "rate_limit = []\n[server]\nbody_read_timeout = \"1s\"\n";

/// Sends `head` and `body`, then nothing more, and returns what palisade answered before it
/// closed the connection (or after 20 s, which fails the caller's assertions).
async fn stall_after(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn a_chunked_body_that_never_starts_gets_408_before_the_upstream_sees_it() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), CONFIG).await;
    let head = "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let reply = stall_after(palisade.proxy_addr, head, b"").await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_forwarded_body_that_stalls_halfway_gets_408() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), CONFIG).await;
    let head = "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    let reply = stall_after(palisade.proxy_addr, head, &[b'x'; 10]).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    palisade.shutdown().await;
}

/// The CSRF stage reads an urlencoded body looking for `_csrf`: that read is bounded too.
#[tokio::test]
async fn a_form_body_read_for_its_csrf_field_is_bounded_too() {
    let upstream = Upstream::start().await;
    let config = format!("{CONFIG}[session]\nstore = \"memory\"\n");
    let palisade = start_palisade(&upstream.url(), &config).await;
    let base = format!("http://{}", palisade.proxy_addr);
    let cookie = common::sessions::login(&base, "alice", None).await.cookie();
    let head = format!(
        "POST /form HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
    );
    let reply = stall_after(palisade.proxy_addr, &head, b"name=x").await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    palisade.shutdown().await;
}

/// A byte every 200 ms never stalls for `body_read_timeout`, so only the minimum rate ends
/// it: 100 bytes per second are owed once the first second has passed.
#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_falls_behind_the_minimum_rate_and_gets_408() {
    let upstream = Upstream::start().await;
    let config = format!("{CONFIG}min_body_rate = \"100B\"\n");
    let palisade = start_palisade(&upstream.url(), &config).await;
    let stream = TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n";
    writer.write_all(head.as_bytes()).await.expect("head");
    // Trickles until palisade closes the connection (or 20 s, which fails the test).
    let trickle = tokio::spawn(async move {
        for _ in 0..150 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut reply)).await;
    trickle.abort();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    palisade.shutdown().await;
}

/// An upstream that takes its time to read a body must not cost a fast client a 408: only
/// the time palisade waits for the client counts against `min_body_rate`. This upstream
/// reads the head, pauses 3 s with the body unread (palisade's buffers fill and it stops
/// reading from the client), then reads the whole body and answers with its length.
#[tokio::test]
async fn an_upstream_slow_to_read_the_body_does_not_make_a_fast_client_too_slow() {
    const BODY: usize = 16 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream_url = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let head_end = loop {
            let n = socket.read(&mut buf).await.expect("read head");
            assert!(n > 0, "closed before the head ended");
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut body = seen.len() - head_end;
        while body < BODY {
            let n = socket.read(&mut buf).await.expect("read body");
            assert!(n > 0, "closed after {body} body bytes");
            body += n;
        }
        let text = body.to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        socket.write_all(answer.as_bytes()).await.expect("answer");
    });
    // 10 MB per second owed after 1 s: a wall clock would owe 20 MB by the time the upstream
    // reads again, more than the whole body.
    let config = "rate_limit = []\n[waf]\nmanaged = false\n[server]\nbody_read_timeout = \"1s\"\n\
                  min_body_rate = \"10MB\"\nmax_body_size = \"64MB\"\n";
    let palisade = start_palisade(&upstream_url, config).await;
    let stream = TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {BODY}\r\nConnection: close\r\n\r\n"
    );
    // The writer is handed back, not dropped: a half-closed connection would read as a
    // client that went away (hyper's default), which is not what this test is about.
    let send = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&vec![b'x'; BODY]).await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    let sent = send.await.expect("sender").map(drop);
    let upstream = upstream.await;
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{reply} {sent:?} {upstream:?}"
    );
    assert!(reply.ends_with(&BODY.to_string()), "{reply}");
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_zero_body_read_timeout_is_a_config_error() {
    let file = config_file("[server]\nbody_read_timeout = \"0s\"\n");
    let err = palisade_gateway::config::Config::from_file(&file).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains(":2:1: server.body_read_timeout"), "{text}");
}

/// A client that asks for a large answer and stops reading it (a slow-read attack) held its
/// connection, the upstream's, and palisade's buffers for as long as it liked. With
/// `send_timeout`, a write that waits that long for the client to read closes the
/// connection: the client, reading later, finds the answer cut off.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_send_timeout() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[server]\nsend_timeout = \"1s\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let size: u64 = 64 * 1024 * 1024;
    let mut stream = TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let head = format!("GET /big?bytes={size} HTTP/1.1\r\nHost: a\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    // Not reading: the socket buffers fill within moments, then palisade's write waits.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection stayed open");
    assert!(got < size, "the whole answer arrived: {got} bytes");
    palisade.shutdown().await;
}

/// An HTTP/2 client can stop reading one answer without stalling its socket: it grants that
/// stream no more flow-control window and goes on answering PINGs. `send_timeout` resets that
/// stream, not the connection: the rest of the answer never comes, the connection's next
/// request is served, and the security log says why.
#[tokio::test]
async fn an_http2_client_that_stops_reading_one_answer_has_that_stream_reset() {
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.log");
    let toml = format!(
        "rate_limit = []\n[server]\nsend_timeout = \"1s\"\n[log]\nsecurity = \"{}\"\n",
        log.display()
    );
    let palisade = start_palisade_at(&upstream.url(), config_file(&toml)).await;
    let tcp = TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    // hyper's client grants a stream more window only as its body is read.
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(false)
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(16 * 1024 * 1024)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c");
    tokio::spawn(connection);
    let base = format!("http://{}", palisade.proxy_addr);

    let size: u64 = 8 * 1024 * 1024;
    let request = Request::get(format!("{base}/big?bytes={size}"))
        .body(full(""))
        .expect("request");
    let answer = sender
        .send_request(request)
        .await
        .expect("the answer's head");
    assert_eq!(answer.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut body = answer.into_body();
    let mut got = 0u64;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got += frame.data_ref().map_or(0, |d| d.len() as u64),
                Err(err) => return Some(err.to_string()),
            }
        }
        None
    })
    .await
    .expect("the stream ended");
    assert!(ended.is_some(), "the whole answer arrived: {got} bytes");
    assert!(got < size, "{got} bytes");

    let next = Request::get(format!("{base}/"))
        .body(full(""))
        .expect("request");
    let next = sender
        .send_request(next)
        .await
        .expect("the connection is still up");
    assert_eq!(next.status(), StatusCode::OK);

    let event = one_request_failure(&log, "client", "send_timeout", "stalled stream").await;
    assert_eq!(event["http.status"], 200, "{event}");
    assert_eq!(event["url.path"], "/big", "{event}");
    palisade.shutdown().await;
}
