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
use std::sync::atomic::{AtomicBool, Ordering};

/// The CA certificates `[upstream] ca_file` holds (shared with `[state] redis_ca_file`).
pub use palisade_store::ca::CaCertificates;
/// The certificate `[upstream] client_cert` / `client_key` hold (as `[state]
/// redis_client_cert`).
pub use palisade_store::client_cert::{ClientCert, ClientCertFile};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::ring as ring_provider;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, RootCertStore, SignatureScheme};
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
    /// The same two without session resumption, for readiness probes: a resumed handshake
    /// carries no certificate, so it would not notice the upstream's changing.
    probe: [TlsConnector; 2],
    server_name: ServerName<'static>,
    /// The configured client certificate's subject and validity, if any.
    client: Option<String>,
    /// Set once the upstream has asked for a client certificate: a handshake failure or a
    /// connection closed without a word is then most likely the certificate's refusal.
    asked: Arc<AtomicBool>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Presents the configured client certificate (or none) when the upstream asks for one,
/// and notes that it asked.
#[derive(Debug)]
struct ClientCertResolver {
    certified: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCertResolver {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.certified.clone()
    }

    fn has_certs(&self) -> bool {
        self.certified.is_some()
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
        let certified = match client.map(ClientCert::for_rustls) {
            None => None,
            Some(Some((chain, key))) => Some(Arc::new(
                CertifiedKey::from_der(chain, key, &provider)
                    .map_err(|err| format!("upstream.client_cert: {err}"))?,
            )),
            Some(None) => return Err("upstream.client_cert: not a usable PEM pair".into()),
        };
        let asked = Arc::new(AtomicBool::new(false));
        let resolver = Arc::new(ClientCertResolver {
            certified,
            asked: Arc::clone(&asked),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("upstream TLS set-up: {err}"))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(resolver);
        // Each connection offers the one protocol its pool speaks: an upstream that picked
        // another would not be understood.
        let offering = |protocol: &[u8], resume: bool| {
            let mut config = config.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            if !resume {
                config.resumption = Resumption::disabled();
            }
            TlsConnector::from(Arc::new(config))
        };
        Ok(Self {
            connector: offering(b"http/1.1", true),
            connector_h2: offering(b"h2", true),
            probe: [offering(b"http/1.1", false), offering(b"h2", false)],
            server_name,
            client: client.map(|c| c.summary().to_owned()),
            asked,
        })
    }

    /// The configured client certificate's subject and validity.
    pub fn client_cert(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// A full handshake on `tcp` (no resumed session), offering `h2` or `http/1.1`, for a
    /// readiness probe: the certificate is verified every time.
    pub async fn probe(&self, tcp: TcpStream, h2: bool) -> Result<(), String> {
        let connector = &self.probe[usize::from(h2)];
        let name = self.server_name.clone();
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|err| self.explain(&err))?;
        if h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
            return Err(NOT_H2.to_owned());
        }
        Ok(())
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
            rustls::Error::AlertReceived(alert) if self.refuses_client_cert(*alert) => {
                self.client_cert_refused(*alert, tls)
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

/// An upstream that did not pick `h2` by ALPN.
const NOT_H2: &str = "TLS: the upstream did not agree to HTTP/2 (ALPN h2): it speaks only \
                      HTTP/1.1 over TLS; set [upstream] protocol = \"http1\"";

impl UpstreamTls {
    /// Whether `alert` is how this upstream refuses a client certificate: none was sent and
    /// one is required; it is not signed by a CA the upstream trusts, expired, revoked or
    /// not for client authentication; or the handshake failed after the upstream asked for
    /// a certificate (OpenSSL's answer to none under TLS 1.2).
    fn refuses_client_cert(&self, alert: rustls::AlertDescription) -> bool {
        use rustls::AlertDescription as A;
        match alert {
            A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied
            // OpenSSL's answer to a certificate whose signature does not verify against the
            // issuer it names.
            | A::DecryptError => true,
            A::HandshakeFailure => self.asked.load(Ordering::Relaxed),
            _ => false,
        }
    }

    /// The log's words for the upstream's refusal of the client certificate by `alert`.
    fn client_cert_refused(&self, alert: rustls::AlertDescription, tls: &rustls::Error) -> String {
        use rustls::AlertDescription as A;
        let Some(summary) = &self.client else {
            return format!(
                "TLS: the upstream requires a client certificate and none is set ({tls}): set \
                 [upstream] client_cert and client_key to a certificate signed by a CA the \
                 upstream trusts"
            );
        };
        let why = match alert {
            A::CertificateExpired => {
                "it, or a certificate of its chain, is expired for the upstream (renew it, and \
                 check the upstream's clock)"
            }
            A::CertificateRevoked => "the upstream holds it as revoked (issue a new one)",
            A::UnsupportedCertificate => {
                "it is not one for client authentication: it needs extendedKeyUsage \
                 clientAuth (or no extendedKeyUsage)"
            }
            A::AccessDenied => "the upstream's own access rules deny it",
            A::HandshakeFailure => {
                "the upstream ended the handshake after asking for it: is it signed by a CA \
                 the upstream trusts, valid, and for client authentication?"
            }
            _ => {
                "it is not signed by a CA the upstream trusts (its tls CA list), or its chain \
                 is incomplete (put the intermediate certificates after it in client_cert)"
            }
        };
        format!(
            "TLS: the upstream refused palisade's client certificate ({summary}): {why} ({tls})"
        )
    }

    /// Under TLS 1.3 a server judges the client's certificate after the client has finished
    /// its handshake, so a refusal arrives as an alert on the first read, inside the HTTP
    /// client's error. The operator's explanation when `err` (or a cause) is such an alert.
    pub fn client_cert_refusal(&self, err: &(dyn std::error::Error + 'static)) -> Option<String> {
        let mut cause = Some(err);
        while let Some(err) = cause {
            let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
                err.downcast_ref::<io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(tls @ rustls::Error::AlertReceived(alert)) = tls {
                if self.refuses_client_cert(*alert) {
                    return Some(self.client_cert_refused(*alert, tls));
                }
            }
            cause = err.source();
        }
        None
    }

    /// What to add to a failed exchange's log line when this upstream asks for client
    /// certificates: some servers refuse one by closing the connection without an alert.
    pub fn closed_hint(&self) -> Option<&'static str> {
        self.asked.load(Ordering::Relaxed).then_some(
            " (this upstream asks for client certificates: one that closes the connection \
             right after the TLS handshake may be refusing palisade's, see [upstream] \
             client_cert)",
        )
    }
}

/// The rustls error inside a failed handshake's I/O error, if that is what it is.
fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(client: Option<&ClientCert>) -> UpstreamTls {
        let url: UpstreamUrl = "https://127.0.0.1:8443".parse().expect("url");
        UpstreamTls::new(&url, None, client).expect("tls")
    }

    fn alert(alert: rustls::AlertDescription) -> io::Error {
        io::Error::other(rustls::Error::AlertReceived(alert))
    }

    /// A TLS 1.3 server's refusal of the client certificate reaches palisade inside the HTTP
    /// client's error after the handshake; a TLS 1.2 one during it. Both are named, and what
    /// to do depends on whether a certificate is set.
    #[test]
    fn a_refused_client_certificate_is_named_wherever_the_alert_arrives() {
        use rustls::AlertDescription;
        let none = tls(None);
        for refusal in [
            AlertDescription::CertificateRequired,
            AlertDescription::UnknownCA,
            AlertDescription::UnsupportedCertificate,
        ] {
            let io = alert(refusal);
            let message = none.client_cert_refusal(&io).expect("named");
            assert!(
                message.contains("requires a client certificate and none is set"),
                "{message}"
            );
            assert_eq!(none.explain(&io), message);
        }

        let made = rcgen::generate_simple_self_signed(vec!["palisade".into()]).expect("cert");
        let pair = ClientCert::from_pem(
            made.cert.pem().into_bytes(),
            made.signing_key.serialize_pem().into_bytes(),
        )
        .expect("a pair");
        let set = tls(Some(&pair));
        let message = set
            .client_cert_refusal(&alert(AlertDescription::UnsupportedCertificate))
            .expect("named");
        assert!(
            message.contains("refused palisade's client certificate (CN="),
            "{message}"
        );
        assert!(message.contains("extendedKeyUsage clientAuth"), "{message}");
        assert!(!message.contains("none is set"), "{message}");
        let message = set
            .client_cert_refusal(&alert(AlertDescription::CertificateExpired))
            .expect("named");
        assert!(message.contains("expired"), "{message}");

        // A bare handshake failure is the certificate's only once the upstream asked for one.
        let failure = alert(AlertDescription::HandshakeFailure);
        assert!(set.client_cert_refusal(&failure).is_none());
        assert!(set.closed_hint().is_none());
        set.asked.store(true, Ordering::Relaxed);
        assert!(set.client_cert_refusal(&failure).is_some());
        assert!(set.closed_hint().is_some());

        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(set.client_cert_refusal(&plain).is_none());
    }
}
