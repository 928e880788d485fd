//! palisade's own HTTP/1.1 loop (`palisade_gateway::http1`) over raw TCP: pipelined plain
//! requests, the hand-over to hyper in the middle of a connection, how answers are framed,
//! and a request arriving while the one before it is still handled.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One answer read off a raw connection: its head (names lower case as sent) and body.
#[derive(Debug)]
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> &str {
        &self.head[9..12]
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Takes one answer from the front of `bytes`, framed as the client would frame it
/// (`bodiless`: the answer to a HEAD); `None` while it is incomplete.
fn take_answer(bytes: &mut Vec<u8>, bodiless: bool) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let mut answer = Answer {
        head,
        body: Vec::new(),
    };
    let rest = &bytes[end..];
    let used = if bodiless || matches!(answer.status(), "204" | "304") {
        0
    } else if let Some(length) = answer.field("content-length") {
        let length: usize = length.parse().expect("a length");
        answer.body = rest.get(..length)?.to_vec();
        length
    } else {
        assert_eq!(
            answer.field("transfer-encoding"),
            Some("chunked"),
            "{answer:?}"
        );
        let mut at = 0;
        loop {
            let line_end = rest[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).ok()?, 16)
                .expect("a chunk size");
            let data = line_end + 2;
            rest.get(data..data + size + 2)?;
            answer.body.extend_from_slice(&rest[data..data + size]);
            at = data + size + 2;
            if size == 0 {
                break at;
            }
        }
    };
    bytes.drain(..end + used);
    Some(answer)
}

/// Reads answers off `stream` until there are `expect.len()` of them (`expect`: which
/// answer a HEAD), failing after 10 s.
async fn read_answers(stream: &mut TcpStream, expect: &[bool]) -> Vec<Answer> {
    let mut bytes = Vec::new();
    let mut answers = Vec::new();
    let reading = async {
        let mut buf = [0u8; 16 * 1024];
        while answers.len() < expect.len() {
            if let Some(answer) = take_answer(&mut bytes, expect[answers.len()]) {
                answers.push(answer);
                continue;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {} answers: {bytes:?}", answers.len());
            bytes.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("answers in time");
    assert!(bytes.is_empty(), "more than the answers: {bytes:?}");
    answers
}

/// A raw connection to palisade.
async fn connect(palisade: &palisade_gateway::serve::Running) -> TcpStream {
    TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect")
}

/// Writes `bytes` on `stream` and reads the answers `expect` describes ([`read_answers`]).
async fn exchange(stream: &mut TcpStream, bytes: &[u8], expect: &[bool]) -> Vec<Answer> {
    stream.write_all(bytes).await.expect("write");
    read_answers(stream, expect).await
}

/// Sends `GET /first` on `stream` and checks it was answered by the upstream.
async fn get_first(stream: &mut TcpStream) {
    let first = exchange(stream, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n", &[false]).await;
    assert_eq!(echoed_uri(&first[0]), "/first");
}

fn echoed_uri(answer: &Answer) -> String {
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("echo json");
    json["uri"].as_str().expect("uri").to_string()
}

#[tokio::test]
async fn pipelined_plain_requests_are_answered_in_order() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    let answers = exchange(
        &mut stream,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nHEAD /two HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /three?x=1 HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\n\r\n",
        &[false, true, false],
    )
    .await;
    assert_eq!(echoed_uri(&answers[0]), "/one");
    assert_eq!(echoed_uri(&answers[2]), "/three?x=1");
    for answer in &answers {
        assert_eq!(answer.status(), "200", "{answer:?}");
        assert_eq!(answer.field("x-content-type-options"), Some("nosniff"));
        assert_eq!(answer.field("server"), None, "{answer:?}");
        assert!(answer.field("date").is_some(), "{answer:?}");
    }
    // The HEAD answer says how long the body would be, and has none.
    let length: usize = answers[1]
        .field("content-length")
        .expect("a length")
        .parse()
        .expect("number");
    assert!(length > 0);
    assert!(answers[1].body.is_empty());
    // Identity headers from the client are stripped on this path too.
    let json: serde_json::Value = serde_json::from_slice(&answers[2].body).expect("json");
    assert!(json["headers"].get("x-real-ip").is_none(), "{json}");
    assert_eq!(upstream.hits(), 3);
    palisade.shutdown().await;
}

/// A request the own loop does not serve (a body, `Connection: close`) hands the connection
/// to hyper with everything read so far: nothing is lost or answered twice.
#[tokio::test]
async fn a_request_with_a_body_hands_the_connection_over_intact() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    get_first(&mut stream).await;
    let answers = exchange(
        &mut stream,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
              Content-Length: 11\r\n\r\nhello worldGET /last HTTP/1.1\r\nHost: a\r\n\
              Connection: close\r\n\r\n",
        &[false, false],
    )
    .await;
    assert_eq!(answers[0].status(), "200", "{:?}", answers[0]);
    assert_eq!(answers[0].body, b"hello world");
    assert_eq!(echoed_uri(&answers[1]), "/last");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "closed after `Connection: close`"
    );
    assert_eq!(upstream.hits(), 3);
    palisade.shutdown().await;
}

/// An upstream on loopback that answers every request with a chunked body sent in two
/// pieces, the second 200 ms after the first.
async fn chunking_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let head =
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
                        if stream.write_all(head).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if stream.write_all(b"6\r\n world\r\n0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn answers_of_unknown_length_are_chunked_and_known_lengths_kept() {
    let (url, task) = chunking_upstream().await;
    let palisade = start_palisade(&url, "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    for _ in 0..2 {
        stream
            .write_all(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let answer = read_answers(&mut stream, &[false]).await.remove(0);
        assert_eq!(
            answer.field("transfer-encoding"),
            Some("chunked"),
            "{answer:?}"
        );
        assert_eq!(answer.body, b"hello world");
    }
    palisade.shutdown().await;
    task.abort();

    // A body larger than what is gathered behind the head, of a known length.
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    let answers = exchange(
        &mut stream,
        b"GET /big?bytes=300000 HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /big?bytes=7 HTTP/1.1\r\nHost: a\r\n\r\n",
        &[false, false],
    )
    .await;
    assert_eq!(answers[0].field("content-length"), Some("300000"));
    assert_eq!(answers[0].body.len(), 300_000);
    assert!(answers[0].body.iter().all(|&b| b == b'x'));
    assert_eq!(answers[1].body, b"xxxxxxx");
    palisade.shutdown().await;
}

/// palisade's own answers (here 502, the upstream refusing connections) are framed and
/// dated, and the connection serves the next request.
#[tokio::test]
async fn own_answers_keep_the_connection() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let palisade = start_palisade(&url, "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n")
            .await
            .expect("write");
        let answer = read_answers(&mut stream, &[false]).await.remove(0);
        assert_eq!(answer.status(), "502", "{answer:?}");
        assert!(answer.field("date").is_some(), "{answer:?}");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
        assert!(json.is_object(), "{json}");
    }
    palisade.shutdown().await;
}

