//! Rate limits shared by every palisade instance through one Redis.
//!
//! A decision takes at most one round trip: an atomic Lua script (sent by EVALSHA and loaded
//! again when Redis answers NOSCRIPT) reads the key's counters, decides, counts and sets the
//! key's expiry. Decisions that arrive together share one script call ([`super::batch`]). The
//! script reads the time with Redis `TIME`, so all instances share one clock and their own
//! clocks' skew changes nothing. The script returns the counts it decided on and the
//! [`Decision`] is then built by the same pure functions the memory limiter uses, so the two
//! backends answer alike.
//!
//! A refused key cannot become allowed before its `retry_after` (refused requests are not
//! counted, and other instances can only add counts), so refusals are remembered locally
//! until then: a flood from one client costs Redis nothing after its first refusal.
//!
//! Never logs the Redis URL, which may carry a password.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_policy::clock::{Clock, UnixMillis};
use palisade_policy::ratelimit::{
    Algorithm, Decision, Quota, RateLimitStore, StoreError, fixed_window, sliding_window,
    token_bucket,
};

use super::batch::{self, Ask, Batcher, unavailable};
use super::fallback::SharedStore;
use super::key;
use super::table::BoundedMap;
use crate::redis_conn::{RedisTls, SharedConnection};

/// How to reach Redis and how long to wait for it.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`, or `rediss://...` for TLS.
    pub url: String,
    /// For `rediss://`: the CA the server's certificate must be signed by (else the public
    /// web roots) and the client certificate to present (else none).
    pub tls: RedisTls,
    /// Prepended to every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for one decision once connected.
    pub command_timeout: Duration,
    /// Most keys remembered as blocked in this process.
    pub blocked_cache_max_keys: usize,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("blocked_cache_max_keys", &self.blocked_cache_max_keys)
            .finish()
    }
}

/// A refusal remembered until the key can be allowed again.
#[derive(Debug, Clone, Copy)]
struct Blocked {
    algorithm: Algorithm,
    limit: u64,
    window_ms: u64,
    /// Local time at which the refused request's `reset_after` ended.
    reset_at: UnixMillis,
    /// Local time before which every request is refused.
    until: UnixMillis,
}

impl Blocked {
    fn decision(&self, now: UnixMillis) -> Decision {
        let reset_after = match self.algorithm {
            // The bucket cannot fill while it is empty and refusing.
            Algorithm::TokenBucket => self.reset_at.saturating_sub(now),
            // Windows roll on: past the remembered end, the next window's end counts.
            Algorithm::SlidingWindow | Algorithm::FixedWindow if now >= self.reset_at => {
                self.window_ms - (now - self.reset_at) % self.window_ms
            }
            Algorithm::SlidingWindow | Algorithm::FixedWindow => self.reset_at - now,
        };
        Decision::refuse(self.limit, reset_after, self.until.saturating_sub(now))
    }
}

/// Rate limits kept in Redis.
pub struct RedisRateLimiter {
    batcher: Arc<Batcher>,
    key_prefix: String,
    /// Local time, used for the blocked cache (and, in tests, sent to the scripts).
    clock: Arc<dyn Clock>,
    caller_time: bool,
    blocked: BoundedMap<Blocked>,
}

impl RedisRateLimiter {
    /// Prepares a limiter. The connection is made on first use and remade after failures, so
    /// this succeeds while Redis is down; only a malformed URL is refused. Must be called
    /// inside a tokio runtime.
    pub async fn connect(
        options: &RedisOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let connection = SharedConnection::new(
            &options.url,
            &options.tls,
            options.connect_timeout,
            options.command_timeout,
        )
        .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let batcher = Batcher::new(connection, options.connect_timeout, options.command_timeout);
        Ok(Self {
            batcher: Arc::new(batcher),
            key_prefix: options.key_prefix.clone(),
            clock,
            caller_time: false,
            blocked: BoundedMap::new(options.blocked_cache_max_keys),
        })
    }

