//! The `[server]`, `[server.tls]`, `[upstream]`, `[admin]` and `[log]` sections: where
//! palisade listens, what it protects, and the limits every connection lives under.
//!
//! Every default here is the safe one; an operator loosens them knowingly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use http::HeaderName;
use ipnet::IpNet;
use palisade_policy::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Deserializer};

/// `[server]`: the public listener and what it accepts from clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the proxy listens on. Default `0.0.0.0:8080`.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Peers allowed to tell palisade the client's address (`X-Forwarded-For` or
    /// `client_ip_header`). Default: none, so no client can choose its own IP.
    pub trusted_proxies: Vec<Cidr>,
    /// A single header holding the client IP, set by a trusted proxy (`cf-connecting-ip`,
    /// `x-real-ip`). Read instead of `X-Forwarded-For`, and only from trusted peers.
    #[serde(deserialize_with = "header_name_opt")]
    pub client_ip_header: Option<HeaderName>,
    /// Largest request head (request line and headers together). Default `32KB`.
    pub max_header_size: ByteSize,
    /// Most header fields one request may carry. Default 100.
    pub max_headers: usize,
    /// Longest request target (path and query). Default `8KB`.
    pub max_uri_length: ByteSize,
    /// Largest request body; larger bodies get 413. Default `10MB`.
    pub max_body_size: ByteSize,
    /// Most client connections open at once; more wait in the kernel's backlog. Default 10000.
    pub max_connections: usize,
    /// Worker threads serving connections; 0 (default) means one per core.
    pub workers: usize,
    /// Time a client has to send a complete request head (stops slowloris). Default `10s`.
    pub header_read_timeout: HumanDuration,
    /// Longest wait for the next piece of a request body; a body that stalls longer is
    /// answered 408 (or its forwarding is cut off) and the connection closed (stops slow-body
    /// attacks). Default `30s`.
    pub body_read_timeout: HumanDuration,
    /// Bytes per second a request body must average once its first `body_read_timeout` has
    /// passed: a body that falls behind is answered 408 (or its forwarding is cut off) and
    /// the connection closed, so a client sending a byte now and then cannot hold a
    /// connection until `max_body_size`. `0` turns it off. Default `500B`.
    pub min_body_rate: ByteSize,
    /// Time an idle keep-alive connection stays open between requests. Default `60s`.
    pub idle_timeout: HumanDuration,
    /// Longest a write to a client may wait because the client does not read (its socket
    /// buffers are full); the connection is then closed (stops slow-read attacks). `0` turns
    /// it off. Default `60s`.
    pub send_timeout: HumanDuration,
    /// On SIGTERM, how long in-flight requests may take to finish. Default `30s`.
    pub shutdown_timeout: HumanDuration,
    /// TLS termination; plain HTTP (and h2c) when absent.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            trusted_proxies: Vec::new(),
            client_ip_header: None,
            max_header_size: ByteSize(32 * 1024),
            max_headers: 100,
            max_uri_length: ByteSize(8 * 1024),
            max_body_size: ByteSize(10 * 1024 * 1024),
            max_connections: 10_000,
            workers: 0,
            header_read_timeout: secs(10),
            body_read_timeout: secs(30),
            min_body_rate: ByteSize(500),
            idle_timeout: secs(60),
            send_timeout: secs(60),
            shutdown_timeout: secs(30),
            tls: None,
        }
    }
}

/// `[server.tls]`: certificate and key in PEM files, re-read when either file changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are checked for changes. Default `10s`.
    #[serde(default = "tls_reload_default")]
    pub reload_interval: HumanDuration,
}

fn tls_reload_default() -> HumanDuration {
    secs(10)
}

