//! The proxy end to end: a real upstream and a real palisade on loopback, real HTTP.

mod common;

use std::time::Duration;

use common::*;
use http::{Request, StatusCode};

const NO_LIMITS: &str = "rate_limit = []\n";

#[tokio::test]
async fn bodies_and_headers_arrive_intact_and_host_is_kept() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let url = format!("http://{}/submit?q=1", palisade.proxy_addr);
    let request = Request::post(url)
        .header("host", "shop.example")
        .header("x-custom", "kept")
        .header("content-type", "application/json")
        .body(full(r#"{"name":"ünïcode"}"#))
        .expect("request");
    let reply = send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/submit?q=1");
    assert_eq!(echo["body"], r#"{"name":"ünïcode"}"#);
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert_eq!(echo["headers"]["host"], "shop.example");
    assert_eq!(echo["headers"]["x-forwarded-host"], "shop.example");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(
        echo["headers"]["forwarded"],
        "for=127.0.0.1;proto=http;host=\"shop.example\""
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn security_headers_are_added_and_server_headers_removed() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let reply = get(&format!("http://{}/cookie", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.header("x-frame-options"), "DENY");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert!(
        reply
            .header("content-security-policy")
            .contains("default-src 'self'")
    );
    assert!(reply.headers.get("server").is_none());
    assert!(reply.headers.get("x-powered-by").is_none());
    let cookie = reply.header("set-cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let request = "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close, x-hop\r\nX-Hop: secret\r\n\
                   Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
                   X-End: kept\r\n\r\n";
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    let body = &reply[reply.find("\r\n\r\n").expect("head end") + 4..];
    let json: serde_json::Value = serde_json::from_str(body).expect("echo json");
    let headers = &json["headers"];
    for hop in ["x-hop", "keep-alive", "proxy-connection", "te"] {
        assert!(
            headers.get(hop).is_none(),
            "{hop} reached the upstream: {headers}"
        );
    }
    assert_eq!(headers["x-end"], "kept");
    palisade.shutdown().await;
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let reply = get(
        &format!("http://{}/", palisade.proxy_addr),
        &[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")],
    )
    .await;
    let headers = &reply.json()["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    let forwarded = headers["forwarded"].as_str().expect("forwarded");
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("6.6.6.6"), "{forwarded}");
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_eleventh_request_in_ten_seconds_gets_429_with_rate_limit_headers() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "").await;
    let url = format!("http://{}/api/items", palisade.proxy_addr);
    for i in 0..10 {
        // A spoofed X-Forwarded-For must not buy a fresh quota.
        let spoof = format!("10.0.0.{i}");
        let reply = get(&url, &[("x-forwarded-for", &spoof)]).await;
        assert_eq!(reply.status, StatusCode::OK, "request {}", i + 1);
        assert_eq!(reply.header("ratelimit-limit"), "10");
        assert_eq!(reply.header("ratelimit-remaining"), (9 - i).to_string());
    }
    let reply = get(&url, &[("accept", "application/json")]).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("palisade-mitigated"), "rate_limit");
    assert_eq!(reply.header("ratelimit-remaining"), "0");
    let retry: u64 = reply.header("retry-after").parse().expect("seconds");
    assert!((1..=10).contains(&retry), "{retry}");
    assert!(reply.header("ratelimit-reset").parse::<u64>().is_ok());
    assert_eq!(reply.json()["status"], 429);
    assert_eq!(reply.header("x-frame-options"), "DENY");
    let html = get(&url, &[("accept", "text/html")]).await;
    assert!(
        html.body.contains("<h1>429 Too Many Requests</h1>"),
        "{}",
        html.body
    );
    assert_eq!(upstream.hits(), 10);
    palisade.shutdown().await;
}

#[tokio::test]
async fn static_assets_are_not_limited_like_pages() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "").await;
    let base = format!("http://{}", palisade.proxy_addr);
    for i in 0..30 {
        let reply = get(&format!("{base}/_next/static/chunk-{i}.js"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "asset {i}");
    }
    let page = get(&format!("{base}/"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("ratelimit-remaining"), "9");
    palisade.shutdown().await;
}

#[tokio::test]
async fn log_mode_limits_only_report() {
    let upstream = Upstream::start().await;
    let rule = "[[rate_limit]]\nname = \"soft\"\nlimit = 1\nwindow = \"10s\"\nmode = \"log\"\n";
    let palisade = start_palisade(&upstream.url(), rule).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    for _ in 0..3 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
    assert!(
        metrics
            .body
            .contains("palisade_rate_limit_decisions_total{rule=\"soft\",outcome=\"logged\"} 2"),
        "{}",
        metrics.body
    );
    palisade.shutdown().await;
}

/// Palisade with a log-mode limit of 1 ("soft") and its security log in a file with the
/// given repeat window, after `requests` from one client (all served).
async fn over_a_log_mode_limit(
    window: &str,
    requests: usize,
) -> (
    Upstream,
    tempfile::TempDir,
    std::path::PathBuf,
    palisade_gateway::serve::Running,
) {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("events.log");
    let toml = format!(
        "[[rate_limit]]\nname = \"soft\"\nlimit = 1\nwindow = \"10s\"\nmode = \"log\"\n\
         [log]\nsecurity = \"{}\"\nrepeat_window = \"{window}\"\n",
        log.display()
    );
    let palisade = start_palisade_at(&upstream.url(), config_file(&toml)).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    for _ in 0..requests {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    (upstream, dir, log, palisade)
}

/// A client over a limit makes one event per request: the security log writes its first in
/// full and, when the repeat window ends, one `log.repeated` line with the count of the
/// others; metrics still count every decision.
#[tokio::test]
async fn a_clients_repeated_limit_events_are_folded_into_one_count() {
    let (_upstream, _dir, log, palisade) = over_a_log_mode_limit("1s", 6).await;
    let mut repeated = Vec::new();
    for _ in 0..300 {
        repeated = logged_events(&log, "log.repeated");
        if !repeated.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exceeded = logged_events(&log, "rate_limit.exceeded");
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    assert_eq!(exceeded[0]["rule.name"], "soft");
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    let summary = &repeated[0];
    assert_eq!(summary["repeated.event"], "rate_limit.exceeded");
    assert_eq!(summary["repeated.count"], 4);
    assert_eq!(summary["rule.name"], "soft");
    assert_eq!(summary["client.ip"], "127.0.0.1");
    assert_eq!(summary["rate_limit.enforced"], false);
    assert!(
        summary["repeated.first_ts"]
            .as_str()
            .is_some_and(|ts| ts.ends_with('Z'))
    );
    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
    assert!(
        metrics
            .body
            .contains("palisade_rate_limit_decisions_total{rule=\"soft\",outcome=\"logged\"} 5"),
        "{}",
        metrics.body
    );
    palisade.shutdown().await;
}

/// Shutdown writes what the log still holds: events queued for the writer and the counts of
/// windows that have not ended (here an hour long), before it returns.
#[tokio::test]
async fn shutdown_writes_queued_events_and_pending_counts() {
    let (_upstream, _dir, log, palisade) = over_a_log_mode_limit("1h", 4).await;
    palisade.shutdown().await;
    let exceeded = logged_events(&log, "rate_limit.exceeded");
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    let repeated = logged_events(&log, "log.repeated");
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert_eq!(repeated[0]["repeated.count"], 2);
}

#[tokio::test]
async fn an_upstream_that_is_down_gives_502_without_detail() {
    let port = free_port();
    let palisade = start_palisade(&format!("http://127.0.0.1:{port}"), NO_LIMITS).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    let reply = get(&url, &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.body.contains("502 Bad Gateway"));
    assert!(!reply.body.contains(&port.to_string()), "{}", reply.body);
    let json = get(&url, &[("accept", "application/json")]).await;
    assert_eq!(json.json()["status"], 502);
    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
    assert!(
        metrics
            .body
            .contains("palisade_upstream_errors_total{cause=\"upstream_connect\"} 2")
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[upstream]\nresponse_timeout = \"300ms\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let reply = get(&format!("http://{}/slow", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    palisade.shutdown().await;
}

/// An upstream that sends an answer's head and part of its body, then nothing: after
/// `response_timeout` without a byte palisade ends the answer (the client's connection is
/// closed, as the body cannot be completed) and logs an upstream timeout, instead of
/// holding both connections open for as long as the upstream does.
#[tokio::test]
async fn an_answer_body_that_stops_coming_is_ended_after_the_response_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let _ = socket.read(&mut buf).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial";
        let _ = socket.write_all(head).await;
        // Silent from here, the connection open, until palisade gives up on it.
        let _ = socket.read(&mut buf).await;
    });
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("events.log");
    let toml = format!(
        "rate_limit = []\n[upstream]\nresponse_timeout = \"400ms\"\n[log]\nsecurity = \"{}\"\n",
        log.display()
    );
    let file = config_file(&toml);
    let palisade = start_palisade_at(&format!("http://{upstream}"), file).await;
    let mut client = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    client
        .write_all(b"GET /stalls HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut reply))
        .await
        .expect("palisade ends the stalled answer");
    assert!(closed.is_ok(), "{closed:?}");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("partial"), "{reply}");
    one_request_failure(&log, "upstream", "upstream_timeout", "stalled body").await;
    palisade.shutdown().await;
}

#[tokio::test]
async fn slow_headers_get_the_connection_closed() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[server]\nheader_read_timeout = \"500ms\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    // Half a request head, then silence: the slowloris shape.
    let reply = raw_exchange(
        palisade.proxy_addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1",
        Duration::from_secs(20),
    )
    .await;
    assert!(!reply.contains("200 OK"), "{reply}");
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrades_tunnel_bytes_both_ways() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    websocket_echo_round_trip(palisade.proxy_addr).await;
    palisade.shutdown().await;
}

/// h2c smuggling: an upstream that accepted `Upgrade: h2c` would give the client an HTTP/2
/// connection no stage reads. Only WebSocket upgrades pass; others go up as plain requests,
/// and a 101 to a request that asked for no WebSocket is the upstream's fault (502).
#[tokio::test]
async fn upgrades_other_than_websocket_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let request = "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\
                   Connection: close\r\n\r\n";
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_lowercase();
    assert!(!body.contains("\"upgrade\""), "{body}");
    assert!(!body.contains("http2-settings"), "{body}");

    let request = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\
                   Connection: close\r\n\r\n";
    let reply = raw_exchange(
        palisade.proxy_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    palisade.shutdown().await;
}

/// Headers an application may believe (a path override, a method override on a GET, a
/// proxy's word about the client) never reach it from a client that is not a trusted proxy.
#[tokio::test]
async fn client_forged_override_and_proxy_headers_are_removed() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let forged = [
        ("x-original-url", "/admin/delete"),
        ("x-rewrite-url", "/admin/delete"),
        ("x-http-method-override", "DELETE"),
        ("x-real-ip", "10.0.0.1"),
        ("true-client-ip", "10.0.0.2"),
        ("cf-connecting-ip", "10.0.0.3"),
        ("x-forwarded-prefix", "/evil"),
    ];
    let reply = get(&format!("http://{}/echo", palisade.proxy_addr), &forged).await;
    let seen = &reply.json()["headers"];
    for (name, _) in forged {
        assert!(seen[name].is_null(), "{name} reached the upstream: {seen}");
    }
    palisade.shutdown().await;

    let trusted = format!("{NO_LIMITS}[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let palisade = start_palisade(&upstream.url(), &trusted).await;
    let reply = get(&format!("http://{}/echo", palisade.proxy_addr), &forged).await;
    let seen = &reply.json()["headers"];
    assert_eq!(
        seen["x-real-ip"], "10.0.0.1",
        "a trusted proxy may speak for clients"
    );
    assert!(seen["x-original-url"].is_null());
    palisade.shutdown().await;
}

/// A trusted proxy's list-valued `X-Forwarded-Proto` is read by its first item, as most
/// applications read it, and only that item goes upstream: palisade and the application
/// agree on whether the request came over TLS (new-user finding: `https, http` was plain
/// HTTP to palisade, no HSTS, while the upstream was handed `https, http`).
#[tokio::test]
async fn a_trusted_proxys_scheme_list_is_read_by_its_first_item_on_both_sides() {
    let upstream = Upstream::start().await;
    let trusted = format!("{NO_LIMITS}[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let palisade = start_palisade(&upstream.url(), &trusted).await;
    for (sent, scheme, hsts) in [
        ("https, http", "https", true),
        ("http, https", "http", false),
    ] {
        let reply = get(
            &format!("http://{}/echo", palisade.proxy_addr),
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-proto", sent),
            ],
        )
        .await;
        let seen = &reply.json()["headers"];
        assert_eq!(seen["x-forwarded-proto"], scheme, "{sent}: {seen}");
        let forwarded = seen["forwarded"].as_str().expect("forwarded");
        assert!(
            forwarded.starts_with(&format!("for=198.51.100.7;proto={scheme}, ")),
            "{sent}: {forwarded}"
        );
        assert_eq!(
            reply.headers.contains_key("strict-transport-security"),
            hsts,
            "{sent}: {:?}",
            reply.headers
        );
    }
    palisade.shutdown().await;
}

/// CGI-style servers (PHP-FPM, WSGI, Rack) read `X_Real_IP` as `X-Real-IP`, so a spelling
/// with `_` for `-` is removed like the header it spells, and never reaches the upstream
/// beside the forwarding headers palisade writes.
#[tokio::test]
async fn underscore_spellings_of_forged_headers_are_removed() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let forged = [
        ("x_original_url", "/admin/delete"),
        ("x-original_url", "/admin/delete"),
        ("x_http_method_override", "DELETE"),
        ("x_real_ip", "10.0.0.1"),
        ("cf_connecting_ip", "10.0.0.3"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x_forwarded_host", "evil.example"),
        ("x_forwarded_proto", "https"),
    ];
    let reply = get(&format!("http://{}/echo", palisade.proxy_addr), &forged).await;
    let seen = &reply.json()["headers"];
    for (name, _) in forged {
        assert!(seen[name].is_null(), "{name} reached the upstream: {seen}");
    }
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    palisade.shutdown().await;
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<TestBody>();
    let url = format!("http://{}/h2", palisade.proxy_addr);
    let response = client
        .request(Request::get(url).body(full("")).expect("request"))
        .await
        .expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    palisade.shutdown().await;
}

/// A HEAD answered by palisade itself (here a 502: nothing listens upstream) carries no body
/// over HTTP/2 either: its page, sent as DATA, made clients refuse the stream with a protocol
/// error, and so miss the status and the security headers (a red-team finding).
#[tokio::test]
async fn h2_head_to_an_answer_palisade_writes_gets_its_head_alone() {
    let palisade = start_palisade(&format!("http://127.0.0.1:{}", free_port()), NO_LIMITS).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<TestBody>();
    let request = Request::head(format!("http://{}/page", palisade.proxy_addr))
        .body(full(""))
        .expect("request");
    let response = client.request(request).await.expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("a well-formed stream")
        .to_bytes();
    assert!(body.is_empty(), "{body:?}");
    palisade.shutdown().await;
}

/// An HTTP/2 client may send each cookie in its own field (browsers do); the upstream gets
/// them in one `Cookie` field joined by `; ` (RFC 9113 §8.2.3), not as two fields an
/// application may read only the first of, or join with `,`.
#[tokio::test]
async fn h2_cookie_fields_reach_the_upstream_as_one() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<TestBody>();
    let request = Request::get(format!("http://{}/echo", palisade.proxy_addr))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(full(""))
        .expect("request");
    let response = client.request(request).await.expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(seen["headers"]["cookie"], "a=1; b=2", "{seen}");
    palisade.shutdown().await;
}

/// palisade answers `Expect: 100-continue` itself and forwards the body without waiting, so
/// the expectation is not passed on: an upstream told to expect it may answer before the
/// body and then read the body as a request of its own.
#[tokio::test]
async fn expect_100_continue_is_answered_here_and_not_forwarded() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_LIMITS).await;
    let request = Request::post(format!("http://{}/echo", palisade.proxy_addr))
        .header("expect", "100-continue")
        .header("content-type", "text/plain")
        .body(full("hello"))
        .expect("request");
    let reply = send(request).await;
    let seen = reply.json();
    assert!(seen["headers"]["expect"].is_null(), "{seen}");
    assert_eq!(seen["body"], "hello", "{seen}");
    palisade.shutdown().await;
}

