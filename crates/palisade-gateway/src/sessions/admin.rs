//! The sessions API on the admin listener (behind `PALISADE_ADMIN_TOKEN` when one is set;
//! without it the listener only runs on loopback):
//!
//! | call | answer |
//! | --- | --- |
//! | `GET /v1/users/{id}/sessions` | 200 `{"user_id", "sessions": [...]}` |
//! | `DELETE /v1/sessions/{public id}` | 200 `{"revoked": 1, "session_id"}`, 404 when unknown |
//! | `DELETE /v1/users/{id}/sessions` | 200 `{"revoked": n, "user_id"}` ("log out everywhere") |
//!
//! Path segments are percent-decoded (a user id may hold `/`). Errors are JSON
//! `{"error": <code>, "message": <sentence>}`: 400 for a bad id, 404 for an unknown session,
//! 503 when the store does not answer. Revocations are `session.revoked` events.

use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use palisade_policy::session::{PublicId, UserId};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::admin::AdminRoutes;
use crate::body::{self, GatewayBody};
use crate::events::Event;
use crate::gateway::Gateway;

/// Adds the sessions routes to `routes`.
pub fn routes(routes: AdminRoutes) -> AdminRoutes {
    routes
        .route(
            Method::GET,
            "/v1/users/{id}/sessions",
            |gateway, request| Box::pin(list(gateway, request)),
        )
        .route(Method::DELETE, "/v1/sessions/{id}", |gateway, request| {
            Box::pin(revoke_one(gateway, request))
        })
        .route(
            Method::DELETE,
            "/v1/users/{id}/sessions",
            |gateway, request| Box::pin(revoke_user(gateway, request)),
        )
}

/// `GET /v1/users/{id}/sessions`.
async fn list(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<GatewayBody> {
    let user = match user_in(request.uri().path()) {
        Ok(user) => user,
        Err(message) => return bad_request(&message),
    };
    let services = gateway.services();
    let now = services.clock.now_ms();
    match services.sessions.sessions.sessions_of(&user, now).await {
        Ok(sessions) => answer(
            StatusCode::OK,
            json!({ "user_id": user, "sessions": sessions }),
        ),
        Err(err) => unavailable(&err),
    }
}

/// `DELETE /v1/sessions/{public id}`.
async fn revoke_one(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<GatewayBody> {
    let Some(text) = segment(request.uri().path(), 3) else {
        return bad_request("the session id is not valid percent-encoded UTF-8");
    };
    let Some(id) = PublicId::parse(&text) else {
        return bad_request("a session id is 32 lowercase hex digits");
    };
    let services = gateway.services();
    match services.sessions.sessions.revoke(&id).await {
        Ok(true) => {
            info!(session.id = %id, "session revoked through the admin API");
            services.events.publish(Event::SessionsRevoked {
                session_id: Some(id.to_string()),
                user_id: None,
                count: 1,
            });
            answer(
                StatusCode::OK,
                json!({ "revoked": 1, "session_id": id.to_string() }),
            )
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no live session has this id",
        ),
        Err(err) => unavailable(&err),
    }
}

/// `DELETE /v1/users/{id}/sessions`.
async fn revoke_user(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<GatewayBody> {
    let user = match user_in(request.uri().path()) {
        Ok(user) => user,
        Err(message) => return bad_request(&message),
    };
    let services = gateway.services();
    match services.sessions.sessions.revoke_user(&user).await {
        Ok(count) => {
            info!(user.id = %user, count, "user's sessions revoked through the admin API");
            services.events.publish(Event::SessionsRevoked {
                session_id: None,
                user_id: Some(user.to_string()),
                count,
            });
            answer(StatusCode::OK, json!({ "revoked": count, "user_id": user }))
        }
        Err(err) => unavailable(&err),
    }
}

/// The user id of `/v1/users/{id}/...`, or why it is unusable.
fn user_in(path: &str) -> Result<UserId, String> {
    let text = segment(path, 3)
        .ok_or_else(|| "the user id is not valid percent-encoded UTF-8".to_owned())?;
    UserId::parse(&text).map_err(|err| err.to_string())
}

/// The `index`th `/`-separated segment of `path` (0 is the empty one before the first
/// `/`), percent-decoded; `None` when missing or not UTF-8 after decoding.
fn segment(path: &str, index: usize) -> Option<String> {
    percent_decode(path.split('/').nth(index)?)
}

/// RFC 3986 §2.1 percent-decoding; a malformed escape makes the whole segment unusable.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn bad_request(message: &str) -> Response<GatewayBody> {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn unavailable(err: &palisade_policy::session::SessionError) -> Response<GatewayBody> {
    warn!(error = %err, "session store failed on an admin call");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the session store does not answer; try again",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<GatewayBody> {
    answer(status, json!({ "error": code, "message": message }))
}

fn answer(status: StatusCode, value: Value) -> Response<GatewayBody> {
    let mut response = Response::new(body::full(format!("{value}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded_strictly() {
        assert_eq!(
            segment("/v1/users/a%2Fb%20c/sessions", 3).as_deref(),
            Some("a/b c")
        );
        assert_eq!(
            segment("/v1/users/%C3%A9/sessions", 3).as_deref(),
            Some("é")
        );
        assert_eq!(segment("/v1/users/%2/sessions", 3), None);
        assert_eq!(segment("/v1/users/%zz/sessions", 3), None);
        assert_eq!(segment("/v1/users/%+1/sessions", 3), None);
        assert_eq!(segment("/v1/users/%FF/sessions", 3), None);
        assert_eq!(segment("/v1/users", 3), None);
    }

    #[test]
    fn user_ids_from_the_path_are_validated() {
        assert!(user_in("/v1/users/alice/sessions").is_ok());
        let refused = user_in("/v1/users/%0Aadmin/sessions").expect_err("control character");
        assert!(refused.contains("control character"), "{refused}");
    }
}
