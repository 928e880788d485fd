//! The in-process rate limiter: one [`CounterState`] per key in a bounded, sharded map.
//!
//! It is the default backend for a single instance and the fallback while Redis is down.
//! Memory stays flat whatever keys clients make up: idle keys are forgotten (a key is idle
//! once its state decides like a fresh one), and the map never grows past `max_keys`.

use std::fmt;
use std::sync::Arc;

use palisade_policy::clock::{Clock, UnixMillis};
use palisade_policy::ratelimit::{CounterState, Decision, Quota, RateLimitStore, StoreError};

use super::key;
use super::table::BoundedMap;

/// Counters for one key under the quota they were made for.
struct Counter {
    quota: Quota,
    state: CounterState,
}

/// Rate limits held in this process's memory.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    counters: BoundedMap<Counter>,
}

impl MemoryRateLimiter {
    /// A limiter that reads time from `clock` and keeps at most `max_keys` keys.
    pub fn new(clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        Self {
            clock,
            counters: BoundedMap::new(max_keys),
        }
    }

    /// Decides and counts one request for `key` at the clock's current time.
    pub fn check_now(&self, key: &str, quota: &Quota) -> Decision {
        self.check_at(key, quota, self.clock.now_ms())
    }

    /// Decides and counts one request for `key` at `now`. A key last used under a different
    /// quota (the configuration changed) starts again from fresh. Keys longer than
    /// [`key::MAX_KEY_BYTES`] are stored by digest.
    pub fn check_at(&self, key: &str, quota: &Quota, now: UnixMillis) -> Decision {
        let key = key::bounded(key);
        let fresh = || Counter {
            quota: *quota,
            state: CounterState::fresh(quota, now),
        };
        self.counters.update(&key, now, fresh, |counter| {
            if counter.quota != *quota {
                *counter = fresh();
            }
            let decision = counter.state.check(quota, now);
            (decision, counter.state.idle_at(quota))
        })
    }

    /// How many keys are held, including idle ones not yet swept.
    pub fn key_count(&self) -> usize {
        self.counters.len()
    }

    /// The most keys this limiter will hold.
    pub fn max_keys(&self) -> usize {
        self.counters.capacity()
    }

    /// How many live counters were dropped because the limiter was full. Above zero, the
    /// bound is too small for the traffic and some clients got a fresh quota early.
    pub fn evicted_live(&self) -> u64 {
        self.counters.evicted_live()
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("max_keys", &self.max_keys())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RateLimitStore for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        Ok(self.check_now(key, quota))
    }

    fn check_ready(&self, key: &str, quota: &Quota) -> Option<Decision> {
        Some(self.check_now(key, quota))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::clock::ManualClock;
    use palisade_policy::ratelimit::Algorithm;
    use std::time::Duration;

    fn ten_per_ten_seconds() -> Quota {
        Quota {
            algorithm: Algorithm::SlidingWindow,
            limit: 10,
            window: Duration::from_secs(10),
        }
    }

    fn limiter(max_keys: usize) -> (Arc<ManualClock>, MemoryRateLimiter) {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let limiter = MemoryRateLimiter::new(clock.clone(), max_keys);
        (clock, limiter)
    }

    #[tokio::test]
    async fn the_eleventh_request_in_ten_seconds_is_refused_through_the_store_trait() {
        let (clock, limiter) = limiter(100);
        let store: &dyn RateLimitStore = &limiter;
        for _ in 0..10 {
            let decision = store.check("ip:192.0.2.1", &ten_per_ten_seconds()).await;
            assert!(decision.expect("memory never fails").allowed);
            clock.advance(100);
        }
        let eleventh = store.check("ip:192.0.2.1", &ten_per_ten_seconds()).await;
        assert!(!eleventh.expect("memory never fails").allowed);
        assert_eq!(store.backend(), "memory");
    }

    /// `check_ready` decides at once and counts as `check` does: both draw on one quota.
    #[tokio::test]
    async fn check_ready_counts_against_the_same_quota_as_check() {
        let (_, limiter) = limiter(100);
        let store: &dyn RateLimitStore = &limiter;
        let quota = ten_per_ten_seconds();
        for i in 0..10 {
            let decision = if i % 2 == 0 {
                store
                    .check_ready("ip:192.0.2.9", &quota)
                    .expect("memory decides at once")
            } else {
                store
                    .check("ip:192.0.2.9", &quota)
                    .await
                    .expect("memory never fails")
            };
            assert!(decision.allowed, "request {i}");
        }
        let eleventh = store.check_ready("ip:192.0.2.9", &quota).expect("at once");
        assert!(!eleventh.allowed);
        assert_eq!(eleventh.remaining, 0);
    }

    #[test]
    fn keys_are_counted_apart() {
        let (_, limiter) = limiter(100);
        for _ in 0..10 {
            limiter.check_now("a", &ten_per_ten_seconds());
        }
        assert!(!limiter.check_now("a", &ten_per_ten_seconds()).allowed);
        assert!(limiter.check_now("b", &ten_per_ten_seconds()).allowed);
    }

    #[test]
    fn key_count_never_exceeds_the_bound_under_a_flood_of_distinct_keys() {
        let (clock, limiter) = limiter(2_000);
        for i in 0..40_000u32 {
            limiter.check_now(
                &format!("ip:10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                &ten_per_ten_seconds(),
            );
            if i % 101 == 0 {
                assert!(limiter.key_count() <= 2_000, "{} keys", limiter.key_count());
                clock.advance(1);
            }
        }
        assert!(limiter.key_count() <= limiter.max_keys());
        assert!(limiter.max_keys() <= 2_000);
    }

    #[test]
    fn a_limited_key_stays_limited_while_a_flood_of_idle_keys_is_swept() {
        let (clock, limiter) = limiter(512);
        let hour = Quota {
            window: Duration::from_secs(3_600),
            ..ten_per_ten_seconds()
        };
        for _ in 0..10 {
            limiter.check_now("attacker", &hour);
        }
        for i in 0..5_000 {
            limiter.check_now(&format!("visitor{i}"), &ten_per_ten_seconds());
            clock.advance(100);
        }
        assert!(!limiter.check_now("attacker", &hour).allowed);
        assert_eq!(limiter.evicted_live(), 0);
    }

    #[test]
    fn long_keys_that_share_a_start_are_counted_apart() {
        let (_, limiter) = limiter(100);
        let first = format!("rule:header:{}a", "x".repeat(5_000));
        let second = format!("rule:header:{}b", "x".repeat(5_000));
        for _ in 0..10 {
            limiter.check_now(&first, &ten_per_ten_seconds());
        }
        assert!(!limiter.check_now(&first, &ten_per_ten_seconds()).allowed);
        assert!(limiter.check_now(&second, &ten_per_ten_seconds()).allowed);
    }

    #[test]
    fn a_changed_quota_starts_the_key_from_fresh() {
        let (_, limiter) = limiter(100);
        for _ in 0..10 {
            limiter.check_now("k", &ten_per_ten_seconds());
        }
        let doubled = Quota {
            limit: 20,
            ..ten_per_ten_seconds()
        };
        assert_eq!(limiter.check_now("k", &doubled).remaining, 19);
    }
}
