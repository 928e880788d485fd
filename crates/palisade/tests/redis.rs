//! Palisade instances sharing rate limits through Redis: the machine's Redis on 6379 for
//! the shared limit, and a redis-server this test spawns itself (and stops by PID) to play
//! "Redis down" (and, with certificates made by the test, a Redis that speaks only TLS).
//! The machine's Redis is never stopped.

mod common;
#[path = "../../palisade-store/tests/support/own_redis.rs"]
mod own_redis;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::binary::{Binary, ServeOptions};
use common::*;
use http::StatusCode;
use own_redis::{OwnRedis, TestPki};

fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("palisade-gw-test:{}:{nanos}:{test}:", std::process::id())
}

/// Generous timeouts and a long window: on a loaded machine a slow Redis reply must not turn
/// into a fallback, nor a window boundary into an extra allowed request.
fn redis_config(port: u16, prefix: &str, on_error: &str) -> String {
    format!(
        "[[rate_limit]]\nname = \"shared\"\nlimit = 4\nwindow = \"1h\"\n\n\
         [state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
         key_prefix = \"{prefix}\"\non_error = \"{on_error}\"\nretry_interval = \"100ms\"\n\
         connect_timeout = \"1s\"\ncommand_timeout = \"2s\"\n"
    )
}

async fn status_of(palisade: &palisade_gateway::serve::Running) -> StatusCode {
    get(&format!("http://{}/api", palisade.proxy_addr), &[])
        .await
        .status
}

#[tokio::test]
async fn two_instances_share_one_limit() {
    let upstream = Upstream::start().await;
    let config = redis_config(6379, &unique_prefix("share"), "local");
    let a = start_palisade(&upstream.url(), &config).await;
    let b = start_palisade(&upstream.url(), &config).await;
    for palisade in [&a, &b, &a, &b] {
        assert_eq!(status_of(palisade).await, StatusCode::OK);
    }
    assert_eq!(status_of(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status_of(&b).await, StatusCode::TOO_MANY_REQUESTS);
    a.shutdown().await;
    b.shutdown().await;
}

async fn metric(palisade: &palisade_gateway::serve::Running, line_start: &str) -> u64 {
    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[])
        .await
        .body;
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line_start} missing:\n{metrics}"))
}

#[tokio::test]
async fn redis_down_applies_on_error_and_recovery_shares_limits_again() {
    let upstream = Upstream::start().await;
    let mut redis = OwnRedis::start();
    let port = redis.port;
    let prefix = unique_prefix("outage");
    let a = start_palisade(&upstream.url(), &redis_config(port, &prefix, "local")).await;
    let b = start_palisade(&upstream.url(), &redis_config(port, &prefix, "local")).await;
    let closed = start_palisade(&upstream.url(), &redis_config(port, &prefix, "deny")).await;

    // Shared while Redis is up: four requests over two instances exhaust the limit.
    for palisade in [&a, &b, &a, &b] {
        assert_eq!(status_of(palisade).await, StatusCode::OK);
    }
    assert_eq!(status_of(&a).await, StatusCode::TOO_MANY_REQUESTS);

    // Redis down: `local` limits in this instance's memory, `deny` fails closed. (`a` knows
    // the key is blocked until its reset and keeps refusing without asking anyone; `b` has
    // not been refused yet, so it is the one that shows the fallback.)
    redis.stop();
    assert_eq!(status_of(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        status_of(&b).await,
        StatusCode::OK,
        "local fallback starts afresh"
    );
    for _ in 0..3 {
        assert_eq!(status_of(&b).await, StatusCode::OK);
    }
    assert_eq!(
        status_of(&b).await,
        StatusCode::TOO_MANY_REQUESTS,
        "local limit holds"
    );
    assert_eq!(status_of(&closed).await, StatusCode::SERVICE_UNAVAILABLE);
    let label = "palisade_state_fallbacks_total{backend=\"redis\"}";
    assert!(metric(&b, label).await >= 5);

    // Redis back (empty): limits are shared again once each instance has retried.
    redis.restart();
    for palisade in [&b, &closed] {
        let mut recovered = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if metric(palisade, "palisade_state_degraded{backend=\"redis\"}").await == 0 {
                recovered = true;
                break;
            }
            // A request is what retries Redis after `retry_interval`.
            let _ = status_of(palisade).await;
        }
        assert!(recovered, "instance did not return to Redis");
    }
    let fresh = unique_prefix("after");
    let a2 = start_palisade(&upstream.url(), &redis_config(port, &fresh, "local")).await;
    let b2 = start_palisade(&upstream.url(), &redis_config(port, &fresh, "local")).await;
    for palisade in [&a2, &b2, &a2, &b2] {
        assert_eq!(status_of(palisade).await, StatusCode::OK);
    }
    assert_eq!(status_of(&b2).await, StatusCode::TOO_MANY_REQUESTS);
    for palisade in [a, b, closed, a2, b2] {
        palisade.shutdown().await;
    }
}

