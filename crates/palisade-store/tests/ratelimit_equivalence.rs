//! The memory and Redis limiters must decide identically: random request timings are fed to
//! both (the Redis scripts get the same times through `dangerous_use_caller_time`) and every
//! decision (allowed, remaining, reset, retry) must match, for every algorithm. The Redis
//! side goes through its blocked cache too, so cached refusals are checked as well.
//!
//! The second test sends the same kind of timings as concurrent decisions, so they reach
//! Redis together in one script call, and requires the decisions of taking them one by one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use palisade_policy::clock::ManualClock;
use palisade_policy::ratelimit::{Algorithm, Decision, Quota, RateLimitStore, StoreError};
use palisade_store::ratelimit::memory::MemoryRateLimiter;
use palisade_store::ratelimit::redis::{RedisOptions, RedisRateLimiter};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// When a request comes, relative to the previous one.
#[derive(Debug, Clone)]
enum Step {
    /// This many milliseconds later.
    Gap(u64),
    /// Just after a window boundary: `windows` whole windows after the next boundary, plus
    /// `offset` ms. Random gaps alone rarely land on the millisecond where windows roll.
    Boundary { windows: u64, offset: u64 },
}

/// One request: when it comes and which of a few keys it uses.
#[derive(Debug, Clone)]
struct Request {
    step: Step,
    key: u8,
}

impl Step {
    fn next(&self, now: u64, window_ms: u64) -> u64 {
        match *self {
            Self::Gap(ms) => now + ms,
            Self::Boundary { windows, offset } => {
                (now / window_ms + 1 + windows) * window_ms + offset.min(window_ms - 1)
            }
        }
    }
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::SlidingWindow),
        Just(Algorithm::FixedWindow),
        Just(Algorithm::TokenBucket),
    ]
}

fn scenario() -> impl Strategy<Value = (Quota, u64, Vec<Request>)> {
    let window = prop_oneof![
        Just(7u64),
        Just(333),
        Just(1_000),
        Just(10_000),
        1u64..5_000
    ];
    (algorithm(), 1u64..12, window, 0u64..10_000_000).prop_flat_map(
        |(algorithm, limit, window_ms, start)| {
            let quota = Quota {
                algorithm,
                limit,
                window: Duration::from_millis(window_ms),
            };
            // Gaps from zero (bursts) up to one and a half windows (skipped windows), and
            // landings just after window boundaries.
            let step = prop_oneof![
                3 => (0..=window_ms + window_ms / 2).prop_map(Step::Gap),
                2 => (0u64..2, 0u64..2)
                    .prop_map(|(windows, offset)| Step::Boundary { windows, offset }),
                1 => Just(Step::Gap(0)),
            ];
            let request = (step, 0u8..3).prop_map(|(step, key)| Request { step, key });
            let requests = prop::collection::vec(request, 1..60);
            (Just(quota), Just(1_700_000_000_000 + start), requests)
        },
    )
}

fn redis_limiter(
    runtime: &tokio::runtime::Runtime,
    clock: &Arc<ManualClock>,
    test: &str,
) -> RedisRateLimiter {
    let options = RedisOptions {
        url: "redis://127.0.0.1:6379".to_owned(),
        tls: Default::default(),
        key_prefix: format!("palisade-test:{}:{test}:", std::process::id()),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        blocked_cache_max_keys: 10_000,
    };
    runtime
        .block_on(RedisRateLimiter::connect(&options, clock.clone()))
        .expect("valid url")
        .dangerous_use_caller_time()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A prefix for one case's keys, unique to it, so earlier cases (and earlier runs) cannot
/// interfere.
fn case_nonce(counter: &AtomicU64, start: u64) -> String {
    let case = counter.fetch_add(1, Ordering::Relaxed);
    format!("{}:{case}", start ^ u64::from(std::process::id()) << 20)
}

#[test]
fn memory_and_redis_decide_identically_for_random_timings() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let clock = Arc::new(ManualClock::new(0));
    let redis = redis_limiter(&runtime, &clock, "equivalence");
    let case = AtomicU64::new(0);

    let result = runner(128).run(&scenario(), |(quota, start, requests)| {
        let nonce = case_nonce(&case, start);
        let memory = MemoryRateLimiter::new(clock.clone(), 1_000);
        let mut now = start;
        for (i, request) in requests.iter().enumerate() {
            now = request.step.next(now, quota.window_ms());
            clock.set(now);
            let key = format!("{nonce}:k{}", request.key);
            let in_memory = memory.check_at(&key, &quota, now);
            let in_redis = runtime
                .block_on(redis.check(&key, &quota))
                .map_err(|e| TestCaseError::fail(format!("redis failed: {e}")))?;
            prop_assert_eq!(
                in_memory,
                in_redis,
                "request {} at {} ms ({:?})",
                i,
                now - start,
                quota
            );
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

type Check<'a> = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + 'a>>;

/// Polls every future in order until all are done. Each future reads the clock at its first
/// poll, so the decisions are queued in this order, each at its own time, before any of them
/// reaches Redis (the runtime is single-threaded: the batch sender runs only when this yields).
async fn join_in_order<'a>(mut checks: Vec<Check<'a>>) -> Vec<Result<Decision, StoreError>> {
    let mut results: Vec<Option<Result<Decision, StoreError>>> =
        checks.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        for (check, result) in checks.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                if let Poll::Ready(done) = check.as_mut().poll(cx) {
                    *result = Some(done);
                }
            }
        }
        if results.iter().all(Option::is_some) {
            Poll::Ready(results.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[test]
fn decisions_batched_into_one_script_call_match_taking_them_one_by_one() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let clock = Arc::new(ManualClock::new(0));
    let redis = redis_limiter(&runtime, &clock, "batched");
    let case = AtomicU64::new(0);
    let decisions = AtomicU64::new(0);

    let result = runner(64).run(&scenario(), |(quota, start, requests)| {
        let nonce = case_nonce(&case, start);
        let memory = MemoryRateLimiter::new(clock.clone(), 1_000);
        let mut now = start;
        let mut expected = Vec::new();
        let mut checks: Vec<Check<'_>> = Vec::new();
        for request in &requests {
            now = request.step.next(now, quota.window_ms());
            let key = format!("{nonce}:k{}", request.key);
            expected.push(memory.check_at(&key, &quota, now));
            let (clock, redis) = (clock.clone(), &redis);
            checks.push(Box::pin(async move {
                clock.set(now);
                redis.check(&key, &quota).await
            }));
        }
        decisions.fetch_add(requests.len() as u64, Ordering::Relaxed);
        let in_redis = runtime.block_on(join_in_order(checks));
        for (i, (in_memory, in_redis)) in expected.into_iter().zip(in_redis).enumerate() {
            let in_redis =
                in_redis.map_err(|e| TestCaseError::fail(format!("redis failed: {e}")))?;
            prop_assert_eq!(in_memory, in_redis, "request {} ({:?})", i, quota);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Batching happened: far fewer script calls than decisions.
    let (sent, decided) = (redis.batches_sent(), decisions.load(Ordering::Relaxed));
    assert!(
        sent * 4 < decided,
        "{sent} script calls for {decided} decisions"
    );
}
