//! The `[state]` section: where shared counters live (memory or Redis) and what happens
//! while the shared store is unreachable.
//!
//! Never holds a password from the TOML file: a Redis URL with credentials must come from the
//! `PALISADE_REDIS_URL` environment variable, and it is redacted in `Debug`.

use std::fmt;

use palisade_policy::units::HumanDuration;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

/// `[state]`: the rate-limit (and later session and ban) store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `"memory"` (default; one instance) or `"redis"` (shared between instances).
    pub backend: Backend,
    /// `redis://host:port/db` without credentials; `PALISADE_REDIS_URL` overrides it and may
    /// carry a password.
    pub redis_url: Option<RedisUrl>,
    /// While Redis is unreachable: `"local"` (default; fall back to the memory limiter),
    /// `"allow"` (serve unlimited) or `"deny"` (answer 503).
    pub on_error: OnError,
    /// Most keys the memory limiter holds; the least recently used go first. Default 100000.
    pub memory_max_keys: usize,
    /// Time allowed for one Redis command or connection attempt. Default `250ms`.
    pub redis_timeout: HumanDuration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            redis_url: None,
            on_error: OnError::Local,
            memory_max_keys: 100_000,
            redis_timeout: HumanDuration(std::time::Duration::from_millis(250)),
        }
    }
}

/// Which store holds the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process; limits are per instance.
    Memory,
    /// In Redis; limits hold across every instance that shares it.
    Redis,
}

impl Backend {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

/// What rate limiting does while the shared store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Let requests through unlimited (fail open), logged loudly.
    Allow,
    /// Refuse requests with 503 (fail closed).
    Deny,
    /// Count in this instance's memory until the shared store is back.
    Local,
}

/// A Redis connection URL. May hold a password (from the environment only), so `Debug` and
/// `Display` print the host part alone and the text is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Zeroizing<String>);

impl RedisUrl {
    /// Reads a URL given by the operator; `from_file` refuses embedded credentials.
    pub fn parse(text: &str, from_file: bool) -> Result<Self, String> {
        let expected = "(expected redis://host:port or redis://host:port/db)";
        let Some(rest) = text
            .strip_prefix("redis://")
            .or_else(|| text.strip_prefix("rediss://"))
        else {
            return Err(format!("invalid Redis URL {expected}"));
        };
        if from_file && rest.contains('@') {
            return Err(
                "redis_url in the config file must not contain credentials (set the \
                 PALISADE_REDIS_URL environment variable instead)"
                    .into(),
            );
        }
        Ok(Self(Zeroizing::new(text.to_string())))
    }

    /// The full URL, credentials included, for the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without credentials, for logs.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("redis", &self.0));
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{host}")
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text, true).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_with_passwords_are_redacted() {
        let url = RedisUrl::parse("redis://:hunter2@10.1.2.3:6379/0", false).expect("valid");
        assert_eq!(url.redacted(), "redis://10.1.2.3:6379/0");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn redis_urls_in_the_file_may_not_hold_credentials() {
        let err = RedisUrl::parse("redis://user:pw@h:6379", true).expect_err("has credentials");
        assert!(err.contains("PALISADE_REDIS_URL"), "{err}");
    }
}
