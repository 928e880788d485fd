//! What the upstream asks of palisade through response headers: log a user in, log the
//! current session out, rotate it now.
//!
//! Precedence when several arrive together: a login replaces the current session (so it
//! also ends it), a logout beats a rotation. A directive that cannot be honoured (an empty or
//! oversized user id, bad roles, an unexpected value) is reported as an error, never acted on
//! half-way, and never turned into a session.

use super::config::DirectiveHeaders;
use super::user::{Roles, RolesError, UserId, UserIdError};

/// A validated login request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user to log in.
    pub user_id: UserId,
    /// The roles they get.
    pub roles: Roles,
}

/// The session directives of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// Start a new session for this user (replacing the current one).
    pub login: Option<Login>,
    /// End the current session.
    pub logout: bool,
    /// Give the current session a new secret now.
    pub rotate: bool,
}

/// A directive that was refused; each is an error event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    /// The login header held an unusable user id.
    #[error("upstream login refused: {0}")]
    InvalidUserId(#[from] UserIdError),
    /// The roles header held unusable roles; the login is refused with it.
    #[error("upstream login refused: {0}")]
    InvalidRoles(#[from] RolesError),
    /// A directive header appeared more than once with different values.
    #[error("response header {0} was sent more than once with different values")]
    Repeated(String),
    /// Roles were sent without a login.
    #[error("response header {0} was sent without a login; ignored")]
    RolesWithoutLogin(String),
    /// A logout or rotate header held something other than `1` or `true`.
    #[error("response header {0} must be 1 or true")]
    InvalidFlag(String),
}

impl DirectiveError {
    /// A stable name for events and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidUserId(_) => "invalid_user_id",
            Self::InvalidRoles(_) => "invalid_roles",
            Self::Repeated(_) => "repeated_header",
            Self::RolesWithoutLogin(_) => "roles_without_login",
            Self::InvalidFlag(_) => "invalid_flag",
        }
    }
}

/// The raw values of the directive headers found in one response.
#[derive(Default)]
struct Raw<'a> {
    login: Option<&'a [u8]>,
    roles: Option<&'a [u8]>,
    logout: Option<&'a [u8]>,
    rotate: Option<&'a [u8]>,
}

impl Directives {
    /// Reads the directives from response headers given as `(name, value)` pairs (any
    /// name case; headers that are not directives are ignored). Returns what can be acted on
    /// and every refused directive.
    pub fn from_headers<'a>(
        names: &DirectiveHeaders,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> (Self, Vec<DirectiveError>) {
        let mut raw = Raw::default();
        let mut errors = Vec::new();
        for (name, value) in headers {
            // Every response header passes here: compare without a lower-case copy of each.
            let slot = match name {
                n if lowers_to(n, &names.login) => &mut raw.login,
                n if lowers_to(n, &names.roles) => &mut raw.roles,
                n if lowers_to(n, &names.logout) => &mut raw.logout,
                n if lowers_to(n, &names.rotate) => &mut raw.rotate,
                _ => continue,
            };
            if slot.is_some_and(|prev| prev != value) {
                errors.push(DirectiveError::Repeated(name.to_ascii_lowercase()));
            }
            slot.get_or_insert(value);
        }
        if errors.is_empty() {
            let directives = Self::from_raw(names, &raw, &mut errors);
            (directives, errors)
        } else {
            // Conflicting copies of a directive: act on none of them.
            (Self::default(), errors)
        }
    }

    fn from_raw(names: &DirectiveHeaders, raw: &Raw<'_>, errors: &mut Vec<DirectiveError>) -> Self {
        let login = raw.login.and_then(|user| match login(user, raw.roles) {
            Ok(login) => Some(login),
            Err(e) => {
                errors.push(e);
                None
            }
        });
        if raw.login.is_none() && raw.roles.is_some() {
            errors.push(DirectiveError::RolesWithoutLogin(names.roles.clone()));
        }
        let mut flag = |value: Option<&[u8]>, name: &str| match value {
            None => false,
            Some(v) if is_true(v) => true,
            Some(_) => {
                errors.push(DirectiveError::InvalidFlag(name.to_owned()));
                false
            }
        };
        let logout = flag(raw.logout, &names.logout);
        let rotate = flag(raw.rotate, &names.rotate);
        Self {
            login,
            logout,
            rotate,
        }
    }

    /// Whether the response asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.login.is_none() && !self.logout && !self.rotate
    }
}

fn login(user: &[u8], roles: Option<&[u8]>) -> Result<Login, DirectiveError> {
    let user_id = UserId::from_bytes(user)?;
    let roles = roles
        .map(Roles::from_bytes)
        .transpose()?
        .unwrap_or_default();
    Ok(Login { user_id, roles })
}

fn is_true(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    value == b"1" || value.eq_ignore_ascii_case(b"true")
}

/// Whether `name` lower-cased is `lower` (`name.to_ascii_lowercase() == lower`).
fn lowers_to(name: &str, lower: &str) -> bool {
    name.len() == lower.len()
        && name
            .bytes()
            .zip(lower.bytes())
            .all(|(n, l)| n.to_ascii_lowercase() == l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::config::SessionSettings;

    fn read(headers: &[(&str, &str)]) -> (Directives, Vec<DirectiveError>) {
        let names = SessionSettings::defaults().headers;
        Directives::from_headers(&names, headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn a_login_with_roles_is_read_in_any_header_case() {
        let (d, errors) = read(&[
            ("palisade-session-login", "alice"),
            ("PALISADE-SESSION-ROLES", "admin,editor"),
            ("content-type", "text/html"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        let login = d.login.expect("login");
        assert_eq!(login.user_id.as_str(), "alice");
        assert_eq!(login.roles.to_header_value(), "admin,editor");
    }

    #[test]
    fn an_empty_or_oversized_user_id_is_an_error_not_a_session() {
        let (d, errors) = read(&[("Palisade-Session-Login", "")]);
        assert_eq!(d.login, None);
        assert_eq!(
            errors,
            vec![DirectiveError::InvalidUserId(UserIdError::Empty)]
        );
        let long = "u".repeat(300);
        let (d, errors) = read(&[("Palisade-Session-Login", &long)]);
        assert_eq!(d.login, None);
        assert_eq!(errors[0].as_str(), "invalid_user_id");
    }

    #[test]
    fn bad_roles_refuse_the_whole_login() {
        let (d, errors) = read(&[
            ("Palisade-Session-Login", "alice"),
            ("Palisade-Session-Roles", "admin\r\nx"),
        ]);
        assert_eq!(d.login, None);
        assert_eq!(errors[0].as_str(), "invalid_roles");
    }

    #[test]
    fn two_different_logins_in_one_response_are_refused() {
        let (d, errors) = read(&[
            ("Palisade-Session-Login", "alice"),
            ("Palisade-Session-Login", "mallory"),
        ]);
        assert!(d.is_empty());
        assert_eq!(errors[0].as_str(), "repeated_header");
    }

    #[test]
    fn logout_and_rotate_flags_accept_one_or_true_only() {
        let (d, errors) = read(&[
            ("Palisade-Session-Logout", "1"),
            ("Palisade-Session-Rotate", "TRUE"),
        ]);
        assert!(d.logout && d.rotate && errors.is_empty());
        let (d, errors) = read(&[("Palisade-Session-Logout", "yes please")]);
        assert!(!d.logout);
        assert_eq!(errors[0].as_str(), "invalid_flag");
    }
}
