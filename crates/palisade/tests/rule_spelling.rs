//! Red-team findings against WAF rules in a real palisade, sent by a raw client so that no
//! library tidies the request first: a path rule could be dodged by spelling the path
//! another way (`//admin`, `/%61dmin`, `/x/../admin`), and a host rule by spelling the host
//! another way (`ADMIN.internal`, `admin.internal.`, `admin.internal:80`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Managed detection off: it blocks some of these spellings on its own, and these tests are
/// about the rule fields.
const RULES: &str = r#"
[waf]
managed = false

[[waf.rule]]
name = "Admin area"
expression = 'starts_with(http.request.uri.path, "/admin")'
action = "block"

[[waf.rule]]
name = "Admin area, any case"
expression = 'starts_with(lower(http.request.uri.path), "/staff")'
action = "block"

[[waf.rule]]
name = "Internal host"
expression = 'http.host eq "admin.internal"'
action = "block"
"#;

/// The status line and body palisade answers to a raw `GET target` for `host`.
async fn exchange(addr: SocketAddr, target: &str, host: &str) -> (u16, String) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let reply = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status for {target} to {host}: {reply:?}"));
    (status, reply)
}

#[tokio::test]
async fn every_spelling_of_a_blocked_path_is_blocked() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), RULES).await;
    let addr = palisade.proxy_addr;
    for spelling in [
        "/admin",
        "//admin",
        "/%61dmin",
        "/%2561dmin/../../admin",
        "/x/../admin",
        "/./admin",
        "/admin;x",
        "/public/..;/admin",
        "/x/%2e%2e/admin/users",
    ] {
        let (status, reply) = exchange(addr, spelling, "shop.example").await;
        assert_eq!(status, 403, "{spelling}: {reply}");
        assert!(reply.contains("palisade-mitigated: block"), "{spelling}");
    }
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

/// Paths are case-sensitive, so `/ADMIN` is not `/admin` to the path rule; a rule written
/// with `lower()` (as the docs advise for case-insensitive applications) catches every case.
#[tokio::test]
async fn case_is_kept_and_a_lower_case_rule_catches_every_case() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), RULES).await;
    let addr = palisade.proxy_addr;
    for spelling in ["/staff", "/STAFF", "/Staff/../STAFF/x", "//%53taff"] {
        let (status, reply) = exchange(addr, spelling, "shop.example").await;
        assert_eq!(status, 403, "{spelling}: {reply}");
    }
    let (status, reply) = exchange(addr, "/ADMIN", "shop.example").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn every_spelling_of_a_blocked_host_is_blocked() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), RULES).await;
    let addr = palisade.proxy_addr;
    for host in [
        "admin.internal",
        "ADMIN.internal",
        "admin.internal.",
        "admin.internal:80",
        "Admin.Internal.:8080",
    ] {
        let (status, reply) = exchange(addr, "/", host).await;
        assert_eq!(status, 403, "{host}: {reply}");
    }
    let (status, reply) = exchange(addr, "/", "admin.internal.example").await;
    assert_eq!(status, 200, "{reply}");
    palisade.shutdown().await;
}

/// Normalisation is for the rules only: the upstream reads the request as the client sent it.
#[tokio::test]
async fn the_upstream_receives_the_path_as_sent() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), RULES).await;
    let (status, reply) = exchange(palisade.proxy_addr, "/a//b/./%7Ec;x", "shop.example").await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(r#""uri":"/a//b/./%7Ec;x""#), "{reply}");
    palisade.shutdown().await;
}
