//! The `[csrf]` section of `palisade.toml`, and its validated form.
//!
//! ```toml
//! [csrf]
//! enabled = true
//! header = "x-csrf-token"          # where clients send the token
//! form_field = "_csrf"             # or this field of an urlencoded form body
//! exempt = ["/api/webhooks/"]      # path prefixes that never need a token
//! token_ttl = "1h"
//! cookie_name = "palisade_csrf"    # script-readable copy of the current token
//! secret_file = "/run/secrets/csrf" # else the PALISADE_CSRF_SECRET environment variable
//! trusted_origins = []             # other origins allowed to post, e.g. "https://app.example.com"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::config::is_token;
use crate::units::HumanDuration;

/// The environment variable holding the CSRF signing secret.
pub const CSRF_SECRET_ENV: &str = "PALISADE_CSRF_SECRET";

/// `[csrf]` as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsrfConfig {
    /// Whether unsafe cookie-authenticated requests need a token.
    pub enabled: bool,
    /// Request header carrying the token.
    pub header: String,
    /// Field of an `application/x-www-form-urlencoded` body carrying the token.
    pub form_field: String,
    /// Path prefixes exempt from the check (webhooks carry no token).
    pub exempt: Vec<String>,
    /// How long a token is valid.
    pub token_ttl: HumanDuration,
    /// File holding the signing secret; when absent, `PALISADE_CSRF_SECRET` is used.
    pub secret_file: Option<PathBuf>,
    /// Name of the script-readable cookie carrying the current token.
    pub cookie_name: String,
    /// Origins other than the request's own host allowed to send unsafe requests.
    pub trusted_origins: Vec<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            header: "x-csrf-token".to_owned(),
            form_field: "_csrf".to_owned(),
            exempt: Vec::new(),
            token_ttl: HumanDuration(Duration::from_secs(3600)),
            secret_file: None,
            cookie_name: "palisade_csrf".to_owned(),
            trusted_origins: Vec::new(),
        }
    }
}

/// A `[csrf]` value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[csrf] {0}")]
pub struct CsrfConfigError(String);

/// The validated `[csrf]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfSettings {
    /// Whether the check runs.
    pub enabled: bool,
    /// Lower-cased token header name.
    pub header: String,
    /// Form field name.
    pub form_field: String,
    /// Exempt path prefixes, each starting with `/`.
    pub exempt: Vec<String>,
    /// Token lifetime in seconds.
    pub ttl_secs: u64,
    /// Cookie name.
    pub cookie_name: String,
    /// Whether the cookie is sent without `Secure` (from `[session] insecure_cookies`).
    pub insecure_cookies: bool,
    /// Trusted origins, lower-cased `scheme://host[:port]` without default ports.
    pub trusted_origins: Vec<String>,
}

impl CsrfConfig {
    /// Checks the section. `insecure_cookies` comes from `[session]`.
    pub fn validate(&self, insecure_cookies: bool) -> Result<CsrfSettings, CsrfConfigError> {
        let err = |m: String| Err(CsrfConfigError(m));
        if !is_token(&self.header) {
            return err(format!(
                "header {:?} is not a valid header name",
                self.header
            ));
        }
        if !is_token(&self.cookie_name) {
            return err(format!(
                "cookie_name {:?} is not a valid cookie name",
                self.cookie_name
            ));
        }
        if self.form_field.is_empty() {
            return err("form_field must not be empty".into());
        }
        if let Some(bad) = self.exempt.iter().find(|p| !p.starts_with('/')) {
            return err(format!("exempt path {bad:?} must start with /"));
        }
        let ttl_secs = self.token_ttl.0.as_secs();
        if ttl_secs < 60 {
            return err("token_ttl must be at least 60s".into());
        }
        let mut trusted_origins = Vec::new();
        for origin in &self.trusted_origins {
            match super::check::normalize_origin(origin.as_bytes()) {
                Some(o) => trusted_origins.push(o),
                None => {
                    return err(format!(
                        "trusted origin {origin:?} is not scheme://host[:port]"
                    ));
                }
            }
        }
        Ok(CsrfSettings {
            enabled: self.enabled,
            header: self.header.to_ascii_lowercase(),
            form_field: self.form_field.clone(),
            exempt: self.exempt.clone(),
            ttl_secs,
            cookie_name: self.cookie_name.clone(),
            insecure_cookies,
            trusted_origins,
        })
    }
}

impl CsrfSettings {
    /// The defaults, validated, with secure cookies.
    pub fn defaults() -> Self {
        CsrfConfig::default()
            .validate(false)
            .expect("the default CSRF configuration is valid")
    }
}
