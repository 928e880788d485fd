//! What rate limiting does while the shared backend is unreachable: the operator's
//! `[state] on_error` policy, applied by [`Fallback`] around the Redis limiter.
//!
//! The first failure is logged at `warn` and the first success after it at `info`, once
//! each, however many requests fail in between; every failure and every decision taken by
//! the policy is counted for metrics. While the backend is down, one request per
//! `retry_interval` tries it again, and the rest do not wait for it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use palisade_policy::clock::Clock;
use palisade_policy::ratelimit::{Decision, Quota, RateLimitStore, StoreError};
use serde::{Deserialize, Serialize};

use super::memory::MemoryRateLimiter;

/// A shared store that may answer some decisions from a local cache. While the backend is
/// considered down, [`Fallback`] probes it with [`SharedStore::check_shared`], which must
/// reach the backend: a cached answer would pass for a recovery.
#[async_trait::async_trait]
pub trait SharedStore: RateLimitStore {
    /// Decides in the shared backend itself, bypassing any local cache.
    async fn check_shared(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError>;
}

/// What to do with a request while the shared backend is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail open: allow every request (logged loudly, counted).
    Allow,
    /// Fail closed: [`RateLimitStore::check`] returns [`StoreError::Unavailable`], which the
    /// gateway answers with 503.
    Deny,
    /// Limit with this instance's memory limiter until the backend is back (default). Limits
    /// then hold per instance rather than across all of them.
    #[default]
    Local,
}

impl OnError {
    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Local => "local",
        }
    }
}

/// Counters for metrics: `palisade_state_backend_errors_total` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendStats {
    /// Calls to the shared backend that failed.
    pub errors: u64,
    /// Decisions taken by the `on_error` policy instead of the shared backend.
    pub fallbacks: u64,
    /// Whether the shared backend is currently considered unreachable.
    pub degraded: bool,
    /// Live counters the memory limiter dropped because `memory_max_keys` was reached.
    pub evicted_live: u64,
}

/// Applies `on_error` around a shared store.
pub struct Fallback<S> {
    primary: S,
    local: MemoryRateLimiter,
    on_error: OnError,
    clock: Arc<dyn Clock>,
    retry_interval_ms: u64,
    degraded: AtomicBool,
    /// While degraded, the time at which the next request may try the primary again.
    retry_at: AtomicU64,
    errors: AtomicU64,
    fallbacks: AtomicU64,
    /// Why the primary was last found down (the error that degraded it), for events.
    degraded_by: std::sync::Mutex<Option<String>>,
    /// Whether a key the backend cannot use was reported at `warn` already.
    key_warned: AtomicBool,
}

impl<S: SharedStore> Fallback<S> {
    /// Wraps `primary`; `local` answers under [`OnError::Local`].
    pub fn new(
        primary: S,
        local: MemoryRateLimiter,
        on_error: OnError,
        clock: Arc<dyn Clock>,
        retry_interval: Duration,
    ) -> Self {
        Self {
            primary,
            local,
            on_error,
            clock,
            retry_interval_ms: u64::try_from(retry_interval.as_millis()).unwrap_or(u64::MAX),
            degraded: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            degraded_by: std::sync::Mutex::new(None),
            key_warned: AtomicBool::new(false),
        }
    }

    /// The wrapped store.
    pub fn primary(&self) -> &S {
        &self.primary
    }

    /// Errors, fallbacks and whether the primary is considered down.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            errors: self.errors.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            degraded: self.degraded.load(Ordering::Relaxed),
            evicted_live: self.local.evicted_live(),
        }
    }

    /// The error that made the primary count as down, while it does. Store errors never
    /// carry the Redis URL (nor its password).
    pub fn degraded_by(&self) -> Option<String> {
        if !self.degraded.load(Ordering::Relaxed) {
            return None;
        }
        let reason = self.degraded_by.lock();
        reason
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How this request may use the primary: normally, as the one probe allowed per
    /// `retry_interval` while degraded, or not at all.
    fn route(&self) -> Route {
        if !self.degraded.load(Ordering::Acquire) {
            return Route::Primary;
        }
        let now = self.clock.now_ms();
        let retry_at = self.retry_at.load(Ordering::Acquire);
        let probe = now >= retry_at
            && self
                .retry_at
                .compare_exchange(
                    retry_at,
                    now.saturating_add(self.retry_interval_ms),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        if probe { Route::Probe } else { Route::Local }
    }

    fn record_failure(&self, error: &StoreError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let retry_at = self.clock.now_ms().saturating_add(self.retry_interval_ms);
        self.retry_at.store(retry_at, Ordering::Release);
        // Failures are rare (the first, then one probe per retry_interval): the reason is
        // kept before the state turns degraded, so whoever sees it degraded sees why.
        let reason = self.degraded_by.lock();
        *reason.unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                state.backend = self.primary.backend(),
                state.on_error = self.on_error.as_str(),
                error = %error,
                "rate-limit state backend failed; applying on_error until it answers again"
            );
        }
    }

    fn record_success(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(
                state.backend = self.primary.backend(),
                "rate-limit state backend reachable again; shared limits restored"
            );
        }
    }

    fn fall_back(
        &self,
        key: &str,
        quota: &Quota,
        error: StoreError,
    ) -> Result<Decision, StoreError> {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        match self.on_error {
            OnError::Allow => Ok(Decision::uncounted(quota.limit)),
            OnError::Deny => Err(error),
            OnError::Local => Ok(self.local.check_now(key, quota)),
        }
    }
}

/// Where one request's decision comes from.
enum Route {
    /// The primary, as usual (its local cache included).
    Primary,
    /// The primary's backend itself, probing whether it is back.
    Probe,
    /// The `on_error` policy, without trying the primary.
    Local,
}

#[async_trait::async_trait]
impl<S: SharedStore> RateLimitStore for Fallback<S> {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        let answer = match self.route() {
            Route::Primary => self.primary.check(key, quota).await,
            Route::Probe => self.primary.check_shared(key, quota).await,
            Route::Local => {
                let down = format!("{} is unreachable", self.primary.backend());
                return self.fall_back(key, quota, StoreError::Unavailable(down));
            }
        };
        match answer {
            Ok(decision) => {
                self.record_success();
                Ok(decision)
            }
            // The backend answered: only this key is unusable, so only this decision falls
            // back, and the backend stays in use for every other key.
            Err(error @ StoreError::KeyUnusable(_)) => {
                self.record_success();
                self.errors.fetch_add(1, Ordering::Relaxed);
                if !self.key_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        state.backend = self.primary.backend(),
                        state.on_error = self.on_error.as_str(),
                        error = %error,
                        "rate-limit key unusable in the state backend; on_error applies to its \
                         requests (later ones are logged at debug)"
                    );
                } else {
                    tracing::debug!(error = %error, "rate-limit key unusable in the state backend");
                }
                self.fall_back(key, quota, error)
            }
            Err(error) => {
                self.record_failure(&error);
                self.fall_back(key, quota, error)
            }
        }
    }

    fn backend(&self) -> &'static str {
        self.primary.backend()
    }
}

impl<S: fmt::Debug> fmt::Debug for Fallback<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("primary", &self.primary)
            .field("on_error", &self.on_error)
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
