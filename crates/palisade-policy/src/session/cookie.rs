//! Reading cookies from `Cookie` request headers and writing `Set-Cookie` values.
//!
//! The reader is the first code to touch a client's cookies, so it takes anything: missing
//! `=`, stray `;`, quotes, control bytes, several `Cookie` headers (HTTP/2 splits them,
//! RFC 9113 §8.2.3). It never guesses: when one name carries two different values (a
//! cookie tossed in from a sibling domain, say) the answer is [`CookieLookup::Ambiguous`],
//! never one of them, so one browser can never be handed another's session.

use std::fmt;

use zeroize::Zeroize;

use super::config::SessionSettings;
use super::secret::{ENCODED_SECRET_LEN, SessionSecret};

/// What a lookup of one cookie name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieLookup<'a> {
    /// No cookie of that name.
    Absent,
    /// One value (possibly sent several times, always identical).
    Found(&'a [u8]),
    /// Several different values: refuse them all.
    Ambiguous,
    /// A value longer than the caller's limit.
    Oversized,
}

/// Finds the cookie `name` in every given `Cookie` header value. Values longer than
/// `max_len` bytes are reported as [`CookieLookup::Oversized`] without being returned.
pub fn find_cookie<'a>(
    headers: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
    max_len: usize,
) -> CookieLookup<'a> {
    let mut found: Option<&'a [u8]> = None;
    let mut oversized = false;
    for header in headers {
        for value in values_named(header, name.as_bytes()) {
            if value.len() > max_len {
                oversized = true;
                continue;
            }
            match found {
                Some(prev) if prev != value => return CookieLookup::Ambiguous,
                _ => found = Some(value),
            }
        }
    }
    match (found, oversized) {
        (Some(_), true) => CookieLookup::Ambiguous,
        (Some(value), false) => CookieLookup::Found(value),
        (None, true) => CookieLookup::Oversized,
        (None, false) => CookieLookup::Absent,
    }
}

/// The values of every `name=value` pair named `name` in one header.
fn values_named<'a, 'n>(
    header: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    header.split(|&b| b == b';').filter_map(move |pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        (key == name).then(|| unquote(value))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// RFC 6265 §4.1.1 allows a cookie value wrapped in one pair of double quotes.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// What the session cookie of a request holds.
#[derive(Debug)]
pub enum SessionCookie {
    /// No session cookie.
    Absent,
    /// A well-formed secret.
    Present(SessionSecret),
    /// A session cookie that is not a well-formed secret (garbage, truncated, oversized).
    Malformed,
    /// Several different session cookies: none is used.
    Ambiguous,
}

/// Reads the session cookie named in `settings` from the request's `Cookie` headers.
pub fn read_session_cookie<'a>(
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    settings: &SessionSettings,
) -> SessionCookie {
    match find_cookie(cookie_headers, &settings.cookie_name, ENCODED_SECRET_LEN) {
        CookieLookup::Absent => SessionCookie::Absent,
        CookieLookup::Ambiguous => SessionCookie::Ambiguous,
        CookieLookup::Oversized => SessionCookie::Malformed,
        CookieLookup::Found(value) => std::str::from_utf8(value)
            .ok()
            .and_then(SessionSecret::parse)
            .map_or(SessionCookie::Malformed, SessionCookie::Present),
    }
}

/// A `Set-Cookie` header value. It may carry a secret, so its `Debug` is redacted and it is
/// zeroized on drop; the gateway copies it into the response and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie(String);

impl SetCookie {
    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cookie value set with the given attributes. `value` must already be a valid
    /// cookie value (the callers give base64url or JWT text).
    pub(crate) fn build(name: &str, value: &str, attrs: CookieAttributes) -> Self {
        let mut text = format!("{name}={value}; Path=/; Max-Age={}", attrs.max_age_secs);
        if attrs.secure {
            text.push_str("; Secure");
        }
        if attrs.http_only {
            text.push_str("; HttpOnly");
        }
        text.push_str("; SameSite=Lax");
        Self(text)
    }
}

impl Drop for SetCookie {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.split('=').next().unwrap_or_default();
        write!(f, "SetCookie({name}=<redacted>)")
    }
}

