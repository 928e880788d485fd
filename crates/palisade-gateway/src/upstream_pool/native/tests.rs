use super::*;
use crate::config::UpstreamProtocol;
use crate::upstream_pool::PoolError;
use crate::upstream_pool::tests::{counted_upstream, scripted};
use http::Request;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;

pub(super) fn pool(address: String) -> Arc<UpstreamPool> {
    Arc::new(UpstreamPool::new(
        address,
        None,
        UpstreamProtocol::Http1,
        Duration::from_secs(5),
        Duration::from_secs(60),
        4,
    ))
}

pub(super) fn request(method: Method) -> Request<RequestBody> {
    Request::builder()
        .method(method)
        .uri("/path?q=1")
        .header(http::header::HOST, "upstream.test")
        .body(RequestBody::empty())
        .expect("request")
}

/// Sends a request and reads the whole answer: status, fields and body.
async fn fetch(
    pool: &Arc<UpstreamPool>,
    method: Method,
) -> Result<(StatusCode, HeaderMap, Result<Bytes, String>), PoolError> {
    let response = pool.send(request(method)).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await;
    let body = body
        .map(|all| all.to_bytes())
        .map_err(|err| err.to_string());
    Ok((parts.status, parts.headers, body))
}

pub(super) fn answer(text: &str) -> (Vec<u8>, bool) {
    (text.as_bytes().to_vec(), false)
}

#[tokio::test]
async fn the_request_head_is_written_in_origin_form_with_its_fields() {
    let mut out = Vec::new();
    let (head, _) = request(Method::GET).into_parts();
    write_head(
        &mut out,
        &head,
        &ForwardingFields::default(),
        Outgoing::None,
    );
    assert_eq!(
        out,
        b"GET /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\n\r\n"
    );
    let (head, _) = request(Method::POST).into_parts();
    write_head(
        &mut out,
        &head,
        &ForwardingFields::default(),
        Outgoing::None,
    );
    assert_eq!(
        out,
        b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ncontent-length: 0\r\n\r\n"
    );
    let (mut head, _) = request(Method::POST).into_parts();
    // The client's framing fields give way to the body's.
    head.headers
        .insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
    write_head(
        &mut out,
        &head,
        &ForwardingFields::default(),
        Outgoing::Length(5),
    );
    assert_eq!(
        out,
        b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ncontent-length: 5\r\n\r\n"
    );
    write_head(
        &mut out,
        &head,
        &ForwardingFields::default(),
        Outgoing::Chunked,
    );
    assert_eq!(
        out,
        b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ntransfer-encoding: chunked\r\n\r\n"
    );
}

