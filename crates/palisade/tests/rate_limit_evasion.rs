//! Ways a client might try to escape a rate limit, against a real palisade: each spelling of
//! a limited path counts against the same quota, and dressing a page up as a static asset
//! does not buy the asset's looser limit.

mod common;

use std::time::Duration;

use common::*;

/// Managed detection off: it rightly blocks some of these spellings (a NUL byte, a session id
/// in the URL) before the rate limit sees them, and these tests are about the rate limit.
const NO_MANAGED_WAF: &str = "[waf]\nmanaged = false\n";

/// The status palisade answers to a raw `GET target`.
async fn status_of(addr: std::net::SocketAddr, target: &str) -> u16 {
    let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let reply = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await;
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status for {target}: {reply:?}"))
}

/// A limit of 2 on `/api/login`: spellings an upstream may read as the same path
/// (`/api//login`, `/api/./login`, `/x/../api/login`, `/%61pi/login`, `/api/login;x`,
/// `/API/login`) are counted with it.
#[tokio::test]
async fn other_spellings_of_a_limited_path_share_its_quota() {
    let upstream = Upstream::start().await;
    let rule = format!(
        "[[rate_limit]]\nname = \"login\"\npath = \"/api/login\"\nlimit = 2\n\
         window = \"60s\"\n{NO_MANAGED_WAF}"
    );
    let palisade = start_palisade(&upstream.url(), &rule).await;
    let addr = palisade.proxy_addr;
    assert_eq!(status_of(addr, "/api/login").await, 200);
    assert_eq!(status_of(addr, "/api/login").await, 200);
    for spelling in [
        "/api/login",
        "/api//login",
        "//api/login",
        "/api/./login",
        "/x/../api/login",
        "/%61pi/login",
        "/api/login;jsessionid=1",
        "/API/login",
    ] {
        assert_eq!(status_of(addr, spelling).await, 429, "{spelling}");
    }
    assert_eq!(upstream.hits(), 2);
    palisade.shutdown().await;
}

/// The default limit spares static assets; a page whose path only looks like one
/// (`/static/../api/items`, `/api/items;.css`) is limited like a page.
#[tokio::test]
async fn pages_dressed_as_static_assets_are_limited_like_pages() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), NO_MANAGED_WAF).await;
    let addr = palisade.proxy_addr;
    for _ in 0..10 {
        assert_eq!(status_of(addr, "/api/items").await, 200);
    }
    for disguise in [
        "/static/../api/items",
        "/api/items;.css",
        "/api/items%3b.css",
        "/assets/%2e%2e/api/items",
        "/api/items%00.js",
    ] {
        assert_eq!(status_of(addr, disguise).await, 429, "{disguise}");
    }
    assert_eq!(status_of(addr, "/static/app.css").await, 200);
    palisade.shutdown().await;
}

/// A WAF `rate_limit` rule keyed by `route` used to key on the path as sent, so each
/// spelling of a limited route (`/api//items`, `/api/./items`, `/%61pi/items`,
/// `/api/items;x`) started a fresh quota.
#[tokio::test]
async fn other_spellings_of_a_route_share_a_waf_route_limit() {
    let upstream = Upstream::start().await;
    let rule = format!(
        "rate_limit = []\n{NO_MANAGED_WAF}[[waf.rule]]\nname = \"api\"\n\
         expression = '(http.request.uri.path contains \"/api/\")'\n\
         action = \"rate_limit\"\nthreshold = \"2/minute\"\nkey = \"route\"\n"
    );
    let palisade = start_palisade(&upstream.url(), &rule).await;
    let addr = palisade.proxy_addr;
    assert_eq!(status_of(addr, "/api/items").await, 200);
    assert_eq!(status_of(addr, "/api/items").await, 200);
    for spelling in [
        "/api/items",
        "/api//items",
        "/api/./items",
        "/x/../api/items",
        "/%61pi/items",
        "/api/items;x",
    ] {
        assert_eq!(status_of(addr, spelling).await, 429, "{spelling}");
    }
    assert_eq!(upstream.hits(), 2);
    assert_eq!(status_of(addr, "/api/other").await, 200, "another route");
    palisade.shutdown().await;
}
