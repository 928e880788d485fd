//! Rate-limit algorithms and the store contract the gateway calls.
//!
//! The contract is fixed here so the gateway and the stores can be written apart:
//! the gateway builds a key (`"<rule>:<ip|user|header|route>"`) and a [`Quota`], asks a
//! [`RateLimitStore`] for a [`Decision`], and turns the decision into headers.
//!
//! The algorithms themselves live here too, as pure functions of (state, quota, now): the
//! memory store keeps a [`CounterState`] per key and calls [`CounterState::check`]; the Redis
//! store runs Lua scripts that mirror these functions step for step and then derives the
//! [`Decision`] with the same code ([`sliding_window::decide`] and friends), so both stores
//! decide identically. Nothing here reads the clock or does I/O.
//!
//! All arithmetic is on whole milliseconds and whole requests, never floating point, so the
//! Redis scripts (whose numbers are doubles) agree exactly as long as the quota stays within
//! [`Quota::MAX_LIMIT`] and [`Quota::MAX_WINDOW`], which [`Quota::validate`] checks.

pub mod fixed_window;
pub mod sliding_window;
pub mod token_bucket;

use std::time::Duration;

use crate::clock::UnixMillis;

/// Which counting algorithm a limit uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// @upstash/ratelimit's sliding window: epoch-aligned windows, the previous window's
    /// count weighted by the unelapsed fraction of the current one.
    SlidingWindow,
    /// Epoch-aligned fixed windows.
    FixedWindow,
    /// A bucket of `limit` tokens refilled evenly over `window`.
    TokenBucket,
}

/// How many requests a key may make, and how they are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// The counting algorithm.
    pub algorithm: Algorithm,
    /// Requests allowed per window (bucket size for the token bucket).
    pub limit: u64,
    /// The window length (full refill time for the token bucket).
    pub window: Duration,
}

impl Quota {
    /// The largest `limit` a quota may have. Keeps `limit × window` in milliseconds below
    /// 2^53, where the Redis scripts' double arithmetic is still exact.
    pub const MAX_LIMIT: u64 = 1_000_000;

    /// The longest `window` a quota may have (30 days).
    pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);

    /// Checks that the quota can be enforced exactly: a limit of at least one request and at
    /// most [`Quota::MAX_LIMIT`], a window of at least one millisecond and at most
    /// [`Quota::MAX_WINDOW`]. The gateway calls this once when it loads the configuration.
    pub fn validate(&self) -> Result<(), QuotaError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(QuotaError::Limit(self.limit));
        }
        if self.window < Duration::from_millis(1) || self.window > Self::MAX_WINDOW {
            return Err(QuotaError::Window(self.window));
        }
        Ok(())
    }

    /// The window in whole milliseconds, at least one (a zero window would divide by zero).
    pub fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Why a [`Quota`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The limit is zero or above [`Quota::MAX_LIMIT`].
    #[error("rate limit {0} is out of range: expected between 1 and 1000000 requests")]
    Limit(u64),
    /// The window is under a millisecond or over [`Quota::MAX_WINDOW`].
    #[error("rate-limit window {0:?} is out of range: expected between 1ms and 30d")]
    Window(Duration),
}

/// The outcome of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on. A refused request is not counted.
    pub allowed: bool,
    /// The quota's limit, for `RateLimit-Limit`.
    pub limit: u64,
    /// Requests left, for `RateLimit-Remaining`.
    pub remaining: u64,
    /// Time until the quota resets (window end, or bucket full), for `RateLimit-Reset`.
    pub reset_after: Duration,
    /// For a refused request, how long to wait before a retry can succeed (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Whether a store counted the request. `false` only for a request let through
    /// uncounted (`on_error = "allow"` while the shared backend is down): its `limit`,
    /// `remaining` and `reset_after` describe no counter, so the gateway sends no
    /// `RateLimit-*` headers for it.
    pub counted: bool,
}

impl Decision {
    /// An allowed request with `remaining` requests left.
    pub fn allow(limit: u64, remaining: u64, reset_after_ms: u64) -> Self {
        Self {
            allowed: true,
            limit,
            remaining,
            reset_after: Duration::from_millis(reset_after_ms),
            retry_after: None,
            counted: true,
        }
    }

    /// A request let through without being counted, under a quota of `limit` requests.
    pub fn uncounted(limit: u64) -> Self {
        Self {
            counted: false,
            ..Self::allow(limit, limit, 0)
        }
    }

    /// A refused request that may be retried after `retry_after_ms`.
    pub fn refuse(limit: u64, reset_after_ms: u64, retry_after_ms: u64) -> Self {
        Self {
            allowed: false,
            limit,
            remaining: 0,
            reset_after: Duration::from_millis(reset_after_ms),
            retry_after: Some(Duration::from_millis(retry_after_ms)),
            counted: true,
        }
    }
}

/// The counters one key holds under one algorithm. The memory store keeps one per key; the
/// Redis scripts keep the same fields in a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterState {
    /// See [`sliding_window`].
    SlidingWindow(sliding_window::State),
    /// See [`fixed_window`].
    FixedWindow(fixed_window::State),
    /// See [`token_bucket`].
    TokenBucket(token_bucket::State),
}

