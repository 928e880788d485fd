//! The Redis rate limiter against the machine's real Redis (127.0.0.1:6379), and against a
//! redis-server of our own that the tests stop and start to play "Redis down".
//!
//! Every test uses its own key prefix and never flushes anything.

#[path = "support/own_redis.rs"]
mod own_redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_policy::clock::{ManualClock, SystemClock};
use palisade_policy::ratelimit::{Algorithm, Quota, RateLimitStore, StoreError};
use palisade_store::ratelimit::memory::MemoryRateLimiter;
use palisade_store::ratelimit::redis::{RedisOptions, RedisRateLimiter};
use palisade_store::ratelimit::{Fallback, OnError, StateBackend, StateConfig};

use own_redis::OwnRedis;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test run uses.
fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("palisade-test:{}:{nanos}:{n}:{test}:", std::process::id())
}

fn options(url: &str, test: &str) -> RedisOptions {
    RedisOptions {
        url: url.to_owned(),
        tls: Default::default(),
        key_prefix: unique_prefix(test),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        blocked_cache_max_keys: 1_000,
    }
}

fn quota(algorithm: Algorithm, limit: u64, window_ms: u64) -> Quota {
    Quota {
        algorithm,
        limit,
        window: Duration::from_millis(window_ms),
    }
}

async fn shared_limiter(test: &str) -> RedisRateLimiter {
    shared_limiter_with_options(test).await.1
}

/// [`shared_limiter`] with its options, for tests that reach its keys in Redis.
async fn shared_limiter_with_options(test: &str) -> (RedisOptions, RedisRateLimiter) {
    let opts = options(SHARED_REDIS, test);
    let limiter = RedisRateLimiter::connect(&opts, Arc::new(SystemClock))
        .await
        .expect("valid url");
    (opts, limiter)
}

async fn redis_command(url: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).expect("valid url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable: run scripts/services up");
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query_async(&mut connection)
        .await
        .expect("command succeeds")
}

#[tokio::test]
async fn the_eleventh_request_in_a_window_is_refused_by_redis() {
    let limiter = shared_limiter("eleventh").await;
    // An hour-long window, so the test never straddles a window boundary of Redis TIME.
    let ten = quota(Algorithm::SlidingWindow, 10, 3_600_000);
    for i in 0..10 {
        let decision = limiter
            .check("ip:192.0.2.1", &ten)
            .await
            .expect("redis answers");
        assert!(decision.allowed, "request {i}");
        assert_eq!(decision.remaining, 9 - i);
    }
    let eleventh = limiter
        .check("ip:192.0.2.1", &ten)
        .await
        .expect("redis answers");
    assert!(!eleventh.allowed);
    assert!(eleventh.retry_after.is_some());
    assert_eq!(limiter.backend(), "redis");
}

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_combined_limit() {
    let shared = options(SHARED_REDIS, "combined");
    let first = RedisRateLimiter::connect(&shared, Arc::new(SystemClock))
        .await
        .expect("url");
    let second = RedisRateLimiter::connect(&shared, Arc::new(SystemClock))
        .await
        .expect("url");
    // A bucket refilling one token per 10 minutes: no window boundary to straddle.
    let six = quota(Algorithm::TokenBucket, 6, 3_600_000);
    let mut allowed = 0;
    for i in 0..12 {
        let instance = if i % 2 == 0 { &first } else { &second };
        allowed += usize::from(
            instance
                .check("user:42", &six)
                .await
                .expect("answers")
                .allowed,
        );
    }
    assert_eq!(allowed, 6);
}

#[tokio::test]
async fn a_blocked_key_is_answered_locally_without_redis() {
    let (opts, limiter) = shared_limiter_with_options("blocked").await;
    let two = quota(Algorithm::SlidingWindow, 2, 3_600_000);
    for _ in 0..2 {
        limiter.check("k", &two).await.expect("answers");
    }
    assert!(!limiter.check("k", &two).await.expect("answers").allowed);
    assert_eq!(limiter.blocked_keys(), 1);

    // Forget the counters in Redis: Redis itself would now allow, the local cache still refuses.
    let redis_key = format!("{}rl:sw:2:3600000:k", opts.key_prefix);
    redis_command(SHARED_REDIS, &["DEL", &redis_key]).await;
    assert!(!limiter.check("k", &two).await.expect("answers").allowed);
    assert!(
        limiter
            .check_in_redis("k", &two)
            .await
            .expect("answers")
            .allowed
    );
}

