//! Stage 9: the upstream's session directives become cookies.
//!
//! `Palisade-Session-Login: <user>` (with `Palisade-Session-Roles`), `-Logout: 1` and
//! `-Rotate: 1` are read from the response and always removed from it, whoever sent it.
//! The session service acts on them and decides the one session `Set-Cookie` of the
//! response (a login, a logout, or a rotation decided in the request phase); the
//! `palisade_csrf` cookie is issued, refreshed or cleared with it. This runs before
//! `security_headers`, so the cookie flags policy sees these cookies too.
//!
//! A store failure here cannot become a 503 (the response is already the upstream's): the
//! login does not happen, a logout still clears the browser's cookie, and the failure is a
//! `session.store_failed` event.

use std::sync::Arc;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue, SET_COOKIE};
use palisade_policy::clock::{Clock, UnixMillis};
use palisade_policy::csrf::Csrf;
use palisade_policy::session::cookie::{SetCookie, clear_session_cookie};
use palisade_policy::session::{Directives, Responded, Sessions};
use tracing::warn;

use crate::events::{Event, SessionInfo};
use crate::pipeline::{RequestContext, ResponseStage};
use crate::services::Services;
use crate::sessions::{RequestSession, session_event};

/// The session-cookie stage.
#[derive(Debug)]
pub struct SessionCookies {
    sessions: Sessions,
    csrf: Option<Csrf>,
    clock: Arc<dyn Clock>,
}

impl SessionCookies {
    /// The stage over the shared session service.
    pub fn new(services: &Services) -> Self {
        let service = &services.sessions;
        let csrf = service.csrf.clone();
        Self {
            sessions: service.sessions.clone(),
            csrf: csrf.settings().enabled.then_some(csrf),
            clock: Arc::clone(&services.clock),
        }
    }
}

impl ResponseStage for SessionCookies {
    fn name(&self) -> &'static str {
        "session_cookies"
    }

    async fn on_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
    ) {
        let names = &self.sessions.settings().headers;
        // Nearly every answer carries no directive: one look at the names says so, and the
        // reading and stripping passes are skipped.
        let directed = response
            .headers
            .keys()
            .any(|name| names.is_directive(name.as_str()));
        let (directives, errors) = if directed {
            let pairs = response.headers.iter();
            let read =
                Directives::from_headers(names, pairs.map(|(n, v)| (n.as_str(), v.as_bytes())));
            strip_directives(&mut response.headers, |name| names.is_directive(name));
            read
        } else {
            (Directives::default(), Vec::new())
        };
        // Without the identity stage's result the upstream was never asked, so there is
        // nothing to act on.
        let Some(state) = ctx.session.take() else {
            return;
        };
        let jwt_binding = state.jwt_cookie_binding();
        // Most responses: no directive, no session, no cookie pending, and a browser that
        // sent no cookie (so holds no CSRF cookie to clear): nothing to add.
        let quiet = directives.is_empty()
            && errors.is_empty()
            && state.resolved.session.is_none()
            && state.resolved.pending_cookie().is_none()
            && jwt_binding.is_none()
            && !request.headers.contains_key(COOKIE);
        if quiet {
            return;
        }
        let now = self.clock.now_ms();
        let RequestSession { resolved, .. } = *state;
        let asked = !directives.is_empty();
        let out = match self
            .sessions
            .respond(resolved, directives, errors, now)
            .await
        {
            Ok(out) => out,
            Err(err) => {
                warn!(request.id = %ctx.id, error = %err, "session store failed on a response");
                ctx.publish(Event::Session {
                    name: "session.store_failed",
                    request: Some(ctx.request_info(request)),
                    session: SessionInfo::default(),
                });
                // The login or logout did not happen in the store; the browser forgets
                // its session all the same.
                if asked {
                    append(
                        &mut response.headers,
                        &clear_session_cookie(self.sessions.settings()),
                    );
                }
                return;
            }
        };
        for event in &out.events {
            ctx.publish(session_event(event, Some(ctx.request_info(request))));
        }
        if let Some(cookie) = &out.set_cookie {
            append(&mut response.headers, cookie);
        }
        if let Some(cookie) = self.csrf_cookie(&out, jwt_binding, request, now) {
            append(&mut response.headers, &cookie);
        }
    }
}

impl SessionCookies {
    /// The `palisade_csrf` cookie for the credential this browser holds after the
    /// response: its session (a login's new one), else the JWT cookie it sent.
    fn csrf_cookie(
        &self,
        out: &Responded,
        jwt_binding: Option<String>,
        request: &http::request::Parts,
        now: UnixMillis,
    ) -> Option<SetCookie> {
        let csrf = self.csrf.as_ref()?;
        let binding = match &out.session {
            Some(session) => Some(session.public_id.to_string()),
            None if !out.changed => jwt_binding,
            None => None,
        };
        let cookies = request.headers.get_all(COOKIE);
        csrf.response_cookie(
            binding.as_deref(),
            out.changed,
            cookies.iter().map(HeaderValue::as_bytes),
            now,
        )
    }
}

/// Removes every header `is_directive` names: they are instructions to palisade, never
/// for the client.
fn strip_directives(headers: &mut HeaderMap, is_directive: impl Fn(&str) -> bool) {
    let names: Vec<_> = headers
        .keys()
        .filter(|name| is_directive(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

fn append(headers: &mut HeaderMap, cookie: &SetCookie) {
    // Cookie values are base64url or JWT text and the attributes are fixed ASCII.
    if let Ok(mut value) = HeaderValue::from_str(cookie.as_str()) {
        // Never put a session secret in an HTTP/2 compression table.
        value.set_sensitive(true);
        headers.append(SET_COOKIE, value);
    }
}
