//! Rate-limit decisions: the memory limiter against the `governor` crate over 10 000 keys
//! (ns per decision; with the [`CoarseClock`] the gateway uses, and with `SystemClock` to
//! show what reading the wall clock per decision costs), and the Redis limiter with 64
//! concurrent requests over one multiplexed connection against a bare EVALSHA loop of the
//! same script on the same kind of connection.
//!
//! `bench/ratelimit.sh` runs this and prints the ratios. The Redis part needs Redis on
//! 127.0.0.1:6379 and is skipped, with a message, when it is not there.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_policy::clock::{Clock, SystemClock};
use palisade_policy::ratelimit::{Algorithm, Quota};
use palisade_store::ratelimit::CoarseClock;
use palisade_store::ratelimit::memory::MemoryRateLimiter;
use palisade_store::ratelimit::redis::{RedisOptions, RedisRateLimiter};

const KEYS: usize = 10_000;
const CONCURRENCY: u64 = 64;
const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
        .collect()
}

/// The default: 10 requests per 10 s.
fn quota(algorithm: Algorithm) -> Quota {
    Quota {
        algorithm,
        limit: 10,
        window: Duration::from_secs(10),
    }
}

/// Alternates batches of the memory limiter and governor so both see the same load from the
/// rest of the machine, and prints `PAIRED <name> <ours ns> <governor ns>` lines for
/// `bench/ratelimit.sh`. Criterion's separate runs drift apart on a shared machine.
fn paired(keys: &[String], clock: &Arc<dyn Clock>) {
    const BATCH: usize = 10_000;
    const ROUNDS: usize = 300;
    let per_second = governor::Quota::with_period(Duration::from_secs(1))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(10).expect("non-zero"));
    for (name, algorithm) in [
        ("sliding_window", Algorithm::SlidingWindow),
        ("fixed_window", Algorithm::FixedWindow),
        ("token_bucket", Algorithm::TokenBucket),
    ] {
        let limiter = MemoryRateLimiter::new(clock.clone(), 100_000);
        let governor = governor::RateLimiter::keyed(per_second);
        let quota = quota(algorithm);
        let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
        for round in 0..ROUNDS {
            let run_ours = || {
                let start = Instant::now();
                for key in &keys[..BATCH] {
                    black_box(limiter.check_now(key, &quota));
                }
                start.elapsed()
            };
            let run_theirs = || {
                let start = Instant::now();
                for key in &keys[..BATCH] {
                    black_box(governor.check_key(key).is_ok());
                }
                start.elapsed()
            };
            if round % 2 == 0 {
                ours += run_ours();
                theirs += run_theirs();
            } else {
                theirs += run_theirs();
                ours += run_ours();
            }
        }
        let per = |total: Duration| total.as_nanos() as f64 / (BATCH * ROUNDS) as f64;
        println!("PAIRED {name} {:.1} {:.1}", per(ours), per(theirs));
    }
}

fn memory(c: &mut Criterion) {
    let keys = keys();
    let coarse_clock: Arc<dyn Clock> = CoarseClock::start().expect("clock thread");
    paired(&keys, &coarse_clock);
    let mut group = c.benchmark_group("memory");
    group.measurement_time(Duration::from_secs(3));
    let coarse = coarse_clock;
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    for (name, algorithm, clock) in [
        ("sliding_window", Algorithm::SlidingWindow, &coarse),
        ("fixed_window", Algorithm::FixedWindow, &coarse),
        ("token_bucket", Algorithm::TokenBucket, &coarse),
        (
            "sliding_window_system_clock",
            Algorithm::SlidingWindow,
            &system,
        ),
    ] {
        let limiter = MemoryRateLimiter::new(clock.clone(), 100_000);
        let quota = quota(algorithm);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(limiter.check_now(&keys[i], &quota))
            })
        });
    }
    group.finish();

    // The peer: governor's keyed GCRA limiter (dashmap), 10 per 10 s as a burst of 10
    // refilled one per second.
    let per_second = governor::Quota::with_period(Duration::from_secs(1))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(10).expect("non-zero"));
    let governor = governor::RateLimiter::keyed(per_second);
    let mut group = c.benchmark_group("governor");
    group.measurement_time(Duration::from_secs(3));
    let mut i = 0;
    group.bench_function("keyed_gcra", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(governor.check_key(&keys[i]).is_ok())
        })
    });
    group.finish();
}

/// Runs `iters` calls of `call` spread over 64 concurrent tasks and returns the wall time.
async fn concurrently<F, Fut>(iters: u64, call: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= iters {
                        break;
                    }
                    call(n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    start.elapsed()
}

fn redis(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let reachable = runtime.block_on(async {
        let client = redis::Client::open(REDIS_URL).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    });
    let Some(bare_connection) = reachable else {
        eprintln!("redis benches skipped: no Redis on {REDIS_URL} (run scripts/services up)");
        return;
    };
    let prefix = format!("palisade-bench:{}:", std::process::id());
    let options = RedisOptions {
        url: REDIS_URL.to_owned(),
        tls: Default::default(),
        key_prefix: prefix.clone(),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(2),
        blocked_cache_max_keys: 100_000,
    };
    let limiter = runtime
        .block_on(RedisRateLimiter::connect(&options, Arc::new(SystemClock)))
        .expect("valid url");
    let limiter = Arc::new(limiter);
    let keys = Arc::new(keys());
    // A limit no key reaches, so every decision goes to Redis and counts.
    let open = Quota {
        limit: 1_000_000,
        ..quota(Algorithm::SlidingWindow)
    };

    let mut group = c.benchmark_group("redis");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("limiter_64_concurrent", |b| {
        b.iter_custom(|iters| {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            runtime.block_on(concurrently(iters, move |n| {
                let (limiter, keys) = (limiter.clone(), keys.clone());
                async move {
                    let key = &keys[n as usize % KEYS];
                    limiter
                        .check_in_redis(key, &open)
                        .await
                        .expect("redis answers");
                }
            }))
        })
    });

    // The reference: the same script by EVALSHA straight on a multiplexed connection, one
    // decision per call (the limiter batches decisions that arrive together).
    let script = Arc::new(redis::Script::new(include_str!(
        "../src/ratelimit/lua/batch.lua"
    )));
    let bare_keys: Arc<Vec<String>> =
        Arc::new(keys.iter().map(|k| format!("{prefix}bare:{k}")).collect());
    group.bench_function("bare_evalsha_64_concurrent", |b| {
        b.iter_custom(|iters| {
            let (connection, keys, script) =
                (bare_connection.clone(), bare_keys.clone(), script.clone());
            runtime.block_on(concurrently(iters, move |n| {
                let mut connection = connection.clone();
                let (keys, script) = (keys.clone(), script.clone());
                async move {
                    let mut call = script.key(&keys[n as usize % KEYS]);
                    call.arg(1_000)
                        .arg("sw")
                        .arg(1_000_000)
                        .arg(10_000)
                        .arg("")
                        .arg(1);
                    let _: Vec<i64> = call.invoke_async(&mut connection).await.expect("evalsha");
                }
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
