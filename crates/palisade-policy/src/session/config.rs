//! The `[session]` section of `palisade.toml`, and its validated form.
//!
//! ```toml
//! [session]
//! cookie_name = "__Host-palisade_session"
//! insecure_cookies = false      # true: plain-HTTP development only; drops Secure and __Host-
//! idle_timeout = "7d"           # since last use
//! rotate_after = "24h"          # a new secret after this long
//! rotation_grace = "60s"        # the replaced secret keeps working this long
//! absolute_timeout = "30d"      # since login, never extended
//! login_header = "Palisade-Session-Login"
//! roles_header = "Palisade-Session-Roles"
//! logout_header = "Palisade-Session-Logout"
//! rotate_header = "Palisade-Session-Rotate"
//! store = "sqlite"              # memory | sqlite | redis
//! sqlite_path = "palisade-sessions.db"
//! redis_url = "redis://127.0.0.1:6379"
//! redis_prefix = "palisade:session:"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

/// The cookie name used unless configured otherwise.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-palisade_session";

/// `[session]` as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Drop `Secure` and the `__Host-`/`__Secure-` prefix, for local development over plain
    /// HTTP. Weakens security; the gateway warns at start-up.
    pub insecure_cookies: bool,
    /// A session unused for this long ends.
    pub idle_timeout: HumanDuration,
    /// A session whose secret is this old gets a new one on its next request.
    pub rotate_after: HumanDuration,
    /// How long a replaced secret keeps working, so parallel requests do not fail.
    pub rotation_grace: HumanDuration,
    /// A session ends this long after login, whatever happens.
    pub absolute_timeout: HumanDuration,
    /// Response header by which the upstream logs a user in (value: the user id).
    pub login_header: String,
    /// Response header carrying the roles of a login (value: `a,b`).
    pub roles_header: String,
    /// Response header by which the upstream ends the current session (value: `1`).
    pub logout_header: String,
    /// Response header by which the upstream asks for a new secret now (value: `1`).
    pub rotate_header: String,
    /// Where sessions are kept.
    pub store: StoreKind,
    /// The SQLite database file, for `store = "sqlite"`.
    pub sqlite_path: PathBuf,
    /// The Redis server, for `store = "redis"`: `redis://` or `rediss://` (TLS).
    pub redis_url: String,
    /// Prefix of every Redis key holding session data, for `store = "redis"`.
    pub redis_prefix: String,
}

/// Which session store backs the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In process; sessions end when palisade stops. One instance only.
    Memory,
    /// An embedded SQLite file; sessions survive a restart. One instance only.
    Sqlite,
    /// A Redis server shared by every instance; expiry through Redis TTLs.
    Redis,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let duration = |ms| HumanDuration(Duration::from_millis(ms));
        Self {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            insecure_cookies: false,
            idle_timeout: duration(7 * 86_400_000),
            rotate_after: duration(86_400_000),
            rotation_grace: duration(60_000),
            absolute_timeout: duration(30 * 86_400_000),
            login_header: "Palisade-Session-Login".to_owned(),
            roles_header: "Palisade-Session-Roles".to_owned(),
            logout_header: "Palisade-Session-Logout".to_owned(),
            rotate_header: "Palisade-Session-Rotate".to_owned(),
            store: StoreKind::Sqlite,
            sqlite_path: PathBuf::from("palisade-sessions.db"),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_prefix: "palisade:session:".to_owned(),
        }
    }
}

/// A `[session]` value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[session] {0}")]
pub struct SessionConfigError(String);

/// Session lifetimes in milliseconds, as the lifecycle code uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// A session unused for this long ends.
    pub idle_ms: u64,
    /// A secret this old is replaced on the next request.
    pub rotate_after_ms: u64,
    /// How long a replaced secret keeps working.
    pub grace_ms: u64,
    /// A session ends this long after login.
    pub absolute_ms: u64,
}

/// Lower-cased names of the response headers through which the upstream steers sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveHeaders {
    /// Logs a user in.
    pub login: String,
    /// Roles of the login.
    pub roles: String,
    /// Ends the current session.
    pub logout: String,
    /// Rotates the current session's secret now.
    pub rotate: String,
}

