//! Redis over TLS (`rediss://`) against redis-servers of the test's own that speak only TLS,
//! with a CA and server certificates made for the test: rate limits and sessions go through
//! when the server's certificate is signed by `redis_ca_file`'s CA, and nothing reaches a
//! server whose certificate is not, nor one whose certificate names another host.

#[path = "support/own_redis.rs"]
mod own_redis;
mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_policy::clock::{ManualClock, SystemClock};
use palisade_policy::ratelimit::{Algorithm, Quota, RateLimitStore, StoreError};
use palisade_policy::session::{SessionSettings, Sessions};
use palisade_store::ratelimit::memory::MemoryRateLimiter;
use palisade_store::ratelimit::redis::{RedisOptions, RedisRateLimiter};
use palisade_store::ratelimit::{Fallback, OnError};
use palisade_store::redis_conn::{self, ClientCert, RedisCa, RedisTls};
use palisade_store::session::RedisSessionStore;

use own_redis::{OwnRedis, TestPki};

fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("palisade-tls-test:{}:{nanos}:{test}:", std::process::id())
}

fn ca_of(pki: &TestPki) -> RedisCa {
    RedisCa::from_file(&pki.ca_file).expect("a PEM CA")
}

async fn limiter(url: &str, ca: &RedisCa, prefix: &str) -> RedisRateLimiter {
    let tls = RedisTls::with_ca(ca.clone());
    limiter_with(url, tls, prefix, Duration::from_secs(2)).await
}

/// A limiter for `url` with `tls`, connect and command timeouts of `timeout`.
async fn limiter_with(
    url: &str,
    tls: RedisTls,
    prefix: &str,
    timeout: Duration,
) -> RedisRateLimiter {
    let options = RedisOptions {
        url: url.to_owned(),
        tls,
        key_prefix: prefix.to_owned(),
        connect_timeout: timeout,
        command_timeout: timeout,
        blocked_cache_max_keys: 1_000,
    };
    RedisRateLimiter::connect(&options, Arc::new(SystemClock))
        .await
        .expect("a valid rediss:// url")
}

/// An hour-long window, so no test straddles a window boundary.
fn four_an_hour() -> Quota {
    Quota {
        algorithm: Algorithm::SlidingWindow,
        limit: 4,
        window: Duration::from_secs(3_600),
    }
}

/// The keys under `prefix` in the TLS Redis at `url`, read over a connection of its own.
async fn keys_under(url: &str, ca: &RedisCa, prefix: &str) -> Vec<String> {
    let client = redis_conn::client(url, &RedisTls::with_ca(ca.clone())).expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("TLS connection with the right CA");
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS")
}

