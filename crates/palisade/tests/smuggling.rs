//! Request smuggling shapes over raw TCP: each gets 400 and never reaches the upstream.

mod common;

use std::time::Duration;

use common::*;

/// Sends `request` and returns palisade's answer, asserting the upstream saw nothing.
async fn refused(request: &str) -> String {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        upstream.hits(),
        0,
        "the upstream saw: {request:?}\nreply: {reply}"
    );
    palisade.shutdown().await;
    reply
}

fn assert_400(reply: &str) {
    assert!(
        reply.starts_with("HTTP/1.1 400"),
        "expected 400, got: {reply}"
    );
}

#[tokio::test]
async fn content_length_then_transfer_encoding_is_refused() {
    assert_400(
        &refused(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
             0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await,
    );
}

#[tokio::test]
async fn transfer_encoding_then_content_length_is_refused() {
    assert_400(
        &refused(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
             0\r\n\r\n",
        )
        .await,
    );
}

#[tokio::test]
async fn differing_duplicate_content_lengths_are_refused() {
    assert_400(
        &refused(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        )
        .await,
    );
}

#[tokio::test]
async fn invalid_chunk_sizes_are_refused() {
    assert_400(
        &refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
            .await,
    );
}

#[tokio::test]
async fn invalid_chunk_sizes_arriving_late_are_refused() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(b"-5\r\nabc\r\n").await.expect("bad chunk");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    assert_400(&String::from_utf8_lossy(&reply));
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

#[tokio::test]
async fn obs_fold_header_continuations_are_refused() {
    assert_400(&refused("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n").await);
}

#[tokio::test]
async fn transfer_encoding_other_than_chunked_is_refused() {
    assert_400(&refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc").await);
}

#[tokio::test]
async fn a_smuggled_request_hidden_in_a_body_is_forwarded_only_as_body() {
    let upstream = Upstream::start().await;
    // Framing alone is under test: managed detection would refuse the hidden request line.
    let config = "rate_limit = []\n[waf]\nmanaged = false\n";
    let palisade = start_palisade(&upstream.url(), config).await;
    let hidden = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{hidden}",
        hidden.len()
    );
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;

    // With managed detection on (the default) the same request is refused as smuggling.
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}
