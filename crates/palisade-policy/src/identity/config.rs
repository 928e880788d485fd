//! The `[identity]` section of `palisade.toml`, and its validated form.
//!
//! ```toml
//! [identity.jwt]
//! secret_env = "SUPABASE_JWT_SECRET"   # HS256 with the secret in this variable, or:
//! # jwks_file = "/etc/palisade/jwks.json"   # RS256 / ES256 keys, chosen by `kid`
//! issuer = "https://example.supabase.co/auth/v1"   # optional
//! audience = "authenticated"                      # optional
//! user_claim = "sub"
//! roles_claim = "role"                 # optional: a string or an array of strings
//! cookie = "sb-access-token"           # optional: also read the token from this cookie
//! on_invalid = "anonymous"             # or "reject" (401)
//! leeway = "60s"                       # clock skew allowed on exp / nbf
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::config::is_token;
use crate::units::HumanDuration;

/// `[identity]` as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `[identity.jwt]`: identity from bearer JWTs; off when absent.
    pub jwt: Option<JwtConfig>,
}

/// `[identity.jwt]` as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Environment variable holding the HS256 secret.
    pub secret_env: Option<String>,
    /// JWKS file holding the RS256 / ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// The required `iss`, when set.
    pub issuer: Option<String>,
    /// The required `aud`, when set. Unset, `aud` is not checked.
    pub audience: Option<String>,
    /// The claim naming the user.
    pub user_claim: String,
    /// The claim listing roles (a string or an array of strings), when set.
    pub roles_claim: Option<String>,
    /// A cookie to read the token from when there is no `Authorization: Bearer`.
    pub cookie: Option<String>,
    /// What an invalid token means for the request.
    pub on_invalid: OnInvalid,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: HumanDuration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret_env: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            user_claim: "sub".to_owned(),
            roles_claim: None,
            cookie: None,
            on_invalid: OnInvalid::Anonymous,
            leeway: HumanDuration(Duration::from_secs(60)),
        }
    }
}

/// What an invalid token means for the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Treat the request as anonymous (and count the token).
    #[default]
    Anonymous,
    /// Answer 401.
    Reject,
}

/// Where the verification keys come from; the gateway reads them and passes them to
/// [`KeySet`](super::jwt::KeySet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// HS256 with the secret in this environment variable.
    SecretEnv(String),
    /// RS256 / ES256 keys in this JWKS file.
    JwksFile(PathBuf),
}

/// A `[identity.jwt]` value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[identity.jwt] {0}")]
pub struct JwtConfigError(pub(crate) String);

/// The validated `[identity.jwt]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// Where the keys come from.
    pub keys: KeySource,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Required audience.
    pub audience: Option<String>,
    /// The user claim.
    pub user_claim: String,
    /// The roles claim.
    pub roles_claim: Option<String>,
    /// The cookie the token may come in.
    pub cookie: Option<String>,
    /// What an invalid token means.
    pub on_invalid: OnInvalid,
    /// Tolerated clock skew, in milliseconds.
    pub leeway_ms: u64,
}

impl JwtConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<JwtSettings, JwtConfigError> {
        let err = |m: &str| Err(JwtConfigError(m.to_owned()));
        let keys = match (&self.secret_env, &self.jwks_file) {
            (Some(var), None) if !var.is_empty() => KeySource::SecretEnv(var.clone()),
            (None, Some(path)) => KeySource::JwksFile(path.clone()),
            (Some(_), Some(_)) => return err("set secret_env (HS256) or jwks_file, not both"),
            _ => return err("set secret_env (HS256 secret) or jwks_file (RS256/ES256 keys)"),
        };
        if self.user_claim.is_empty() {
            return err("user_claim must not be empty");
        }
        if self.cookie.as_deref().is_some_and(|c| !is_token(c)) {
            return err("cookie is not a valid cookie name");
        }
        Ok(JwtSettings {
            keys,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            user_claim: self.user_claim.clone(),
            roles_claim: self.roles_claim.clone(),
            cookie: self.cookie.clone(),
            on_invalid: self.on_invalid,
            leeway_ms: u64::try_from(self.leeway.0.as_millis()).unwrap_or(u64::MAX),
        })
    }
}