#[tokio::test]
async fn keys_expire_once_they_no_longer_matter() {
    let (opts, limiter) = shared_limiter_with_options("ttl").await;
    limiter
        .check("k", &quota(Algorithm::SlidingWindow, 5, 10_000))
        .await
        .expect("answers");
    let key = format!("{}rl:sw:5:10000:k", opts.key_prefix);
    let redis::Value::Int(ttl) = redis_command(SHARED_REDIS, &["PTTL", &key]).await else {
        panic!("PTTL answers an integer");
    };
    // Idle at the end of the next window: between 10 s and 20 s away, plus 1 s slack.
    assert!((10_000..=21_000).contains(&ttl), "ttl {ttl}");
}

async fn pttl(key: &str) -> i64 {
    let redis::Value::Int(ttl) = redis_command(SHARED_REDIS, &["PTTL", key]).await else {
        panic!("PTTL answers an integer");
    };
    ttl
}

#[tokio::test]
async fn a_windows_expiry_is_set_when_the_window_is_new_and_left_alone_within_it() {
    for (algorithm, code) in [
        (Algorithm::SlidingWindow, "sw"),
        (Algorithm::FixedWindow, "fw"),
    ] {
        let opts = options(SHARED_REDIS, "expiry-once");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter = RedisRateLimiter::connect(&opts, clock.clone())
            .await
            .expect("valid url")
            .dangerous_use_caller_time();
        let per_ten_s = quota(algorithm, 100, 10_000);
        let key = format!("{}rl:{code}:100:10000:k", opts.key_prefix);
        limiter.check("k", &per_ten_s).await.expect("answers");
        // Stretched by hand: another decision in the same window leaves the expiry alone.
        redis_command(SHARED_REDIS, &["PEXPIRE", &key, "3600000"]).await;
        clock.advance(1_000);
        limiter.check("k", &per_ten_s).await.expect("answers");
        assert!(
            pttl(&key).await > 3_000_000,
            "{code}: expiry reset within a window"
        );
        // The first decision of the next window sets it again (10 s for a fixed window,
        // 20 s for a sliding one, plus 1 s slack, from the decision's time).
        clock.advance(10_000);
        limiter.check("k", &per_ten_s).await.expect("answers");
        let ttl = pttl(&key).await;
        assert!((5_000..=21_000).contains(&ttl), "{code}: ttl {ttl}");
    }
}

#[tokio::test]
async fn a_quota_outside_the_exact_range_is_refused_before_reaching_redis() {
    let limiter = shared_limiter("range").await;
    let huge = quota(Algorithm::SlidingWindow, Quota::MAX_LIMIT + 1, 1_000);
    let err = limiter.check("k", &huge).await.expect_err("out of range");
    assert!(matches!(err, StoreError::Protocol(_)), "{err}");
}

#[tokio::test]
async fn instances_whose_clocks_disagree_by_years_still_share_one_limit() {
    // Decisions use Redis TIME; each instance's own clock only times its blocked cache.
    let shared = options(SHARED_REDIS, "skew");
    let past = Arc::new(ManualClock::new(0));
    let future = Arc::new(ManualClock::new(4_000_000_000_000));
    let first = RedisRateLimiter::connect(&shared, past).await.expect("url");
    let second = RedisRateLimiter::connect(&shared, future)
        .await
        .expect("url");
    let four = quota(Algorithm::SlidingWindow, 4, 3_600_000);
    let mut allowed = 0;
    for i in 0..8 {
        let instance = if i % 2 == 0 { &first } else { &second };
        allowed += usize::from(
            instance
                .check("ip:198.51.100.7", &four)
                .await
                .expect("ok")
                .allowed,
        );
    }
    assert_eq!(allowed, 4);
}

async fn fallback(
    redis: &OwnRedis,
    on_error: OnError,
    clock: Arc<ManualClock>,
) -> Fallback<RedisRateLimiter> {
    let limiter = RedisRateLimiter::connect(&options(&redis.url(), "down"), Arc::new(SystemClock))
        .await
        .expect("valid url");
    let local = MemoryRateLimiter::new(clock.clone(), 1_000);
    Fallback::new(limiter, local, on_error, clock, Duration::from_secs(1))
}