impl DirectiveHeaders {
    /// Whether `name` (any case) is one of these headers, which must never reach the client.
    pub fn is_directive(&self, name: &str) -> bool {
        [&self.login, &self.roles, &self.logout, &self.rotate]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The validated `[session]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The cookie name actually used (prefix dropped when `insecure_cookies`).
    pub cookie_name: String,
    /// Whether cookies are sent without `Secure` (development over plain HTTP).
    pub insecure_cookies: bool,
    /// The lifetimes.
    pub lifetimes: Lifetimes,
    /// The directive header names.
    pub headers: DirectiveHeaders,
}

impl SessionConfig {
    /// Checks the section and turns it into the form the session code uses.
    pub fn validate(&self) -> Result<SessionSettings, SessionConfigError> {
        let err = |m: String| SessionConfigError(m);
        if !is_token(&self.cookie_name) {
            return Err(err(format!(
                "cookie_name {:?} is not a valid cookie name (letters, digits, ! # $ % & ' * + \
                 - . ^ _ ` | ~)",
                self.cookie_name
            )));
        }
        let lifetimes = self.lifetimes()?;
        let headers = self.directive_headers()?;
        let cookie_name = if self.insecure_cookies {
            strip_secure_prefix(&self.cookie_name).to_owned()
        } else {
            self.cookie_name.clone()
        };
        if cookie_name.is_empty() {
            return Err(err("cookie_name is only a prefix".into()));
        }
        Ok(SessionSettings {
            cookie_name,
            insecure_cookies: self.insecure_cookies,
            lifetimes,
            headers,
        })
    }

    fn lifetimes(&self) -> Result<Lifetimes, SessionConfigError> {
        let ms = |d: HumanDuration| u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX);
        let l = Lifetimes {
            idle_ms: ms(self.idle_timeout),
            rotate_after_ms: ms(self.rotate_after),
            grace_ms: ms(self.rotation_grace),
            absolute_ms: ms(self.absolute_timeout),
        };
        let problem = if l.idle_ms == 0 || l.rotate_after_ms == 0 || l.absolute_ms == 0 {
            Some("idle_timeout, rotate_after and absolute_timeout must be longer than zero")
        } else if l.grace_ms >= l.rotate_after_ms {
            Some("rotation_grace must be shorter than rotate_after")
        } else if l.idle_ms > l.absolute_ms {
            Some("idle_timeout must not be longer than absolute_timeout")
        } else {
            None
        };
        match problem {
            Some(p) => Err(SessionConfigError(p.to_owned())),
            None => Ok(l),
        }
    }

    fn directive_headers(&self) -> Result<DirectiveHeaders, SessionConfigError> {
        let names = [
            ("login_header", &self.login_header),
            ("roles_header", &self.roles_header),
            ("logout_header", &self.logout_header),
            ("rotate_header", &self.rotate_header),
        ];
        for (key, name) in names {
            if !is_token(name) {
                return Err(SessionConfigError(format!(
                    "{key} {name:?} is not a valid header name"
                )));
            }
        }
        Ok(DirectiveHeaders {
            login: self.login_header.to_ascii_lowercase(),
            roles: self.roles_header.to_ascii_lowercase(),
            logout: self.logout_header.to_ascii_lowercase(),
            rotate: self.rotate_header.to_ascii_lowercase(),
        })
    }
}

impl SessionSettings {
    /// The defaults, validated.
    pub fn defaults() -> Self {
        SessionConfig::default()
            .validate()
            .expect("the default session configuration is valid")
    }
}

/// `__Host-` and `__Secure-` cookies are refused by browsers without `Secure`
/// (RFC 6265bis §4.1.3), so an insecure development setup must drop the prefix.
fn strip_secure_prefix(name: &str) -> &str {
    name.strip_prefix("__Host-")
        .or_else(|| name.strip_prefix("__Secure-"))
        .unwrap_or(name)
}

/// An RFC 9110 §5.6.2 token: the grammar of header names and cookie names.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let s = SessionSettings::defaults();
        assert_eq!(s.cookie_name, "__Host-palisade_session");
        assert_eq!(s.lifetimes.idle_ms, 7 * 86_400_000);
        assert_eq!(s.lifetimes.rotate_after_ms, 86_400_000);
        assert_eq!(s.lifetimes.grace_ms, 60_000);
        assert_eq!(s.lifetimes.absolute_ms, 30 * 86_400_000);
        assert_eq!(s.headers.login, "palisade-session-login");
        assert_eq!(SessionConfig::default().store, StoreKind::Sqlite);
    }

    #[test]
    fn insecure_cookies_drop_the_host_prefix() {
        let config = SessionConfig {
            insecure_cookies: true,
            ..Default::default()
        };
        assert_eq!(
            config.validate().map(|s| s.cookie_name),
            Ok("palisade_session".into())
        );
    }

    #[test]
    fn a_grace_as_long_as_the_rotation_period_is_refused() {
        let config = SessionConfig {
            rotation_grace: "24h".parse().expect("duration"),
            ..Default::default()
        };
        let err = config.validate().expect_err("grace too long");
        assert!(err.to_string().contains("rotation_grace"), "{err}");
    }

    #[test]
    fn cookie_and_header_names_must_be_tokens() {
        let bad_cookie = SessionConfig {
            cookie_name: "a;b".into(),
            ..Default::default()
        };
        assert!(bad_cookie.validate().is_err());
        let bad_header = SessionConfig {
            login_header: "X Login".into(),
            ..Default::default()
        };
        assert!(bad_header.validate().is_err());
    }
}
