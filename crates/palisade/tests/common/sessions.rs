//! Helpers for the session, identity and CSRF tests: logging in through the test upstream's
//! `x-test-response-header`, reading `Set-Cookie`, counting events.
#![allow(dead_code)]

use http::{Method, Request};
use palisade_gateway::serve::Running;

use super::{Reply, full, send};

/// The session cookie's default name.
pub const SESSION_COOKIE: &str = "__Host-palisade_session";
/// The script-readable CSRF cookie's default name.
pub const CSRF_COOKIE: &str = "palisade_csrf";
/// No rate limits, sessions in memory: the base of most session tests.
pub const MEMORY_SESSIONS: &str = "rate_limit = []\n[session]\nstore = \"memory\"\n";

/// Every `Set-Cookie` value of a reply.
pub fn set_cookies(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
        .collect()
}

/// The whole `Set-Cookie` line that sets `name`, if any.
pub fn set_cookie_line(reply: &Reply, name: &str) -> Option<String> {
    set_cookies(reply)
        .into_iter()
        .find(|line| line.starts_with(&format!("{name}=")))
}

/// The value `Set-Cookie` gives `name` (empty when it clears it).
pub fn set_cookie_value(reply: &Reply, name: &str) -> Option<String> {
    let line = set_cookie_line(reply, name)?;
    let pair = line.split(';').next()?;
    Some(pair[name.len() + 1..].to_string())
}

/// A browser's cookies after a login: the session and CSRF cookies.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The session secret.
    pub session: String,
    /// The CSRF token from the `palisade_csrf` cookie.
    pub csrf: String,
    /// The login reply.
    pub reply_status: http::StatusCode,
}

impl LoggedIn {
    /// The `Cookie` header value this browser sends.
    pub fn cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}={}; {CSRF_COOKIE}={}",
            self.session, self.csrf
        )
    }
}

/// Logs `user` in (with `roles` if given) through `GET /login`, whose upstream answer
/// carries `Palisade-Session-Login`.
pub async fn login(base: &str, user: &str, roles: Option<&str>) -> LoggedIn {
    let mut headers = vec![format!("palisade-session-login: {user}")];
    if let Some(roles) = roles {
        headers.push(format!("palisade-session-roles: {roles}"));
    }
    let reply = directive(base, "/login", &headers, None).await;
    LoggedIn {
        session: set_cookie_value(&reply, SESSION_COOKIE).expect("a session cookie"),
        csrf: set_cookie_value(&reply, CSRF_COOKIE).expect("a CSRF cookie"),
        reply_status: reply.status,
    }
}

/// `GET base+path` whose upstream answer carries the `directives` (`name: value` lines),
/// sent with `cookie` if given.
pub async fn directive(
    base: &str,
    path: &str,
    directives: &[String],
    cookie: Option<&str>,
) -> Reply {
    let mut request = Request::get(format!("{base}{path}"));
    for line in directives {
        request = request.header("x-test-response-header", line.as_str());
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(request.body(full("")).expect("request")).await
}

/// A request with any method, headers and body.
pub async fn request(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(full(body.to_string())).expect("request")).await
}

/// How many events named `name` palisade has published so far.
pub fn events(palisade: &Running, name: &str) -> u64 {
    palisade.gateway.services().metrics.events.value(&[name])
}

/// The identity headers the echo upstream saw: (user, session, roles).
pub fn seen_identity(reply: &Reply) -> (Option<String>, Option<String>, Option<String>) {
    let echo = reply.json();
    let header = |name: &str| echo["headers"][name].as_str().map(str::to_string);
    (
        header("palisade-user-id"),
        header("palisade-session-id"),
        header("palisade-user-roles"),
    )
}