#[tokio::test]
async fn with_redis_down_local_limits_apply_and_shared_limits_return_with_redis() {
    let mut redis = OwnRedis::start();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = fallback(&redis, OnError::Local, clock.clone()).await;
    let three = quota(Algorithm::FixedWindow, 3, 3_600_000);
    assert!(store.check("k", &three).await.expect("redis up").allowed);
    assert!(!store.stats().degraded);

    redis.stop();
    let local: Vec<bool> = decide_n(&store, "k", &three, 4).await;
    assert_eq!(
        local,
        [true, true, true, false],
        "the memory limiter counts from zero"
    );
    let stats = store.stats();
    assert!(stats.degraded);
    assert_eq!(
        stats.errors, 1,
        "one probe per retry interval, the rest skip redis"
    );
    assert_eq!(stats.fallbacks, 4);

    redis.restart();
    clock.advance(1_000);
    // The new server is empty, so the shared count starts again; what matters is that
    // decisions come from Redis again.
    assert!(store.check("k", &three).await.expect("redis back").allowed);
    assert!(!store.stats().degraded);
    assert_eq!(store.stats().fallbacks, 4);
}

async fn decide_n(store: &dyn RateLimitStore, key: &str, quota: &Quota, n: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            store
                .check(key, quota)
                .await
                .expect("local never fails")
                .allowed,
        );
    }
    out
}

#[tokio::test]
async fn a_cached_refusal_is_not_mistaken_for_redis_coming_back() {
    let mut redis = OwnRedis::start();
    let clock = Arc::new(ManualClock::new(0));
    let store = fallback(&redis, OnError::Local, clock.clone()).await;
    let one = quota(Algorithm::FixedWindow, 1, 3_600_000);
    assert!(
        store
            .check("blocked", &one)
            .await
            .expect("redis up")
            .allowed
    );
    assert!(
        !store
            .check("blocked", &one)
            .await
            .expect("redis up")
            .allowed
    );

    redis.stop();
    store.check("other", &one).await.expect("falls back");
    assert!(store.stats().degraded);
    clock.advance(1_000);
    // This probe's key sits in the blocked cache; the probe must still ask Redis.
    store.check("blocked", &one).await.expect("falls back");
    let stats = store.stats();
    assert!(stats.degraded, "a cached answer passed for a recovery");
    assert_eq!(stats.errors, 2);
}

#[tokio::test]
async fn with_redis_down_deny_fails_closed_and_allow_fails_open() {
    let mut redis = OwnRedis::start();
    let clock = Arc::new(ManualClock::new(0));
    let deny = fallback(&redis, OnError::Deny, clock.clone()).await;
    let allow = fallback(&redis, OnError::Allow, clock.clone()).await;
    redis.stop();

    let one = quota(Algorithm::SlidingWindow, 1, 60_000);
    let err = deny.check("k", &one).await.expect_err("fails closed");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(deny.check("k", &one).await.is_err());
    for _ in 0..3 {
        let decision = allow.check("k", &one).await.expect("fails open");
        assert!(decision.allowed);
        assert!(!decision.counted, "nothing counted it: no quota to report");
    }
    assert_eq!(allow.stats().fallbacks, 3);
}

