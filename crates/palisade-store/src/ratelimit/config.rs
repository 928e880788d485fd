//! The `[state]` section of `palisade.toml`: where rate-limit counters live and what happens
//! when the shared backend is unreachable, and [`StateBackend`], the store built from it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use palisade_policy::clock::Clock;
use palisade_policy::ratelimit::{Decision, Quota, RateLimitStore, StoreError};
use palisade_policy::units::HumanDuration;
use serde::{Deserialize, Serialize};

use super::fallback::{BackendStats, Fallback, OnError};
use super::memory::MemoryRateLimiter;
use super::redis::{RedisOptions, RedisRateLimiter};
use crate::redis_conn::{self, ClientCert, RedisCa, RedisTls};

/// Which store holds the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// This process's memory: limits hold per instance (default).
    #[default]
    Memory,
    /// A Redis shared by every instance: limits hold across all of them.
    Redis,
}

/// A Redis URL. It may carry a password, so it is never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct RedisUrl(pub String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// The `[state]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `memory` (default) or `redis`.
    pub backend: BackendKind,
    /// Required with `backend = "redis"`, e.g. `redis://127.0.0.1:6379`, or
    /// `rediss://host:6380` for TLS.
    pub redis_url: Option<RedisUrl>,
    /// A PEM file of the CA(s) that `rediss://` servers' certificates must be signed by,
    /// for Redis servers with a private CA (default: none, the public web roots are
    /// trusted). Used by every Redis connection palisade makes, sessions' too.
    pub redis_ca_file: Option<PathBuf>,
    /// A PEM certificate (chain) that `rediss://` connections present, for a Redis that
    /// requires client certificates (`tls-auth-clients yes`); needs `redis_client_key`.
    pub redis_client_cert: Option<PathBuf>,
    /// The PEM private key of `redis_client_cert`.
    pub redis_client_key: Option<PathBuf>,
    /// `allow`, `deny` or `local` (default): see [`OnError`].
    pub on_error: OnError,
    /// Longest wait for a connection to Redis (default `1s`).
    pub connect_timeout: HumanDuration,
    /// Longest wait for one rate-limit decision from Redis (default `250ms`).
    pub command_timeout: HumanDuration,
    /// While Redis is unreachable, how often one request tries it again (default `1s`).
    pub retry_interval: HumanDuration,
    /// Prefix of every Redis key (default `palisade:`).
    pub key_prefix: String,
    /// Most keys the memory limiter holds, as backend or fallback (default 100000).
    pub memory_max_keys: usize,
    /// Most keys remembered as blocked in front of Redis (default 100000).
    pub blocked_cache_max_keys: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Memory,
            redis_url: None,
            redis_ca_file: None,
            redis_client_cert: None,
            redis_client_key: None,
            on_error: OnError::Local,
            connect_timeout: HumanDuration(Duration::from_secs(1)),
            command_timeout: HumanDuration(Duration::from_millis(250)),
            retry_interval: HumanDuration(Duration::from_secs(1)),
            key_prefix: "palisade:".to_owned(),
            memory_max_keys: 100_000,
            blocked_cache_max_keys: 100_000,
        }
    }
}

/// The most keys `memory_max_keys` and `blocked_cache_max_keys` may ask for: about a
/// hundred times the default, a few GiB of counters.
pub const MAX_KEYS: usize = 10_000_000;

/// A `[state]` setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state.{field}: {message}")]
pub struct StateConfigError {
    /// The offending key.
    pub field: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
}