/// `[upstream]`: the application palisade protects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host[:port]` of the application. Required, from here
    /// or `--upstream`.
    pub url: Option<UpstreamUrl>,
    /// PEM file of the CA certificates an `https://` upstream's certificate must chain to,
    /// instead of the public web roots (a private CA, or the app's self-signed
    /// certificate). Only with `https://`.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the certificate (its chain, the client's first) palisade presents to an
    /// `https://` upstream that requires client certificates. Needs `client_key`; only with
    /// `https://`.
    pub client_cert: Option<PathBuf>,
    /// PEM file of `client_cert`'s private key, unencrypted.
    pub client_key: Option<PathBuf>,
    /// Time to open a TCP connection to the upstream (and, for `https://`, to complete the
    /// TLS handshake). Default `5s`.
    pub connect_timeout: HumanDuration,
    /// Time from sending the request to receiving the response head, and the longest the
    /// upstream may send nothing while more of the answer's body is awaited.
    /// Default `60s`.
    pub response_timeout: HumanDuration,
    /// How long an unused pooled connection is kept. Default `90s`.
    pub pool_idle_timeout: HumanDuration,
    /// Most idle pooled connections kept. Default 256.
    pub pool_max_idle: usize,
    /// Forward the client's `Host` header unchanged (default); otherwise the upstream's.
    /// An upstream on another host (most `https://` ones) usually wants `false`.
    pub preserve_host: bool,
    /// HTTP version spoken to the upstream: `"http1"` (default) or `"http2"` (h2c with prior
    /// knowledge for `http://`, ALPN `h2` for `https://`).
    pub protocol: UpstreamProtocol,
}

/// `[upstream] protocol`: the HTTP version of the requests palisade sends the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over a keep-alive pool of connections (the default).
    #[default]
    Http1,
    /// HTTP/2: multiplexed connections of up to 32 streams each, per worker; upgrades
    /// (WebSocket) still go over HTTP/1.1 connections of their own.
    Http2,
}

impl<'de> Deserialize<'de> for UpstreamProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "http1" => Ok(Self::Http1),
            "http2" => Ok(Self::Http2),
            other => Err(serde::de::Error::custom(format!(
                "upstream.protocol: expected \"http1\" (HTTP/1.1, the default) or \"http2\" \
                 (h2c for http://, h2 for https://), found {other:?}"
            ))),
        }
    }
}

impl UpstreamProtocol {
    /// How the start-up line and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::Http2 => "http2",
        }
    }
}

impl UpstreamConfig {
    /// The TLS keys (`ca_file`, `client_cert`, `client_key`) set beside an `http://` URL:
    /// they say TLS was meant, and the request would go out in the clear.
    pub fn tls_without_https(&self) -> Vec<&'static str> {
        let plain = self.url.as_ref().is_some_and(|url| !url.tls);
        if !plain {
            return Vec::new();
        }
        [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// The key of a client certificate pair written without the other one, and why.
    pub fn half_client_pair(&self) -> Option<(&'static str, &'static str)> {
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => Some((
                "client_key",
                "missing: client_cert needs the certificate's private key in client_key",
            )),
            (None, Some(_)) => Some((
                "client_cert",
                "missing: client_key is set without the certificate it belongs to",
            )),
            _ => None,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            connect_timeout: secs(5),
            response_timeout: secs(60),
            pool_idle_timeout: secs(90),
            pool_max_idle: 256,
            preserve_host: true,
            protocol: UpstreamProtocol::Http1,
        }
    }
}

/// `[admin]`: the health, readiness and metrics listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:9090`. A non-loopback address
    /// requires the `PALISADE_ADMIN_TOKEN` environment variable.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// `[log]`: where the security event log goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"stdout"` (default), `"off"`, or a file path appended to as JSON lines.
    pub security: LogTarget,
    /// Events that may wait for a slow sink before new ones are dropped and counted.
    pub queue: usize,
    /// How long a client's repeats of a flood event (`rate_limit.exceeded`,
    /// `request.malformed`) are counted instead of written after its first; `0s` writes
    /// every event. Default 10 s, at most 1 h.
    pub repeat_window: HumanDuration,
}

/// The longest `[log] repeat_window`: a longer one would hide a client's activity for hours.
pub const MAX_REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            security: LogTarget::Stdout,
            queue: 8192,
            repeat_window: HumanDuration(std::time::Duration::from_secs(10)),
        }
    }
}

/// Where the JSON-lines security log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output.
    Stdout,
    /// No security log (metrics still count events).
    Off,
    /// A file, created if missing, appended to.
    File(PathBuf),
}

impl<'de> Deserialize<'de> for LogTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "stdout" => Self::Stdout,
            "off" => Self::Off,
            "" => {
                return Err(serde::de::Error::custom(
                    "empty log target (expected \"stdout\", \"off\" or a file path)",
                ));
            }
            path => Self::File(PathBuf::from(path)),
        })
    }
}

