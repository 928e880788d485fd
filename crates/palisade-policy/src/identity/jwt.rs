//! Verifying bearer JWTs into an identity.
//!
//! Every key is pinned to one algorithm (HS256 for a shared secret; RS256 or ES256 for a
//! JWKS key, from its `alg` or its type), and a token is verified only with the algorithm of
//! the key it names. So `alg: none`, HS256 signed with an RSA public key (algorithm
//! confusion) or an HS512 token for an HS256 key are refused before any signature math.
//! Input is bounded: tokens over [`MAX_TOKEN_LEN`] bytes are refused unparsed, and nothing
//! here panics on any input. Time comes in as `now`; the system clock is never read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::clock::UnixMillis;
use crate::session::user::{Roles, UserId};

use super::config::{JwtConfigError, JwtSettings};

/// The longest token examined, in bytes. Real access tokens are well under 4 KiB.
pub const MAX_TOKEN_LEN: usize = 8192;
/// The shortest HS256 secret accepted (256 bits, RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// Why a token was not accepted; each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRejection {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not three base64url parts of JSON.
    Malformed,
    /// The header names a key that is not configured.
    UnknownKey,
    /// The header's `alg` is not the one its key is pinned to (`none`, confusion, HS512...).
    AlgorithmNotAllowed,
    /// The header lists `crit` extensions, which palisade does not implement (RFC 7515
    /// §4.1.11 requires refusing them).
    CriticalExtension,
    /// The signature does not verify.
    BadSignature,
    /// No numeric `exp`.
    MissingExpiry,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not include the configured audience.
    WrongAudience,
    /// The user claim is missing or not a valid user id.
    InvalidUser,
    /// The roles claim is not a list of valid role names.
    InvalidRoles,
}

impl JwtRejection {
    /// A stable name for events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::CriticalExtension => "critical_extension",
            Self::BadSignature => "bad_signature",
            Self::MissingExpiry => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidUser => "invalid_user",
            Self::InvalidRoles => "invalid_roles",
        }
    }
}

/// One verification key and the only algorithm it verifies.
#[derive(Clone)]
struct PinnedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys tokens are verified with.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<PinnedKey>,
    /// With a shared secret, `kid` is ignored: there is only one key.
    shared_secret: bool,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{:?}:{}", k.alg, k.kid.as_deref().unwrap_or("-")))
            .collect();
        write!(f, "KeySet({kinds:?}, <key material redacted>)")
    }
}

impl KeySet {
    /// One HS256 key from a shared secret (the value of `secret_env`, trailing whitespace
    /// removed).
    pub fn hs256(secret: &[u8]) -> Result<Self, JwtConfigError> {
        let secret = secret.trim_ascii_end();
        if secret.len() < MIN_SECRET_LEN {
            return Err(JwtConfigError(format!(
                "the HS256 secret is {} bytes long; at least {MIN_SECRET_LEN} are required",
                secret.len()
            )));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|e| JwtConfigError(format!("unusable HS256 secret: {e}")))?;
        let keys = vec![PinnedKey {
            kid: None,
            alg: Algorithm::HS256,
            key,
        }];
        Ok(Self {
            keys,
            shared_secret: true,
        })
    }

    /// The RS256 / ES256 public keys of a JWKS document (RFC 7517 §5).
    pub fn from_jwks(json: &str) -> Result<Self, JwtConfigError> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| JwtConfigError(format!("the JWKS file is not a JWK set: {e}")))?;
        let mut keys = Vec::with_capacity(set.keys.len());
        for (index, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| format!("#{index}"));
            let problem = |m: &str| JwtConfigError(format!("JWKS key {name}: {m}"));
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                return Err(problem("\"use\" is not \"sig\""));
            }
            let alg = pinned_algorithm(jwk.common.key_algorithm, &jwk.algorithm)
                .map_err(|m| problem(&m))?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| problem(&e.to_string()))?;
            keys.push(PinnedKey { kid, alg, key });
        }
        if keys.is_empty() {
            return Err(JwtConfigError("the JWKS file holds no keys".into()));
        }
        if keys.len() > 1 && keys.iter().any(|k| k.kid.is_none()) {
            return Err(JwtConfigError(
                "with several JWKS keys, every key needs a kid".into(),
            ));
        }
        Ok(Self {
            keys,
            shared_secret: false,
        })
    }

    fn select(&self, kid: Option<&str>) -> Option<&PinnedKey> {
        match (self.shared_secret, kid) {
            (true, _) | (false, None) if self.keys.len() == 1 => self.keys.first(),
            (false, Some(kid)) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            _ => None,
        }
    }
}

