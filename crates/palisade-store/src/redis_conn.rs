//! One multiplexed Redis connection shared by every request of a process, made on first
//! use and made again after it breaks.
//!
//! Commands from all requests are pipelined on the one connection, so many concurrent
//! requests cost one socket. Connecting is bounded by `connect_timeout` and each command by
//! `command_timeout`. After an I/O error the broken connection is dropped and the next
//! caller connects again (one caller at a time, so an outage does not cause a stampede).
//!
//! `rediss://` URLs speak TLS (rustls) and always verify the server's certificate: against
//! the public web roots, or against only the operator's CA when one is given ([`RedisCa`]).
//! The redis crate's `#insecure` fragment, which switches verification off, is refused.
//!
//! Never logs or prints the URL, which may carry a password.

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ClientTlsConfig, RedisError, TlsCertificates};

pub use crate::client_cert::{ClientCert, ClientCertFile};

// TODO: the connection is driven by a task on the runtime that connected first, so each
// decision of every other gateway worker crosses threads twice; one connection per worker
// thread measured no faster on 2 cores (half the pipelining), see docs/gateway-benchmark.md.
/// A lazily made, self-repairing multiplexed connection.
pub struct SharedConnection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    current: Mutex<Option<MultiplexedConnection>>,
    /// Held while connecting, so only one caller connects at a time.
    connecting: tokio::sync::Mutex<()>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The URL could not be read. The URL itself is not repeated, as it may hold a password.
    #[error(
        "invalid redis_url: expected redis://[:password@]host:port[/db] or rediss://... for TLS"
    )]
    InvalidUrl,
    /// The URL asks for TLS without certificate verification (`#insecure`).
    #[error("{UNVERIFIED_TLS}")]
    UnverifiedTls,
    /// A CA was given beside a plain-text `redis://` URL: TLS was meant and would not be in
    /// force, so no connection is made in the clear.
    #[error(
        "redis_ca_file or redis_client_cert is set but the Redis URL is redis:// (plain text): \
         write rediss:// for TLS"
    )]
    PlainTextWithCa,
    /// The CA certificates given for `rediss://` could not be used.
    #[error("redis_ca_file: {0}")]
    InvalidCa(String),
    /// Connecting (TCP, and the first exchange on the new connection) took longer than
    /// `connect_timeout`.
    #[error("redis did not accept and answer a new connection within {0:?}")]
    ConnectTimeout(Duration),
    /// A `rediss://` connection got no TLS answer within `connect_timeout`: a slow server,
    /// or (most often) one that does not speak TLS on that port, as a plain-text Redis never
    /// answers a TLS handshake.
    #[error(
        "redis did not complete the TLS handshake within {0:?}: is the server on that port a \
         plain-text Redis? (then write redis://, or enable TLS on the server)"
    )]
    TlsHandshakeTimeout(Duration),
    /// The TLS handshake with Redis failed: most often the server's certificate is not
    /// signed by a trusted CA or does not name the host of the URL.
    #[error("redis connection failed: {0}")]
    Tls(String),
    /// Redis refused or broke the connection.
    #[error("redis connection failed: {0}")]
    Redis(RedisError),
}

/// Why a URL asking to skip certificate checks is refused.
pub const UNVERIFIED_TLS: &str = "rediss://...#insecure (TLS without certificate \
    verification) is refused: palisade always verifies the Redis server's certificate; to \
    trust a private CA, set [state] redis_ca_file";

impl ConnectionError {
    /// Why connecting gave up after `after`: over TLS, the likeliest cause is a server that
    /// does not speak it.
    pub fn timed_out(tls: bool, after: Duration) -> Self {
        if tls {
            Self::TlsHandshakeTimeout(after)
        } else {
            Self::ConnectTimeout(after)
        }
    }
}

