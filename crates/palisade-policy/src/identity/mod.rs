//! Who a request belongs to: a palisade session, or a JWT in `Authorization: Bearer` or a
//! configured cookie. The gateway sends the result upstream as `Palisade-User-Id`,
//! `Palisade-Session-Id` and `Palisade-User-Roles`, after removing any copy the client sent.
//!
//! Precedence: a valid palisade session wins; otherwise a bearer token; otherwise the
//! token cookie. Pure: no I/O, no clock, no logging; tokens never appear in `Debug` output.

pub mod config;
pub mod jwt;

use sha2::{Digest, Sha256};

use crate::clock::UnixMillis;
use crate::session::cookie::{CookieLookup, find_cookie};
use crate::session::manager::ActiveSession;
use crate::session::secret::PublicId;
use crate::session::user::{Roles, UserId};

pub use config::{IdentityConfig, JwtConfig, JwtSettings, KeySource, OnInvalid};
pub use jwt::{JwtRejection, JwtVerifier, KeySet};

/// Upstream request header naming the user.
pub const USER_ID_HEADER: &str = "palisade-user-id";
/// Upstream request header naming the session (public id).
pub const SESSION_ID_HEADER: &str = "palisade-session-id";
/// Upstream request header listing the roles (`a,b`).
pub const USER_ROLES_HEADER: &str = "palisade-user-roles";
/// Identity headers the gateway removes from every client request, session or not.
pub const IDENTITY_HEADERS: [&str; 3] = [USER_ID_HEADER, SESSION_ID_HEADER, USER_ROLES_HEADER];

/// The identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user (rule field `palisade.user.id`, rate-limit key `user`).
    pub user_id: UserId,
    /// The roles.
    pub roles: Roles,
    /// Where it came from.
    pub source: IdentitySource,
}

/// Where an identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A palisade session cookie.
    Session(PublicId),
    /// A JWT in `Authorization: Bearer` (not ambient: no CSRF check).
    Bearer,
    /// A JWT in a cookie (ambient: CSRF applies, bound to [`token_binding`]).
    Cookie {
        /// The CSRF binding derived from the token.
        binding: String,
    },
}

impl Identity {
    /// The identity of a valid session.
    pub fn from_session(session: &ActiveSession) -> Self {
        Self {
            user_id: session.user_id.clone(),
            roles: session.roles.clone(),
            source: IdentitySource::Session(session.public_id),
        }
    }

    /// The value CSRF tokens must be bound to, when the identity rides on a cookie (the
    /// browser sends it by itself); `None` for a bearer token.
    pub fn csrf_binding(&self) -> Option<String> {
        match &self.source {
            IdentitySource::Session(id) => Some(id.to_string()),
            IdentitySource::Cookie { binding } => Some(binding.clone()),
            IdentitySource::Bearer => None,
        }
    }

    /// The headers to add to the upstream request (after removing [`IDENTITY_HEADERS`]).
    /// Values are printable (validated at the source); use `HeaderValue::from_bytes`, as
    /// user ids may hold non-ASCII UTF-8.
    pub fn upstream_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(USER_ID_HEADER, self.user_id.as_str().to_owned())];
        if let IdentitySource::Session(id) = &self.source {
            headers.push((SESSION_ID_HEADER, id.to_string()));
        }
        if !self.roles.is_empty() {
            headers.push((USER_ROLES_HEADER, self.roles.to_header_value()));
        }
        headers
    }
}

