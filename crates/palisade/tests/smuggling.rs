//! Request smuggling shapes over raw TCP: each gets 400 and never reaches the upstream.

mod common;

use std::time::Duration;

use common::*;

/// What palisade answers on a new connection that sends `request` (read until it closes,
/// 5 s at most).
async fn reply_to(palisade: &palisade_gateway::serve::Running, request: &str) -> String {
    raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await
}

/// Sends `request` and returns palisade's answer, asserting the upstream saw nothing.
async fn refused(request: &str) -> String {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let reply = reply_to(&palisade, request).await;
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
    // Managed detection off: it rightly blocks a request line in a body (a smuggling
    // attempt); this test is about framing, that the body reaches the upstream only as body.
    let config = "rate_limit = []\n[waf]\nmanaged = false\n";
    let palisade = start_palisade(&upstream.url(), config).await;
    let hidden = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{hidden}",
        hidden.len()
    );
    let reply = reply_to(&palisade, &request).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

/// A sound request pipelined before a smuggling shape is served; the shape and what
/// follows it are refused. (The framing watch's finding used to count for the whole
/// connection, refusing the sound request too.)
#[tokio::test]
async fn a_sound_request_before_a_smuggling_shape_is_served_alone() {
    let upstream = Upstream::start().await;
    let config = "rate_limit = []\n[waf]\nmanaged = false\n";
    let palisade = start_palisade(&upstream.url(), config).await;
    let request = "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
                   POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                   GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let reply = reply_to(&palisade, request).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let second = reply.find("HTTP/1.1 400").expect("the shape refused");
    assert!(second > 0, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 2, "{reply}");
    assert_eq!(
        upstream.hits(),
        1,
        "only the sound request reached the upstream"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn codings_other_than_a_single_chunked_are_refused() {
    for coding in [
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let request = format!("POST / HTTP/1.1\r\nHost: a\r\n{coding}\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_400(&refused(&request).await);
    }
}

#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: admin.internal\r\n\r\n",
        "GET http://public.example/ HTTP/1.1\r\nHost: admin.internal\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: good.example@evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: evil.example\\good.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: good.example/../evil\r\n\r\n",
        "GET http://good.example@evil.example/ HTTP/1.1\r\nHost: good.example@evil.example\r\n\r\n",
    ] {
        assert_400(&refused(request).await);
    }
}

/// Over h2c, a WAF rule reads `http.host` from `:authority` while the upstream routes on
/// `Host`: a request naming two different hosts must not reach the upstream.
#[tokio::test]
async fn an_h2_host_header_differing_from_the_authority_is_refused() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<TestBody>();
    let url = format!("http://{}/", palisade.proxy_addr);
    let send = |host: Option<&'static str>| {
        let mut request = http::Request::get(&url);
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        client.request(request.body(full("")).expect("request"))
    };
    let refused = send(Some("admin.internal")).await.expect("h2 response");
    assert_eq!(refused.version(), http::Version::HTTP_2);
    assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(upstream.hits(), 0);
    let served = send(None).await.expect("h2 response");
    assert_eq!(served.status(), http::StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

/// A reverse proxy tunnels nothing: forwarded, `CONNECT` would ask the upstream to open a
/// connection of the client's choosing.
#[tokio::test]
async fn connect_is_answered_405_and_never_forwarded() {
    let reply =
        refused("CONNECT internal.example:22 HTTP/1.1\r\nHost: internal.example:22\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
}

/// An authority-form target on a `GET` reached the upstream as `GET /` while path rules
/// and limits matched its empty path (a `path = "/"` limit did not count it), and `GET *`
/// reached it as it was: both forms belong to other methods (RFC 9112 §3.2).
#[tokio::test]
async fn targets_in_a_form_their_method_may_not_use_are_refused() {
    assert_400(&refused("GET a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n").await);
    assert_400(&refused("POST a:80 HTTP/1.1\r\nHost: a:80\r\nContent-Length: 0\r\n\r\n").await);
    assert_400(&refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n").await);
}

/// `OPTIONS *` asks about the server as a whole and is forwarded as it is.
#[tokio::test]
async fn options_asterisk_is_forwarded() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let request = "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let reply = reply_to(&palisade, request).await;
    assert!(!reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert_eq!(upstream.hits(), 1, "{reply}");
    palisade.shutdown().await;
}

/// Regression (red team): after a `CONNECT` (405) or an `Upgrade` palisade does not tunnel,
/// the framing watch stops (a tunnel could follow), yet the connection went on serving
/// requests: a smuggling shape sent next reached the upstream. Such an answer now ends the
/// connection.
#[tokio::test]
async fn nothing_after_an_untunnelled_connect_or_upgrade_is_served() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let smuggled = "POST /smug HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\
                    Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                    GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
    let connect = format!("CONNECT x:80 HTTP/1.1\r\nHost: x:80\r\n\r\n{smuggled}");
    let reply = reply_to(&palisade, &connect).await;
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert!(
        reply.to_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{reply}");
    assert_eq!(upstream.hits(), 0);

    let upgrade = format!(
        "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n{smuggled}"
    );
    let reply = reply_to(&palisade, &upgrade).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{reply}");
    assert_eq!(
        upstream.hits(),
        1,
        "only the upgrade request, as a plain one"
    );
    palisade.shutdown().await;
}

/// Regression (red team): a sound request with bare-LF line ends made the framing watch
/// read it and the next head as one, so a smuggling shape behind it went through.
#[tokio::test]
async fn a_smuggling_shape_behind_a_bare_lf_head_is_refused() {
    let upstream = Upstream::start().await;
    let palisade =
        start_palisade(&upstream.url(), "rate_limit = []\n[waf]\nmanaged = false\n").await;
    let request = "POST /a HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc\
                   POST /smug HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let reply = reply_to(&palisade, request).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("HTTP/1.1 400"), "{reply}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

/// Two `Content-Type` (or `Content-Disposition`) fields let palisade's stages and the
/// upstream read different ones: refused before the upstream sees them, on palisade's own
/// loop (GET) and on hyper's (POST with a body).
#[tokio::test]
async fn repeated_singleton_fields_are_refused() {
    for request in [
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Type: image/png\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Disposition: inline\r\n\
         Content-Disposition: attachment\r\n\r\nok",
    ] {
        assert_400(&refused(request).await);
    }
}

/// A head that is not HTTP, or too large, gets palisade's own error page with the security
/// headers every answer gets, and `Connection: close` (hyper refused these with a bare
/// answer). A client still sending the rest of a head too large (300 KB over a 4 KB limit)
/// gets the answer too.
#[tokio::test]
async fn refused_heads_get_palisades_page_with_the_security_headers() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[server]\nmax_header_size = \"4KB\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(300_000)
    );
    for (request, status) in [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
            "400",
        ),
        ("GET / HTTP/1.1\r\nBad Name: b\r\n\r\n", "400"),
        ("GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "400"),
        (big.as_str(), "431"),
    ] {
        let reply = reply_to(&palisade, request).await;
        let shown = &reply[..reply.len().min(600)];
        assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{shown}");
        let lower = reply.to_ascii_lowercase();
        for field in [
            "content-security-policy: default-src 'self'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: ",
            "connection: close",
            "content-type: text/html",
        ] {
            assert!(lower.contains(field), "{field} missing: {shown}");
        }
        assert!(
            reply.contains(&format!("<h1>{status} ")),
            "no page: {shown}"
        );
    }
    // A refused `HEAD` gets the answer's head alone.
    let reply = reply_to(
        &palisade,
        "HEAD / HTTP/1.1\r\nHost: a\r\nA: b\r\n c\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{reply}"
    );
    assert!(
        reply.ends_with("\r\n\r\n") && !reply.contains("<h1>"),
        "{reply}"
    );
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

/// A head refused before any stage sees the request (by palisade's own loop, or by hyper on
/// a connection it serves) is still a security event: `request.malformed`, with the peer's
/// address, what was wrong and the status sent (it left only a debug line before).
#[tokio::test]
async fn refused_heads_are_logged_as_malformed_requests() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("events.log");
    // Heads up to 1 MB, so that a URI over hyper's own 64 KiB limit is hyper's to refuse.
    let toml = format!(
        "rate_limit = []\n[server]\nmax_header_size = \"1MB\"\n[log]\nsecurity = \"{}\"\n",
        log.display()
    );
    let palisade = start_palisade_at(&upstream.url(), config_file(&toml)).await;
    let folded = "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n";
    assert_400(&reply_to(&palisade, folded).await);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1_500_000)
    );
    let reply = reply_to(&palisade, &huge).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70_000));
    let reply = reply_to(&palisade, &long).await;
    assert!(reply.starts_with("HTTP/1.1 414"), "{reply}");
    // An HTTP/2 preface after a request hyper serves: hyper closes without an answer.
    let preface = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\
                   PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    reply_to(&palisade, preface).await;
    let mut events = Vec::new();
    for _ in 0..100 {
        events = logged_events(&log, "request.malformed");
        if events.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 4, "{events:?}");
    // Each connection publishes its event when it ends, which may be after the client has
    // read the answer and sent the next request: the order is not the sending order.
    let of_kind = |kind: &str| {
        events
            .iter()
            .find(|event| event["error.kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
    };
    let head = of_kind("malformed_head");
    assert_eq!(head["client.ip"], "127.0.0.1");
    assert_eq!(head["http.status"], 400);
    assert!(head["error.detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(of_kind("head_too_large")["http.status"], 431);
    assert_eq!(of_kind("uri_too_long")["http.status"], 414);
    let preface = of_kind("http2_preface");
    assert!(preface["http.status"].is_null(), "{preface}");
    // Only the sound POST before the preface reached the upstream.
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

/// An HTTP/2 client that breaks the protocol (here a PING frame of 7 bytes, which must be
/// 8) has its connection ended with GOAWAY, and that is a `request.malformed` event of kind
/// `http2_protocol` (it left only a debug line before); a client closing its own
/// connection cleanly is not one.
#[tokio::test]
async fn http2_protocol_errors_are_logged_as_malformed_requests() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("events.log");
    let toml = format!("rate_limit = []\n[log]\nsecurity = \"{}\"\n", log.display());
    let palisade = start_palisade_at(&upstream.url(), config_file(&toml)).await;
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    let settings: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    let mut broken = [preface, settings].concat();
    // A PING frame (type 6) of length 7.
    broken.extend_from_slice(&[0, 0, 7, 6, 0, 0, 0, 0, 0]);
    broken.extend_from_slice(&[1; 7]);
    raw_exchange(palisade.proxy_addr, &broken, Duration::from_secs(5)).await;
    // A well-formed connection that the client ends with its own GOAWAY (NO_ERROR).
    let mut clean = [preface, settings].concat();
    clean.extend_from_slice(&[0, 0, 8, 7, 0, 0, 0, 0, 0]);
    clean.extend_from_slice(&[0; 8]);
    raw_exchange(palisade.proxy_addr, &clean, Duration::from_secs(2)).await;
    let mut events = Vec::new();
    for _ in 0..100 {
        events = logged_events(&log, "request.malformed");
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for a wrongly published second event to reach the log.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events_after = logged_events(&log, "request.malformed");
    assert_eq!(events_after.len(), 1, "{events_after:?}");
    assert_eq!(events[0]["client.ip"], "127.0.0.1");
    assert_eq!(events[0]["error.kind"], "http2_protocol");
    let detail = events[0]["error.detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("GOAWAY PROTOCOL_ERROR: "), "{detail}");
    assert!(events[0]["http.status"].is_null(), "{}", events[0]);
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}