impl From<RedisError> for ConnectionError {
    /// Names a failed TLS handshake as such, so a wrong CA or host name does not read as an
    /// ordinary network error.
    fn from(err: RedisError) -> Self {
        let Some(tls) = tls_error(&err) else {
            return Self::Redis(err);
        };
        let message = match tls {
            rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::CertificateUnknown
                | rustls::AlertDescription::AccessDenied
                // OpenSSL's answer to a certificate whose issuer's name it knows but whose
                // signature does not verify against that issuer's key.
                | rustls::AlertDescription::DecryptError,
            ) => format!(
                "TLS: Redis refused palisade's client certificate ({tls}): set [state] \
                 redis_client_cert and redis_client_key to a certificate its tls-ca-cert-file \
                 trusts"
            ),
            rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateExpired
                | rustls::AlertDescription::CertificateRevoked,
            ) => format!(
                "TLS: Redis refused palisade's client certificate ({tls}): the certificate in \
                 [state] redis_client_cert is expired, not yet valid or revoked; renew it"
            ),
            rustls::Error::InvalidCertificate(_) => format!(
                "TLS verification failed: {tls} (the server's certificate must be signed by \
                 redis_ca_file's CA, or by a public CA when that is not set, and name the \
                 host of redis_url)"
            ),
            _ => format!("TLS handshake failed: {tls} (does the server speak TLS on that port?)"),
        };
        Self::Tls(message)
    }
}

/// The rustls error behind `err`, if the TLS handshake is what failed. The redis crate
/// keeps the cause behind an `Arc`, and the cause is the rustls error itself or the
/// `io::Error` tokio-rustls wraps it in.
fn tls_error(err: &RedisError) -> Option<&rustls::Error> {
    let mut source: &(dyn Error + 'static) = Error::source(err)?;
    if let Some(shared) = source.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
        source = shared.as_ref();
    }
    if let Some(tls) = source.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io = source.downcast_ref::<std::io::Error>()?;
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Checks what palisade accepts of a Redis URL without parsing it: the scheme, and no
/// fragment (`#insecure` would switch TLS verification off). The message never repeats the
/// URL, which may carry a password.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("expected a URL starting with redis:// (or rediss:// for TLS)");
    }
    if url.ends_with("#insecure") {
        return Err(UNVERIFIED_TLS);
    }
    if url.contains('#') {
        return Err("a #fragment is not allowed (a # in a password is written %23)");
    }
    Ok(())
}

/// Whether `url` asks for TLS.
pub fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// The certificates (PEM) that `rediss://` connections trust instead of the public web
/// roots: the operator's private CA.
pub type RedisCa = crate::ca::CaCertificates;

/// What `rediss://` connections trust and present: the operator's CA (else the public web
/// roots) and a client certificate (else none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The only CA(s) the server's certificate may be signed by.
    pub ca: Option<RedisCa>,
    /// The certificate palisade presents, for servers that require one.
    pub client_cert: Option<ClientCert>,
}

impl RedisTls {
    /// Trusting only `ca`, presenting no certificate.
    pub fn with_ca(ca: RedisCa) -> Self {
        Self {
            ca: Some(ca),
            client_cert: None,
        }
    }

    /// Neither a CA nor a client certificate: TLS, if the URL asks for it, with the public
    /// web roots.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client_cert.is_none()
    }
}

/// A client for `url`. With a CA in `tls`, a `rediss://` URL trusts only that CA; without
/// it, the public web roots; with a client certificate, it presents it. A plain `redis://`
/// URL with either is refused: they say TLS was meant.
pub fn client(url: &str, tls: &RedisTls) -> Result<redis::Client, ConnectionError> {
    match check_url(url) {
        Err(UNVERIFIED_TLS) => return Err(ConnectionError::UnverifiedTls),
        Err(_) => return Err(ConnectionError::InvalidUrl),
        Ok(()) => {}
    }
    if tls.is_empty() {
        return redis::Client::open(url).map_err(|_| ConnectionError::InvalidUrl);
    }
    if !is_tls(url) {
        return Err(ConnectionError::PlainTextWithCa);
    }
    let certificates = TlsCertificates {
        client_tls: tls.client_cert.as_ref().map(|id| ClientTlsConfig {
            client_cert: id.cert_pem().to_vec(),
            client_key: id.key_pem().to_vec(),
        }),
        root_cert: tls.ca.as_ref().map(|ca| ca.pem().to_vec()),
    };
    redis::Client::build_with_tls(url, certificates).map_err(|err| match err.kind() {
        redis::ErrorKind::InvalidClientConfig => ConnectionError::InvalidUrl,
        _ => ConnectionError::InvalidCa(err.to_string()),
    })
}

impl SharedConnection {
    /// Prepares a connection to `url` (`rediss://` with `tls`'s CA and client certificate,
    /// or the public web roots and none); nothing is connected until the first
    /// [`Self::get`].
    pub fn new(
        url: &str,
        tls: &RedisTls,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, ConnectionError> {
        let client = client(url, tls)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout));
        Ok(Self {
            client,
            config,
            connect_timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection, made now if there is none.
    pub async fn get(&self) -> Result<MultiplexedConnection, ConnectionError> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _only_one = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config);
        let connection = match tokio::time::timeout(self.connect_timeout, connect).await {
            // The redis crate's own connect timeout fires first, with a bare "timed out".
            Err(_) => return Err(self.timed_out()),
            Ok(Err(err)) if err.is_timeout() => return Err(self.timed_out()),
            Ok(made) => made?,
        };
        *self.slot() = Some(connection.clone());
        Ok(connection)
    }

