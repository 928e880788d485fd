//! Where rate-limit counters live: [`memory::MemoryRateLimiter`] in this process, and
//! [`redis::RedisRateLimiter`] shared by every instance through Redis, behind [`Fallback`]
//! which applies the operator's `on_error` policy while Redis is unreachable.
//!
//! Both implement [`palisade_policy::ratelimit::RateLimitStore`] and decide exactly alike:
//! the algorithms are the pure functions of `palisade_policy::ratelimit`, which the Redis
//! scripts mirror. The gateway builds a [`StateBackend`] from its [`StateConfig`] and calls
//! it. Nothing here decides what to do with a refused request; that is the gateway's
//! rate-limit stage.

mod batch;
mod coarse_clock;
mod config;
mod fallback;
pub mod key;
pub mod memory;
pub mod redis;
mod table;

pub use self::coarse_clock::CoarseClock;
pub use self::config::{BackendKind, RedisUrl, StateBackend, StateConfig, StateConfigError};
pub use self::fallback::{BackendStats, Fallback, OnError, SharedStore};
