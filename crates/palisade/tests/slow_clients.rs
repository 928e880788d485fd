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

#[tokio::test]
async fn a_zero_body_read_timeout_is_a_config_error() {
    let file = config_file("[server]\nbody_read_timeout = \"0s\"\n");
    let err = palisade_gateway::config::Config::from_file(&file).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains(":2:1: server.body_read_timeout"), "{text}");
}