    /// Sends the local clock's time to the scripts instead of letting them read Redis `TIME`.
    /// Dangerous outside tests: instances with skewed clocks would disagree. It exists so a
    /// test can feed the same timings to this limiter and the memory one.
    pub fn dangerous_use_caller_time(mut self) -> Self {
        self.caller_time = true;
        self
    }

    /// Checks that Redis answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let command = redis::cmd("PING");
        let mut connection = self.batcher.connection.get().await.map_err(unavailable)?;
        match command.query_async::<String>(&mut connection).await {
            Ok(_) => Ok(()),
            // As for decisions: a connection Redis closed while idle is replaced once.
            Err(err) if err.is_connection_dropped() => {
                let connection = &self.batcher.connection;
                let mut fresh = connection
                    .replace_dropped(&err)
                    .await
                    .map_err(unavailable)?;
                match command.query_async::<String>(&mut fresh).await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(self.batcher.failed(err)),
                }
            }
            Err(err) => Err(self.batcher.failed(err)),
        }
    }

    /// Decides one request in Redis, skipping the blocked cache.
    pub async fn check_in_redis(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        let redis_key = self.redis_key(key, quota);
        let now = self.clock.now_ms();
        self.decide_in_redis(key, redis_key, quota, now).await
    }

    /// Decides one request in Redis under its Redis key (`redis_key`, made from `key` and
    /// `quota`, handed to the batch rather than copied), remembering a refusal.
    async fn decide_in_redis(
        &self,
        key: &str,
        redis_key: String,
        quota: &Quota,
        now: UnixMillis,
    ) -> Result<Decision, StoreError> {
        quota
            .validate()
            .map_err(|err| StoreError::Protocol(format!("refusing to send quota: {err}")))?;
        let decision = self.run_script(key, redis_key, quota, now).await?;
        if !decision.allowed {
            // Made again: refusals are the rare case (the blocked cache answers the rest).
            self.remember_refusal(&self.redis_key(key, quota), quota, now, &decision);
        }
        Ok(decision)
    }

    /// Script calls sent to Redis so far: fewer than the decisions they carried when
    /// decisions arrived together.
    pub fn batches_sent(&self) -> u64 {
        self.batcher.batches_sent()
    }

    /// How many keys are remembered as blocked.
    pub fn blocked_keys(&self) -> usize {
        self.blocked.len()
    }

    /// `<prefix>rl:<algorithm>:<limit>:<window ms>:<key>`: the quota is part of the key, so a
    /// changed limit starts from fresh counters, as in the memory limiter. Long keys are
    /// stored by digest ([`key::bounded`]).
    fn redis_key(&self, key: &str, quota: &Quota) -> String {
        let key = key::bounded(key);
        let mut numbers = itoa::Buffer::new();
        // Written piece by piece: `format!` cost about as much as the rest of the key's work.
        let mut redis_key = String::with_capacity(self.key_prefix.len() + key.len() + 48);
        redis_key.push_str(&self.key_prefix);
        redis_key.push_str("rl:");
        redis_key.push_str(batch::algorithm_code(quota.algorithm));
        redis_key.push(':');
        redis_key.push_str(numbers.format(quota.limit));
        redis_key.push(':');
        redis_key.push_str(numbers.format(quota.window_ms()));
        redis_key.push(':');
        redis_key.push_str(&key);
        redis_key
    }

    async fn run_script(
        &self,
        key: &str,
        redis_key: String,
        quota: &Quota,
        now: UnixMillis,
    ) -> Result<Decision, StoreError> {
        let ask = Ask {
            key: redis_key,
            algorithm: quota.algorithm,
            limit: quota.limit,
            window_ms: quota.window_ms(),
            now: self.caller_time.then_some(now),
        };
        let reply = self.batcher.decide(ask).await?;
        if reply[0] == batch::UNUSABLE {
            return Err(StoreError::KeyUnusable(format!(
                "Redis key {} holds a value that is not a rate-limit counter (another \
                 program wrote it, or key_prefix clashes with another program's keys)",
                self.redis_key(key, quota)
            )));
        }
        decision_from_reply(quota, &reply)
    }

    fn remember_refusal(
        &self,
        redis_key: &str,
        quota: &Quota,
        now: UnixMillis,
        decision: &Decision,
    ) {
        let Some(retry_after) = decision.retry_after else {
            return;
        };
        let until = now.saturating_add(millis(retry_after));
        let blocked = Blocked {
            algorithm: quota.algorithm,
            limit: quota.limit,
            window_ms: quota.window_ms(),
            reset_at: now.saturating_add(millis(decision.reset_after)),
            until,
        };
        self.blocked.insert(redis_key, now, blocked, until);
    }
}

