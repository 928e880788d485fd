//! Properties of the cookie reader, the first code to touch a client's cookies: it never
//! panics, never invents a value, and never picks one of two different session cookies.

use palisade_policy::session::cookie::{
    CookieLookup, SessionCookie, find_cookie, read_session_cookie,
};
use palisade_policy::session::{SessionSecret, SessionSettings};
use proptest::prelude::*;

const NAME: &str = "__Host-palisade_session";

fn other_pair() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9_]{0,8}", "[ -~&&[^;]]{0,12}").prop_map(|(n, v)| format!("{n}={v}"))
}

fn secret() -> impl Strategy<Value = SessionSecret> {
    any::<[u8; 32]>().prop_map(SessionSecret::from_bytes)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_found_values_come_from_the_input(
        headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4),
    ) {
        let lookup = find_cookie(headers.iter().map(Vec::as_slice), NAME, 64);
        if let CookieLookup::Found(value) = lookup {
            prop_assert!(value.len() <= 64);
            let contains = |h: &Vec<u8>| h.windows(value.len().max(1)).any(|w| w == value);
            prop_assert!(value.is_empty() || headers.iter().any(contains));
        }
        let settings = SessionSettings::defaults();
        let _ = read_session_cookie(headers.iter().map(Vec::as_slice), &settings);
    }

    #[test]
    fn the_session_secret_is_found_among_any_other_cookies(
        before in prop::collection::vec(other_pair(), 0..5),
        after in prop::collection::vec(other_pair(), 0..5),
        secret in secret(),
    ) {
        let mine = format!("{NAME}={}", &*secret.encode());
        let header = [before, vec![mine], after].concat().join("; ");
        let read = read_session_cookie([header.as_bytes()], &SessionSettings::defaults());
        let SessionCookie::Present(found) = read else {
            return Err(TestCaseError::fail(format!("{header}: {read:?}")));
        };
        prop_assert_eq!(found.hash(), secret.hash());
    }

    #[test]
    fn two_different_session_cookies_are_never_resolved_to_either(
        a in secret(),
        b in secret(),
        split in any::<bool>(),
    ) {
        prop_assume!(a.hash() != b.hash());
        let first = format!("{NAME}={}", &*a.encode());
        let second = format!("{NAME}={}", &*b.encode());
        let joined = format!("{first}; x=1; {second}");
        let headers: Vec<&[u8]> = if split {
            vec![first.as_bytes(), second.as_bytes()]
        } else {
            vec![joined.as_bytes()]
        };
        let read = read_session_cookie(headers, &SessionSettings::defaults());
        prop_assert!(matches!(read, SessionCookie::Ambiguous), "{:?}", read);
    }

    #[test]
    fn splitting_cookies_across_headers_does_not_change_the_answer(
        pairs in prop::collection::vec(other_pair(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let at = cut.index(pairs.len());
        let joined = pairs.join("; ");
        let (left, right) = (pairs[..at].join("; "), pairs[at..].join("; "));
        for name in ["a", "b", "zz"] {
            let one = find_cookie([joined.as_bytes()], name, 64);
            let two = find_cookie([left.as_bytes(), right.as_bytes()], name, 64);
            prop_assert_eq!(one, two);
        }
    }
}
