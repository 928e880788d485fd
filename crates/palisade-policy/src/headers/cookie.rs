//! Hardening of `Set-Cookie` headers sent by the upstream (RFC 6265 §4.1).
//!
//! Attributes are added only when missing, compared by name without regard to case, so a
//! cookie the application already marked is left exactly as it was. The cookie's own
//! name=value pair is never read as an attribute: a value containing the word "secure" does
//! not stop `Secure` from being added.

use http::HeaderValue;

/// What to add to upstream cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookieHardening {
    /// Cookie names that keep script access (for example a framework's XSRF-TOKEN cookie).
    pub(crate) httponly_exempt: Vec<String>,
}

impl CookieHardening {
    /// The hardened form of one `Set-Cookie` value, or `None` when nothing is missing.
    pub(crate) fn harden(&self, value: &HeaderValue, secure: bool) -> Option<HeaderValue> {
        let bytes = value.as_bytes();
        let mut parts = bytes.split(|&b| b == b';');
        let pair = parts.next()?;
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let present = |attribute: &str| {
            bytes
                .split(|&b| b == b';')
                .skip(1)
                .map(|part| {
                    part.split(|&b| b == b'=')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii()
                })
                .any(|n| n.eq_ignore_ascii_case(attribute.as_bytes()))
        };

        let exempt = self.httponly_exempt.iter().any(|n| n.as_bytes() == name);
        let mut added = Vec::new();
        if !exempt && !present("httponly") {
            added.extend_from_slice(b"; HttpOnly");
        }
        if secure && !present("secure") {
            added.extend_from_slice(b"; Secure");
        }
        if !same_site_set(bytes) {
            added.extend_from_slice(b"; SameSite=Lax");
        }
        if added.is_empty() {
            return None;
        }
        let mut hardened = bytes.to_vec();
        while hardened
            .last()
            .is_some_and(|&b| b == b';' || b.is_ascii_whitespace())
        {
            hardened.pop();
        }
        hardened.extend_from_slice(&added);
        HeaderValue::from_bytes(&hardened).ok()
    }
}

/// Whether the cookie's last `SameSite` attribute (the one browsers apply) has a value they
/// know: `Strict`, `Lax` or `None`. A bare `SameSite` or an unknown value leaves the choice
/// to the browser, and some then treat the cookie as `None`; an appended `SameSite=Lax`
/// comes last and wins.
fn same_site_set(cookie: &[u8]) -> bool {
    let last = cookie
        .split(|&b| b == b';')
        .skip(1)
        .filter_map(|part| {
            let mut halves = part.splitn(2, |&b| b == b'=');
            let name = halves.next().unwrap_or_default().trim_ascii();
            name.eq_ignore_ascii_case(b"samesite")
                .then(|| halves.next().unwrap_or_default().trim_ascii())
        })
        .last();
    last.is_some_and(|value| {
        [&b"strict"[..], b"lax", b"none"]
            .iter()
            .any(|known| value.eq_ignore_ascii_case(known))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn harden(cookie: &str, secure: bool) -> String {
        let hardening = CookieHardening {
            httponly_exempt: vec!["XSRF-TOKEN".into()],
        };
        let value = HeaderValue::from_str(cookie).expect("test cookie is a valid header");
        match hardening.harden(&value, secure) {
            Some(v) => v.to_str().expect("ascii").to_owned(),
            None => cookie.to_owned(),
        }
    }

    #[test]
    fn a_bare_cookie_gets_all_three_attributes_on_tls() {
        assert_eq!(
            harden("sid=abc", true),
            "sid=abc; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn secure_is_not_added_over_plain_http() {
        assert_eq!(
            harden("sid=abc; Path=/", false),
            "sid=abc; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn attributes_already_present_in_any_case_are_not_duplicated() {
        let cookie = "sid=abc; path=/; HTTPONLY; secure; samesite=Strict";
        assert_eq!(harden(cookie, true), cookie);
    }

    /// Regression: `SameSite` without a value counted as set, and Firefox and Safari then
    /// send the cookie cross-site.
    #[test]
    fn a_samesite_without_a_known_value_gets_lax_after_it() {
        assert_eq!(
            harden("f=1; SameSite", false),
            "f=1; SameSite; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            harden("f=1; HttpOnly; SameSite=Sometimes", false),
            "f=1; HttpOnly; SameSite=Sometimes; SameSite=Lax"
        );
        // The last one is the one browsers apply.
        assert_eq!(
            harden("f=1; HttpOnly; SameSite=Strict; SameSite=", false),
            "f=1; HttpOnly; SameSite=Strict; SameSite=; SameSite=Lax"
        );
        assert_eq!(
            harden("f=1; HttpOnly; samesite=STRICT", false),
            "f=1; HttpOnly; samesite=STRICT"
        );
    }

    #[test]
    fn an_existing_samesite_none_is_kept() {
        assert_eq!(
            harden("embed=1; SameSite=None; Secure", true),
            "embed=1; SameSite=None; Secure; HttpOnly"
        );
    }

    #[test]
    fn a_value_that_mentions_secure_does_not_count_as_the_attribute() {
        assert_eq!(
            harden("mode=secure", true),
            "mode=secure; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn exempt_cookies_keep_script_access_but_get_the_rest() {
        assert_eq!(
            harden("XSRF-TOKEN=t", true),
            "XSRF-TOKEN=t; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn a_trailing_semicolon_does_not_leave_an_empty_attribute_behind() {
        assert_eq!(harden("a=1;", false), "a=1; HttpOnly; SameSite=Lax");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn attribute_count(value: &HeaderValue, name: &str) -> usize {
        value
            .as_bytes()
            .split(|&b| b == b';')
            .skip(1)
            .filter(|part| {
                let key = part.split(|&b| b == b'=').next().unwrap_or_default();
                key.trim_ascii().eq_ignore_ascii_case(name.as_bytes())
            })
            .count()
    }

    proptest! {
        #[test]
        fn hardening_adds_each_attribute_at_most_once_and_is_idempotent(
            cookie in "[ -~]{0,80}",
            secure in any::<bool>(),
        ) {
            let Ok(value) = HeaderValue::from_str(&cookie) else {
                return Ok(());
            };
            let hardening = CookieHardening { httponly_exempt: Vec::new() };
            let once = hardening.harden(&value, secure).unwrap_or_else(|| value.clone());
            let mut expected = vec!["httponly", "samesite"];
            if secure {
                expected.push("secure");
            }
            for name in expected {
                let before = attribute_count(&value, name);
                prop_assert_eq!(attribute_count(&once, name), before.max(1), "{}", name);
            }
            prop_assert_eq!(hardening.harden(&once, secure), None);
        }
    }
}
