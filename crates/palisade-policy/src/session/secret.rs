//! The session credential and its server-side forms.
//!
//! A [`SessionSecret`] is 256 random bits that live only in the browser's cookie; the
//! server keeps nothing but its SHA-256 [`SecretHash`], so a leaked store cannot be replayed
//! as cookies. A [`PublicId`] is drawn separately and names the session in logs, tokens and
//! the admin API; knowing it grants nothing. Secrets are never printed and are zeroized on drop.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes of entropy in a session secret (256 bits).
pub const SECRET_LEN: usize = 32;
/// Length of a secret in its cookie form (unpadded base64url of 32 bytes).
pub const ENCODED_SECRET_LEN: usize = 43;
/// Bytes in a public id (128 bits, written as 32 lowercase hex digits).
pub const PUBLIC_ID_LEN: usize = 16;

/// The operating system could not supply random bytes; no session can be created.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct RandomnessError(String);

impl RandomnessError {
    pub(crate) fn from_os(error: &getrandom::Error) -> Self {
        Self(error.to_string())
    }
}

/// A session's bearer secret, as carried in the cookie.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionSecret([u8; SECRET_LEN]);

impl SessionSecret {
    /// Draws a fresh secret from the operating system's random number generator.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::from_os(&e))?;
        Ok(Self(bytes))
    }

    /// Wraps known bytes; for tests and replays.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads the cookie form. Only the canonical 43-character unpadded base64url encoding is
    /// accepted, so one secret has exactly one cookie value.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        if cookie_value.len() != ENCODED_SECRET_LEN {
            return None;
        }
        let mut bytes = [0u8; SECRET_LEN];
        let written = URL_SAFE_NO_PAD
            .decode_slice(cookie_value, &mut bytes)
            .ok()?;
        (written == SECRET_LEN).then_some(Self(bytes))
    }

    /// The cookie form of the secret; zeroized when dropped.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(self.0))
    }

    /// The server-side form of the secret.
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// SHA-256 of a [`SessionSecret`]: what stores keep and look sessions up by. Compared in
/// constant time.
#[derive(Clone, Copy, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Wraps stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the 64-digit lowercase hex form used by stores.
    pub fn from_hex(text: &str) -> Option<Self> {
        decode_hex::<32>(text).map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// The public name of a session: 128 random bits, independent of the secret, written as 32
/// lowercase hex digits. Safe to log and to show to administrators.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicId([u8; PUBLIC_ID_LEN]);

impl PublicId {
    /// Draws a fresh id from the operating system's random number generator.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; PUBLIC_ID_LEN];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::from_os(&e))?;
        Ok(Self(bytes))
    }

    /// Wraps known bytes; for tests.
    pub fn from_bytes(bytes: [u8; PUBLIC_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads the 32-digit lowercase hex form (as given to the admin API).
    pub fn parse(text: &str) -> Option<Self> {
        decode_hex::<PUBLIC_ID_LEN>(text).map(Self)
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicId({self})")
    }
}

impl serde::Serialize for PublicId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Strict lowercase hex of exactly `N` bytes; anything else is `None`.
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_their_cookie_form() {
        let secret = SessionSecret::generate().expect("randomness");
        let encoded = secret.encode();
        assert_eq!(encoded.len(), ENCODED_SECRET_LEN);
        let back = SessionSecret::parse(&encoded).expect("own encoding parses");
        assert_eq!(back.hash(), secret.hash());
    }

    #[test]
    fn non_canonical_or_wrong_length_cookie_values_are_not_secrets() {
        let secret = SessionSecret::from_bytes([7; SECRET_LEN]);
        let encoded = secret.encode().to_string();
        // The last character carries 2 unused bits; flipping them must not give a second
        // spelling of the same secret.
        let mut altered = encoded.clone();
        altered.pop();
        altered.push('z');
        assert!(SessionSecret::parse(&altered).is_none());
        assert!(SessionSecret::parse(&encoded[1..]).is_none());
        assert!(SessionSecret::parse(&format!("{encoded}A")).is_none());
        assert!(SessionSecret::parse(&"!".repeat(ENCODED_SECRET_LEN)).is_none());
    }

    #[test]
    fn debug_output_never_shows_secret_material() {
        let secret = SessionSecret::from_bytes([0xab; SECRET_LEN]);
        let shown = format!("{secret:?} {:?}", secret.hash());
        assert!(!shown.contains(&*secret.encode()));
        assert!(!shown.contains(&secret.hash().to_hex()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn public_ids_are_distinct_from_secrets_and_parse_strictly() {
        let id = PublicId::generate().expect("randomness");
        assert_eq!(PublicId::parse(&id.to_string()), Some(id));
        assert_eq!(PublicId::parse(&id.to_string().to_uppercase()), None);
        assert_eq!(PublicId::parse("abc"), None);
        assert_ne!(PublicId::generate().expect("randomness"), id);
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = SessionSecret::from_bytes([1; SECRET_LEN]).hash();
        assert_eq!(SecretHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(SecretHash::from_hex("zz"), None);
    }
}
