//! `[session]`, `[csrf]` and `[identity]`: the sections of sessions, CSRF protection and
//! bearer-token identity. Their shapes and rules live in `palisade-policy`; here each is
//! validated once, as it is parsed (serde `try_from`, so a bad value is reported at its
//! section), and kept beside its validated form so no later code checks it again.
//!
//! Secrets never come from these sections: the CSRF secret is read from
//! `PALISADE_CSRF_SECRET` or `[csrf] secret_file`, the JWT secret from the environment
//! variable `[identity.jwt] secret_env` names, the Redis password from `PALISADE_REDIS_URL`.
//! They are read once at start-up, by `crate::sessions`.

use palisade_policy::csrf::{CsrfConfig, CsrfSettings};
use palisade_policy::identity::{IdentityConfig, JwtSettings};
use palisade_policy::session::{SessionConfig, SessionSettings};
use serde::Deserialize;

/// `[session]`: as written, and validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SessionConfig")]
pub struct SessionSection {
    /// The section as written (store choice, paths), with relative paths resolved by
    /// `Config::from_toml`.
    pub file: SessionConfig,
    /// Lifetimes, cookie name and directive headers, validated.
    pub settings: SessionSettings,
}

impl TryFrom<SessionConfig> for SessionSection {
    type Error = String;

    fn try_from(file: SessionConfig) -> Result<Self, String> {
        let settings = file.validate().map_err(|err| err.to_string())?;
        let url = &file.redis_url;
        if url.contains('@') {
            return Err(
                "[session] redis_url: credentials must not be in the config file (set \
                        the PALISADE_REDIS_URL environment variable instead)"
                    .into(),
            );
        }
        palisade_store::redis_conn::check_url(url)
            .map_err(|message| format!("[session] redis_url: {message}"))?;
        Ok(Self { file, settings })
    }
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            file: SessionConfig::default(),
            settings: SessionSettings::defaults(),
        }
    }
}

/// `[csrf]`: as written, and validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CsrfConfig")]
pub struct CsrfSection {
    /// The section as written (`secret_file`).
    pub file: CsrfConfig,
    /// The validated settings. Their `insecure_cookies` is `[session] insecure_cookies`,
    /// filled in by [`CsrfSection::settings_for`].
    settings: CsrfSettings,
}

impl TryFrom<CsrfConfig> for CsrfSection {
    type Error = String;

    fn try_from(file: CsrfConfig) -> Result<Self, String> {
        let settings = file.validate(false).map_err(|err| err.to_string())?;
        Ok(Self { file, settings })
    }
}

impl Default for CsrfSection {
    fn default() -> Self {
        Self {
            file: CsrfConfig::default(),
            settings: CsrfSettings::defaults(),
        }
    }
}

impl CsrfSection {
    /// The settings in force next to `session`: the `palisade_csrf` cookie drops `Secure`
    /// exactly when the session cookie does.
    pub fn settings_for(&self, session: &SessionSection) -> CsrfSettings {
        CsrfSettings {
            insecure_cookies: session.settings.insecure_cookies,
            ..self.settings.clone()
        }
    }
}

/// `[identity]`: as written, and the validated `[identity.jwt]` when present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IdentityConfig")]
pub struct IdentitySection {
    /// The section as written.
    pub file: IdentityConfig,
    /// `[identity.jwt]`, validated; `None` when JWT identity is off.
    pub jwt: Option<JwtSettings>,
}

impl TryFrom<IdentityConfig> for IdentitySection {
    type Error = String;

    fn try_from(file: IdentityConfig) -> Result<Self, String> {
        let jwt = file
            .jwt
            .as_ref()
            .map(|jwt| jwt.validate())
            .transpose()
            .map_err(|err| err.to_string())?;
        Ok(Self { file, jwt })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use palisade_policy::session::StoreKind;

    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("palisade.toml"), text)
    }

    fn first_error(text: &str) -> String {
        parse(text).expect_err("refused").diagnostics[0].to_string()
    }

    #[test]
    fn no_sections_give_sqlite_sessions_and_csrf_on() {
        let config = parse("").expect("valid");
        assert_eq!(config.session.file.store, StoreKind::Sqlite);
        assert_eq!(
            config.session.settings.cookie_name,
            "__Host-palisade_session"
        );
        assert!(config.csrf.settings_for(&config.session).enabled);
        assert_eq!(config.identity.jwt, None);
    }

    #[test]
    fn a_bad_lifetime_is_reported_at_its_section() {
        let text = "rate_limit = []\n\n[session]\nrotation_grace = \"24h\"\n";
        let error = first_error(text);
        assert!(error.starts_with("palisade.toml:3:"), "{error}");
        assert!(error.contains("rotation_grace must be shorter"), "{error}");
    }

    #[test]
    fn unknown_keys_in_the_new_sections_are_errors() {
        assert!(first_error("[session]\nidle = \"1d\"\n").contains("unknown field"));
        assert!(first_error("[csrf]\nexempts = []\n").contains("unknown field"));
        assert!(first_error("[identity.jwt]\nsecret = \"x\"\n").contains("unknown field"));
    }

    #[test]
    fn a_redis_password_in_the_session_section_is_refused() {
        let error = first_error("[session]\nredis_url = \"redis://:hunter2@db:6379\"\n");
        assert!(error.contains("PALISADE_REDIS_URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn the_session_section_takes_rediss_urls_but_not_unverified_tls() {
        let config = parse("[session]\nredis_url = \"rediss://cache.example:6380/1\"\n");
        assert!(config.is_ok(), "{:?}", config.err());
        let error = first_error("[session]\nredis_url = \"rediss://db:6380#insecure\"\n");
        assert!(
            error.contains("[session] redis_url: rediss://...#insecure"),
            "{error}"
        );
        assert!(error.contains("redis_ca_file"), "{error}");
        let error = first_error("[session]\nredis_url = \"http://db:6379\"\n");
        assert!(
            error.contains("expected a URL starting with redis://"),
            "{error}"
        );
    }

    #[test]
    fn csrf_and_jwt_sections_are_validated() {
        assert!(first_error("[csrf]\nexempt = [\"api/\"]\n").contains("must start with /"));
        let error = first_error("[identity.jwt]\nuser_claim = \"sub\"\n");
        assert!(error.contains("secret_env"), "{error}");
    }

    #[test]
    fn insecure_session_cookies_make_the_csrf_cookie_insecure_too() {
        let config = parse("[session]\ninsecure_cookies = true\n").expect("valid");
        assert_eq!(config.session.settings.cookie_name, "palisade_session");
        assert!(config.csrf.settings_for(&config.session).insecure_cookies);
    }
}
