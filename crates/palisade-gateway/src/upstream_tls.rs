//! TLS to an `https://` upstream: rustls (ring provider), HTTP/1.1 or HTTP/2 by ALPN, the
//! server name of the URL, and certificate verification that cannot be switched off.
//!
//! The upstream's certificate must chain to `[upstream] ca_file`'s CAs when that is set (a
//! private CA, or an internal app's self-signed certificate), and to the public web roots
//! otherwise, and must name the URL's host (a DNS name, or an IP address in its subject
//! alternative names). The client configuration is built once per configuration, not per
//! connection.

use std::io;
use std::sync::Arc;

/// The CA certificates `[upstream] ca_file` holds (shared with `[state] redis_ca_file`).
pub use palisade_store::ca::CaCertificates;
/// The certificate `[upstream] client_cert` / `client_key` hold (as `[state]
/// redis_client_cert`).
pub use palisade_store::client_cert::{ClientCert, ClientCertFile};
use rustls::crypto::ring as ring_provider;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamUrl;

/// What every TLS connection to the upstream is made with.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Offers only `http/1.1` by ALPN.
    connector: TlsConnector,
    /// Offers only `h2` by ALPN (`[upstream] protocol = "http2"`).
    connector_h2: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// TLS for `url` (its host is the server name), trusting `ca` only when given, the
    /// public web roots otherwise, presenting `client` to an upstream that asks for a
    /// certificate.
    pub fn new(
        url: &UpstreamUrl,
        ca: Option<&CaCertificates>,
        client: Option<&ClientCert>,
    ) -> Result<Self, String> {
        let server_name = ServerName::try_from(url.host().to_owned()).map_err(|_| {
            format!(
                "upstream host {:?} is not a valid TLS server name",
                url.host()
            )
        })?;
        let roots = match ca {
            Some(ca) => ca.root_store(),
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let provider = Arc::new(ring_provider::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("upstream TLS set-up: {err}"))?
            .with_root_certificates(roots);
        let config = match client.map(ClientCert::for_rustls) {
            None => builder.with_no_client_auth(),
            Some(Some((chain, key))) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("upstream.client_cert: {err}"))?,
            Some(None) => return Err("upstream.client_cert: not a usable PEM pair".into()),
        };
        // Each connection offers the one protocol its pool speaks: an upstream that picked
        // another would not be understood.
        let offering = |protocol: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            TlsConnector::from(Arc::new(config))
        };
        Ok(Self {
            connector: offering(b"http/1.1"),
            connector_h2: offering(b"h2"),
            server_name,
        })
    }

    /// Runs the TLS handshake on `tcp` for HTTP/1.1. The error says, for the log, why it
    /// failed.
    pub async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let name = self.server_name.clone();
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|err| self.explain(&err))
    }

    /// Runs the TLS handshake on `tcp` for HTTP/2: the upstream must choose `h2` by ALPN,
    /// since HTTP/2 bytes sent to a server that expects HTTP/1.1 would be read as garbage.
    pub async fn handshake_h2(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let name = self.server_name.clone();
        const NOT_H2: &str = "TLS: the upstream did not agree to HTTP/2 (ALPN h2): it speaks \
                              only HTTP/1.1 over TLS; set [upstream] protocol = \"http1\"";
        let stream =
            self.connector_h2
                .connect(name, tcp)
                .await
                .map_err(|err| match tls_error(&err) {
                    // Refusing every protocol offered is how a server that has ALPN says it.
                    Some(rustls::Error::AlertReceived(
                        rustls::AlertDescription::NoApplicationProtocol,
                    )) => NOT_H2.to_owned(),
                    _ => self.explain(&err),
                })?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
            return Err(NOT_H2.to_owned());
        }
        Ok(stream)
    }

    /// Why a handshake failed, in words an operator can act on.
    fn explain(&self, err: &io::Error) -> String {
        let host = self.server_name.to_str();
        let Some(tls) = tls_error(err) else {
            return format!(
                "TLS handshake failed: {err} (does the upstream speak TLS on that port?)"
            );
        };
        match tls {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!(
                "TLS: the upstream's certificate is not trusted: {tls} (it must be signed by \
                 [upstream] ca_file's CA, or by a public CA when ca_file is not set)"
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "TLS: the upstream's certificate is for another host name: {tls} (it must \
                 name {host:?}, the host of the upstream URL)"
            ),
            // `openssl req -x509` makes CA:TRUE certificates unless told otherwise.
            rustls::Error::InvalidCertificate(CertificateError::Other(other))
                if format!("{other:?}").contains("CaUsedAsEndEntity") =>
            {
                "TLS: the upstream's certificate is a CA certificate (CA:TRUE) used as its own \
                 server certificate, which TLS refuses: make it with basicConstraints \
                 CA:FALSE, or sign a server certificate with that CA (see [upstream] in \
                 docs/config.md)"
                    .to_owned()
            }
            rustls::Error::InvalidCertificate(_) => {
                format!("TLS: the upstream's certificate was refused: {tls}")
            }
            rustls::Error::AlertReceived(alert) if refuses_client_cert(*alert) => {
                client_cert_refused(tls)
            }
            rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol) => {
                "TLS: the upstream refused HTTP/1.1 by ALPN (http/1.1): if it speaks only \
                 HTTP/2, set [upstream] protocol = \"http2\""
                    .to_owned()
            }
            rustls::Error::InvalidMessage(_) => format!(
                "TLS handshake failed: the upstream answered with something that is not TLS \
                 ({tls}): it does not speak TLS on that port (an http:// upstream?)"
            ),
            _ => format!("TLS handshake failed: {tls}"),
        }
    }
}