    fn timed_out(&self) -> ConnectionError {
        let tls = matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        );
        ConnectionError::timed_out(tls, self.connect_timeout)
    }

    /// A new connection in place of one Redis closed while it sat idle (its `timeout`
    /// setting, a restart), which shows only when the connection is next used.
    pub async fn replace_dropped(
        &self,
        dropped: &RedisError,
    ) -> Result<MultiplexedConnection, ConnectionError> {
        self.report(dropped);
        self.get().await
    }

    /// Tells the connection a command failed; a broken connection is dropped so the next
    /// [`Self::get`] connects again.
    pub fn report(&self, error: &RedisError) {
        let broken = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.is_timeout();
        if broken {
            *self.slot() = None;
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConnection")
            .field("url", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("connected", &self.current().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_both_schemes_and_no_fragment() {
        assert_eq!(check_url("redis://127.0.0.1:6379/2"), Ok(()));
        assert_eq!(check_url("rediss://:pw@cache.example:6380"), Ok(()));
        assert_eq!(check_url("rediss://db:6380/#insecure"), Err(UNVERIFIED_TLS));
        assert!(check_url("rediss://db:6380/#other").is_err());
        assert!(check_url("http://db:6379").is_err());
        assert!(is_tls("rediss://db") && !is_tls("redis://db"));
    }

    /// Regression: `client` used to drop the CA for a plain `redis://` URL and connect in
    /// the clear; the session store reached it with `PALISADE_REDIS_URL=redis://...`.
    #[test]
    fn a_ca_beside_a_plain_text_url_gets_no_client() {
        let made = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).expect("cert");
        let ca = RedisCa::from_pem(made.cert.pem().into_bytes()).expect("a CA");
        let tls = RedisTls::with_ca(ca);
        let err = client("redis://:hunter2@db:6379", &tls).expect_err("plain text");
        assert!(matches!(err, ConnectionError::PlainTextWithCa), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        assert!(client("rediss://:hunter2@db:6380", &tls).is_ok());
        assert!(client("redis://db:6379", &RedisTls::default()).is_ok());
    }

    /// Regression: Redis refusing an expired client certificate (`certificate_expired`)
    /// read "TLS handshake failed ... (does the server speak TLS on that port?)", a hint
    /// that sends the operator to the port instead of to the certificate.
    #[test]
    fn an_expired_or_revoked_client_certificate_is_named_as_such() {
        use rustls::AlertDescription;
        let refused = |alert| {
            let io = std::io::Error::other(rustls::Error::AlertReceived(alert));
            ConnectionError::from(RedisError::from(io)).to_string()
        };
        let message = refused(AlertDescription::UnknownCA);
        assert!(
            message.contains("refused palisade's client certificate"),
            "{message}"
        );
        for alert in [
            AlertDescription::CertificateExpired,
            AlertDescription::CertificateRevoked,
        ] {
            let message = refused(alert);
            assert!(
                message.contains("refused palisade's client certificate")
                    && message.contains("expired, not yet valid or revoked")
                    && !message.contains("speak TLS"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_client_certificate_beside_a_plain_text_url_gets_no_client() {
        let made = rcgen::generate_simple_self_signed(vec!["palisade".into()]).expect("cert");
        let pair = ClientCert::from_pem(
            made.cert.pem().into_bytes(),
            made.signing_key.serialize_pem().into_bytes(),
        )
        .expect("a usable pair");
        let tls = RedisTls {
            ca: None,
            client_cert: Some(pair),
        };
        let err = client("redis://db:6379", &tls).expect_err("plain text");
        assert!(matches!(err, ConnectionError::PlainTextWithCa), "{err}");
        assert!(client("rediss://db:6380", &tls).is_ok());
    }

    #[test]
    fn insecure_urls_get_no_client() {
        let err = client("rediss://:hunter2@db:6380/#insecure", &RedisTls::default())
            .expect_err("refused");
        assert!(matches!(err, ConnectionError::UnverifiedTls));
        assert!(!err.to_string().contains("hunter2"));
    }
}
