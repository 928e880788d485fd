//! CSRF tokens: HS256 JWTs `{"sessionId", "iat", "exp"}` bound to one session.
//!
//! The format is the one the npm `jose` package produces with `new SignJWT({ sessionId })`,
//! so applications can mint and check tokens themselves with the same secret. Verification
//! pins HS256 (an `alg: none` or HS512 token is invalid, whatever its signature), requires
//! `exp` and compares the session binding in constant time. The secret never leaves
//! [`CsrfKey`], whose `Debug` is redacted and whose memory is zeroized.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::UnixMillis;
use crate::session::secret::RandomnessError;

use super::CsrfRefusal;

/// The shortest secret accepted, in bytes (256 bits, as RFC 7518 §3.2 asks for HS256).
pub const MIN_SECRET_LEN: usize = 32;
/// The longest token examined; anything longer is invalid without being parsed.
pub const MAX_TOKEN_LEN: usize = 2048;

/// The CSRF signing key.
#[derive(Clone)]
pub struct CsrfKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why a CSRF secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfKeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "the CSRF secret is {0} bytes long; use at least {MIN_SECRET_LEN} random bytes \
         (for example `openssl rand -base64 48`)"
    )]
    TooShort(usize),
}

/// The claims of a CSRF token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsrfClaims {
    /// The public id of the session the token belongs to.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

impl CsrfKey {
    /// A key from raw secret bytes (at least 32).
    pub fn from_secret(secret: &[u8]) -> Result<Self, CsrfKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(CsrfKeyError::TooShort(secret.len()));
        }
        let encoding = EncodingKey::from_secret(secret).map_err(|_| CsrfKeyError::TooShort(0))?;
        let decoding = DecodingKey::from_secret(secret).map_err(|_| CsrfKeyError::TooShort(0))?;
        Ok(Self { encoding, decoding })
    }

    /// A key from the contents of a secret file or environment variable: trailing
    /// whitespace (the newline editors add) is not part of the secret.
    pub fn from_text(text: &[u8]) -> Result<Self, CsrfKeyError> {
        Self::from_secret(text.trim_ascii_end())
    }

    /// A random key for this process only: tokens do not survive a restart and are not
    /// shared between instances. For setups without a configured secret.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut secret = zeroize::Zeroizing::new([0u8; MIN_SECRET_LEN]);
        getrandom::fill(&mut *secret).map_err(|e| RandomnessError::from_os(&e))?;
        Ok(Self::from_secret(&*secret).expect("a 32-byte secret is long enough"))
    }

    /// Mints a token for the session `binding`, valid `ttl_secs` from `now`.
    pub fn mint(&self, binding: &str, ttl_secs: u64, now: UnixMillis) -> String {
        let iat = now / 1000;
        let claims = CsrfClaims {
            session_id: binding.to_owned(),
            iat,
            exp: iat.saturating_add(ttl_secs),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an HMAC key and serialisable claims cannot fail")
    }

    /// Verifies a token for the session `binding` at `now`.
    pub fn verify(
        &self,
        token: &[u8],
        binding: &str,
        now: UnixMillis,
    ) -> Result<CsrfClaims, CsrfRefusal> {
        let claims = self.decode(token)?;
        if claims.exp.saturating_mul(1000) <= now {
            return Err(CsrfRefusal::Expired);
        }
        if !bool::from(claims.session_id.as_bytes().ct_eq(binding.as_bytes())) {
            return Err(CsrfRefusal::Mismatch);
        }
        Ok(claims)
    }

    /// Checks signature and form only; no time, no binding.
    pub(crate) fn decode(&self, token: &[u8]) -> Result<CsrfClaims, CsrfRefusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CsrfRefusal::Invalid);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is judged against the caller's `now`, never the system clock.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<CsrfClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| CsrfRefusal::Invalid)
    }
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}
