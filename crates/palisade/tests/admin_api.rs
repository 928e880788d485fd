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

/// Reads from `stream` until the peer closes it or `within` passes; true when it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0_u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Idle connections cannot use up the admin listener's descriptors: beyond the cap a new
/// connection is closed at once, a connection that sends no request head is cut after the
/// header timeout, and once the idle ones are gone the API answers again.
#[tokio::test]
async fn idle_admin_connections_are_capped_and_cut() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    let admin = palisade.admin_addr;
    let mut idle = Vec::new();
    for _ in 0..palisade_gateway::admin::ADMIN_MAX_CONNECTIONS {
        idle.push(
            tokio::net::TcpStream::connect(admin)
                .await
                .expect("connect"),
        );
    }
    // Let the listener accept them all before the one over the cap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect");
    assert!(
        closed_within(&mut over, Duration::from_secs(5)).await,
        "a connection over the cap stays open"
    );
    // The idle ones are cut by the header timeout (10 s), not held for ever.
    let timeout = palisade_gateway::admin::ADMIN_HEADER_TIMEOUT;
    assert!(
        closed_within(&mut idle[0], timeout + Duration::from_secs(10)).await,
        "an idle admin connection outlived the header timeout"
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = metrics_with_hosts(admin, &[format!("127.0.0.1:{}", admin.port())]).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    palisade.shutdown().await;
}
