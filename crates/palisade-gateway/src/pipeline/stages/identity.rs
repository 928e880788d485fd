//! Stage 3: who the request belongs to.
//!
//! 1. Every client-sent copy of `Palisade-User-Id`, `Palisade-Session-Id` and
//!    `Palisade-User-Roles` is removed, session or not, so the upstream can trust them.
//!    Spellings with `_` for `-` go too: CGI-style servers (PHP, Rack, WSGI behind some
//!    proxies) fold both to `HTTP_PALISADE_USER_ID`, which would let a forged header pass.
//! 2. The session cookie is resolved (and rotated when due); a store failure answers 503,
//!    never "anonymous", for a request that carries a cookie.
//! 3. Without a valid session, a bearer JWT (or the `[identity.jwt] cookie`) is verified.
//!    An invalid token is an event and, with `on_invalid = "reject"`, a 401.
//! 4. `ctx.identity` is set (rate-limit `key = "user"`, the rule field `palisade.user.id`,
//!    every event), and the identity headers are added for the upstream.
//!
//! The lookup is kept in `ctx.session` for the CSRF stage and the response phase.

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, Response, StatusCode};
use palisade_policy::clock::{Clock, UnixMillis};
use palisade_policy::identity::{
    IDENTITY_HEADERS, Identity as PolicyIdentity, IdentitySource, JwtOutcome, JwtRejection,
    OnInvalid,
};
use palisade_policy::session::Resolved;
use tracing::warn;

use crate::body::GatewayBody;
use crate::error::{GatewayError, short_page};
use crate::events::Event;
use crate::metrics::{Metrics, SeriesCache};
use crate::pipeline::{GatewayRequest, Identity, Outcome, RequestContext, RequestStage, Verdict};
use crate::services::Services;
use crate::sessions::{RequestSession, SessionService, session_event};

/// The identity stage.
#[derive(Debug)]
pub struct IdentityStage {
    service: Arc<SessionService>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// The `anonymous` and `session` series, one of which most requests count.
    anonymous: SeriesCache,
    by_session: SeriesCache,
}

impl IdentityStage {
    /// The stage over the shared session service.
    pub fn new(services: &Services) -> Self {
        Self {
            service: Arc::clone(&services.sessions),
            clock: Arc::clone(&services.clock),
            metrics: Arc::clone(&services.metrics),
            anonymous: SeriesCache::default(),
            by_session: SeriesCache::default(),
        }
    }
}

impl RequestStage for IdentityStage {
    fn name(&self) -> &'static str {
        "identity"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        if strip_identity_headers(&mut request.head.headers) {
            ctx.publish(Event::Identity {
                name: "identity.headers_stripped",
                request: ctx.request_info(&request.head),
                reason: "client_sent_identity_headers",
            });
        }
        let now = self.clock.now_ms();
        let resolved = self.resolve_session(request, ctx, now).await?;

        let mut state = Box::new(RequestSession {
            identity: resolved.session.as_ref().map(PolicyIdentity::from_session),
            resolved,
        });
        let mut refused = None;
        if state.identity.is_some() {
            let resolutions = &self.metrics.identity_resolutions;
            resolutions.inc_cached(&self.by_session, &["session"]);
        } else {
            (state.identity, refused) = self.token_outcome(request, ctx, now);
        }
        if let Some(identity) = &state.identity {
            apply(identity, &mut request.head.headers, ctx)?;
        }
        ctx.session = Some(state);
        Ok(refused.map_or(Verdict::Continue, Verdict::Respond))
    }
}

impl IdentityStage {
    /// Looks up the session cookie (rotating it when due), publishes what happened to it,
    /// and removes the cookie from what the upstream will receive.
    async fn resolve_session(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
        now: UnixMillis,
    ) -> Result<Resolved, GatewayError> {
        let sessions = &self.service.sessions;
        let cookies = request.head.headers.get_all(COOKIE);
        let any_cookie = cookies.iter().next().is_some();
        let resolved = sessions
            .resolve(cookies.iter().map(HeaderValue::as_bytes), now)
            .await
            .map_err(|err| {
                warn!(request.id = %ctx.id, error = %err, "session store failed");
                GatewayError::StateUnavailable
            })?;
        if let Some(event) = &resolved.event {
            ctx.publish(session_event(event, Some(ctx.request_info(&request.head))));
        }
        if any_cookie {
            remove_cookie(&mut request.head.headers, &sessions.settings().cookie_name);
        }
        Ok(resolved)
    }

    /// The identity of a JWT, counted; with an invalid token, the 401 to answer when
    /// `on_invalid = "reject"`.
    fn token_outcome(
        &self,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
        now: UnixMillis,
    ) -> (Option<PolicyIdentity>, Option<Response<GatewayBody>>) {
        let counted = |source: &str| self.metrics.identity_resolutions.inc(&[source]);
        match self.token_identity(&request.head.headers, now) {
            Ok(None) => {
                let resolutions = &self.metrics.identity_resolutions;
                resolutions.inc_cached(&self.anonymous, &["anonymous"]);
                (None, None)
            }
            Ok(Some(identity)) => {
                let bearer = matches!(identity.source, IdentitySource::Bearer);
                counted(if bearer { "jwt_bearer" } else { "jwt_cookie" });
                (Some(identity), None)
            }
            Err(rejection) => {
                counted("invalid_jwt");
                (None, self.invalid_token(rejection, request, ctx))
            }
        }
    }

