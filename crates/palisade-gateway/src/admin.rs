//! The admin listener: `/healthz`, `/readyz`, `/metrics`, the sessions API (`/v1/...`), and
//! whatever routes later capabilities register.
//!
//! It listens on loopback by default. On any other address it refuses to start without
//! `PALISADE_ADMIN_TOKEN`, and then every route but `/healthz` needs
//! `Authorization: Bearer <token>`, compared in constant time. The token is never logged.
//!
//! Without a token, being on loopback is the only protection, and a browser defeats it
//! by DNS rebinding: a page on `evil.example` re-resolves its own name to 127.0.0.1 and
//! calls the admin API as a same-origin request. Such a request still carries
//! `Host: evil.example`, so a token-less listener answers only requests whose `Host` names
//! loopback (`127.0.0.1`, `[::1]` or `localhost`, with any port) and refuses others with 403.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use palisade_store::ratelimit::OnError;

use crate::body::{self, GatewayBody};
use crate::gateway::Gateway;

/// Environment variable holding the admin bearer token.
pub const ADMIN_TOKEN_ENV: &str = "PALISADE_ADMIN_TOKEN";

/// The bearer token for the admin API. `Debug` never prints it; it is wiped on drop.
#[derive(Clone)]
pub struct AdminToken(Zeroizing<String>);

impl AdminToken {
    /// A token; refuses ones too short to resist guessing.
    pub fn new(token: String) -> Result<Self, String> {
        if token.len() < 16 {
            return Err(format!("{ADMIN_TOKEN_ENV} must be at least 16 characters"));
        }
        Ok(Self(Zeroizing::new(token)))
    }

    /// Whether `header` is `Bearer <this token>`, compared in constant time.
    pub fn accepts(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header.and_then(|h| h.as_bytes().strip_prefix(b"Bearer ")) else {
            return false;
        };
        given.ct_eq(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The future an admin handler returns.
pub type AdminFuture = Pin<Box<dyn Future<Output = Response<GatewayBody>> + Send>>;

/// An admin route handler.
pub type AdminHandler =
    Arc<dyn Fn(Arc<Gateway>, Request<hyper::body::Incoming>) -> AdminFuture + Send + Sync>;

/// Admin routes, matched by method and exact path.
#[derive(Clone, Default)]
pub struct AdminRoutes {
    routes: Vec<(Method, String, AdminHandler)>,
}

impl fmt::Debug for AdminRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .routes
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        f.debug_tuple("AdminRoutes").field(&names).finish()
    }
}

impl AdminRoutes {
    /// The built-in routes: health, readiness, metrics, and the sessions API
    /// ([`crate::sessions::admin`]).
    pub fn standard() -> Self {
        let routes = Self::default()
            .route(Method::GET, "/healthz", |_, _| {
                Box::pin(async { text(StatusCode::OK, "ok\n") })
            })
            .route(Method::GET, "/readyz", |gateway, _| {
                Box::pin(readiness(gateway))
            })
            .route(Method::GET, "/metrics", |gateway, _| {
                Box::pin(async move {
                    let mut response = text(StatusCode::OK, gateway.services().metrics.render());
                    response.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    response
                })
            });
        crate::sessions::admin::routes(routes)
    }

    /// Adds a route (a `{name}` path segment matches any one segment). Later capabilities
    /// register theirs here (`/sessions`, ...).
    pub fn route(
        mut self,
        method: Method,
        path: &str,
        handler: impl Fn(Arc<Gateway>, Request<hyper::body::Incoming>) -> AdminFuture
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.routes
            .push((method, path.to_string(), Arc::new(handler)));
        self
    }

    fn find(&self, method: &Method, path: &str) -> Option<&AdminHandler> {
        self.routes
            .iter()
            .find(|(m, p, _)| m == method && path_matches(p, path))
            .map(|(_, _, h)| h)
    }
}

/// Whether `path` fits `pattern`, where a `{name}` segment stands for any one non-empty
/// segment (`/v1/users/{id}/sessions`). The handler reads the segment itself.
fn path_matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Why the admin listener refused to start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Non-loopback without a token.
    #[error(
        "admin listener {0} is not on loopback: set {ADMIN_TOKEN_ENV} (16+ characters) or \
         listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    /// The token is unusable.
    #[error("{0}")]
    BadToken(String),
}