/// An unreachable Redis shows in `/readyz`; it makes the instance unready only when it fails
/// closed (`on_error = "deny"`): with a fallback the instance still serves.
#[tokio::test]
async fn readiness_reports_an_unreachable_redis() {
    let upstream = Upstream::start().await;
    let port = free_port();
    for (on_error, expected) in [
        ("local", StatusCode::OK),
        ("allow", StatusCode::OK),
        ("deny", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let config = redis_config(port, &unique_prefix("ready"), on_error);
        let palisade = start_palisade(&upstream.url(), &config).await;
        let ready = get(&format!("http://{}/readyz", palisade.admin_addr), &[]).await;
        assert_eq!(ready.status, expected, "{on_error}: {}", ready.body);
        assert_eq!(ready.json()["ready"], expected == StatusCode::OK);
        assert_eq!(ready.json()["state"]["status"], "unreachable");
        assert_eq!(ready.json()["upstream"], "ok");
        palisade.shutdown().await;
    }
}

/// With `on_error = "deny"` and Redis down, every decided request is refused with 503, and
/// the log says so once (the store's warning), not once per request: clients must not be
/// able to flood the log during an outage.
#[tokio::test]
async fn an_outage_refused_by_deny_is_logged_once_not_per_request() {
    let upstream = Upstream::start().await;
    // Nothing listens there: every try is refused at once.
    let config = config_file(&redis_config(free_port(), &unique_prefix("quiet"), "deny"));
    let options = ServeOptions {
        config: Some(config),
        ..Default::default()
    };
    let palisade = Binary::serve(&upstream.url(), options).await;
    for _ in 0..20 {
        let reply = get(&format!("{}/api", palisade.proxy), &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.header("retry-after"), "1", "when to come back");
    }
    let log = palisade.log();
    assert_eq!(
        log.matches("rate-limit state backend failed").count(),
        1,
        "the outage is logged once: {log}"
    );
    assert_eq!(
        log.matches("state backend unavailable").count(),
        1,
        "no line per refused request: {log}"
    );
}

/// A rule in `log` mode only reports: with `on_error = "deny"` and Redis down, its store
/// failing must not refuse the request (a red-team finding: it answered 503).
#[tokio::test]
async fn a_log_mode_rule_refuses_nothing_when_its_store_fails_closed() {
    let upstream = Upstream::start().await;
    let config = redis_config(free_port(), &unique_prefix("logmode"), "deny")
        .replace("window = \"1h\"\n", "window = \"1h\"\nmode = \"log\"\n");
    assert!(config.contains("mode = \"log\""), "{config}");
    let palisade = start_palisade(&upstream.url(), &config).await;
    for _ in 0..3 {
        assert_eq!(status_of(&palisade).await, StatusCode::OK);
    }
    let label = "palisade_state_backend_errors_total{backend=\"redis\"}";
    assert!(
        metric(&palisade, label).await >= 1,
        "the failure is still counted"
    );
    palisade.shutdown().await;
}

/// With `on_error = "allow"` and Redis down, requests pass uncounted, and their answers carry
/// no `RateLimit-*` headers: a quota nobody counted against would be a made-up figure.
#[tokio::test]
async fn requests_let_through_uncounted_carry_no_quota_headers() {
    let upstream = Upstream::start().await;
    let config = redis_config(free_port(), &unique_prefix("open"), "allow");
    let palisade = start_palisade(&upstream.url(), &config).await;
    for _ in 0..12 {
        let reply = get(&format!("http://{}/api", palisade.proxy_addr), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "fails open past the limit");
        for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
            assert!(reply.headers.get(name).is_none(), "{name} sent uncounted");
        }
    }
    palisade.shutdown().await;
}

/// A Redis restart closes palisade's connection while it sits idle. The next request used to
/// find it dead, fail, and take `on_error`'s answer (503 with "deny") although Redis was up.
#[tokio::test]
async fn a_redis_restart_between_requests_costs_no_request_its_answer() {
    let upstream = Upstream::start().await;
    let mut redis = OwnRedis::start();
    let config = redis_config(redis.port, &unique_prefix("restart"), "deny");
    let palisade = start_palisade(&upstream.url(), &config).await;
    assert_eq!(status_of(&palisade).await, StatusCode::OK);

    redis.stop();
    redis.restart();
    assert_eq!(status_of(&palisade).await, StatusCode::OK);
    let label = "palisade_state_backend_errors_total{backend=\"redis\"}";
    assert_eq!(metric(&palisade, label).await, 0);
    palisade.shutdown().await;
}

/// `/readyz` shows whether the session store answers, and stays ready without it: requests
/// without a session cookie are still served.
#[tokio::test]
async fn readiness_shows_a_redis_session_store_going_away() {
    let upstream = Upstream::start().await;
    let mut redis = OwnRedis::start();
    let prefix = unique_prefix("ready-sessions");
    let config = format!(
        "{}\n[session]\nstore = \"redis\"\nredis_prefix = \"{prefix}session:\"\n",
        redis_config(redis.port, &prefix, "local")
    );
    let palisade = start_palisade(&upstream.url(), &config).await;
    let readyz = format!("http://{}/readyz", palisade.admin_addr);

    let before = get(&readyz, &[]).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert_eq!(before.json()["sessions"]["store"], "redis");
    assert_eq!(before.json()["sessions"]["status"], "ok");

    redis.stop();
    let after = get(&readyz, &[]).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.json()["sessions"]["status"], "unreachable");
    assert_eq!(after.json()["ready"], true);
    palisade.shutdown().await;
}

