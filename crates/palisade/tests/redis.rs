//! Palisade instances sharing rate limits through Redis: the machine's Redis on 6379 for
//! the shared limit, and a redis-server this test spawns itself (and stops by PID) to play
//! "Redis down" (and, with certificates made by the test, a Redis that speaks only TLS).
//! The machine's Redis is never stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use http::StatusCode;

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

/// A redis-server of our own, stopped by PID.
struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string()]);
        Self::launch(command, port).await
    }

    /// A redis-server that speaks only TLS on `port`, with the certificate of `pki`.
    async fn start_tls(port: u16, pki: &Pki) -> Self {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--tls-auth-clients", "no", "--tls-cert-file"])
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key);
        Self::launch(command, port).await
    }

    async fn launch(mut command: Command, port: u16) -> Self {
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services up installs it)");
        // Owned from here on: a panic below still stops it through `Drop`.
        let redis = Self { child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let port = free_port();
    let redis = OwnRedis::start(port).await;
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
    let _redis = OwnRedis::start(port).await;
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

/// A Redis restart closes palisade's connection while it sits idle. The next request used to
/// find it dead, fail, and take `on_error`'s answer (503 with "deny") although Redis was up.
#[tokio::test]
async fn a_redis_restart_between_requests_costs_no_request_its_answer() {
    let upstream = Upstream::start().await;
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let config = redis_config(port, &unique_prefix("restart"), "deny");
    let palisade = start_palisade(&upstream.url(), &config).await;
    assert_eq!(status_of(&palisade).await, StatusCode::OK);

    redis.stop();
    let _redis = OwnRedis::start(port).await;
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
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let prefix = unique_prefix("ready-sessions");
    let config = format!(
        "{}\n[session]\nstore = \"redis\"\nredis_prefix = \"{prefix}session:\"\n",
        redis_config(port, &prefix, "local")
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

/// A CA of the test's own and a server certificate it signed for 127.0.0.1, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// Writes the files into `dir`, named after `name`.
    fn new(dir: &Path, name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca certificate");
        let issuer = Issuer::new(ca, ca_key);
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server.signed_by(&server_key, &issuer).expect("certificate");
        let write = |suffix: &str, pem: String| {
            let path = dir.join(format!("{name}-{suffix}.pem"));
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        Self {
            ca: write("ca", ca_cert.pem()),
            cert: write("cert", server_cert.pem()),
            key: write("key", server_key.serialize_pem()),
        }
    }
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
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path(), "redis");
    let stranger = Pki::new(dir.path(), "stranger");
    let port = free_port();
    let _redis = OwnRedis::start_tls(port, &pki).await;
    let prefix = unique_prefix("rediss");
    let sessions = format!("\n[session]\nstore = \"redis\"\nredis_prefix = \"{prefix}session:\"\n");
    let shared = rediss_config(port, &prefix, "local", &pki.ca) + &sessions;
    let a = start_palisade(&upstream.url(), &shared).await;
    let b = start_palisade(&upstream.url(), &shared).await;
    let wrong_ca = rediss_config(port, &prefix, "deny", &stranger.ca);
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