#[tokio::test]
async fn admin_serves_health_readiness_and_metrics() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "").await;
    let admin = format!("http://{}", palisade.admin_addr);
    assert_eq!(get(&format!("{admin}/healthz"), &[]).await.body, "ok\n");
    let ready = get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    let metrics = get(&format!("{admin}/metrics"), &[]).await.body;
    for name in [
        "palisade_requests_total{class=\"2xx\",decision=\"allowed\"} 1",
        "palisade_request_duration_seconds_bucket",
        "palisade_rate_limit_decisions_total{rule=\"default\",outcome=\"allowed\"} 1",
        "palisade_open_connections",
        "palisade_state_backend_errors_total{backend=\"memory\"} 0",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    palisade.shutdown().await;
}

#[tokio::test]
async fn reload_with_a_bad_file_keeps_the_old_config() {
    let upstream = Upstream::start().await;
    let rule = "[[rate_limit]]\nname = \"r\"\nlimit = 50\nwindow = \"10s\"\n";
    let palisade = start_palisade(&upstream.url(), rule).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    let file = palisade
        .gateway
        .config_file()
        .expect("config file")
        .to_path_buf();
    std::fs::write(&file, "[server]\nlisten = 8080\n").expect("write bad config");
    let err = palisade.gateway.reload().expect_err("bad config refused");
    assert!(err.to_string().contains("palisade.toml:2:10:"), "{err}");
    assert_eq!(get(&url, &[]).await.header("ratelimit-limit"), "50");
    std::fs::write(&file, rule.replace("50", "7")).expect("write good config");
    palisade.gateway.reload().expect("good config applied");
    assert_eq!(get(&url, &[]).await.header("ratelimit-limit"), "7");
    palisade.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_before_the_upstream() {
    let upstream = Upstream::start().await;
    let toml = "rate_limit = []\n[server]\nmax_uri_length = \"64B\"\nmax_body_size = \"1KB\"\n\
                max_headers = 20\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let base = format!("http://{}", palisade.proxy_addr);

    let long = format!("{base}/{}", "a".repeat(100));
    assert_eq!(get(&long, &[]).await.status, StatusCode::URI_TOO_LONG);

    let declared = Request::post(format!("{base}/sink"))
        .body(full(vec![b'x'; 2048]))
        .expect("request");
    assert_eq!(send(declared).await.status, StatusCode::PAYLOAD_TOO_LARGE);

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let reply = raw_exchange(palisade.proxy_addr, many.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(upstream.hits(), 0);

    // A chunked body has no declared length: it is cut off as it passes the limit.
    let streamed_body = Request::post(format!("{base}/sink"))
        .header("transfer-encoding", "chunked")
        .body(streamed(64 * 1024))
        .expect("request");
    let reply = send(streamed_body).await;
    assert_ne!(
        reply.body,
        (64 * 1024).to_string(),
        "the whole body went through"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn trusted_proxies_may_name_the_client_for_rate_limits() {
    let upstream = Upstream::start().await;
    let toml = "[[rate_limit]]\nname = \"r\"\nlimit = 1\nwindow = \"10s\"\n\n\
                [server]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    let first = get(&url, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.json()["headers"]["x-forwarded-for"],
        "198.51.100.1, 127.0.0.1"
    );
    let other = get(&url, &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another client has its own quota"
    );
    let again = get(&url, &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")]).await;
    assert_eq!(
        again.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the rightmost untrusted hop counts"
    );
    palisade.shutdown().await;
}

/// An upstream that answers every connection once in HTTP/1.0, then closes it.
async fn http10_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let reply = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn clients_get_http_1_1_whatever_version_the_upstream_speaks() {
    let upstream = http10_upstream().await;
    let palisade = start_palisade(&format!("http://{upstream}"), "").await;
    let reply = raw_exchange(
        palisade.proxy_addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");
    palisade.shutdown().await;
}

/// An idle pooled connection is closed once `pool_idle_timeout` has passed, even when no
/// request comes to notice it: the upstream reads the end of the stream.
#[tokio::test]
async fn an_idle_upstream_connection_is_closed_after_pool_idle_timeout_without_traffic() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = format!("{NO_LIMITS}[upstream]\npool_idle_timeout = \"1s\"\n");
    let palisade = start_palisade(&format!("http://{addr}"), &config).await;
    let url = format!("http://{}/", palisade.proxy_addr);
    let client = tokio::spawn(async move { get(&url, &[]).await });

    let (mut socket, _) = listener.accept().await.expect("palisade connects");
    let mut buf = [0u8; 4096];
    let _ = socket.read(&mut buf).await.expect("request");
    let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    socket.write_all(reply.as_bytes()).await.expect("reply");
    assert_eq!(client.await.expect("client").status, StatusCode::OK);

    // Kept alive in the pool, then closed by the sweep within twice the idle timeout; 20 s
    // only bounds the test.
    let end = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0))), "connection still open: {end:?}");
    palisade.shutdown().await;
}