/// An address range written `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&crate::client_ip::canonical(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self(net.trunc()));
        }
        text.parse::<IpAddr>().map(|ip| Self(IpNet::from(ip))).map_err(|_| {
            format!(
                "invalid address range {text:?} (expected CIDR like \"10.0.0.0/8\" or an address)"
            )
        })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The upstream's base URL: `http://host[:port]` or `https://host[:port]`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `host` or `host:port`, as written (the `Host` the upstream is sent when
    /// `preserve_host` is off).
    pub authority: http::uri::Authority,
    /// Whether the upstream is reached over TLS (`https://`).
    pub tls: bool,
}

impl UpstreamUrl {
    /// The host, without the brackets of an IPv6 address: the TLS server name (SNI) and
    /// the name the upstream's certificate must carry.
    pub fn host(&self) -> &str {
        let host = self.authority.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The port, or the scheme's default (80, or 443 for `https://`).
    pub fn port(&self) -> u16 {
        let default = if self.tls { 443 } else { 80 };
        self.authority.port_u16().unwrap_or(default)
    }

    /// `host:port` to open a TCP connection to, the port always written.
    pub fn connect_address(&self) -> String {
        format!("{}:{}", self.authority.host(), self.port())
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = "(expected http://host:port or https://host[:port], for example \
                        \"http://127.0.0.1:3000\" or \"https://app.internal\")";
        let written = text;
        // Errors repeat the URL; a password in it must not reach the log with them.
        let text = &*without_user_info(written);
        let uri: http::Uri = written
            .parse()
            .map_err(|_| format!("invalid upstream URL {text:?} {expected}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "upstream URL {text:?} must use http:// or https:// {expected}"
                ));
            }
        };
        // `http` drops a fragment without a word: refuse it like a path or query.
        let path_is_root =
            matches!(uri.path(), "" | "/") && uri.query().is_none() && !written.contains('#');
        match uri.authority() {
            // A user name or password would reach the upstream in `Host` (with `preserve_host`
            // off) and the start-up log: refuse it rather than pass it on.
            Some(authority) if path_is_root && !authority.as_str().contains('@') => {
                if let Some(why) = host_or_port_problem(authority, tls) {
                    return Err(format!("upstream URL {text:?} {why} {expected}"));
                }
                Ok(Self {
                    authority: authority.clone(),
                    tls,
                })
            }
            _ => Err(format!(
                "upstream URL {text:?} must be a host and port without a path, query, \
                 fragment or user name {expected}"
            )),
        }
    }
}

/// `url` with everything between its scheme and its last `@` (a user name and password,
/// even one holding an unencoded `/`) replaced by `***`, to be shown in an error. An upstream
/// URL has no path, so an `@` is never anything else worth showing.
fn without_user_info(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]).into(),
        None => url.into(),
    }
}

/// Why `authority` (without a user name) cannot be connected to, if so. A port that is not a
/// number from 1 to 65535 is refused here: `http` reads it as no port at all, and the URL
/// would go to the scheme's default port, a service the operator never named. An `https://`
/// host must also be usable as the TLS server name, so `palisade check` refuses what
/// `serve` could not use.
fn host_or_port_problem(authority: &http::uri::Authority, tls: bool) -> Option<String> {
    let host = authority.host();
    let after_host = authority.as_str().strip_prefix(host).unwrap_or_default();
    if let Some(port) = after_host.strip_prefix(':') {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|port| port != 0);
        if !valid {
            // Not repeated: in a mistyped URL it may be part of a password.
            return Some(
                "has an invalid port, expected a port from 1 to 65535 (or none, for the \
                 scheme's default)"
                    .into(),
            );
        }
    }
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let usable = !name.is_empty()
        && (!tls || rustls_pki_types::ServerName::try_from(name.to_owned()).is_ok());
    (!usable).then(|| format!("has host {name:?}, which is not a valid host name or IP address"))
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn header_name_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HeaderName>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|name| {
        HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid header name {name:?} (expected a name like \"cf-connecting-ip\")"
            ))
        })
    })
    .transpose()
}

/// A listen address is an IP and a port: the listener binds before any resolver is asked,
/// so a host name such as `localhost:8080` is refused with the form that works.
fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid listen address {text:?}: expected an IP address and a port, such as \
             \"0.0.0.0:8080\", \"127.0.0.1:9090\" or \"[::]:8080\" (host names are not accepted)"
        ))
    })
}

fn secs(n: u64) -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(n))
}
