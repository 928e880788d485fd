//! Who a session or token belongs to: a validated user id and a validated set of roles.
//!
//! Both come from outside (an upstream response header, a JWT claim) and end up in headers
//! sent upstream and in logs, so they are checked once here and are plain, printable text
//! afterwards. Anything doubtful is refused with a reason rather than repaired.

use std::fmt;

use serde::Serialize;

/// The longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// The most roles one identity may carry.
pub const MAX_ROLES: usize = 32;
/// The longest role name accepted, in bytes.
pub const MAX_ROLE_LEN: usize = 64;

/// A user id: 1 to 256 bytes of UTF-8 without control characters and without leading or
/// trailing whitespace (so `"admin"` and `" admin"` can never be told apart by accident).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

/// Why a user id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// The id was empty.
    #[error("user id is empty")]
    Empty,
    /// The id was longer than [`MAX_USER_ID_LEN`] bytes.
    #[error("user id is {0} bytes long; the limit is {MAX_USER_ID_LEN}")]
    TooLong(usize),
    /// The id was not valid UTF-8.
    #[error("user id is not valid UTF-8")]
    NotUtf8,
    /// The id held a control character (including CR, LF, NUL, DEL).
    #[error("user id contains a control character")]
    ControlCharacter,
    /// The id started or ended with whitespace.
    #[error("user id starts or ends with whitespace")]
    SurroundingWhitespace,
}

impl UserId {
    /// Validates a user id given as text.
    pub fn parse(text: &str) -> Result<Self, UserIdError> {
        if text.is_empty() {
            return Err(UserIdError::Empty);
        }
        if text.len() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong(text.len()));
        }
        if text.chars().any(char::is_control) {
            return Err(UserIdError::ControlCharacter);
        }
        if text.trim() != text {
            return Err(UserIdError::SurroundingWhitespace);
        }
        Ok(Self(text.to_owned()))
    }

    /// Validates a user id given as raw header bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UserIdError> {
        if bytes.len() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| UserIdError::NotUtf8)?;
        Self::parse(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The roles of an identity, in the order given, without duplicates. Each role is 1 to 64
/// bytes of ASCII letters, digits and `_ - . :`, so the list can be written back as
/// `a,b` in a header without any escaping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Roles(Vec<String>);

/// Why a list of roles was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    /// More than [`MAX_ROLES`] roles.
    #[error("more than {MAX_ROLES} roles")]
    TooMany,
    /// A role name was empty, too long, or used a character outside `A-Z a-z 0-9 _ - . :`.
    #[error("role {0:?} is not 1 to {MAX_ROLE_LEN} characters of letters, digits, _ - . :")]
    InvalidRole(String),
}

impl Roles {
    /// No roles.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a comma-separated list (`"admin, editor"`); an empty or blank list is no roles.
    pub fn parse_list(text: &str) -> Result<Self, RolesError> {
        if text.trim().is_empty() {
            return Ok(Self::none());
        }
        Self::from_names(text.split(','))
    }

    /// Reads a comma-separated list given as raw header bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RolesError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| RolesError::InvalidRole(String::from_utf8_lossy(bytes).into_owned()))?;
        Self::parse_list(text)
    }

    /// Validates role names given one by one (surrounding whitespace is trimmed).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, RolesError> {
        let mut roles: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim();
            if !is_role_name(name) {
                return Err(RolesError::InvalidRole(truncated(name)));
            }
            if roles.iter().any(|r| r == name) {
                continue;
            }
            if roles.len() == MAX_ROLES {
                return Err(RolesError::TooMany);
            }
            roles.push(name.to_owned());
        }
        Ok(Self(roles))
    }

    /// The roles, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether there are no roles.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The header form: `admin,editor` (empty for no roles).
    pub fn to_header_value(&self) -> String {
        self.0.join(",")
    }
}

fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROLE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Keeps error messages short when a role name is huge.
fn truncated(name: &str) -> String {
    name.chars().take(MAX_ROLE_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_that_could_confuse_a_reader_are_refused() {
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(
            UserId::parse(" admin"),
            Err(UserIdError::SurroundingWhitespace)
        );
        assert_eq!(
            UserId::parse("ad\r\nmin"),
            Err(UserIdError::ControlCharacter)
        );
        assert_eq!(
            UserId::parse("a\u{85}b"),
            Err(UserIdError::ControlCharacter)
        );
        assert_eq!(UserId::from_bytes(b"\xff\xfe"), Err(UserIdError::NotUtf8));
        let long = "u".repeat(MAX_USER_ID_LEN + 1);
        assert_eq!(UserId::parse(&long), Err(UserIdError::TooLong(257)));
    }

    #[test]
    fn user_ids_may_be_any_printable_text() {
        for ok in [
            "42",
            "alice@example.com",
            "Zoë Ünicode",
            "a b",
            &"u".repeat(256),
        ] {
            assert_eq!(
                UserId::parse(ok).map(|u| u.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn roles_are_trimmed_deduplicated_and_written_back_without_spaces() {
        let roles = Roles::parse_list(" admin, editor ,admin").expect("valid roles");
        assert_eq!(roles.to_header_value(), "admin,editor");
        assert!(
            Roles::parse_list("  ")
                .expect("blank is no roles")
                .is_empty()
        );
    }

    #[test]
    fn roles_with_separators_or_too_many_entries_are_refused() {
        assert!(Roles::parse_list("admin;x=1").is_err());
        assert!(Roles::parse_list("a,,b").is_err());
        let many: Vec<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
        assert_eq!(Roles::parse_list(&many.join(",")), Err(RolesError::TooMany));
    }
}