/// `redis_config` over TLS to `port`, trusting the CA in `ca_file`.
fn rediss_config(port: u16, prefix: &str, on_error: &str, ca_file: &Path) -> String {
    redis_config(port, prefix, on_error).replace(
        "redis_url = \"redis://",
        &format!(
            "redis_ca_file = {:?}\nredis_url = \"rediss://",
            ca_file.display().to_string()
        ),
    )
}

/// Rate limits and sessions through a Redis that speaks only TLS, trusting a private CA; an
/// instance trusting another CA cannot reach it, and its `on_error` answers instead.
#[tokio::test]
async fn instances_share_limits_over_rediss_and_a_wrong_ca_fails_closed() {
    let upstream = Upstream::start().await;
    let pki = TestPki::loopback();
    let stranger = TestPki::loopback();
    let redis = OwnRedis::start_tls(&pki);
    let port = redis.port;
    let prefix = unique_prefix("rediss");
    let sessions = format!("\n[session]\nstore = \"redis\"\nredis_prefix = \"{prefix}session:\"\n");
    let shared = rediss_config(port, &prefix, "local", &pki.ca_file) + &sessions;
    let a = start_palisade(&upstream.url(), &shared).await;
    let b = start_palisade(&upstream.url(), &shared).await;
    let wrong_ca = rediss_config(port, &prefix, "deny", &stranger.ca_file);
    let closed = start_palisade(&upstream.url(), &wrong_ca).await;

    for palisade in [&a, &b, &a, &b] {
        assert_eq!(status_of(palisade).await, StatusCode::OK);
    }
    assert_eq!(status_of(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status_of(&b).await, StatusCode::TOO_MANY_REQUESTS);
    let ready = get(&format!("http://{}/readyz", a.admin_addr), &[]).await;
    assert_eq!(ready.json()["state"]["status"], "ok", "{}", ready.body);
    assert_eq!(ready.json()["sessions"]["status"], "ok", "{}", ready.body);

    assert_eq!(status_of(&closed).await, StatusCode::SERVICE_UNAVAILABLE);
    let ready = get(&format!("http://{}/readyz", closed.admin_addr), &[]).await;
    assert_eq!(
        ready.json()["state"]["status"],
        "unreachable",
        "{}",
        ready.body
    );
    let detail = ready.json()["state"]["detail"].to_string();
    assert!(detail.contains("TLS verification failed"), "{}", ready.body);
    let label = "palisade_state_backend_errors_total{backend=\"redis\"}";
    assert!(metric(&closed, label).await >= 1);
    for palisade in [a, b, closed] {
        palisade.shutdown().await;
    }
}

/// Rate limits and sessions through a Redis that takes only clients presenting a
/// certificate its CA signed (`tls-auth-clients yes`): palisade's `redis_client_cert` gets in,
/// and an instance without one is refused, says why on `/readyz`, and fails closed.
#[tokio::test]
async fn a_redis_requiring_client_certificates_takes_redis_client_cert() {
    let upstream = Upstream::start().await;
    let pki = TestPki::loopback();
    let redis = OwnRedis::start_tls_requiring_client_certs(&pki);
    let prefix = unique_prefix("mtls");
    let sessions = format!("\n[session]\nstore = \"redis\"\nredis_prefix = \"{prefix}session:\"\n");
    let with_cert = rediss_config(redis.port, &prefix, "deny", &pki.ca_file).replace(
        "[state]\n",
        &format!(
            "[state]\nredis_client_cert = {:?}\nredis_client_key = {:?}\n",
            pki.client_cert_file.display().to_string(),
            pki.client_key_file.display().to_string()
        ),
    ) + &sessions;
    let a = start_palisade(&upstream.url(), &with_cert).await;
    for _ in 0..4 {
        assert_eq!(status_of(&a).await, StatusCode::OK);
    }
    assert_eq!(status_of(&a).await, StatusCode::TOO_MANY_REQUESTS);
    let ready = get(&format!("http://{}/readyz", a.admin_addr), &[]).await;
    assert_eq!(ready.json()["state"]["status"], "ok", "{}", ready.body);
    assert_eq!(ready.json()["sessions"]["status"], "ok", "{}", ready.body);

    let without = rediss_config(redis.port, &prefix, "deny", &pki.ca_file);
    let refused = start_palisade(&upstream.url(), &without).await;
    assert_eq!(status_of(&refused).await, StatusCode::SERVICE_UNAVAILABLE);
    let ready = get(&format!("http://{}/readyz", refused.admin_addr), &[]).await;
    let detail = ready.json()["state"]["detail"].to_string();
    assert!(detail.contains("client certificate"), "{}", ready.body);
    for palisade in [a, refused] {
        palisade.shutdown().await;
    }
}