/// Regression: a request whose client went away before the answer (a closed connection, a
/// reset HTTP/2 stream, a gRPC deadline) left no trace: hyper dropped the handler before it
/// counted anything. Now it is counted (status 499) and reported as the client's doing.
#[tokio::test]
async fn requests_the_client_abandons_are_counted_and_reported() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("events.log");
    let toml = format!("rate_limit = []\n[log]\nsecurity = \"{}\"\n", log.display());
    let file = config_file(&toml);
    let palisade = start_palisade_at(&upstream.url(), file).await;

    // HTTP/1.1: the connection closed while the upstream takes 1.5 s.
    let mut stream = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    // HTTP/2: the stream given up on (its future dropped resets it), the connection kept.
    let tcp = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h2c");
    tokio::spawn(connection);
    let request = Request::get(format!("http://{}/slow", palisade.proxy_addr))
        .body(full(""))
        .expect("request");
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), sender.send_request(request)).await;
    assert!(abandoned.is_err(), "the upstream answers only after 1.5 s");

    let admin = format!("http://{}/metrics", palisade.admin_addr);
    let counted = "palisade_requests_total{class=\"4xx\",decision=\"allowed\"} 2";
    let mut metrics = String::new();
    let mut events = Vec::new();
    for _ in 0..100 {
        metrics = get(&admin, &[]).await.body;
        events = logged_events(&log, "request.failed");
        if metrics.contains(counted) && events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.contains(counted), "{metrics}");
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(event["error.kind"], "client_closed", "{event}");
        assert_eq!(event["error.source"], "client", "{event}");
        assert_eq!(event["http.status"], 499, "{event}");
        assert_eq!(event["url.path"], "/slow", "{event}");
    }
    palisade.shutdown().await;
}