impl CounterState {
    /// The state of a key that has made no request yet.
    pub fn fresh(quota: &Quota, now: UnixMillis) -> Self {
        match quota.algorithm {
            Algorithm::SlidingWindow => {
                Self::SlidingWindow(sliding_window::State::fresh(quota, now))
            }
            Algorithm::FixedWindow => Self::FixedWindow(fixed_window::State::fresh(quota, now)),
            Algorithm::TokenBucket => Self::TokenBucket(token_bucket::State::fresh(quota, now)),
        }
    }

    /// Decides one request at `now` and counts it when allowed. A state kept for another
    /// algorithm (the configuration changed) starts again from fresh.
    pub fn check(&mut self, quota: &Quota, now: UnixMillis) -> Decision {
        if self.algorithm() != quota.algorithm {
            *self = Self::fresh(quota, now);
        }
        match self {
            Self::SlidingWindow(state) => state.check(quota, now),
            Self::FixedWindow(state) => state.check(quota, now),
            Self::TokenBucket(state) => state.check(quota, now),
        }
    }

    /// From this time on the state decides exactly like a fresh one, so a store may forget it.
    pub fn idle_at(&self, quota: &Quota) -> UnixMillis {
        match self {
            Self::SlidingWindow(state) => state.idle_at(quota),
            Self::FixedWindow(state) => state.idle_at(quota),
            Self::TokenBucket(state) => state.idle_at(quota),
        }
    }

    /// The algorithm this state belongs to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::SlidingWindow(_) => Algorithm::SlidingWindow,
            Self::FixedWindow(_) => Algorithm::FixedWindow,
            Self::TokenBucket(_) => Algorithm::TokenBucket,
        }
    }
}

/// `ceil(a / b)` for `b > 0`, in `u128` so no product of `u64`s overflows.
fn div_ceil(a: u128, b: u128) -> u128 {
    a.div_ceil(b.max(1))
}

/// Narrows a value already bounded by a `u64` input back to `u64`.
fn narrow(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Why a store could not decide. The gateway applies the operator's `on_error` policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The shared backend (Redis) could not be reached or timed out.
    #[error("state backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something palisade did not expect.
    #[error("state backend answered unexpectedly: {0}")]
    Protocol(String),
    /// The backend works, but the value under this one key is not a rate-limit counter
    /// (another program wrote it, or a `key_prefix` clashes): this decision alone cannot be
    /// taken; other keys are unaffected.
    #[error("state backend cannot use this key: {0}")]
    KeyUnusable(String),
}

/// Where rate-limit counters live. Implemented in `palisade-store` (memory, Redis).
///
/// One call is one decision: check the key against the quota and, when allowed, count the
/// request, atomically.
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// Checks and counts one request for `key` under `quota`.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError>;

    /// [`RateLimitStore::check`] for a store that decides without waiting (memory): the
    /// decision, counted as `check` counts it; `None` from a store that must wait (Redis),
    /// which is then asked with `check`. Spares the memory store's callers the boxed future
    /// of an `async` trait call on every request.
    fn check_ready(&self, _key: &str, _quota: &Quota) -> Option<Decision> {
        None
    }

    /// A short name for logs and metrics: `memory`, `redis`.
    fn backend(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(algorithm: Algorithm, limit: u64, window_ms: u64) -> Quota {
        Quota {
            algorithm,
            limit,
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn quotas_outside_the_exact_range_are_refused() {
        let ok = quota(Algorithm::SlidingWindow, 10, 10_000);
        assert_eq!(ok.validate(), Ok(()));
        let zero = quota(Algorithm::SlidingWindow, 0, 10_000);
        assert_eq!(zero.validate(), Err(QuotaError::Limit(0)));
        let huge = quota(Algorithm::FixedWindow, Quota::MAX_LIMIT + 1, 10_000);
        assert!(huge.validate().is_err());
        let instant = quota(Algorithm::TokenBucket, 10, 0);
        assert!(instant.validate().is_err());
        let long = Quota {
            window: Quota::MAX_WINDOW + Duration::from_millis(1),
            ..ok
        };
        assert!(
            long.validate()
                .expect_err("31 days")
                .to_string()
                .contains("30d")
        );
    }

    #[test]
    fn a_state_kept_for_another_algorithm_starts_again_from_fresh() {
        let fixed = quota(Algorithm::FixedWindow, 1, 1_000);
        let mut state = CounterState::fresh(&fixed, 0);
        assert!(state.check(&fixed, 0).allowed);
        assert!(!state.check(&fixed, 0).allowed);

        let bucket = quota(Algorithm::TokenBucket, 1, 1_000);
        assert!(state.check(&bucket, 0).allowed);
        assert_eq!(state.algorithm(), Algorithm::TokenBucket);
    }

    #[test]
    fn a_zero_window_is_read_as_one_millisecond_instead_of_dividing_by_zero() {
        let zero = quota(Algorithm::SlidingWindow, 1, 0);
        assert_eq!(zero.window_ms(), 1);
        let mut state = CounterState::fresh(&zero, 7);
        assert!(state.check(&zero, 7).allowed);
    }
}