/// The CSRF binding of a JWT carried in a cookie: a digest of the token, so a CSRF token
/// minted for one login does not work for another.
pub fn token_binding(token: &[u8]) -> String {
    let digest = Sha256::digest(token);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("jwt-{hex}")
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case, RFC 9110
/// §11.1); `None` for other schemes or an empty token.
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The result of looking for a JWT identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtOutcome {
    /// No token was presented.
    Absent,
    /// A valid token.
    Valid(Identity),
    /// An invalid token: count it, and answer 401 when `reject` (`on_invalid = "reject"`),
    /// else go on anonymously.
    Invalid {
        /// Why.
        rejection: JwtRejection,
        /// Whether the request must be refused with 401.
        reject: bool,
    },
}

impl JwtVerifier {
    /// Looks for a token in `Authorization` (first) or the configured cookie, and verifies
    /// it at `now`.
    pub fn identify<'a>(
        &self,
        authorization: Option<&[u8]>,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
        now: UnixMillis,
    ) -> JwtOutcome {
        let (token, from_cookie) = match authorization.and_then(bearer_token) {
            Some(token) => (token, false),
            None => match self.cookie_token(cookie_headers) {
                Ok(Some(token)) => (token, true),
                Ok(None) => return JwtOutcome::Absent,
                Err(rejection) => return self.invalid(rejection),
            },
        };
        match self.verify(token, now) {
            Ok(verified) => {
                let source = if from_cookie {
                    IdentitySource::Cookie {
                        binding: token_binding(token),
                    }
                } else {
                    IdentitySource::Bearer
                };
                let (user_id, roles) = (verified.user_id, verified.roles);
                JwtOutcome::Valid(Identity {
                    user_id,
                    roles,
                    source,
                })
            }
            Err(rejection) => self.invalid(rejection),
        }
    }

    fn cookie_token<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<&'a [u8]>, JwtRejection> {
        let Some(name) = self.settings().cookie.as_deref() else {
            return Ok(None);
        };
        match find_cookie(cookie_headers, name, jwt::MAX_TOKEN_LEN) {
            CookieLookup::Absent => Ok(None),
            CookieLookup::Found(token) => Ok(Some(token)),
            CookieLookup::Oversized => Err(JwtRejection::TooLarge),
            CookieLookup::Ambiguous => Err(JwtRejection::Malformed),
        }
    }

    fn invalid(&self, rejection: JwtRejection) -> JwtOutcome {
        let reject = self.settings().on_invalid == OnInvalid::Reject;
        JwtOutcome::Invalid { rejection, reject }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_in_any_scheme_case_and_other_schemes_ignored() {
        assert_eq!(
            bearer_token(b"Bearer abc.def.ghi"),
            Some(&b"abc.def.ghi"[..])
        );
        assert_eq!(bearer_token(b"  bearer   tok  "), Some(&b"tok"[..]));
        assert_eq!(bearer_token(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn a_session_identity_sends_user_session_and_roles_upstream() {
        let identity = Identity {
            user_id: UserId::parse("alice").expect("valid"),
            roles: Roles::parse_list("admin,editor").expect("valid"),
            source: IdentitySource::Session(PublicId::from_bytes([0xab; 16])),
        };
        let headers = identity.upstream_headers();
        assert_eq!(headers[0], (USER_ID_HEADER, "alice".to_owned()));
        assert_eq!(headers[1], (SESSION_ID_HEADER, "ab".repeat(16)));
        assert_eq!(headers[2], (USER_ROLES_HEADER, "admin,editor".to_owned()));
        assert_eq!(identity.csrf_binding(), Some("ab".repeat(16)));
    }

    #[test]
    fn a_bearer_identity_has_no_session_header_and_no_csrf_binding() {
        let identity = Identity {
            user_id: UserId::parse("svc").expect("valid"),
            roles: Roles::none(),
            source: IdentitySource::Bearer,
        };
        assert_eq!(
            identity.upstream_headers(),
            vec![(USER_ID_HEADER, "svc".to_owned())]
        );
        assert_eq!(identity.csrf_binding(), None);
    }

    #[test]
    fn token_bindings_differ_per_token() {
        assert_ne!(token_binding(b"a.b.c"), token_binding(b"a.b.d"));
        assert_eq!(token_binding(b"a.b.c").len(), 36);
    }
}