/// A request that arrives while the one before it waits for the upstream is kept and
/// answered after it, not taken for the client leaving.
#[tokio::test]
async fn a_request_arriving_during_another_is_answered_after_it() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
    let answers = exchange(&mut stream, after, &[false, false]).await;
    assert_eq!(answers[0].body, b"slow done");
    assert_eq!(echoed_uri(&answers[1]), "/after");
    palisade.shutdown().await;
}

/// Regression (red team): once the own loop had answered a request, an HTTP/2 preface that
/// followed was handed to hyper's protocol detection and the connection turned HTTP/2 in
/// its middle; the preface is valid only at a connection's start (RFC 9113 §3.4).
#[tokio::test]
async fn an_http2_preface_after_http1_requests_does_not_switch_protocols() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let mut stream = connect(&palisade).await;
    get_first(&mut stream).await;
    // The preface, an empty SETTINGS frame, and HEADERS for `GET /via-h2` (HPACK).
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    h2.extend_from_slice(b"\0\0\x0e\x01\x05\0\0\0\x01\x82\x86\x44\x07/via-h2\x41\x01x");
    stream.write_all(&h2).await.expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 400 "),
        "answered as HTTP/2: {rest:?}"
    );
    assert_eq!(
        upstream.hits(),
        1,
        "the HTTP/2 request reached the upstream"
    );
    palisade.shutdown().await;
}

/// Regression (red team): hyper refuses a head only past its own buffer (8 KiB at least),
/// so with a smaller `max_header_size` a longer head went through, first on a connection or
/// after a plain request.
#[tokio::test]
async fn a_head_over_a_small_max_header_size_gets_431() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[server]\nmax_header_size = \"1KB\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let reply = raw_exchange(palisade.proxy_addr, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    let mut stream = connect(&palisade).await;
    let both = format!("GET /small HTTP/1.1\r\nHost: a\r\n\r\n{big}");
    stream.write_all(both.as_bytes()).await.expect("write");
    let answers = read_answers(&mut stream, &[false, false]).await;
    assert_eq!(echoed_uri(&answers[0]), "/small");
    assert_eq!(answers[1].status(), "431", "{:?}", answers[1]);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}
