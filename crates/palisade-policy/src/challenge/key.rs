//! The challenge signing key: HMAC-SHA-256 over puzzles and clearances.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::session::secret::RandomnessError;

use super::ClientBinding;

/// The shortest secret accepted, in bytes (256 bits).
pub const MIN_SECRET_LEN: usize = 32;

/// Signs and checks puzzles and clearances. `Debug` never prints it; dropped, it is wiped.
#[derive(Clone)]
pub struct ChallengeKey(Zeroizing<Vec<u8>>);

/// Why a challenge secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeKeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "the challenge secret is {0} bytes long; use at least {MIN_SECRET_LEN} random bytes \
         (for example `openssl rand -base64 48`)"
    )]
    TooShort(usize),
}

impl ChallengeKey {
    /// A key from secret bytes (at least [`MIN_SECRET_LEN`]).
    pub fn from_secret(secret: &[u8]) -> Result<Self, ChallengeKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ChallengeKeyError::TooShort(secret.len()));
        }
        Ok(Self(Zeroizing::new(secret.to_vec())))
    }

    /// A fresh random key. Clearances it signs are good only while this process keeps it.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = Zeroizing::new(vec![0u8; MIN_SECRET_LEN]);
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::from_os(&e))?;
        Ok(Self(bytes))
    }

    /// The MAC of `parts` for `client` under the domain `label` (puzzle and clearance MACs
    /// never verify as each other).
    pub(super) fn sign(&self, label: &[u8], parts: &[&[u8]], client: &ClientBinding) -> [u8; 32] {
        self.mac(label, parts, client)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `tag` is the MAC of `parts` for `client`, compared in constant time.
    pub(super) fn verify(
        &self,
        label: &[u8],
        parts: &[&[u8]],
        client: &ClientBinding,
        tag: &[u8],
    ) -> bool {
        self.mac(label, parts, client).verify_slice(tag).is_ok()
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]], client: &ClientBinding) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(label);
        for part in parts {
            // Length-prefixed, so that moving bytes between parts changes the MAC.
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        for part in client.bytes() {
            mac.update(part);
        }
        mac
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(<redacted>)")
    }
}