/// Decides the admin token for `addr` from the environment value `token`.
pub fn admin_token(
    addr: SocketAddr,
    token: Option<String>,
) -> Result<Option<AdminToken>, AdminError> {
    match token {
        Some(token) => AdminToken::new(token)
            .map(Some)
            .map_err(AdminError::BadToken),
        None if addr.ip().is_loopback() => Ok(None),
        None => Err(AdminError::TokenRequired(addr)),
    }
}

/// Most admin connections open at once; more are closed as they arrive.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Longest wait for an admin request head (HTTP/1.1).
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    routes: AdminRoutes,
    token: Option<AdminToken>,
    shutdown: impl Future<Output = ()>,
) {
    let routes = Arc::new(routes);
    let token = Arc::new(token);
    let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let (mut refused, mut last_warned) = (0_u64, None);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        // A caller that opens connections and sends nothing must not use up descriptors:
        // beyond the cap a connection is closed at once, and the ones held are cut after
        // `ADMIN_HEADER_TIMEOUT` without a complete request head.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            // One line per 10 s at most, with the count, so a flood cannot flood the log.
            if last_warned.is_none_or(|at: Instant| at.elapsed() >= Duration::from_secs(10)) {
                warn!(
                    client.peer = %peer,
                    limit = ADMIN_MAX_CONNECTIONS,
                    refused,
                    "admin connections refused: too many open admin connections"
                );
                last_warned = Some(Instant::now());
                refused = 0;
            }
            drop(stream);
            continue;
        };
        let (gateway, routes, token) = (
            Arc::clone(&gateway),
            Arc::clone(&routes),
            Arc::clone(&token),
        );
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (gateway, routes, token) = (
                    Arc::clone(&gateway),
                    Arc::clone(&routes),
                    Arc::clone(&token),
                );
                async move {
                    Ok::<_, std::convert::Infallible>(
                        dispatch(gateway, &routes, token.as_ref().as_ref(), request).await,
                    )
                }
            });
            let _slot = slot;
            // The version detection below waits for a first byte with no timeout of its own.
            let mut first = [0_u8; 1];
            if !matches!(
                tokio::time::timeout(ADMIN_HEADER_TIMEOUT, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                debug!(client.peer = %peer, "admin connection closed: nothing sent");
                return;
            }
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(None);
            let served = tokio::time::timeout(
                Duration::from_secs(60),
                builder.serve_connection(TokioIo::new(stream), service),
            );
            if let Ok(Err(err)) = served.await {
                debug!(client.peer = %peer, error = %err, "admin connection error");
            }
        });
    }
}