/// Regression: an upstream refusing an upload by answering before it has all of it (413
/// here, RFC 9112 §9.5) got its answer to the client without `Connection: close`, and the
/// client's unread rest was dropped, so a client still sending could meet a reset instead.
/// Now the connection says it ends and drains the rest while the client finishes sending.
#[tokio::test]
async fn an_early_refusal_of_an_upload_closes_the_client_connection_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the head");
            seen.extend_from_slice(&buf[..n]);
        }
        let answer = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nnope";
        stream.write_all(answer).await.expect("answer");
        // Keep reading whatever palisade still sends, until it closes.
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let palisade = start_palisade(&url, "rate_limit = []\n").await;
    let mut client = tokio::net::TcpStream::connect(palisade.proxy_addr)
        .await
        .expect("connect");
    let total = 4 * 1024 * 1024;
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
         Content-Length: {total}\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.expect("head");
    let piece = vec![b'x'; 128 * 1024];
    client.write_all(&piece).await.expect("first piece");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"nope") {
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
        let n = read.expect("answer in time").expect("read");
        assert!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    // The rest of the upload is taken (drained), not refused with a reset.
    for _ in 0..8 {
        client.write_all(&piece).await.expect("the rest is drained");
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "closed after the answer: {closed:?}"
    );
    palisade.shutdown().await;
    upstream.abort();
}