/// The attributes of a cookie palisade sets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieAttributes {
    pub secure: bool,
    pub http_only: bool,
    pub max_age_secs: u64,
}

/// `Set-Cookie` carrying a session secret: `Path=/; Secure; HttpOnly; SameSite=Lax`, kept
/// by the browser for `max_age_secs` (the session's remaining absolute lifetime).
pub fn session_cookie(
    settings: &SessionSettings,
    secret: &SessionSecret,
    max_age_secs: u64,
) -> SetCookie {
    let attrs = CookieAttributes {
        secure: !settings.insecure_cookies,
        http_only: true,
        max_age_secs,
    };
    SetCookie::build(&settings.cookie_name, &secret.encode(), attrs)
}

/// `Set-Cookie` that makes the browser drop its session cookie.
pub fn clear_session_cookie(settings: &SessionSettings) -> SetCookie {
    let attrs = CookieAttributes {
        secure: !settings.insecure_cookies,
        http_only: true,
        max_age_secs: 0,
    };
    SetCookie::build(&settings.cookie_name, "", attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::config::SessionConfig;

    const NAME: &str = "__Host-palisade_session";

    fn lookup<'a>(headers: &[&'a str]) -> CookieLookup<'a> {
        find_cookie(headers.iter().map(|h| h.as_bytes()), NAME, 64)
    }

    #[test]
    fn finds_the_named_cookie_among_others_and_garbage() {
        let header = format!("a=1; ;junk; {NAME}=abc ; b=\"2\"");
        assert_eq!(lookup(&[&header]), CookieLookup::Found(b"abc"));
        assert_eq!(lookup(&["a=1; palisade_session=x"]), CookieLookup::Absent);
    }

    #[test]
    fn identical_duplicates_are_one_cookie_and_different_ones_are_ambiguous() {
        let same = format!("{NAME}=abc; {NAME}=\"abc\"");
        assert_eq!(lookup(&[&same]), CookieLookup::Found(b"abc"));
        let split = [format!("{NAME}=abc"), format!("{NAME}=abd")];
        assert_eq!(lookup(&[&split[0], &split[1]]), CookieLookup::Ambiguous);
    }

    #[test]
    fn an_oversized_duplicate_makes_the_lookup_ambiguous() {
        let header = format!("{NAME}=abc; {NAME}={}", "x".repeat(65));
        assert_eq!(lookup(&[&header]), CookieLookup::Ambiguous);
        let alone = format!("{NAME}={}", "x".repeat(65));
        assert_eq!(lookup(&[&alone]), CookieLookup::Oversized);
    }

    #[test]
    fn session_cookies_have_the_secure_defaults() {
        let settings = SessionSettings::defaults();
        let secret = SessionSecret::from_bytes([5; 32]);
        let cookie = session_cookie(&settings, &secret, 3600);
        let expected = format!(
            "{NAME}={}; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
            &*secret.encode()
        );
        assert_eq!(cookie.as_str(), expected);
        assert!(!format!("{cookie:?}").contains(&*secret.encode()));
    }

    #[test]
    fn insecure_cookies_drop_secure_and_the_prefix() {
        let config = SessionConfig {
            insecure_cookies: true,
            ..Default::default()
        };
        let settings = config.validate().expect("valid");
        let cookie = clear_session_cookie(&settings);
        assert_eq!(
            cookie.as_str(),
            "palisade_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn a_session_cookie_that_is_not_a_secret_is_malformed() {
        let settings = SessionSettings::defaults();
        let read = |h: &str| read_session_cookie([h.as_bytes()], &settings);
        assert!(matches!(
            read(&format!("{NAME}=short")),
            SessionCookie::Malformed
        ));
        assert!(matches!(
            read(&format!("{NAME}={}", "A".repeat(44))),
            SessionCookie::Malformed
        ));
        assert!(matches!(read("other=1"), SessionCookie::Absent));
        let good = SessionSecret::from_bytes([5; 32]).encode();
        assert!(matches!(
            read(&format!("{NAME}={}", &*good)),
            SessionCookie::Present(_)
        ));
    }
}