impl StateConfig {
    /// Checks what serde cannot: a Redis URL when Redis is chosen, non-zero timeouts and
    /// bounds. The gateway calls this once after parsing.
    pub fn validate(&self) -> Result<(), StateConfigError> {
        let error = |field, message: &str| StateConfigError {
            field,
            message: message.to_owned(),
        };
        match (&self.redis_client_cert, &self.redis_client_key) {
            (Some(_), None) => {
                return Err(error(
                    "redis_client_key",
                    "missing: redis_client_cert needs the certificate's private key in \
                     redis_client_key",
                ));
            }
            (None, Some(_)) => {
                return Err(error(
                    "redis_client_cert",
                    "missing: redis_client_key is set without the certificate it belongs to",
                ));
            }
            _ => {}
        }
        if self.backend == BackendKind::Redis {
            let Some(url) = &self.redis_url else {
                return Err(error(
                    "redis_url",
                    "missing: backend = \"redis\" needs redis_url = \"redis://host:port\" (or \
                     the PALISADE_REDIS_URL environment variable, which may carry a password)",
                ));
            };
            redis_conn::check_url(&url.0).map_err(|message| error("redis_url", message))?;
            // TLS settings beside a plain-text URL mean TLS was meant and is not in force.
            if let Some(field) = self.tls_key_set()
                && !redis_conn::is_tls(&url.0)
            {
                return Err(error(
                    field,
                    "is set but the Redis URL (redis_url or PALISADE_REDIS_URL) is redis:// \
                     (plain text): write rediss:// for TLS",
                ));
            }
        }
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("retry_interval", self.retry_interval),
        ];
        for (field, duration) in durations {
            if duration.0.is_zero() {
                return Err(error(field, "must be longer than zero, e.g. \"250ms\""));
            }
        }
        if self.memory_max_keys == 0 {
            return Err(error("memory_max_keys", "must be at least 1"));
        }
        // Each key holds its counters in memory: a cap far past any real need stops a typo
        // from letting a flood of distinct clients take all of the host's memory.
        for (field, keys) in [
            ("memory_max_keys", self.memory_max_keys),
            ("blocked_cache_max_keys", self.blocked_cache_max_keys),
        ] {
            if keys > MAX_KEYS {
                return Err(error(
                    field,
                    &format!("must be at most {MAX_KEYS}, such as 100000 (found {keys})"),
                ));
            }
        }
        if self.key_prefix.contains(char::is_whitespace) {
            return Err(error("key_prefix", "must not contain spaces"));
        }
        Ok(())
    }
}

impl StateConfig {
    /// The first key set that only means something over TLS, if any.
    pub fn tls_key_set(&self) -> Option<&'static str> {
        if self.redis_ca_file.is_some() {
            Some("redis_ca_file")
        } else if self.redis_client_cert.is_some() {
            Some("redis_client_cert")
        } else {
            None
        }
    }

    /// Reads `redis_ca_file` and `redis_client_cert`/`redis_client_key`, if set: the CA every
    /// `rediss://` connection trusts and the certificate it presents.
    pub fn redis_tls(&self) -> Result<RedisTls, StoreError> {
        let ca = match &self.redis_ca_file {
            None => None,
            Some(path) => Some(RedisCa::from_file(path).map_err(|why| {
                StoreError::Unavailable(format!("state.redis_ca_file: {}: {why}", path.display()))
            })?),
        };
        let client_cert = match (&self.redis_client_cert, &self.redis_client_key) {
            (Some(cert), Some(key)) => Some(
                ClientCert::load(
                    "state",
                    ("redis_client_cert", "redis_client_key"),
                    cert,
                    key,
                )
                .map_err(StoreError::Unavailable)?,
            ),
            _ => None,
        };
        Ok(RedisTls { ca, client_cert })
    }
}

/// The rate-limit store the gateway uses: memory, or Redis behind the `on_error` policy.
#[derive(Debug)]
pub enum StateBackend {
    /// `backend = "memory"`.
    Memory(MemoryRateLimiter),
    /// `backend = "redis"`.
    Redis(Box<Fallback<RedisRateLimiter>>),
}

impl StateBackend {
    /// Builds the store for a validated `config`. Redis need not be reachable yet: until it
    /// is, `on_error` applies. Must be called inside a tokio runtime.
    pub async fn from_config(
        config: &StateConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let memory = MemoryRateLimiter::new(clock.clone(), config.memory_max_keys);
        if config.backend == BackendKind::Memory {
            return Ok(Self::Memory(memory));
        }
        // Never memory in its place: instances would stop sharing limits without a word.
        let Some(url) = &config.redis_url else {
            return Err(StoreError::Unavailable(
                "backend = \"redis\" without a redis_url (or PALISADE_REDIS_URL)".into(),
            ));
        };
        let options = RedisOptions {
            url: url.0.clone(),
            tls: config.redis_tls()?,
            key_prefix: config.key_prefix.clone(),
            connect_timeout: config.connect_timeout.0,
            command_timeout: config.command_timeout.0,
            blocked_cache_max_keys: config.blocked_cache_max_keys,
        };
        let redis = RedisRateLimiter::connect(&options, clock.clone()).await?;
        let retry = config.retry_interval.0;
        let fallback = Fallback::new(redis, memory, config.on_error, clock, retry);
        Ok(Self::Redis(Box::new(fallback)))
    }

    /// Errors, fallbacks and evictions so far (errors and fallbacks stay zero for memory).
    pub fn stats(&self) -> BackendStats {
        match self {
            Self::Memory(memory) => BackendStats {
                evicted_live: memory.evicted_live(),
                ..BackendStats::default()
            },
            Self::Redis(fallback) => fallback.stats(),
        }
    }

