//! Bounds the length of rate-limit keys. Keys are built from client input (a header value
//! can be kilobytes long), and every stored key costs memory here and in Redis, so a key
//! longer than [`MAX_KEY_BYTES`] is replaced by its start and its SHA-256. The digest is the
//! same on every instance, so shared limits still meet in Redis, and it resists collisions,
//! so a client cannot craft a long key that lands on someone else's counter.

use std::borrow::Cow;
use std::fmt::Write;

use sha2::{Digest, Sha256};

/// Keys up to this many bytes are used as they are.
pub const MAX_KEY_BYTES: usize = 200;

/// How much of a long key is kept readable in front of its digest (the rule name and the
/// start of the value help whoever reads Redis).
const KEPT_PREFIX_BYTES: usize = 64;

/// `key` itself when short enough, else `<first 64 bytes>#sha256:<hex digest of all of it>`.
pub fn bounded(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        return Cow::Borrowed(key);
    }
    let mut cut = KEPT_PREFIX_BYTES;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut bounded = String::with_capacity(cut + 8 + 64);
    bounded.push_str(&key[..cut]);
    bounded.push_str("#sha256:");
    for byte in Sha256::digest(key.as_bytes()) {
        let _ = write!(bounded, "{byte:02x}");
    }
    Cow::Owned(bounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_used_as_they_are() {
        assert!(matches!(
            bounded("api:ip:192.0.2.1"),
            Cow::Borrowed("api:ip:192.0.2.1")
        ));
    }

    #[test]
    fn long_keys_become_their_start_and_digest() {
        let long = format!("api:header:{}", "x".repeat(8_000));
        let key = bounded(&long);
        assert!(key.len() <= KEPT_PREFIX_BYTES + 8 + 64);
        assert!(key.starts_with("api:header:xxx"));
        assert_eq!(
            key,
            bounded(&long),
            "the same key maps the same way every time"
        );
        let other = format!("api:header:{}y", "x".repeat(7_999));
        assert_ne!(key, bounded(&other), "keys sharing a start stay apart");
    }

    #[test]
    fn a_multibyte_character_at_the_cut_is_not_split() {
        let long = format!("{}é{}", "a".repeat(63), "b".repeat(300));
        assert!(bounded(&long).starts_with(&"a".repeat(63)));
        assert!(bounded(&long).contains("#sha256:"));
    }
}