/// A key holding another type fails only its own decisions: the rest of its batch is
/// decided in Redis, the backend stays in use, and the foreign value is left alone.
#[tokio::test]
async fn a_key_holding_another_type_falls_back_alone_and_is_left_as_it_is() {
    let (opts, limiter) = shared_limiter_with_options("wrongtype").await;
    let five = quota(Algorithm::SlidingWindow, 5, 60_000);
    let foreign = format!("{}rl:sw:5:60000:foreign", opts.key_prefix);
    redis_command(SHARED_REDIS, &["SET", &foreign, "not a counter"]).await;

    let err = limiter
        .check("foreign", &five)
        .await
        .expect_err("a string is no counter");
    assert!(matches!(err, StoreError::KeyUnusable(_)), "{err}");
    assert!(err.to_string().contains(&foreign), "names the key: {err}");

    // A hash whose fields palisade could not have written is as unusable, for each
    // algorithm: read as counts, they made the script and the policy disagree, which
    // took Redis out of use for every key.
    for (code, field, value) in [
        ("sw", "c", "-inf"),
        ("sw", "c", "2.5"),
        ("sw", "p", "nan"),
        ("fw", "w", "1e300"),
        ("fw", "c", "-5"),
        ("tb", "r", "1e300"),
        ("tb", "t", "x"),
    ] {
        let algorithm = match code {
            "sw" => Algorithm::SlidingWindow,
            "fw" => Algorithm::FixedWindow,
            _ => Algorithm::TokenBucket,
        };
        let key = format!("{}rl:{code}:5:60000:odd", opts.key_prefix);
        redis_command(SHARED_REDIS, &["HSET", &key, field, value]).await;
        let err = limiter
            .check("odd", &quota(algorithm, 5, 60_000))
            .await
            .expect_err("not a counter palisade wrote");
        assert!(
            matches!(err, StoreError::KeyUnusable(_)),
            "{code} {field}={value}: {err}"
        );
        let kept = redis_command(SHARED_REDIS, &["HGET", &key, field]).await;
        assert_eq!(kept, redis::Value::BulkString(value.as_bytes().to_vec()));
        redis_command(SHARED_REDIS, &["DEL", &key]).await;
    }

    let clock = Arc::new(ManualClock::new(0));
    let store = Fallback::new(
        limiter,
        MemoryRateLimiter::new(clock.clone(), 1_000),
        OnError::Local,
        clock,
        Duration::from_secs(1),
    );
    // Decided together, so that they share script calls.
    let (f, o) = (
        || store.check("foreign", &five),
        || store.check("own", &five),
    );
    let decisions = tokio::join!(f(), o(), f(), o(), f(), o(), f(), o());
    let decisions = [
        decisions.0,
        decisions.1,
        decisions.2,
        decisions.3,
        decisions.4,
        decisions.5,
        decisions.6,
        decisions.7,
    ];
    for (i, decision) in decisions.into_iter().enumerate() {
        let decision = decision.expect("on_error = local answers the foreign key");
        assert!(decision.allowed, "decision {i}: 4 of 5 for each key");
    }
    let stats = store.stats();
    assert!(
        !stats.degraded,
        "one unusable key must not take Redis out of use"
    );
    assert_eq!(stats.errors, 4);
    assert_eq!(stats.fallbacks, 4);
    let own = format!("{}rl:sw:5:60000:own", opts.key_prefix);
    let count = redis_command(SHARED_REDIS, &["HGET", &own, "c"]).await;
    assert_eq!(
        count,
        redis::Value::BulkString(b"4".to_vec()),
        "counted in Redis"
    );
    let left = redis_command(SHARED_REDIS, &["GET", &foreign]).await;
    assert_eq!(left, redis::Value::BulkString(b"not a counter".to_vec()));
    redis_command(SHARED_REDIS, &["DEL", &foreign, &own]).await;
}

#[tokio::test]
async fn evalsha_reloads_scripts_after_redis_forgets_them() {
    let redis = OwnRedis::start();
    let limiter =
        RedisRateLimiter::connect(&options(&redis.url(), "noscript"), Arc::new(SystemClock))
            .await
            .expect("valid url");
    let q = quota(Algorithm::TokenBucket, 5, 1_000);
    assert!(limiter.check("k", &q).await.expect("answers").allowed);
    redis_command(&redis.url(), &["SCRIPT", "FLUSH"]).await;
    let after = limiter.check("k", &q).await.expect("reloaded on NOSCRIPT");
    assert!(after.allowed);
    assert_eq!(after.remaining, 3);
}

/// What Redis does to idle connections past its `timeout`: closes them (all but the caller's).
const CLOSE_CLIENT_CONNECTIONS: [&str; 6] = ["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"];

#[tokio::test]
async fn a_connection_redis_closed_while_idle_is_replaced_without_a_failure() {
    // Redis closes idle connections (its `timeout` setting) and every connection on restart;
    // the limiter learns of it only when it next sends. That decision used to fail, and with
    // on_error = "deny" answer 503 although Redis was up.
    let redis = OwnRedis::start();
    let clock = Arc::new(ManualClock::new(0));
    let store = fallback(&redis, OnError::Deny, clock).await;
    let three = quota(Algorithm::FixedWindow, 3, 3_600_000);
    assert!(store.check("k", &three).await.expect("redis up").allowed);

    redis_command(&redis.url(), &CLOSE_CLIENT_CONNECTIONS).await;
    let after = store.check("k", &three).await.expect("a new connection");
    assert!(after.allowed);
    assert_eq!(after.remaining, 1, "counted once, and the first count kept");
    let stats = store.stats();
    assert_eq!((stats.errors, stats.degraded), (0, false));

    // The readiness probe too: /readyz answering 503 would pull a healthy instance.
    redis_command(&redis.url(), &CLOSE_CLIENT_CONNECTIONS).await;
    store.primary().ping().await.expect("a new connection");
}

/// A limiter on the test's own Redis that waits `wait` to connect and for each command.
async fn limiter_waiting(redis: &OwnRedis, test: &str, wait: Duration) -> RedisRateLimiter {
    let options = RedisOptions {
        connect_timeout: wait,
        command_timeout: wait,
        ..options(&redis.url(), test)
    };
    RedisRateLimiter::connect(&options, Arc::new(SystemClock))
        .await
        .expect("valid url")
}