#[tokio::test]
async fn two_limiters_share_one_limit_over_rediss_with_a_private_ca() {
    let pki = TestPki::loopback();
    let redis = OwnRedis::start_tls(&pki);
    let ca = ca_of(&pki);
    let prefix = unique_prefix("shared");
    let a = limiter(&redis.url(), &ca, &prefix).await;
    let b = limiter(&redis.url(), &ca, &prefix).await;

    let quota = four_an_hour();
    for limiter in [&a, &b, &a, &b] {
        let decision = limiter.check_in_redis("ip:192.0.2.1", &quota).await;
        assert!(decision.expect("redis answers over TLS").allowed);
    }
    for limiter in [&a, &b] {
        let decision = limiter.check_in_redis("ip:192.0.2.1", &quota).await;
        assert!(
            !decision.expect("redis answers").allowed,
            "the fifth is refused"
        );
    }
    assert!(!keys_under(&redis.url(), &ca, &prefix).await.is_empty());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_fails_tls_verification_and_on_error_applies() {
    let pki = TestPki::loopback();
    let redis = OwnRedis::start_tls(&pki);
    let stranger = ca_of(&TestPki::loopback());
    let prefix = unique_prefix("stranger");
    // The password must not show in the error.
    let url = format!("rediss://:hunter2@127.0.0.1:{}", redis.port);
    let refused = limiter(&url, &stranger, &prefix).await;

    let Err(StoreError::Unavailable(message)) = refused.ping().await else {
        panic!("a server signed by another CA was trusted");
    };
    assert!(message.contains("TLS verification failed"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let local = MemoryRateLimiter::new(clock.clone(), 1_000);
    let closed = Fallback::new(refused, local, OnError::Deny, clock, Duration::from_secs(1));
    let decision = closed.check("ip:192.0.2.1", &four_an_hour()).await;
    assert!(
        decision.is_err(),
        "on_error = deny fails closed: {decision:?}"
    );
    assert!(closed.stats().degraded);
    // What the `state.degraded` event tells operators: why, not just that.
    let reason = closed.degraded_by().expect("a reason while degraded");
    assert!(reason.contains("TLS verification failed"), "{reason}");
    assert!(!reason.contains("hunter2"), "{reason}");
    assert!(
        keys_under(&redis.url(), &ca_of(&pki), &prefix)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_server_certificate_for_another_host_fails_tls_verification() {
    let pki = TestPki::new(&["redis.example"]);
    let redis = OwnRedis::start_tls(&pki);
    let limiter = limiter(&redis.url(), &ca_of(&pki), &unique_prefix("host")).await;
    let Err(StoreError::Unavailable(message)) = limiter.ping().await else {
        panic!("a certificate for redis.example was taken for 127.0.0.1");
    };
    assert!(message.contains("TLS verification failed"), "{message}");
}

fn client_cert_of(pki: &TestPki) -> ClientCert {
    ClientCert::from_files(&pki.client_cert_file, &pki.client_key_file).expect("a pair")
}

/// A limiter for `url` with `tls`, and what its first decision says.
async fn first_decision(url: &str, tls: RedisTls, test: &str) -> Result<bool, StoreError> {
    let limiter = limiter_with(url, tls, &unique_prefix(test), Duration::from_secs(2)).await;
    let decision = limiter
        .check_in_redis("ip:192.0.2.1", &four_an_hour())
        .await;
    decision.map(|d| d.allowed)
}

/// A Redis that checks clients' certificates (`tls-auth-clients yes`) takes palisade's when
/// it is signed by the CA it trusts, and refuses palisade without one, saying so.
#[tokio::test]
async fn a_redis_requiring_client_certificates_takes_redis_client_cert() {
    let pki = TestPki::loopback();
    let redis = OwnRedis::start_tls_requiring_client_certs(&pki);
    let both = RedisTls {
        ca: Some(ca_of(&pki)),
        client_cert: Some(client_cert_of(&pki)),
    };
    let decided = first_decision(&redis.url(), both, "mtls").await;
    assert!(
        matches!(decided, Ok(true)),
        "a trusted client certificate is let in: {decided:?}"
    );

    let Err(StoreError::Unavailable(message)) =
        first_decision(&redis.url(), RedisTls::with_ca(ca_of(&pki)), "no-cert").await
    else {
        panic!("a Redis requiring client certificates let palisade in without one");
    };
    assert!(message.contains("client certificate"), "{message}");

    // A certificate from a CA this Redis does not trust is refused too.
    let stranger = TestPki::loopback();
    let foreign = RedisTls {
        ca: Some(ca_of(&pki)),
        client_cert: Some(client_cert_of(&stranger)),
    };
    let Err(StoreError::Unavailable(message)) =
        first_decision(&redis.url(), foreign, "foreign-cert").await
    else {
        panic!("a client certificate from another CA was accepted");
    };
    assert!(message.contains("client certificate"), "{message}");
}

/// A plain-text Redis never answers a TLS handshake: the error names the likely cause
/// instead of a bare timeout.
#[tokio::test]
async fn rediss_to_a_plain_text_redis_says_it_may_not_speak_tls() {
    let redis = OwnRedis::start();
    let url = format!("rediss://:hunter2@127.0.0.1:{}", redis.port);
    let tls = RedisTls::with_ca(ca_of(&TestPki::loopback()));
    let prefix = unique_prefix("plain");
    let limiter = limiter_with(&url, tls, &prefix, Duration::from_millis(500)).await;
    let Err(StoreError::Unavailable(message)) = limiter.ping().await else {
        panic!("a plain-text Redis answered a TLS client");
    };
    assert!(message.contains("TLS handshake"), "{message}");
    assert!(message.contains("plain-text Redis"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let no_tls = RedisTls::default();
    let Err(err) = RedisSessionStore::connect_with_tls(&url, &no_tls, "unused:").await else {
        panic!("the session store reached a plain-text Redis over TLS");
    };
    let message = err.to_string();
    assert!(message.contains("plain-text Redis"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn unverified_tls_urls_are_refused_before_any_connection() {
    let ca = ca_of(&TestPki::loopback());
    let url = "rediss://:hunter2@127.0.0.1:1/#insecure";
    let err = redis_conn::client(url, &RedisTls::with_ca(ca)).expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("always verifies"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn sessions_are_saved_and_loaded_over_rediss() {
    let pki = TestPki::loopback();
    let redis = OwnRedis::start_tls(&pki);
    let prefix = unique_prefix("sessions");
    let store =
        RedisSessionStore::connect_with_tls(&redis.url(), &RedisTls::with_ca(ca_of(&pki)), &prefix)
            .await
            .expect("sessions over TLS");
    let sessions = Sessions::new(SessionSettings::defaults(), Arc::new(store));
    let now = 1_700_000_000_000;

    let cookie = support::login(&sessions, now).await;
    let resolved = sessions
        .resolve([cookie.as_bytes()], now + 1)
        .await
        .expect("session loaded");
    let user = resolved.session.map(|s| s.user_id.as_str().to_owned());
    assert_eq!(user, Some("alice".to_owned()));

    let stranger = ca_of(&TestPki::loopback());
    let refused =
        RedisSessionStore::connect_with_tls(&redis.url(), &RedisTls::with_ca(stranger), &prefix)
            .await;
    let message = refused.expect_err("another CA").to_string();
    assert!(message.contains("TLS verification failed"), "{message}");
}
