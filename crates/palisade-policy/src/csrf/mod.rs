//! CSRF protection: tokens bound to the session, checked on unsafe cookie-authenticated
//! requests, plus the script-readable cookie that hands tokens to pages.
//!
//! Layout: [`config`] (the `[csrf]` section), [`token`] (minting and verifying HS256 JWTs),
//! [`check`] (the decision for one request), [`form`] (the `_csrf` field of urlencoded
//! bodies). [`Csrf`] ties them together for the gateway. Pure: no I/O, no clock, no logging;
//! the signing secret never appears in `Debug` output.

pub mod check;
pub mod config;
pub mod form;
pub mod token;

use crate::clock::UnixMillis;
use crate::session::cookie::{CookieAttributes, CookieLookup, SetCookie, find_cookie};

pub use check::{CsrfPass, CsrfRequest, CsrfVerdict};
pub use config::{CSRF_SECRET_ENV, CsrfConfig, CsrfSettings};
pub use token::{CsrfClaims, CsrfKey, CsrfKeyError};

/// The path of the token endpoint the gateway serves.
pub const TOKEN_PATH: &str = "/.palisade/csrf";

/// Why a request was refused; the 403 body and the event say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfRefusal {
    /// No token in the header or the form.
    Missing,
    /// The token's `exp` has passed.
    Expired,
    /// The token belongs to another session.
    Mismatch,
    /// The token is malformed, badly signed, or not HS256.
    Invalid,
    /// The request comes from another site.
    CrossSite,
}

impl CsrfRefusal {
    /// A stable name for events, metrics and the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::Mismatch => "mismatch",
            Self::Invalid => "invalid",
            Self::CrossSite => "cross_site",
        }
    }

    /// One sentence for people.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "The CSRF token is missing.",
            Self::Expired => "The CSRF token has expired; reload the page and try again.",
            Self::Mismatch => "The CSRF token does not match this session.",
            Self::Invalid => "The CSRF token is not valid.",
            Self::CrossSite => "Cross-site requests are not allowed here.",
        }
    }

    /// The 403 body for a client that sent `accept`: HTML for browsers asking for it,
    /// JSON otherwise. Returns `(content type, body)`.
    pub fn body(self, accept: Option<&[u8]>) -> (&'static str, String) {
        let wants_html =
            accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
        if wants_html {
            let html = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>403 Forbidden\
                 </title></head><body><h1>403 Forbidden</h1><p>{}</p></body></html>",
                self.message()
            );
            ("text/html; charset=utf-8", html)
        } else {
            let json = serde_json::json!({
                "error": "csrf",
                "reason": self.as_str(),
                "message": self.message(),
            });
            ("application/json", json.to_string())
        }
    }
}

/// The CSRF service the gateway calls.
#[derive(Debug, Clone)]
pub struct Csrf {
    settings: CsrfSettings,
    key: CsrfKey,
}

/// What the token endpoint should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// 200 with this JSON body, `{"token": "..."}` (and `Cache-Control: no-store`).
    Token(String),
    /// 403: the endpoint serves same-origin callers only.
    CrossSite,
    /// 401: there is no session to bind a token to.
    NoSession,
}

impl Csrf {
    /// A service with validated settings and its key.
    pub fn new(settings: CsrfSettings, key: CsrfKey) -> Self {
        Self { settings, key }
    }

    /// The settings in force.
    pub fn settings(&self) -> &CsrfSettings {
        &self.settings
    }

    /// The decision for one request. When it is `Refuse(Missing)`, the method is unsafe,
    /// no header token was sent and the body is urlencoded, the gateway may read the body
    /// (bounded), fill `form_token` with [`Csrf::form_token`] and decide again.
    pub fn check(&self, req: &CsrfRequest<'_>, now: UnixMillis) -> CsrfVerdict {
        check::decide(&self.settings, &self.key, req, now)
    }

    /// The token in an urlencoded body, if the content type says it is one.
    pub fn form_token(&self, content_type: Option<&[u8]>, body: &[u8]) -> Option<String> {
        content_type
            .is_some_and(form::is_urlencoded)
            .then(|| form::form_field(body, &self.settings.form_field))
            .flatten()
    }

    /// A fresh token for the session `binding`.
    pub fn mint(&self, binding: &str, now: UnixMillis) -> String {
        self.key.mint(binding, self.settings.ttl_secs, now)
    }

    /// Verifies a token for `binding` at `now`.
    pub fn verify(
        &self,
        token: &[u8],
        binding: &str,
        now: UnixMillis,
    ) -> Result<CsrfClaims, CsrfRefusal> {
        self.key.verify(token, binding, now)
    }

    /// The answer of `GET /.palisade/csrf` for this request.
    pub fn token_endpoint(&self, req: &CsrfRequest<'_>, now: UnixMillis) -> TokenEndpoint {
        if check::is_cross_site(&self.settings, req) {
            return TokenEndpoint::CrossSite;
        }
        match req.binding {
            Some(binding) => {
                let token = self.mint(binding, now);
                TokenEndpoint::Token(serde_json::json!({ "token": token }).to_string())
            }
            None => TokenEndpoint::NoSession,
        }
    }

    /// The `palisade_csrf` cookie to add to a response, if any.
    ///
    /// `binding` is the session after the response (see `Responded::session`), `changed`
    /// whether a login or logout happened, `cookie_headers` the request's `Cookie` headers.
    /// A new session gets a fresh cookie; no session clears a cookie the browser still
    /// sends; an unchanged session gets a new token when its cookie is missing, invalid,
    /// for another session, or past half its lifetime.
    pub fn response_cookie<'a>(
        &self,
        binding: Option<&str>,
        changed: bool,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
        now: UnixMillis,
    ) -> Option<SetCookie> {
        let lookup = find_cookie(
            cookie_headers,
            &self.settings.cookie_name,
            token::MAX_TOKEN_LEN,
        );
        let Some(binding) = binding else {
            let present = !matches!(lookup, CookieLookup::Absent);
            return (changed || present).then(|| self.cookie("", 0));
        };
        let fresh = match lookup {
            _ if changed => false,
            CookieLookup::Found(value) => self.is_fresh(value, binding, now),
            _ => false,
        };
        (!fresh).then(|| self.cookie(&self.mint(binding, now), self.settings.ttl_secs))
    }

    fn is_fresh(&self, token: &[u8], binding: &str, now: UnixMillis) -> bool {
        let refresh_at = |c: &CsrfClaims| c.exp.saturating_sub(self.settings.ttl_secs / 2);
        self.key
            .verify(token, binding, now)
            .is_ok_and(|claims| now / 1000 < refresh_at(&claims))
    }

    /// Not `HttpOnly`: page scripts read it to fill the header.
    fn cookie(&self, value: &str, max_age_secs: u64) -> SetCookie {
        let attrs = CookieAttributes {
            secure: !self.settings.insecure_cookies,
            http_only: false,
            max_age_secs,
        };
        SetCookie::build(&self.settings.cookie_name, value, attrs)
    }
}