/// Whether a TLS alert is how servers refuse a client certificate: none was sent and one
/// is required, or it is not signed by a CA they trust, expired or revoked.
fn refuses_client_cert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied
            // OpenSSL's answer to a certificate whose signature does not verify against
            // the issuer it names.
            | A::DecryptError
    )
}

fn client_cert_refused(tls: &rustls::Error) -> String {
    format!(
        "TLS: the upstream refused palisade's client certificate ({tls}): it requires one \
         signed by a CA it trusts, in its dates: set [upstream] client_cert and client_key"
    )
}

/// Under TLS 1.3 a server judges the client's certificate after the client has finished
/// its handshake, so a refusal arrives as an alert on the first read, inside the HTTP
/// client's error. The operator's explanation when `err` (or a cause) is such an alert.
pub fn client_cert_refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls @ rustls::Error::AlertReceived(alert)) = tls {
            if refuses_client_cert(*alert) {
                return Some(client_cert_refused(tls));
            }
        }
        cause = err.source();
    }
    None
}

/// The rustls error inside a failed handshake's I/O error, if that is what it is.
fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.3 server's refusal of the client certificate reaches palisade inside the HTTP
    /// client's error after the handshake; a TLS 1.2 one during it. Both are named.
    #[test]
    fn a_refused_client_certificate_is_named_wherever_the_alert_arrives() {
        use rustls::AlertDescription;
        for alert in [
            AlertDescription::CertificateRequired,
            AlertDescription::UnknownCA,
            AlertDescription::CertificateExpired,
        ] {
            let io = io::Error::other(rustls::Error::AlertReceived(alert));
            let message = client_cert_refusal(&io).expect("named");
            assert!(
                message.contains("refused palisade's client certificate"),
                "{message}"
            );
            assert!(message.contains("client_cert and client_key"), "{message}");

            let url: UpstreamUrl = "https://127.0.0.1:8443".parse().expect("url");
            let tls = UpstreamTls::new(&url, None, None).expect("tls");
            assert_eq!(tls.explain(&io), message);
        }
        let other = io::Error::other(rustls::Error::AlertReceived(
            AlertDescription::HandshakeFailure,
        ));
        assert!(client_cert_refusal(&other).is_none());
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(client_cert_refusal(&plain).is_none());
    }
}