/// Builds the decision from a script's reply with the policy crate's functions, checking
/// that the script decided as they do.
fn decision_from_reply(quota: &Quota, reply: &[i64]) -> Result<Decision, StoreError> {
    // Sliding window answers 4 integers, the others 3 (and a 0).
    let width = match quota.algorithm {
        Algorithm::SlidingWindow => batch::REPLY_WIDTH,
        Algorithm::FixedWindow | Algorithm::TokenBucket => batch::REPLY_WIDTH - 1,
    };
    let values: Vec<u64> = reply[..width.min(reply.len())]
        .iter()
        .map(|&v| u64::try_from(v).unwrap_or(u64::MAX))
        .collect();
    let (limit, window_ms) = (quota.limit, quota.window_ms());
    let decision = match (quota.algorithm, values.as_slice()) {
        (Algorithm::SlidingWindow, &[_, elapsed, previous, current]) => {
            sliding_window::decide(limit, window_ms, elapsed, previous, current)
        }
        (Algorithm::FixedWindow, &[_, elapsed, count]) => {
            fixed_window::decide(limit, window_ms, elapsed, count)
        }
        (Algorithm::TokenBucket, &[_, tokens, carry]) => {
            token_bucket::decide(limit, window_ms, tokens, carry)
        }
        _ => {
            return Err(StoreError::Protocol(format!(
                "unexpected script reply {reply:?}"
            )));
        }
    };
    let script_allowed = values.first() == Some(&1);
    if script_allowed != decision.allowed {
        return Err(StoreError::Protocol(format!(
            "script and policy disagree on reply {reply:?}: the deployed script is out of date"
        )));
    }
    Ok(decision)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("connection", &self.batcher.connection)
            .field("caller_time", &self.caller_time)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RateLimitStore for RedisRateLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        let redis_key = self.redis_key(key, quota);
        let now = self.clock.now_ms();
        if let Some(decision) = self.blocked.read(&redis_key, now, |b| b.decision(now)) {
            return Ok(decision);
        }
        self.decide_in_redis(key, redis_key, quota, now).await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[async_trait::async_trait]
impl SharedStore for RedisRateLimiter {
    async fn check_shared(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        self.check_in_redis(key, quota).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_refusal_reports_the_next_windows_reset_once_the_window_rolls() {
        // Refused at 2 s into a 10 s window with current = limit: reset in 8 s, retry in 8.001 s.
        let blocked = Blocked {
            algorithm: Algorithm::SlidingWindow,
            limit: 10,
            window_ms: 10_000,
            reset_at: 8_000,
            until: 8_001,
        };
        let before = blocked.decision(7_000);
        assert_eq!(before.reset_after, Duration::from_millis(1_000));
        assert_eq!(before.retry_after, Some(Duration::from_millis(1_001)));
        let at_roll = blocked.decision(8_000);
        assert_eq!(at_roll.reset_after, Duration::from_millis(10_000));
        assert_eq!(at_roll.retry_after, Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_reply_that_disagrees_with_the_policy_is_a_protocol_error() {
        let quota = Quota {
            algorithm: Algorithm::FixedWindow,
            limit: 3,
            window: Duration::from_secs(1),
        };
        // count 3 of 3 means refused; a script claiming "allowed" is out of date.
        assert!(decision_from_reply(&quota, &[1, 10, 3]).is_err());
        assert!(decision_from_reply(&quota, &[0, 10]).is_err());
        let refused = decision_from_reply(&quota, &[0, 10, 3]).expect("consistent");
        assert_eq!(refused.retry_after, Some(Duration::from_millis(990)));
    }
}
