//! TLS termination: h2 negotiated by ALPN, HSTS and `Secure` cookies on TLS, and the
//! certificate reloaded when its files change.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};

/// Writes a fresh self-signed certificate for `localhost`; returns its DER.
fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).expect("key");
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).expect("cert");
    generated.cert.der().clone()
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Connects with TLS offering h2 and trusting only `trusted`; returns the stream and the
/// certificate the server presented, or `None` when verification failed.
async fn connect(
    addr: std::net::SocketAddr,
    trusted: &CertificateDer<'static>,
) -> Option<(Tls, CertificateDer<'static>)> {
    connect_offering(addr, trusted, &[b"h2", b"http/1.1"]).await
}

/// [`connect`] offering the ALPN protocols `alpn`.
async fn connect_offering(
    addr: std::net::SocketAddr,
    trusted: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Option<(Tls, CertificateDer<'static>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.ok()?;
    let presented = tls.get_ref().1.peer_certificates()?[0].clone();
    Some((tls, presented.into_owned()))
}

#[tokio::test]
async fn tls_serves_h2_with_hsts_and_secure_cookies_and_reloads_the_certificate() {
    let upstream = Upstream::start().await;
    let dir = config_file("").parent().expect("dir").to_path_buf();
    let first = write_certificate(&dir);
    let toml = format!(
        "rate_limit = []\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nreload_interval = \"100ms\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let palisade = start_palisade(&upstream.url(), &toml).await;

    let (tls, presented) = connect(palisade.proxy_addr, &first)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(presented, first);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = Request::get("https://localhost/cookie")
        .body(full(""))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let headers = response.headers().clone();
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .contains("max-age=")
    );
    let cookie = headers["set-cookie"].to_str().expect("ascii");
    assert!(cookie.contains("Secure"), "{cookie}");
    let _ = response.into_body().collect().await;

    let second = write_certificate(&dir);
    let mut reloaded = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Until the reload, the old certificate fails verification against the new one.
        let presented = connect(palisade.proxy_addr, &second)
            .await
            .map(|(_, cert)| cert);
        if presented.as_ref() == Some(&second) {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the new certificate was never presented");
    palisade.shutdown().await;
}

/// Regression (red team): a client that agreed on `h2` by ALPN and then spoke HTTP/1.1 was
/// served by hyper's HTTP/1.1 without the framing watch (no smuggling checks, no header
/// size limit below hyper's buffer, the HTTP/2 idle rule for slow heads). Each protocol is
/// now held to what ALPN agreed: HTTP/1.1 after `h2` is closed unanswered, and the HTTP/2
/// preface after `http/1.1` gets 400.
#[tokio::test]
async fn a_client_must_speak_the_protocol_alpn_agreed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start().await;
    let dir = config_file("").parent().expect("dir").to_path_buf();
    let trusted = write_certificate(&dir);
    let toml = format!(
        "rate_limit = []\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let palisade = start_palisade(&upstream.url(), &toml).await;
    let exchange = |alpn: &'static [u8], bytes: &'static [u8]| {
        let trusted = trusted.clone();
        async move {
            let (mut tls, _) = connect_offering(palisade.proxy_addr, &trusted, &[alpn])
                .await
                .expect("handshake");
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
            tls.write_all(bytes).await.expect("write");
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).to_string()
        }
    };
    let get = b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = exchange(b"h2", get).await;
    assert!(answer.is_empty(), "HTTP/1.1 served after ALPN h2: {answer}");
    assert_eq!(upstream.hits(), 0);
    let answer = exchange(b"http/1.1", get).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = exchange(b"http/1.1", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}