async fn dispatch(
    gateway: Arc<Gateway>,
    routes: &AdminRoutes,
    token: Option<&AdminToken>,
    request: Request<hyper::body::Incoming>,
) -> Response<GatewayBody> {
    let path = request.uri().path().to_string();
    if token.is_none() && !names_loopback(&request) {
        debug!(admin.path = %path, "admin request refused: Host is not a loopback name");
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: without PALISADE_ADMIN_TOKEN the admin API answers only requests \
             whose Host is 127.0.0.1, [::1] or localhost\n",
        );
    }
    if let Some(token) = token {
        if path != "/healthz" && !token.accepts(request.headers().get(AUTHORIZATION)) {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    match routes.find(request.method(), &path) {
        Some(handler) => handler(gateway, request).await,
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the request's `Host` (or HTTP/2 `:authority`) is a loopback name with an
/// optional port. A request with two `Host` headers, or none, does not qualify: a browser
/// always sends exactly one, and anything else is not worth the ambiguity.
fn names_loopback(request: &Request<hyper::body::Incoming>) -> bool {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        (None, None) => request.uri().authority().map(|a| a.as_str()),
        _ => None,
    };
    host.is_some_and(is_loopback_host)
}

/// A loopback address literal (`127.0.0.1`, any of 127.0.0.0/8, `[::1]`) or `localhost`
/// (any case, an optional trailing dot), with an optional port. A page cannot be served
/// from an address literal it does not control, so only names are a rebinding risk.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port))
                if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) =>
            {
                return inside == "::1";
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let is_loopback_ip = name
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback());
    let name = name.strip_suffix('.').unwrap_or(name);
    is_loopback_ip || name.eq_ignore_ascii_case("localhost")
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// Ready when the upstream accepts a TCP connection (and, for `https://`, a TLS handshake
/// that verifies) and the state backend answers (or its outage is covered by an `on_error`
/// fallback).
async fn readiness(gateway: Arc<Gateway>) -> Response<GatewayBody> {
    let upstream = gateway.runtime().upstream.probe().await;
    let upstream_ok = upstream.is_ok();
    let services = gateway.services();
    let backend = services.rate_limits.backend();
    let state_error = match &services.state {
        Some(state) => state.readiness().await.err(),
        None => None,
    };
    let state_ok = state_error.is_none();
    // With `on_error = "allow"` or `"local"` the instance serves through a state outage, so a
    // load balancer must keep sending it traffic; only `"deny"` makes the outage unready.
    let fails_closed = gateway.runtime().config.state.on_error == OnError::Deny;
    let ready = upstream_ok && (state_ok || !fails_closed);
    // Shown, never unready: without its session store an instance still serves every request
    // that carries no session cookie, and taking every instance out would stop those too.
    let sessions = &services.sessions.sessions;
    let sessions_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), sessions.store_reachable()).await,
        Ok(true)
    );
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let mut state = serde_json::json!({ "backend": backend, "status": word(state_ok) });
    if let Some(err) = state_error {
        // Why: Redis down, or refusing the password, or its TLS certificate not trusted.
        state["detail"] = serde_json::Value::String(err.to_string());
    }
    let mut body = serde_json::json!({
        "ready": ready,
        "upstream": word(upstream_ok),
        "state": state,
        "sessions": { "store": sessions.backend(), "status": word(sessions_ok) },
    });
    if let Err(why) = upstream {
        // Why: refused, timed out, or (https) its certificate not trusted or for another name.
        body["upstream_detail"] = serde_json::Value::String(why);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = text(status, format!("{body}\n"));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<GatewayBody> {
    let mut response = Response::new(body::full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_exactly_and_never_printed() {
        let token = AdminToken::new("s3cret-s3cret-s3cret".into()).expect("long enough");
        assert!(token.accepts(Some(&HeaderValue::from_static(
            "Bearer s3cret-s3cret-s3cret"
        ))));
        assert!(!token.accepts(Some(&HeaderValue::from_static(
            "Bearer s3cret-s3cret-s3cre"
        ))));
        assert!(!token.accepts(Some(&HeaderValue::from_static("s3cret-s3cret-s3cret"))));
        assert!(!token.accepts(None));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn route_patterns_match_one_segment_per_parameter() {
        let pattern = "/v1/users/{id}/sessions";
        assert!(path_matches(pattern, "/v1/users/alice/sessions"));
        assert!(path_matches(pattern, "/v1/users/a%2Fb/sessions"));
        assert!(!path_matches(pattern, "/v1/users//sessions"));
        assert!(!path_matches(pattern, "/v1/users/a/b/sessions"));
        assert!(!path_matches(pattern, "/v1/users/alice/sessions/"));
        assert!(path_matches("/healthz", "/healthz"));
        assert!(!path_matches("/healthz", "/healthz/x"));
    }

    #[test]
    fn only_loopback_names_count_as_loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:9090",
            "localhost",
            "LOCALHOST:9090",
            "localhost.:9090",
            "[::1]",
            "[::1]:9090",
            "127.0.0.2:9091",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1].evil.example",
            "[::2]:9090",
            "[::1]9090",
            "127.0.0.1:x",
            "127.0.0.1:9090:1",
            "127.0.0.1.",
            "127.1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn non_loopback_admin_requires_a_token() {
        let public: SocketAddr = "0.0.0.0:9090".parse().expect("addr");
        assert!(matches!(
            admin_token(public, None),
            Err(AdminError::TokenRequired(_))
        ));
        let local: SocketAddr = "127.0.0.1:9090".parse().expect("addr");
        assert!(matches!(admin_token(local, None), Ok(None)));
        assert!(admin_token(public, Some("short".into())).is_err());
    }
}
