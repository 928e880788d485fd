//! `https://` upstreams end to end: a real TLS application on loopback with a test CA's
//! certificate, a real palisade in front of it, real HTTP clients. The certificate must
//! chain to `[upstream] ca_file` (or a public CA) and name the URL's host; anything else is
//! a 502 and the application never sees the request.

mod common;
#[path = "../../palisade-store/tests/support/own_redis.rs"]
mod own_redis;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use http::{Request, StatusCode};
use own_redis::TestPki;
use palisade_gateway::config::UpstreamUrl;
use palisade_gateway::upstream_tls::{CaCertificates, UpstreamTls};

/// The rustls server configuration for `cert` and `key` (PEM files), speaking HTTP/1.1.
fn server_tls(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    rustls_server(cert, key, &[b"http/1.1"])
}

/// A TLS upstream presenting `pki`'s server certificate.
async fn tls_upstream(pki: &TestPki) -> Upstream {
    Upstream::start_tls(server_tls(&pki.cert_file, &pki.key_file)).await
}

/// A self-signed app certificate and its key, written as `app.pem` and `app.key` in a
/// temporary directory (removed when the returned handle drops).
fn self_signed_app(cert: &str, key: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_file, key_file) = (dir.path().join("app.pem"), dir.path().join("app.key"));
    std::fs::write(&cert_file, cert).expect("write cert");
    std::fs::write(&key_file, key).expect("write key");
    (dir, cert_file, key_file)
}

/// The outcome of one TLS handshake with the server at `addr`, reached as `url` and
/// trusting `ca_file`: what the log is told when it fails.
async fn handshake(url: &str, addr: std::net::SocketAddr, ca_file: &Path) -> Result<(), String> {
    let url: UpstreamUrl = url.parse().expect("url");
    let ca = CaCertificates::from_file(ca_file).expect("a usable CA file");
    let tls = UpstreamTls::new(&url, Some(&ca), None).expect("tls");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tls.handshake(tcp).await.map(drop)
}

/// `[upstream] ca_file` naming `ca` (and no rate limits in the way).
fn trusting(ca: &Path) -> String {
    format!(
        "rate_limit = []\n[upstream]\nca_file = \"{}\"\n",
        ca.display()
    )
}

