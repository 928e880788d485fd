//! The admin listener against hostile callers: a real palisade, real clients.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// `GET /metrics` on the admin listener with the given `Host` lines.
async fn metrics_with_hosts(admin: SocketAddr, hosts: &[String]) -> String {
    let mut request = "GET /metrics HTTP/1.1\r\n".to_owned();
    for host in hosts {
        request.push_str(&format!("Host: {host}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    raw_exchange(admin, request.as_bytes(), Duration::from_secs(5)).await
}

/// A page on `evil.example` that re-resolved its name to 127.0.0.1 (DNS rebinding) reaches
/// the loopback admin listener with `Host: evil.example:<port>`; without a token it must be
/// refused, while local tools naming 127.0.0.1, `[::1]` or `localhost` still get through.
#[tokio::test]
async fn dns_rebinding_hosts_are_refused_without_a_token() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let admin = palisade.admin_addr;
    let port = admin.port();

    let hostile = [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1.nip.io:{port}"),
    ];
    for host in hostile {
        let reply = metrics_with_hosts(admin, std::slice::from_ref(&host)).await;
        assert!(reply.starts_with("HTTP/1.1 403"), "{host}: {reply}");
        assert!(reply.contains("PALISADE_ADMIN_TOKEN"), "{reply}");
        assert!(!reply.contains("palisade_requests"), "{reply}");
    }
    let local = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
    ];
    for host in local {
        let reply = metrics_with_hosts(admin, std::slice::from_ref(&host)).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{host}: {reply}");
    }
    let both = [format!("127.0.0.1:{port}"), "evil.example".to_owned()];
    let reply = metrics_with_hosts(admin, &both).await;
    assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
    palisade.shutdown().await;
}