    /// A JWT identity from `Authorization: Bearer` or the token cookie. `Err` is an invalid
    /// token (two `Authorization` headers count as one malformed token: which is meant?).
    fn token_identity(
        &self,
        headers: &HeaderMap,
        now: UnixMillis,
    ) -> Result<Option<PolicyIdentity>, JwtRejection> {
        let Some(verifier) = &self.service.jwt else {
            return Ok(None);
        };
        let mut authorization = headers.get_all(AUTHORIZATION).iter();
        let first = authorization.next();
        if authorization.next().is_some() {
            return Err(JwtRejection::Malformed);
        }
        let cookies = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
        match verifier.identify(first.map(HeaderValue::as_bytes), cookies, now) {
            JwtOutcome::Absent => Ok(None),
            JwtOutcome::Valid(identity) => Ok(Some(identity)),
            JwtOutcome::Invalid { rejection, .. } => Err(rejection),
        }
    }

    /// Publishes an invalid token; the 401 answer when `on_invalid = "reject"`.
    fn invalid_token(
        &self,
        rejection: JwtRejection,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Option<Response<GatewayBody>> {
        ctx.publish(Event::Identity {
            name: "identity.invalid_jwt",
            request: ctx.request_info(&request.head),
            reason: rejection.as_str(),
        });
        let reject = self
            .service
            .jwt
            .as_ref()
            .is_some_and(|v| v.settings().on_invalid == OnInvalid::Reject);
        if !reject {
            return None;
        }
        ctx.outcome = Outcome::Blocked;
        let mut response = short_page(
            StatusCode::UNAUTHORIZED,
            "The access token is not valid.",
            &request.head.headers,
        );
        let headers = response.headers_mut();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        Some(response)
    }
}

/// Sets the identity on the context and the upstream headers.
fn apply(
    identity: &PolicyIdentity,
    headers: &mut HeaderMap,
    ctx: &mut RequestContext,
) -> Result<(), GatewayError> {
    for (name, value) in identity.upstream_headers() {
        // User ids are validated printable UTF-8, so this cannot fail; if it ever did, the
        // request must not go on without its identity headers.
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| GatewayError::Internal(format!("unsendable {name} value")))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    let source = match identity.source {
        IdentitySource::Session(_) => "session",
        _ => "jwt",
    };
    ctx.identity = Some(Identity {
        user: identity.user_id.as_str().to_owned(),
        source,
    });
    Ok(())
}

/// Removes the cookie `name` from the `Cookie` headers: the session secret is palisade's
/// alone, and an upstream that never receives it cannot leak it (in its logs, say).
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let is_session = |pair: &&[u8]| {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        key.trim_ascii() == name.as_bytes()
    };
    // The fields are copied out only when the session cookie is among them: a request
    // without one (anonymous traffic) needs no copy.
    if !headers
        .get_all(COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b';').any(|p| is_session(&p)))
    {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    for value in values {
        // The other pairs keep their bytes and the separators before them, so a value that
        // holds a `;` of its own (`b="q;r"`, which RFC 6265 does not allow but clients send)
        // reaches the upstream as the client wrote it.
        let kept: Vec<&[u8]> = value
            .as_bytes()
            .split(|&b| b == b';')
            .filter(|pair| !is_session(pair) && !pair.trim_ascii().is_empty())
            .collect();
        if let Ok(value) = HeaderValue::from_bytes(kept.join(&b";"[..]).trim_ascii()) {
            if !value.is_empty() {
                headers.append(COOKIE, value);
            }
        }
    }
}

/// Removes every header that names an identity header, in any case and with `_` for `-`.
/// Returns whether any was present.
fn strip_identity_headers(headers: &mut HeaderMap) -> bool {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name.as_str()))
        .cloned()
        .collect();
    for name in &forged {
        headers.remove(name);
    }
    !forged.is_empty()
}

fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|wanted| {
        name.len() == wanted.len()
            && name
                .bytes()
                .zip(wanted.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_removed_and_other_cookies_kept() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; sid=secret ;b=2"));
        headers.append(COOKIE, HeaderValue::from_static("sid=other"));
        headers.append(COOKIE, HeaderValue::from_static("sidx=kept;;"));
        headers.append(
            COOKIE,
            HeaderValue::from_static("sid=s; b=\"q;r\";c=3 ; d=4"),
        );
        remove_cookie(&mut headers, "sid");
        let left: Vec<&str> = headers
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        // The other cookies as the client wrote them, separators included.
        assert_eq!(left, ["a=1;b=2", "sidx=kept", "b=\"q;r\";c=3 ; d=4"]);
        let mut untouched = HeaderMap::new();
        untouched.append(COOKIE, HeaderValue::from_static("a=1;;b"));
        remove_cookie(&mut untouched, "sid");
        assert_eq!(untouched[COOKIE], "a=1;;b");
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let mut headers = HeaderMap::new();
        headers.insert("palisade-user-id", HeaderValue::from_static("admin"));
        headers.append("palisade-user-id", HeaderValue::from_static("root"));
        headers.insert("palisade_session_id", HeaderValue::from_static("x"));
        headers.insert("Palisade-User_Roles", HeaderValue::from_static("admin"));
        headers.insert("palisade-user-idx", HeaderValue::from_static("kept"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        assert!(strip_identity_headers(&mut headers));
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "palisade-user-idx"]);
        assert!(!strip_identity_headers(&mut headers));
    }
}
