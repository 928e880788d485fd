//! TLS termination with rustls (ring provider): the certificate and key from
//! `[server.tls]`, re-read when either file changes, without dropping connections.
//!
//! A certificate that fails to load on reload is logged and the previous one stays in use.
//! The private key is held only inside rustls' signing key, never logged.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::ring as ring_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::file::{MAX_TEXT_FILE, read_bounded};
use crate::config::server::TlsConfig;
use crate::events::{Event, EventBus};

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load TLS {what} from {path}: {detail}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    detail: String,
}

impl TlsError {
    /// Whether the private key (rather than the certificate) is at fault.
    pub fn is_about_key(&self) -> bool {
        self.what == "private key"
    }
}

/// Loads the certificate and key of `config` as serve would, and drops them: what
/// `palisade check` and a reload run so a pair serve cannot use is refused before start.
pub fn check(config: &TlsConfig) -> Result<(), TlsError> {
    load(config).map(drop)
}

/// Hands rustls the certificate currently in force.
pub struct CertResolver(ArcSwap<CertifiedKey>);

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver(..)")
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Builds the acceptor for `config` and starts watching its files.
pub fn acceptor(config: &TlsConfig, events: EventBus) -> Result<TlsAcceptor, TlsError> {
    let key = load(config)?;
    let resolver = Arc::new(CertResolver(ArcSwap::from_pointee(key)));
    let provider = Arc::new(ring_provider::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError {
            what: "protocol versions",
            path: String::new(),
            detail: err.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio::spawn(watch(config.clone(), resolver, events));
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Reads the chain and key and pairs them into a signing key.
fn load(config: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let cert_error = |detail: String| TlsError {
        what: "certificate",
        path: config.cert.display().to_string(),
        detail,
    };
    // Read with a bound, as every file a configuration names: a path naming something
    // endless by mistake (`/dev/zero`) must be an error, not a read until memory runs out.
    let cert_pem =
        read_bounded(&config.cert, MAX_TEXT_FILE).map_err(|e| cert_error(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    let key_error = |detail: String| TlsError {
        what: "private key",
        path: config.key.display().to_string(),
        detail,
    };
    let key_pem = read_bounded(&config.key, MAX_TEXT_FILE)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| key_error(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        key_error(match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in the file (expected \
                 a PEM block such as -----BEGIN PRIVATE KEY-----)"
                .into(),
            other => other.to_string(),
        })
    })?;
    let signing_key =
        ring_provider::sign::any_supported_type(&key).map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        key_error(match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "does not match the certificate: its public key is not the one in the first \
                 certificate of the chain (the leaf)"
                    .into()
            }
            other => format!("does not match the certificate: {other}"),
        })
    })?;
    Ok(certified)
}

/// Polls the files' modification times and swaps in a new certificate when they change.
async fn watch(config: TlsConfig, resolver: Arc<CertResolver>, events: EventBus) {
    let mut seen = stamps(&config);
    let mut tick = tokio::time::interval(config.reload_interval.0);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = stamps(&config);
        if now == seen {
            continue;
        }
        seen = now;
        match load(&config) {
            Ok(key) => {
                resolver.0.store(Arc::new(key));
                info!(tls.cert = %config.cert.display(), "TLS certificate reloaded");
                events.publish(Event::TlsReloaded {
                    ok: true,
                    detail: String::new(),
                });
            }
            Err(err) => {
                warn!(error = %err, "TLS certificate reload failed; the previous one stays");
                events.publish(Event::TlsReloaded {
                    ok: false,
                    detail: err.to_string(),
                });
            }
        }
    }
}

fn stamps(config: &TlsConfig) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&config.cert), modified(&config.key))
}
