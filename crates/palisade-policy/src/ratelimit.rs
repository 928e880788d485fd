//! Rate-limit algorithms and the store contract the gateway calls.
//!
//! The contract is fixed here so the gateway and the stores can be written apart:
//! the gateway builds a key (`"<rule>:<ip|user|header|route>"`) and a [`Quota`], asks a
//! [`RateLimitStore`] for a [`Decision`], and turns the decision into headers.

use std::time::Duration;

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
}

/// Why a store could not decide. The gateway applies the operator's `on_error` policy.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The shared backend (Redis) could not be reached or timed out.
    #[error("state backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something palisade did not expect.
    #[error("state backend answered unexpectedly: {0}")]
    Protocol(String),
}

/// Where rate-limit counters live. Implemented in `palisade-store` (memory, Redis).
///
/// One call is one decision: check the key against the quota and, when allowed, count the
/// request, atomically.
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// Checks and counts one request for `key` under `quota`.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError>;

    /// A short name for logs and metrics: `memory`, `redis`.
    fn backend(&self) -> &'static str;
}