    /// Why the shared backend counts as down, while it does (`None` for memory).
    pub fn degraded_by(&self) -> Option<String> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(fallback) => fallback.degraded_by(),
        }
    }

    /// Whether the backend answers, for `/readyz`.
    pub async fn ready(&self) -> bool {
        self.readiness().await.is_ok()
    }

    /// Whether the backend answers, and why not when it does not (the error never holds the
    /// Redis URL).
    pub async fn readiness(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(fallback) => fallback.primary().ping().await,
        }
    }
}

#[async_trait::async_trait]
impl RateLimitStore for StateBackend {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        match self {
            Self::Memory(memory) => Ok(memory.check_now(key, quota)),
            Self::Redis(fallback) => fallback.check(key, quota).await,
        }
    }

    fn check_ready(&self, key: &str, quota: &Quota) -> Option<Decision> {
        match self {
            Self::Memory(memory) => Some(memory.check_now(key, quota)),
            Self::Redis(_) => None,
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StateConfig, String> {
        let config: StateConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Regression: `backend = "redis"` that reached the builder without a URL (an unset
    /// variable the checks took as set) was served from memory, so instances stopped
    /// sharing limits without a word.
    #[tokio::test]
    async fn a_redis_backend_without_a_url_is_an_error_not_memory() {
        let config = StateConfig {
            backend: BackendKind::Redis,
            ..StateConfig::default()
        };
        let clock = Arc::new(palisade_policy::clock::SystemClock);
        let err = StateBackend::from_config(&config, clock)
            .await
            .expect_err("no URL, no backend");
        assert!(err.to_string().contains("redis_url"), "{err}");
    }

    #[test]
    fn an_empty_section_means_memory_with_local_fallback() {
        let config = parse("").expect("defaults are valid");
        assert_eq!(config, StateConfig::default());
        assert_eq!(config.backend, BackendKind::Memory);
        assert_eq!(config.on_error, OnError::Local);
        assert_eq!(config.command_timeout.0, Duration::from_millis(250));
    }

    #[test]
    fn a_redis_section_reads_every_key() {
        let config = parse(
            r#"
            backend = "redis"
            redis_url = "redis://127.0.0.1:6379"
            on_error = "deny"
            connect_timeout = "2s"
            command_timeout = "100ms"
            retry_interval = "5s"
            key_prefix = "shop:"
            memory_max_keys = 5000
            blocked_cache_max_keys = 1000
            "#,
        )
        .expect("valid");
        assert_eq!(config.on_error, OnError::Deny);
        assert_eq!(config.retry_interval.0, Duration::from_secs(5));
        assert_eq!(config.key_prefix, "shop:");
    }

    #[test]
    fn redis_without_a_url_is_refused_with_the_key_to_add() {
        let err = parse("backend = \"redis\"").expect_err("no url");
        assert!(err.starts_with("state.redis_url: missing"), "{err}");
        let err = parse("backend = \"redis\"\nredis_url = \"http://x\"").expect_err("bad scheme");
        assert!(err.contains("redis://"), "{err}");
    }

    #[test]
    fn rediss_urls_are_accepted_and_unverified_tls_is_refused() {
        parse("backend = \"redis\"\nredis_url = \"rediss://cache.example:6380\"").expect("tls");
        let ca = "redis_ca_file = \"ca.pem\"";
        parse(&format!(
            "backend = \"redis\"\nredis_url = \"rediss://db:6380/0\"\n{ca}"
        ))
        .expect("tls with a private CA");
        let err = parse("backend = \"redis\"\nredis_url = \"rediss://:pw@db:6380/#insecure\"")
            .expect_err("verification off");
        assert!(
            err.starts_with("state.redis_url: rediss://...#insecure"),
            "{err}"
        );
        assert!(
            err.contains("redis_ca_file") && !err.contains("pw@"),
            "{err}"
        );
        let err = parse(&format!(
            "backend = \"redis\"\nredis_url = \"redis://db:6379\"\n{ca}"
        ))
        .expect_err("a CA for plain text");
        assert!(err.starts_with("state.redis_ca_file:"), "{err}");
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(parse("backend = \"memcached\"").is_err());
        assert!(parse("on_error = \"ignore\"").is_err());
        assert!(
            parse("redis_uri = \"redis://x\"")
                .expect_err("typo")
                .contains("unknown field")
        );
        assert!(
            parse("command_timeout = \"0ms\"")
                .expect_err("zero")
                .contains("command_timeout")
        );
    }

    #[test]
    fn the_redis_url_never_appears_in_debug_output() {
        let config = StateConfig {
            redis_url: Some(RedisUrl("redis://:hunter2@db:6379".into())),
            ..StateConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
