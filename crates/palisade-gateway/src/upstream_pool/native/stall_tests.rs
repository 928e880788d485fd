//! The stall clock of an answer's body over palisade's own HTTP/1.1 connections:
//! `response_timeout` bounds each wait for more of the body, but not the client's pace, nor
//! a two-way stream's waits for the client.

use super::tests::{Fed, answer, pool, read_more, request, with_body};
use super::*;
use crate::upstream_pool::tests::{counted_upstream, scripted};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// An answer whose body stops coming fails once the upstream has sent nothing for the
/// response timeout, instead of holding the client (and the connection) forever; one
/// that keeps coming, however slowly, is read whole.
#[tokio::test]
async fn an_answer_body_the_upstream_stops_sending_times_out() {
    let (address, _) =
        scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")).await;
    // Generous next to the upstream's 100 ms pauses below, so a busy machine's late
    // wake-ups cannot look like a stall; the whole slow body takes twice the limit.
    let limit = Some(Duration::from_millis(400));
    let response = pool(address)
        .send_timed(request(Method::GET), limit)
        .await
        .expect("head answered");
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "abc");
    let next = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("the stalled body ends");
    let err = next.expect("a frame").expect_err("the body fails");
    assert!(
        matches!(
            err.downcast_ref::<ExchangeError>(),
            Some(ExchangeError::BodyTimedOut)
        ),
        "{err}"
    );

    let (address, _) = counted_upstream(|mut socket, _| async move {
        let mut buf = vec![0u8; 4096];
        let _ = socket.read(&mut buf).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n")
            .await;
        for piece in [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = socket.write_all(piece).await;
        }
        let _ = socket.read(&mut buf).await;
    })
    .await;
    let response = pool(address)
        .send_timed(request(Method::GET), limit)
        .await
        .expect("head answered");
    let body = response.into_body().collect().await.expect("read whole");
    assert_eq!(body.to_bytes(), "abcdefgh");
}

/// A two-way stream: the upstream answers at once and echoes each piece of the request's
/// body as it comes. The client's pauses, longer than the response timeout, are not the
/// upstream's stall: the answer goes on until the client ends its body.
#[tokio::test]
async fn a_quiet_upstream_waiting_on_the_clients_body_is_not_cut() {
    let (address, _) = counted_upstream(|mut socket, _| async move {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            if !read_more(&mut socket, &mut seen, &mut buf).await {
                return;
            }
        }
        let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(answer).await.is_err() {
            return;
        }
        // What came with the head, then each read's bytes (chunk framing and all), go back
        // as one chunk each, until the request's last chunk.
        let end = seen
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head");
        let mut got: Vec<u8> = seen.split_off(end + 4);
        loop {
            if got.is_empty() {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let last = got.ends_with(b"0\r\n\r\n");
            let mut out = format!("{:x}\r\n", got.len()).into_bytes();
            out.extend_from_slice(&got);
            out.extend_from_slice(b"\r\n");
            got.clear();
            if last {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            if socket.write_all(&out).await.is_err() || last {
                return;
            }
        }
    })
    .await;
    let limit = Some(Duration::from_millis(300));
    let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
    let sent = tokio::spawn({
        let pool = pool(address);
        async move { pool.send_timed(with_body(Fed(fed)), limit).await }
    });
    feed.send(Bytes::from_static(b"first")).expect("feed");
    let response = sent.await.expect("joined").expect("answered");
    let mut body = response.into_body();
    let mut echoed = Vec::new();
    // The answer is read all along, while the client pauses.
    tokio::spawn(async move {
        for piece in ["second", "third"] {
            // Twice the response timeout without a byte either way.
            tokio::time::sleep(Duration::from_millis(600)).await;
            feed.send(Bytes::from(piece)).expect("feed");
        }
    });
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("the stream ends")
    {
        let frame = frame.expect("no stall timeout");
        if let Ok(data) = frame.into_data() {
            echoed.extend_from_slice(&data);
        }
    }
    let echoed = String::from_utf8_lossy(&echoed);
    for piece in ["first", "second", "third"] {
        assert!(echoed.contains(piece), "{piece}: {echoed}");
    }
}