#[tokio::test]
async fn chunked_answers_are_decoded_and_their_connection_reused() {
    let (address, accepted) = scripted(|_, _, _| {
        answer(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
    })
    .await;
    let pool = pool(address);
    for _ in 0..3 {
        let (status, _, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.expect("body"), "hello, world");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused() {
    let (address, accepted) = scripted(|_, _, _| {
        answer(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
        )
    })
    .await;
    let pool = pool(address);
    for _ in 0..2 {
        let (_, headers, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "hello");
        assert!(!headers.contains_key(CONTENT_LENGTH));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn conflicting_lengths_and_invalid_heads_are_refused() {
    // A refused answer takes its connection with it: each next one is a new connection's.
    let (address, _) = scripted(|connection, _, _| match connection {
        0 => answer("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"),
        1 => answer("HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc"),
        2 => answer("HTTP/1.1 200 OK\r\nbad field\r\n\r\n"),
        3 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        _ => answer("HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n"),
    })
    .await;
    let pool = pool(address);
    for _ in 0..5 {
        let err = fetch(&pool, Method::GET).await.expect_err("refused");
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::Head(_))),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_named_so() {
    let (address, _) = scripted(|_, _, _| (b"\x15\x03\x03\x00\x02\x02\x50".to_vec(), true)).await;
    let err = fetch(&pool(address), Method::GET)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, PoolError::Exchange(ExchangeError::NotHttp)),
        "{err:?}"
    );
}

#[tokio::test]
async fn agreeing_repeated_lengths_are_taken() {
    let (address, accepted) =
        scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc")).await;
    let pool = pool(address);
    for _ in 0..2 {
        let (_, headers, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "abc");
        // One value, as the client must read it.
        assert_eq!(
            headers.get_all(CONTENT_LENGTH).iter().collect::<Vec<_>>(),
            ["3"]
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn agreeing_repeated_lengths_are_made_one_through_hyper_too() {
    let (address, _) =
        scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok")).await;
    // A request with a body goes through hyper's client.
    let mut body = RequestBody::empty();
    body.replace(http_body_util::Full::new(Bytes::from_static(b"x")));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header(http::header::HOST, "upstream.test")
        .header(CONTENT_LENGTH, "1")
        .body(body)
        .expect("request");
    let Ok(response) = pool(address).send(request).await else {
        panic!("answered");
    };
    let lengths: Vec<_> = response.headers().get_all(CONTENT_LENGTH).iter().collect();
    assert_eq!(lengths, ["2"]);
}

#[tokio::test]
async fn invalid_chunks_and_cut_bodies_fail_the_body() {
    let (address, _) = scripted(|connection, _, _| match connection {
        0 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
        1 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n"),
        2 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n11111111111111111\r\n"),
        _ => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
            true,
        ),
    })
    .await;
    let pool = pool(address);
    let expected = [
        "invalid chunk size",
        "no CRLF",
        "invalid chunk size",
        "before the end",
    ];
    for want in expected {
        let (_, _, body) = fetch(&pool, Method::GET).await.expect("head answered");
        let err = body.expect_err("the body fails");
        assert!(err.contains(want), "{err}");
    }
}

#[tokio::test]
async fn an_unframed_body_runs_until_close_and_its_connection_is_not_reused() {
    let (address, accepted) =
        scripted(|_, _, _| (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), true)).await;
    let pool = pool(address);
    for _ in 0..2 {
        let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "until the end");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (address, _) = scripted(|_, _, _| {
        answer(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
             HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
        )
    })
    .await;
    let (status, _, body) = fetch(&pool(address), Method::GET).await.expect("answered");
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body.expect("body"), "ok");
}

#[tokio::test]
async fn bodiless_answers_read_no_body_and_one_announcing_a_body_ends_its_connection() {
    let (address, accepted) = scripted(|_, _, head| {
        if head.starts_with("HEAD") {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        } else {
            answer("HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n")
        }
    })
    .await;
    let pool = pool(address);
    // The HEAD's connection waits out its grace (the 1000 bytes could still come), so the
    // next request takes a new one; so does the 304's, which announced nothing: a careless
    // application may still write a body after it, which would become the answer to the
    // connection's next request (a red-team finding with 204 and 304).
    for method in [Method::HEAD, Method::GET, Method::GET] {
        let (_, headers, body) = fetch(&pool, method.clone()).await.expect("answered");
        assert_eq!(body.expect("body"), "");
        if method == Method::HEAD {
            assert_eq!(headers[CONTENT_LENGTH], "1000");
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_connection_waiting_out_its_grace_is_left_for_later() {
    let (address, _) = scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\n\r\n")).await;
    let pool = pool(address.clone());
    let parked = TcpStream::connect(&address).await.expect("connect");
    pool.check_in_native(NativeConn::new(Stream::Plain(parked)), Some(BODILESS_GRACE));
    assert!(
        pool.check_out_native(tokio::time::Instant::now()).is_none(),
        "in its grace period"
    );
    assert_eq!(pool.native_idle.lock().expect("lock").len(), 1, "kept");
    // One whose grace is over is taken; the one still waiting stays.
    let ready = TcpStream::connect(&address).await.expect("connect");
    pool.check_in_native(NativeConn::new(Stream::Plain(ready)), Some(Duration::ZERO));
    assert!(
        pool.check_out_native(tokio::time::Instant::now()).is_some(),
        "its grace is over"
    );
    assert_eq!(pool.native_idle.lock().expect("lock").len(), 1, "kept");
}

#[tokio::test]
async fn transfer_encoding_in_an_http_1_0_answer_ends_its_connection() {
    let (address, accepted) = scripted(|_, _, _| {
        answer(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n\
             2\r\nok\r\n0\r\n\r\n",
        )
    })
    .await;
    let pool = pool(address);
    for _ in 0..2 {
        let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_that_makes_the_upstream_hang_up_is_sent_twice_at_most() {
    static KILLS: AtomicUsize = AtomicUsize::new(0);
    let (address, _) = scripted(|_, _, head| {
        if head.starts_with("GET /kill") {
            KILLS.fetch_add(1, Ordering::SeqCst);
            (Vec::new(), true)
        } else {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        }
    })
    .await;
    let pool = pool(address.clone());
    for _ in 0..3 {
        let stream = TcpStream::connect(&address).await.expect("connect");
        pool.check_in_native(NativeConn::new(Stream::Plain(stream)), None);
    }
    let request = Request::builder()
        .uri("/kill")
        .header(http::header::HOST, "upstream.test")
        .body(RequestBody::empty())
        .expect("request");
    let Err(err) = pool.send(request).await else {
        panic!("answered, though the upstream never answers /kill");
    };
    assert!(
        matches!(err, PoolError::Exchange(ExchangeError::ClosedBeforeAnswer)),
        "{err:?}"
    );
    assert_eq!(KILLS.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bytes_after_an_answer_keep_its_connection_from_reuse() {
    let (address, accepted) =
        scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")).await;
    let pool = pool(address);
    for _ in 0..2 {
        let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_head_past_the_limit_is_refused() {
    let (address, _) = scripted(|_, _, _| {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..2000 {
            text.push_str(&format!("x-field-{i}: {}\r\n", "v".repeat(30)));
        }
        answer(&text)
    })
    .await;
    let err = fetch(&pool(address), Method::GET)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, PoolError::Exchange(ExchangeError::Head(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unanswered_request_on_a_reused_connection_is_retried_only_when_idempotent() {
    // Every connection answers its first request and closes at its second, unanswered,
    // as an upstream does when its keep-alive timeout meets a request.
    let (address, accepted) = scripted(|_, request, _| {
        if request == 0 {
            answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        } else {
            (Vec::new(), true)
        }
    })
    .await;
    let pool = pool(address);
    let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
    assert_eq!(body.expect("body"), "ok");
    let (_, _, body) = fetch(&pool, Method::GET)
        .await
        .expect("retried on a new connection");
    assert_eq!(body.expect("body"), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let err = fetch(&pool, Method::POST).await.expect_err("not retried");
    assert!(
        matches!(err, PoolError::Exchange(ExchangeError::ClosedBeforeAnswer)),
        "{err:?}"
    );
}

/// A body of unknown size, given in pieces.
struct Pieces(std::collections::VecDeque<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
    }
}

/// Sends `request` through `pool` and reads its whole answer's body.
async fn posted(pool: &Arc<UpstreamPool>, request: Request<RequestBody>) -> Bytes {
    let Ok(response) = pool.send(request).await else {
        panic!("answered");
    };
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

pub(super) fn with_body<B>(body: B) -> Request<RequestBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut request_body = RequestBody::empty();
    request_body.replace(body);
    Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .header(http::header::HOST, "upstream.test")
        .body(request_body)
        .expect("request")
}

/// Reads more of `socket` into `seen` (through `buf`); false at its end or on an error.
pub(super) async fn read_more(socket: &mut TcpStream, seen: &mut Vec<u8>, buf: &mut [u8]) -> bool {
    match socket.read(buf).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            seen.extend_from_slice(&buf[..n]);
            true
        }
    }
}

/// An upstream that reads each request whole (by `Content-Length` or chunked, decoded
/// naively) and answers with what it read. Returns its address and connection count.
async fn echo_upstream() -> (String, Arc<AtomicUsize>) {
    counted_upstream(|mut socket, _| async move {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                if !read_more(&mut socket, &mut seen, &mut buf).await {
                    return;
                }
                continue;
            };
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            seen.drain(..end + 4);
            let body = if let Some(at) = head.find("content-length: ") {
                let length: usize = head[at + 16..]
                    .split("\r\n")
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("length");
                while seen.len() < length {
                    if !read_more(&mut socket, &mut seen, &mut buf).await {
                        return;
                    }
                }
                seen.drain(..length).collect::<Vec<u8>>()
            } else {
                while !seen.windows(5).any(|w| w == b"0\r\n\r\n") {
                    if !read_more(&mut socket, &mut seen, &mut buf).await {
                        return;
                    }
                }
                let end = seen
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .expect("end");
                let raw: Vec<u8> = seen.drain(..end + 5).collect();
                // "size CRLF data CRLF" pieces, data kept.
                let text = String::from_utf8_lossy(&raw).into_owned();
                let parts: Vec<&str> = text.split("\r\n").collect();
                parts
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .copied()
                    .collect::<String>()
                    .into_bytes()
            };
            let framing = if head.contains("transfer-encoding: chunked") {
                "chunked"
            } else {
                "length"
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{framing}:",
                body.len() + framing.len() + 1
            );
            let mut out = answer.into_bytes();
            out.extend_from_slice(&body);
            if socket.write_all(&out).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn bodies_of_known_size_go_with_their_length_and_the_connection_is_reused() {
    let (address, accepted) = echo_upstream().await;
    let pool = pool(address);
    for _ in 0..3 {
        let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let body = posted(&pool, with_body(body)).await;
        assert_eq!(body, "length:hello");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodies_of_unknown_size_go_chunked() {
    let (address, accepted) = echo_upstream().await;
    let pool = pool(address);
    for _ in 0..2 {
        let pieces = ["abc", "", "defgh", "i"].map(|piece| Bytes::from_static(piece.as_bytes()));
        let body = Pieces(pieces.into_iter().collect());
        let body = posted(&pool, with_body(body)).await;
        assert_eq!(body, "chunked:abcdefghi");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_put_in_place_goes_with_the_length_its_stage_wrote() {
    let (address, _) = echo_upstream().await;
    let pool = pool(address);
    for (declared, expected) in [("9", Ok("length:abcdefghi")), ("5", Err(()))] {
        let pieces = ["abc", "defgh", "i"].map(|piece| Bytes::from_static(piece.as_bytes()));
        let mut request = with_body(Pieces(pieces.into_iter().collect()));
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static(declared));
        match (pool.send(request).await, expected) {
            (Ok(response), Ok(want)) => {
                let body = response.into_body().collect().await.expect("body");
                assert_eq!(body.to_bytes(), want);
            }
            (Err(err), Err(())) => assert!(
                matches!(err, PoolError::Exchange(ExchangeError::RequestBody(_))),
                "{err:?}"
            ),
            (Ok(_), Err(())) => panic!("a body longer than its length was sent"),
            (Err(err), Ok(_)) => panic!("{err:?}"),
        }
    }
}

#[tokio::test]
async fn an_answer_before_the_body_is_sent_is_taken_and_its_connection_dropped() {
    // Answers at the head, reads nothing of the body, keeps the connection open.
    let (address, accepted) = scripted(|_, _, _| {
        answer("HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig")
    })
    .await;
    let pool = pool(address);
    for _ in 0..2 {
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 8 << 20]));
        let Ok(response) = pool.send(with_body(body)).await else {
            panic!("answered");
        };
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "big");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// A request body the test feeds piece by piece.
pub(super) struct Fed(pub(super) tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| Ok(Frame::data(piece))))
    }
}

#[tokio::test]
async fn a_success_answered_before_the_body_ends_lets_the_upload_finish() {
    static RECEIVED: AtomicUsize = AtomicUsize::new(0);
    // Answers 202 as soon as it has a head, then reads the body its length announces.
    let (address, accepted) = counted_upstream(|mut socket, _| async move {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                if !read_more(&mut socket, &mut seen, &mut buf).await {
                    return;
                }
                continue;
            };
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            seen.drain(..end + 4);
            let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
            if socket.write_all(answer).await.is_err() {
                return;
            }
            let length: usize = head
                .split("content-length: ")
                .nth(1)
                .and_then(|rest| rest.split("\r\n").next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            while seen.len() < length {
                if !read_more(&mut socket, &mut seen, &mut buf).await {
                    return;
                }
            }
            seen.drain(..length);
            RECEIVED.fetch_add(length, Ordering::SeqCst);
        }
    })
    .await;
    let pool = pool(address);
    let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
    feed.send(Bytes::from(vec![b'a'; 1000])).expect("feed");
    let mut request = with_body(Fed(fed));
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("300000"));
    let Ok(response) = pool.send(request).await else {
        panic!("answered");
    };
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
        ""
    );
    // The answer is over; the rest of the body still goes.
    // The body's last byte; its end is not reported (`feed` stays open, as hyper's server
    // may report it only when the client next sends something): the length says it.
    feed.send(Bytes::from(vec![b'b'; 299_000])).expect("feed");
    // Waits (bounded) for the upload to end and its connection to be back.
    for _ in 0..5000 {
        let back = pool.native_idle.lock().expect("lock").len() == 1;
        if RECEIVED.load(Ordering::SeqCst) == 300_000 && back {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(RECEIVED.load(Ordering::SeqCst), 300_000);
    // And the connection, its request complete, serves the next one.
    let (status, _, _) = fetch(&pool, Method::GET).await.expect("answered");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    drop(feed);
}

#[tokio::test]
async fn the_response_timeout_does_not_count_the_clients_upload() {
    let (address, _) = echo_upstream().await;
    let pool = pool(address);
    let limit = Some(Duration::from_millis(1000));
    let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
    let mut request = with_body(Fed(fed));
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
    let sent = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move { pool.send_timed(request, limit).await.map(|_| ()) }
    });
    // The client takes 1.6 s over its 4 bytes, longer than the timeout.
    for piece in ["a", "b", "c", "d"] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        feed.send(Bytes::from_static(piece.as_bytes()))
            .expect("feed");
    }
    let outcome = sent.await.expect("joined");
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    let (address, _) = scripted(|_, _, _| (Vec::new(), false)).await;
    let limit = Some(Duration::from_millis(200));
    let Err(err) = pool(address).send_timed(request(Method::GET), limit).await else {
        panic!("answered");
    };
    assert!(matches!(err, PoolError::ResponseTimeout), "{err:?}");
}

/// A connection keeps one response timer for all its exchanges: set again for each, it
/// bounds a later exchange's wait as a new timer would, whether it ended while the
/// connection sat idle or was moved on while still waiting.
#[tokio::test]
async fn a_reused_connection_times_out_a_later_answer() {
    // Limits well above a loopback answer's time, so that a loaded machine does not
    // time out the answered exchanges.
    let limit = Some(Duration::from_millis(500));
    let bounded = |sent| async move {
        tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("the exchange ended")
    };
    // The timer ends while the connection is idle, between the first and second requests.
    let (address, connections) = scripted(|_, request, _| match request {
        0 | 1 => answer("HTTP/1.1 204 No Content\r\n\r\n"),
        _ => (Vec::new(), false),
    })
    .await;
    let upstream = pool(address);
    for _ in 0..2 {
        let sent = upstream.send_timed(request(Method::GET), limit);
        let response = bounded(sent).await.expect("answered");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        drop(response);
        // Past the bodiless grace, and past the limit the last exchange set.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let Err(err) = bounded(upstream.send_timed(request(Method::GET), limit)).await else {
        panic!("answered");
    };
    assert!(matches!(err, PoolError::ResponseTimeout), "{err:?}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one connection, reused"
    );
    // The timer is moved on while still waiting: the second request follows at once.
    let (address, connections) = scripted(|_, request, _| match request {
        0 => answer("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        _ => (Vec::new(), false),
    })
    .await;
    let upstream = pool(address);
    let response = bounded(upstream.send_timed(request(Method::GET), limit))
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let Err(err) = bounded(upstream.send_timed(request(Method::GET), limit)).await else {
        panic!("answered");
    };
    assert!(matches!(err, PoolError::ResponseTimeout), "{err:?}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one connection, reused"
    );
}

#[tokio::test]
async fn an_unusual_reason_phrase_is_kept() {
    let (address, _) =
        scripted(|_, _, _| answer("HTTP/1.1 413 Too Much\r\ncontent-length: 0\r\n\r\n")).await;
    let Ok(response) = pool(address).send(request(Method::GET)).await else {
        panic!("answered");
    };
    let reason = response.extensions().get::<hyper::ext::ReasonPhrase>();
    assert_eq!(
        reason.map(|reason| reason.as_bytes()),
        Some(&b"Too Much"[..])
    );
}

#[tokio::test]
async fn a_failing_request_body_fails_the_exchange_as_the_bodys() {
    struct Failing;
    impl Body for Failing {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(Some(Err("the client went away".into())))
        }
    }
    let (address, _) = echo_upstream().await;
    let Err(err) = pool(address).send(with_body(Failing)).await else {
        panic!("answered without the body");
    };
    assert!(
        matches!(err, PoolError::Exchange(ExchangeError::RequestBody(_))),
        "{err:?}"
    );
}
