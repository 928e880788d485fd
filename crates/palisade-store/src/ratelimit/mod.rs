//! Where rate-limit counters live: [`memory::MemoryRateLimiter`] in this process, and
//! [`redis::RedisRateLimiter`] shared by every instance through Redis.
//!
//! Both implement [`palisade_policy::ratelimit::RateLimitStore`] and decide exactly alike:
//! the algorithms are the pure functions of `palisade_policy::ratelimit`, which the Redis
//! scripts mirror. Nothing here decides what to do with a refused request; that is the
//! gateway's rate-limit stage.

pub mod memory;
mod table;