#[tokio::test]
async fn requests_and_streamed_bodies_reach_an_https_upstream_intact() {
    // Certificate for 127.0.0.1 (an IP address SAN): the URL's host is an IP.
    let pki = TestPki::loopback();
    let upstream = tls_upstream(&pki).await;
    let palisade = start_palisade(&upstream.https_url(), &trusting(&pki.ca_file)).await;
    let base = format!("http://{}", palisade.proxy_addr);

    let request = Request::post(format!("{base}/submit?q=1"))
        .header("host", "shop.example")
        .body(full(r#"{"name":"ünïcode"}"#))
        .expect("request");
    let reply = send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let echo = reply.json();
    assert_eq!(echo["uri"], "/submit?q=1");
    assert_eq!(echo["body"], r#"{"name":"ünïcode"}"#);
    assert_eq!(echo["headers"]["host"], "shop.example");

    streams_3mb_both_ways(&base).await;
    assert_eq!(upstream.hits(), 3);
    palisade.shutdown().await;
}

/// An internal app with a self-signed certificate: the certificate itself is `ca_file`.
/// Connecting is `connect_timeout`'s: an upstream slow to complete its TLS handshake does
/// not spend `response_timeout`, which starts once the request is being written.
#[tokio::test]
async fn a_slow_upstream_handshake_does_not_spend_the_response_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::loopback();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(&pki.cert_file, &pki.key_file));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Longer than the response timeout, well within the connect timeout.
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let config = format!(
        "{}response_timeout = \"1s\"\nconnect_timeout = \"10s\"\n",
        trusting(&pki.ca_file)
    );
    let palisade = start_palisade(&format!("https://{addr}"), &config).await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "ok");
    palisade.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn a_self_signed_upstream_certificate_given_as_ca_file_is_trusted() {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let (_dir, cert, key) = self_signed_app(&made.cert.pem(), &made.signing_key.serialize_pem());
    let upstream = Upstream::start_tls(server_tls(&cert, &key)).await;
    let palisade = start_palisade(&upstream.https_url(), &trusting(&cert)).await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn an_upstream_certificate_from_another_ca_gets_502_and_no_request_reaches_the_app() {
    let pki = TestPki::loopback();
    let stranger = TestPki::loopback();
    let upstream = tls_upstream(&pki).await;
    let palisade = start_palisade(&upstream.https_url(), &trusting(&stranger.ca_file)).await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(upstream.hits(), 0);
    // Counted as a TLS failure, not as an upstream that refused the connection.
    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
    assert!(
        metrics
            .body
            .contains("palisade_upstream_errors_total{cause=\"upstream_tls\"} 1"),
        "{}",
        metrics.body
    );
    // Unready, and `/readyz` says why (its TLS probe verifies as requests do).
    let ready = get(&format!("http://{}/readyz", palisade.admin_addr), &[]).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.json()["upstream"], "unreachable", "{}", ready.body);
    let detail = ready.json()["upstream_detail"].to_string();
    assert!(detail.contains("not trusted"), "{detail}");
    palisade.shutdown().await;

    // Trusting the right CA, the same upstream is ready.
    let palisade = start_palisade(&upstream.https_url(), &trusting(&pki.ca_file)).await;
    let ready = get(&format!("http://{}/readyz", palisade.admin_addr), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert!(
        ready.json().get("upstream_detail").is_none(),
        "{}",
        ready.body
    );
    palisade.shutdown().await;

    // Without ca_file only the public web roots are trusted: a private CA is not.
    let palisade = start_palisade(&upstream.https_url(), "rate_limit = []\n").await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

#[tokio::test]
async fn an_upstream_certificate_for_another_host_name_gets_502() {
    let pki = TestPki::new(&["app.example.com"]);
    let upstream = tls_upstream(&pki).await;
    let palisade = start_palisade(&upstream.https_url(), &trusting(&pki.ca_file)).await;
    let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        !reply.body.contains("TLS"),
        "no detail to the client: {}",
        reply.body
    );
    assert_eq!(upstream.hits(), 0);
    palisade.shutdown().await;
}

/// What the log is told when a handshake fails: TLS, and why, in words to act on.
#[tokio::test]
async fn a_failed_upstream_handshake_says_tls_and_why() {
    let pki = TestPki::loopback();
    let upstream = tls_upstream(&pki).await;
    let url = upstream.https_url();
    assert_eq!(handshake(&url, upstream.addr, &pki.ca_file).await, Ok(()));

    let stranger = TestPki::loopback();
    let untrusted = handshake(&url, upstream.addr, &stranger.ca_file)
        .await
        .expect_err("other CA");
    assert!(
        untrusted.starts_with("TLS: the upstream's certificate is not trusted"),
        "{untrusted}"
    );
    let named = format!("https://localhost.localdomain:{}", upstream.addr.port());
    let wrong_name = handshake(&named, upstream.addr, &pki.ca_file)
        .await
        .expect_err("other name");
    assert!(
        wrong_name.starts_with("TLS: the upstream's certificate is for another host name"),
        "{wrong_name}"
    );
    assert!(wrong_name.contains("localhost.localdomain"), "{wrong_name}");

    let plain = Upstream::start().await;
    let not_tls = handshake(&format!("https://{}", plain.addr), plain.addr, &pki.ca_file)
        .await
        .expect_err("plain HTTP");
    assert!(not_tls.starts_with("TLS handshake failed"), "{not_tls}");
    assert!(
        not_tls.contains("does not speak TLS on that port"),
        "{not_tls}"
    );
}

/// `openssl req -x509` makes a CA:TRUE certificate unless told otherwise; TLS refuses it as
/// a server's own certificate, and the log says what to make instead.
#[tokio::test]
async fn a_self_signed_ca_certificate_as_the_upstreams_own_is_explained() {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params
        .self_signed(&key)
        .expect("self-signed CA certificate");
    let (_dir, cert_file, key_file) = self_signed_app(&cert.pem(), &key.serialize_pem());
    let upstream = Upstream::start_tls(server_tls(&cert_file, &key_file)).await;

    let refused = handshake(&upstream.https_url(), upstream.addr, &cert_file)
        .await
        .expect_err("CA as server");
    assert!(refused.contains("CA:FALSE"), "{refused}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn websocket_upgrades_tunnel_through_a_tls_upstream() {
    let pki = TestPki::loopback();
    let upstream = tls_upstream(&pki).await;
    let palisade = start_palisade(&upstream.https_url(), &trusting(&pki.ca_file)).await;
    websocket_echo_round_trip(palisade.proxy_addr).await;
    palisade.shutdown().await;
}

/// An upstream that requires client certificates (mutual TLS, so that nothing but palisade
/// reaches the application) serves palisade when `[upstream] client_cert` and `client_key`
/// hold a certificate its CA signed. Without one, or with one from another CA, the client
/// gets a 502, the application sees nothing, and the failure is the upstream's TLS
/// (`upstream_tls`), not an unexplained broken exchange.
#[tokio::test]
async fn an_upstream_requiring_client_certificates_takes_client_cert() {
    let pki = TestPki::loopback();
    let server = rustls_server_checking_clients(
        &pki.cert_file,
        &pki.key_file,
        Some(&pki.ca_file),
        &[b"http/1.1"],
    );
    let upstream = Upstream::start_tls(server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stranger = TestPki::loopback();
    for (case, client) in [
        ("trusted", Some(&pki)),
        ("none", None),
        ("another CA's", Some(&stranger)),
    ] {
        let log = dir.path().join(format!("{}.log", case.replace(' ', "-")));
        let mut toml = format!(
            "{}[log]\nsecurity = \"{}\"\n",
            trusting(&pki.ca_file),
            log.display()
        );
        if let Some(client) = client {
            let pair = format!(
                "client_cert = \"{}\"\nclient_key = \"{}\"\n",
                client.client_cert_file.display(),
                client.client_key_file.display()
            );
            toml = toml.replace("[log]\n", &format!("{pair}[log]\n"));
        }
        let palisade = start_palisade_at(&upstream.https_url(), config_file(&toml)).await;
        let reply = get(&format!("http://{}/", palisade.proxy_addr), &[]).await;
        if case == "trusted" {
            assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
        } else {
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{case}");
            one_request_failure(&log, "upstream", "upstream_tls", case).await;
        }
        palisade.shutdown().await;
    }
    assert_eq!(
        upstream.hits(),
        1,
        "only the trusted certificate got through"
    );
}