/// The algorithm a JWKS key is pinned to: its `alg` if given (RS256 or ES256 only), else
/// RS256 for RSA keys and ES256 for P-256 keys.
fn pinned_algorithm(
    declared: Option<KeyAlgorithm>,
    params: &AlgorithmParameters,
) -> Result<Algorithm, String> {
    let alg = match (declared, params) {
        (Some(KeyAlgorithm::RS256) | None, AlgorithmParameters::RSA(rsa)) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .unwrap_or_default();
            let significant = modulus.iter().skip_while(|&&b| b == 0).count();
            if significant < MIN_RSA_MODULUS_LEN {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            Algorithm::RS256
        }
        (Some(KeyAlgorithm::ES256) | None, AlgorithmParameters::EllipticCurve(ec))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (Some(other), _) => {
            return Err(format!(
                "alg {other:?} is not supported here; use RS256 or ES256"
            ));
        }
        (None, _) => return Err("only RSA and P-256 keys are supported (RS256, ES256)".into()),
    };
    Ok(alg)
}

/// The parts of a JOSE header palisade looks at before choosing a key.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user.
    pub user_id: UserId,
    /// The roles (none unless `roles_claim` is configured).
    pub roles: Roles,
}

/// Verifies tokens against configured keys and claims.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    settings: JwtSettings,
    keys: KeySet,
}

impl JwtVerifier {
    /// A verifier for validated settings and the keys they name.
    pub fn new(settings: JwtSettings, keys: KeySet) -> Self {
        Self { settings, keys }
    }

    /// The settings in force.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Verifies `token` at `now`.
    pub fn verify(&self, token: &[u8], now: UnixMillis) -> Result<VerifiedToken, JwtRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtRejection::TooLarge);
        }
        let header = read_header(token)?;
        let key = self
            .keys
            .select(header.kid.as_deref())
            .ok_or(JwtRejection::UnknownKey)?;
        if header.alg != alg_name(key.alg) {
            return Err(JwtRejection::AlgorithmNotAllowed);
        }
        if header.crit.is_some() {
            return Err(JwtRejection::CriticalExtension);
        }
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation(key.alg))
                .map_err(|e| rejection(e.kind()))?
                .claims;
        self.check_times(&claims, now)?;
        self.identity(&claims)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        // Times are judged against the caller's `now` in `check_times`, never the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    fn check_times(
        &self,
        claims: &Map<String, Value>,
        now: UnixMillis,
    ) -> Result<(), JwtRejection> {
        let leeway = self.settings.leeway_ms;
        let exp = seconds(claims.get("exp")).ok_or(JwtRejection::MissingExpiry)?;
        if exp.saturating_mul(1000).saturating_add(leeway) <= now {
            return Err(JwtRejection::Expired);
        }
        match claims.get("nbf") {
            None => Ok(()),
            Some(nbf) => match seconds(Some(nbf)) {
                Some(nbf) if nbf.saturating_mul(1000) <= now.saturating_add(leeway) => Ok(()),
                Some(_) => Err(JwtRejection::NotYetValid),
                None => Err(JwtRejection::Malformed),
            },
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<VerifiedToken, JwtRejection> {
        let user = claims
            .get(&self.settings.user_claim)
            .and_then(Value::as_str);
        let user_id = user
            .and_then(|u| UserId::parse(u).ok())
            .ok_or(JwtRejection::InvalidUser)?;
        let roles = match self
            .settings
            .roles_claim
            .as_ref()
            .and_then(|c| claims.get(c))
        {
            None => Roles::none(),
            Some(Value::String(list)) => {
                Roles::parse_list(list).map_err(|_| JwtRejection::InvalidRoles)?
            }
            Some(Value::Array(items)) => {
                let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                let names = names.ok_or(JwtRejection::InvalidRoles)?;
                Roles::from_names(names).map_err(|_| JwtRejection::InvalidRoles)?
            }
            Some(_) => return Err(JwtRejection::InvalidRoles),
        };
        Ok(VerifiedToken { user_id, roles })
    }
}

fn read_header(token: &[u8]) -> Result<JoseHeader, JwtRejection> {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtRejection::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtRejection::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| JwtRejection::Malformed)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        // Keys are only ever pinned to the three above.
        _ => "unsupported",
    }
}

/// A NumericDate (RFC 7519 §2): whole or fractional seconds, never negative.
fn seconds(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}

fn rejection(kind: &ErrorKind) -> JwtRejection {
    match kind {
        ErrorKind::InvalidSignature => JwtRejection::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            JwtRejection::AlgorithmNotAllowed
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => JwtRejection::MissingExpiry,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => JwtRejection::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => JwtRejection::WrongAudience,
        ErrorKind::InvalidIssuer => JwtRejection::WrongIssuer,
        ErrorKind::InvalidAudience => JwtRejection::WrongAudience,
        ErrorKind::InvalidClaimFormat(claim) if claim == "aud" => JwtRejection::WrongAudience,
        ErrorKind::InvalidClaimFormat(claim) if claim == "iss" => JwtRejection::WrongIssuer,
        _ => JwtRejection::Malformed,
    }
}