#[tokio::test]
async fn a_decision_its_caller_stopped_waiting_for_is_not_sent_to_redis() {
    // A caller gives up after `2 × (connect_timeout + command_timeout)` and takes on_error's
    // answer (or its request went away). Sent later, its decision used to be counted anyway:
    // after a 3 s stall, 208 of 600 clients answered 503 by on_error = "deny" were charged.
    let redis = OwnRedis::start();
    let limiter = Arc::new(limiter_waiting(&redis, "stale", Duration::from_secs(10)).await);
    let five = quota(Algorithm::FixedWindow, 5, 3_600_000);
    limiter.check("warm", &five).await.expect("redis up");

    // Redis holds every command for a while: both batches in flight wait, the next queues.
    redis_command(&redis.url(), &["CLIENT", "PAUSE", "1000", "ALL"]).await;
    let mut in_flight = Vec::new();
    for (key, batches) in [("a", 2), ("b", 3)] {
        let sender = Arc::clone(&limiter);
        in_flight.push(tokio::spawn(async move { sender.check(key, &five).await }));
        for _ in 0..10_000 {
            if limiter.batches_sent() == batches {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(limiter.batches_sent(), batches, "{key}'s batch on its way");
    }
    let gave_up = tokio::time::timeout(Duration::ZERO, limiter.check("c", &five)).await;
    assert!(gave_up.is_err(), "queued behind the two batches");

    for decision in in_flight {
        assert!(decision.await.expect("task").expect("redis back").allowed);
    }
    let c = limiter.check("c", &five).await.expect("redis up");
    assert_eq!(c.remaining, 4, "only this decision of key c was counted");
}

#[tokio::test]
async fn a_decision_given_up_on_while_its_connection_was_made_is_not_sent() {
    let redis = OwnRedis::start();
    let limiter = limiter_waiting(&redis, "stale-connect", Duration::from_secs(10)).await;
    let five = quota(Algorithm::FixedWindow, 5, 3_600_000);

    // No connection yet, and a stopped Redis: the connection waits for Redis's greeting.
    redis.signal("-STOP");
    let gave_up = tokio::time::timeout(Duration::from_millis(100), limiter.check("c", &five));
    assert!(gave_up.await.is_err(), "connecting outlasts the caller");
    redis.signal("-CONT");

    let c = limiter.check("c", &five).await.expect("redis back");
    assert_eq!(c.remaining, 4, "only this decision of key c was counted");
}

#[tokio::test]
async fn decisions_queued_behind_a_failed_connect_fail_with_it_instead_of_waiting_out_their_limit()
{
    let redis = OwnRedis::start();
    let limiter =
        Arc::new(limiter_waiting(&redis, "failed-connect", Duration::from_millis(300)).await);
    let five = quota(Algorithm::FixedWindow, 5, 3_600_000);

    // A stopped Redis accepts the TCP connection but never greets: connecting times out.
    redis.signal("-STOP");
    let checks: Vec<_> = (0..1_000)
        .map(|n| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.check(&format!("k{n}"), &five).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for check in checks {
        outcomes.push(check.await.expect("no panic"));
    }
    redis.signal("-CONT");

    for outcome in outcomes {
        let err = outcome.expect_err("redis cannot decide while stopped");
        let message = err.to_string();
        assert!(
            message.contains("connection") && !message.contains("no decision from redis within"),
            "failed with the connect error, not after waiting out its limit: {message}"
        );
    }
}

#[tokio::test]
async fn a_state_backend_built_from_config_reports_readiness() {
    let redis = OwnRedis::start();
    let config: StateConfig = toml::from_str(&format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{}\"",
        redis.url(),
        unique_prefix("config")
    ))
    .expect("valid config");
    config.validate().expect("valid");
    let backend = StateBackend::from_config(&config, Arc::new(SystemClock))
        .await
        .expect("built");
    assert!(backend.ready().await);
    assert_eq!(backend.backend(), "redis");
    // A Redis backend never decides at once (that would be this instance's count alone);
    // memory does.
    let quota = Quota {
        algorithm: Algorithm::SlidingWindow,
        limit: 10,
        window: Duration::from_secs(10),
    };
    assert!(backend.check_ready("ip:192.0.2.1", &quota).is_none());
    let memory = StateBackend::from_config(&StateConfig::default(), Arc::new(SystemClock))
        .await
        .expect("built");
    assert_eq!(memory.backend(), "memory");
    assert!(memory.check_ready("ip:192.0.2.1", &quota).is_some());
    drop(redis);
    assert!(!backend.ready().await);
}
