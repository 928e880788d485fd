//! The real `palisade` binary: CLI, signals, and memory while streaming (and inspecting)
//! large bodies.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

/// A palisade process, killed by PID when dropped.
struct Process {
    child: Child,
    proxy: String,
    admin: String,
    stderr: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// A client connection to the proxy listener.
    async fn connect(&self) -> tokio::net::TcpStream {
        let address = self.proxy.trim_start_matches("http://");
        tokio::net::TcpStream::connect(address)
            .await
            .expect("connect")
    }

    async fn start(upstream: &str, config: &Path) -> Self {
        let (proxy_port, admin_port) = (free_port(), free_port());
        let stderr = config.with_extension("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["serve", "--upstream", upstream, "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("palisade binary starts");
        let process = Self {
            child,
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            stderr,
        };
        process.wait_healthy().await;
        process
    }

    async fn wait_healthy(&self) {
        let port: u16 = self
            .admin
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("palisade did not start: {}", self.log());
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Peak resident memory in KiB.
    fn peak_rss_kib(&self) -> u64 {
        self.memory_kib("VmHWM:")
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS:")
    }

    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }
}

#[test]
fn check_prints_file_line_column_and_exits_1() {
    let config = config_file("[server]\nlisten = \"127.0.0.1:80\"\nmax_headers = \"many\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("palisade check runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}:3:15: invalid type: string \"many\"", config.display());
    assert!(stderr.starts_with(&expected), "{stderr}");

    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:80\"\n").expect("rewrite");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("palisade check runs");
    assert_eq!(output.status.code(), Some(0));
}

/// The Redis URL with its password comes from `PALISADE_REDIS_URL`, since the file may not
/// hold credentials: a file naming the Redis backend without a URL is then complete, and
/// `check` judges the URL the environment gives, as `serve` would.
#[test]
fn check_takes_the_redis_url_from_the_environment() {
    let config = config_file("[state]\nbackend = \"redis\"\n");
    let check = |url: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command.args(["check", "--config"]).arg(&config);
        command.env_remove("PALISADE_REDIS_URL");
        if let Some(url) = url {
            command.env("PALISADE_REDIS_URL", url);
        }
        command.output().expect("palisade check runs")
    };
    let without = check(None);
    assert_eq!(without.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("PALISADE_REDIS_URL"), "{stderr}");

    let with = check(Some("redis://:hunter2@127.0.0.1:6379"));
    let stderr = String::from_utf8_lossy(&with.stderr);
    assert_eq!(with.status.code(), Some(0), "{stderr}");

    let insecure = check(Some("rediss://:hunter2@127.0.0.1:6380/#insecure"));
    let stderr = String::from_utf8_lossy(&insecure.stderr);
    assert_eq!(insecure.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("#insecure"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

/// Regression: a `PALISADE_REDIS_URL` that is not UTF-8 (a password typed in Latin-1) was
/// taken as no variable by serve, yet as a variable by the file's check, which then let
/// `backend = "redis"` without a URL pass: `check` said ok and serve kept its counters in
/// memory, so instances stopped sharing limits without a word.
#[test]
fn check_refuses_a_redis_url_from_the_environment_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let config = config_file("[state]\nbackend = \"redis\"\n");
    let url = std::ffi::OsStr::from_bytes(b"redis://:hunter2\xff@127.0.0.1:6379");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--config"])
        .arg(&config)
        .env("PALISADE_REDIS_URL", url)
        .output()
        .expect("palisade check runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PALISADE_REDIS_URL") && stderr.contains("UTF-8"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

/// With the Redis URL in `PALISADE_REDIS_URL`, the other `[state]` keys are still checked
/// at their lines: the missing `redis_url` used to hide them from the file's check, and
/// they came back from the environment's with no line.
#[test]
fn check_places_state_errors_at_their_line_when_the_url_is_in_the_environment() {
    let config = config_file("[state]\nbackend = \"redis\"\nconnect_timeout = \"0s\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--config"])
        .arg(&config)
        .env("PALISADE_REDIS_URL", "redis://:hunter2@127.0.0.1:6379")
        .output()
        .expect("palisade check runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!("{}:3:1: state.connect_timeout:", config.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

/// A configuration (or rules file) path naming something endless must end in an error
/// naming it, not in palisade reading until memory runs out.
#[test]
fn check_refuses_endless_configuration_and_rules_files() {
    let rules = config_file("[waf]\nrules = \"/dev/zero\"\n");
    for (config, named) in [
        (Path::new("/dev/zero"), "/dev/zero"),
        (rules.as_path(), "/dev/zero"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["check", "--config"])
            .arg(config)
            .output()
            .expect("palisade check runs");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(named) && stderr.contains("larger than"),
            "{stderr}"
        );
    }
}

/// `check` used to say ok for files serve then failed to open: a missing certificate, a
/// log directory that does not exist. Relative paths are read next to the configuration,
/// whatever directory `check` runs in.
#[test]
fn check_refuses_files_serve_could_not_open_and_finds_relative_ones() {
    let config = config_file(
        "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n\
         [log]\nsecurity = \"logs/events.log\"\n",
    );
    let dir = config.parent().expect("config dir");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["check", "--config"])
            .arg(&config)
            .current_dir("/")
            .output()
            .expect("palisade check runs")
    };
    let output = check();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let at = |line: usize| format!("{}:{line}:1: ", config.display());
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}server.tls.cert: ", at(2))),
        "{stderr}"
    );
    assert!(lines[0].contains("no such file or directory"), "{stderr}");
    assert!(
        lines[1].starts_with(&format!("{}server.tls.key: ", at(3))),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!("{}log.security: ", at(6))),
        "{stderr}"
    );
    assert!(
        lines[2].contains("configuration file's directory"),
        "{stderr}"
    );

    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).expect("key");
    std::fs::create_dir(dir.join("logs")).expect("log dir");
    let output = check();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn every_subcommand_has_help_and_the_binary_a_version() {
    for args in [
        vec!["--version"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["check", "--help"],
        vec!["upload", "--help"],
        vec!["upload", "check", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(&args)
            .output()
            .expect("runs");
        assert!(output.status.success(), "{args:?}");
        assert!(!output.stdout.is_empty(), "{args:?}");
    }
}

/// `serve` used to print a start-up failure's cause twice (a variant both showing and
/// chaining its inner error), and the log target as `File("...")`.
#[test]
fn serve_prints_a_start_up_failure_once() {
    let bad_key = config_file("[server]\nlisen = \"127.0.0.1:80\"\n");
    let missing_dir = bad_key.with_file_name("missing").join("events.log");
    let bad_log = config_file(&format!(
        "[log]\nsecurity = \"{}\"\n",
        missing_dir.display()
    ));
    for (config, cause) in [
        (&bad_key, "unknown field `lisen`".to_owned()),
        (
            &bad_log,
            format!("log.security: {}: ", missing_dir.display()),
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["serve", "--upstream", "http://127.0.0.1:9"])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--config")
            .arg(config)
            .output()
            .expect("palisade serve runs");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("error: palisade could not start: "),
            "{stderr}"
        );
        assert_eq!(stderr.matches(&cause).count(), 1, "{stderr}");
        assert!(!stderr.contains("File(\""), "{stderr}");
    }
}

#[tokio::test]
async fn sighup_with_a_bad_file_keeps_the_old_config() {
    let upstream = Upstream::start().await;
    let rule = "[[rate_limit]]\nname = \"r\"\nlimit = 50\nwindow = \"10s\"\n";
    let config = config_file(rule);
    let palisade = Process::start(&upstream.url(), &config).await;
    let url = format!("{}/", palisade.proxy);
    assert_eq!(get(&url, &[]).await.header("ratelimit-limit"), "50");

    std::fs::write(&config, "[[rate_limit]]\nname = \"r\"\nlimit = \"lots\"\n").expect("bad");
    palisade.signal("HUP");
    let expected = format!("{}:3:9", config.display());
    wait_until(|| palisade.log().contains(&expected)).await;
    assert_eq!(get(&url, &[]).await.header("ratelimit-limit"), "50");

    std::fs::write(&config, rule.replace("50", "7")).expect("good");
    palisade.signal("HUP");
    wait_until(|| palisade.log().contains("configuration reloaded")).await;
    assert_eq!(get(&url, &[]).await.header("ratelimit-limit"), "7");
}

/// A reload used to change `workers` in the file without a word: the threads are started
/// once, so the log must name the key and say a restart applies it.
#[tokio::test]
async fn sighup_names_a_restart_only_key_it_cannot_apply() {
    let upstream = Upstream::start().await;
    let config = config_file("[server]\nworkers = 1\n");
    let palisade = Process::start(&upstream.url(), &config).await;
    std::fs::write(&config, "[server]\nworkers = 2\nmax_body_size = \"1MB\"\n").expect("edit");
    palisade.signal("HUP");
    wait_until(|| palisade.log().contains("configuration reloaded")).await;
    let log = palisade.log();
    assert!(
        log.contains("server.workers changed: it takes effect only after a restart"),
        "{log}"
    );
    assert!(!log.contains("server.max_body_size changed"), "{log}");
    assert_eq!(
        get(&format!("{}/", palisade.proxy), &[]).await.status,
        StatusCode::OK
    );

    // Putting the running value back is no change: the warning compares with what runs
    // since start-up, not with the file of the previous reload.
    std::fs::write(&config, "[server]\nworkers = 1\n").expect("revert");
    palisade.signal("HUP");
    wait_until(|| palisade.log().matches("configuration reloaded").count() == 2).await;
    let log = palisade.log();
    assert_eq!(log.matches("server.workers changed").count(), 1, "{log}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let upstream = Upstream::start().await;
    let config = config_file("rate_limit = []\n");
    let mut palisade = Process::start(&upstream.url(), &config).await;
    let slow = tokio::spawn(get_owned(format!("{}/slow", palisade.proxy)));
    wait_until(|| upstream.hits() == 1).await;
    palisade.signal("TERM");
    let reply = slow.await.expect("request task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "slow done");
    let status = wait_for_exit(&mut palisade.child).await;
    assert!(status.success(), "{status:?}: {}", palisade.log());
}

/// A keep-alive connection idle between requests is closed at SIGTERM rather than kept
/// until the client leaves (palisade's own HTTP/1.1 loop watches for the stop while idle).
#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use tokio::io::AsyncReadExt;
    let upstream = Upstream::start().await;
    let config = config_file("rate_limit = []\n");
    let mut palisade = Process::start(&upstream.url(), &config).await;
    let mut idle = palisade.connect().await;
    let mut answer = Vec::new();
    for _ in 0..2 {
        answer.extend(exchange(&mut idle, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await);
    }
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");

    palisade.signal("TERM");
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was not closed: {closed:?}"
    );
    let status = wait_for_exit(&mut palisade.child).await;
    assert!(status.success(), "{status:?}: {}", palisade.log());
}

/// Writes `request` on `stream` and returns what one read then gets (an answer's head).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("request");
    let mut piece = vec![0u8; 4096];
    let n = stream.read(&mut piece).await.expect("answer");
    piece.truncate(n);
    piece
}

/// A second SIGTERM while shutdown waits for an answer that never ends stops at once,
/// instead of after `shutdown_timeout` (a minute here).
#[tokio::test]
async fn a_second_sigterm_stops_without_waiting_for_in_flight_requests() {
    let upstream = Upstream::start().await;
    let config = config_file("rate_limit = []\n[server]\nshutdown_timeout = \"60s\"\n");
    let mut palisade = Process::start(&upstream.url(), &config).await;
    let mut stalled = palisade.connect().await;
    let head = exchange(&mut stalled, b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(head.starts_with(b"HTTP/1.1 200"));

    palisade.signal("TERM");
    wait_until(|| palisade.log().contains("draining")).await;
    // Still waiting for the stalled answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        palisade.child.try_wait().expect("try_wait").is_none(),
        "palisade exited before the second signal: {}",
        palisade.log()
    );
    palisade.signal("TERM");
    let status = wait_for_exit(&mut palisade.child).await;
    // Not the success of a drained stop: a supervisor can tell the two apart.
    assert_eq!(status.code(), Some(1), "{}", palisade.log());
    let log = palisade.log();
    assert!(
        log.contains("second signal: stopping now")
            && log.contains("SIGTERM")
            && log.contains("error: stopped by a second signal"),
        "{log}"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_100_mb_body_streams_both_ways_with_flat_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let upstream = Upstream::start().await;
    let config = config_file("rate_limit = []\n[server]\nmax_body_size = \"1GB\"\n");
    let palisade = Process::start(&upstream.url(), &config).await;

    let upload = Request::post(format!("{}/sink", palisade.proxy))
        .body(streamed(SIZE))
        .expect("request");
    let reply = send(upload).await;
    assert_eq!(reply.body, SIZE.to_string());

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<TestBody>();
    let request = Request::get(format!("{}/big?bytes={SIZE}", palisade.proxy))
        .body(full(""))
        .expect("request");
    let mut body = client.request(request).await.expect("response").into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        received += frame
            .expect("frame")
            .data_ref()
            .map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, SIZE);

    let peak_mib = palisade.peak_rss_kib() / 1024;
    eprintln!("palisade peak RSS after 2 x 100 MiB streamed: {peak_mib} MiB");
    assert!(
        peak_mib < 64,
        "palisade peaked at {peak_mib} MiB for 2 × 100 MiB streamed"
    );
}

#[tokio::test]
async fn a_128_mb_upload_is_inspected_and_forwarded_with_flat_memory() {
    const SIZE: u64 = 128 << 20;
    let upstream = Upstream::start().await;
    let spool = std::env::temp_dir().join(format!("palisade-rss-spool-{}", std::process::id()));
    let config = config_file(&format!(
        "rate_limit = []\n[server]\nmax_body_size = \"1GB\"\n[spool]\ndir = \"{}\"\n\
         [[upload]]\npath = \"/sink\"\nallowed_types = [\"text/plain\"]\n\
         max_file_size = \"1GB\"\nmax_body_size = \"1GB\"\n",
        spool.display()
    ));
    let palisade = Process::start(&upstream.url(), &config).await;
    let before_kib = palisade.rss_kib();

    // The whole body is spooled and checked before the upstream sees a byte of it.
    let upload = Request::put(format!("{}/sink", palisade.proxy))
        .header("content-type", "text/plain")
        .body(streamed(SIZE))
        .expect("request");
    let reply = send(upload).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, SIZE.to_string());

    let growth_mib = palisade.peak_rss_kib().saturating_sub(before_kib) / 1024;
    eprintln!("palisade peak RSS growth over a 128 MiB inspected upload: {growth_mib} MiB");
    assert!(
        growth_mib < 32,
        "palisade grew {growth_mib} MiB for a 128 MiB upload"
    );
    let _ = std::fs::remove_dir(&spool);
}

async fn get_owned(url: String) -> Reply {
    get(&url, &[]).await
}

/// Polls `condition` for up to 10 s (process start-up and signal delivery are not instant).
async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

async fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("palisade did not exit within 10 s of SIGTERM");
}

/// With no `[[rate_limit]]` tables, the start-up warning says whether WAF rules still limit
/// requests, instead of claiming that rate limiting is off.
#[tokio::test]
async fn the_start_up_warning_counts_waf_rate_limit_rules() {
    let upstream = Upstream::start().await;
    let config = config_file(
        "rate_limit = []\n[[waf.rule]]\nname = \"api\"\n\
         expression = 'starts_with(http.request.uri.path, \"/api/\")'\n\
         action = \"rate_limit\"\nthreshold = \"100/minute\"\n",
    );
    let palisade = Process::start(&upstream.url(), &config).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    let log = palisade.log();
    assert!(
        log.contains("only the WAF rules with action rate_limit limit requests"),
        "{log}"
    );
    assert!(!log.contains("rate limiting is off"), "{log}");
    drop(palisade);

    let config = config_file("rate_limit = []\n");
    let palisade = Process::start(&upstream.url(), &config).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    assert!(
        palisade.log().contains("rate limiting is off"),
        "{}",
        palisade.log()
    );
    // The line names the process to signal (`kill -HUP`), and whether Redis is spoken to
    // over TLS (memory here).
    let pid = format!("pid={}", palisade.child.id());
    assert!(palisade.log().contains(&pid), "{}", palisade.log());
    assert!(
        palisade.log().contains("state.tls=false"),
        "{}",
        palisade.log()
    );
}

/// A Redis URL with `backend = "memory"` shares nothing: the start-up says so instead of
/// letting an operator believe two instances share limits.
#[tokio::test]
async fn a_redis_url_left_unused_by_a_memory_backend_is_warned_about() {
    let upstream = Upstream::start().await;
    let config = config_file("[state]\nredis_url = \"redis://127.0.0.1:6379\"\n");
    let palisade = Process::start(&upstream.url(), &config).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    let log = palisade.log();
    assert!(
        log.contains("rate limits are counted per instance, not shared"),
        "{log}"
    );
    drop(palisade);

    let config =
        config_file("[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n");
    let palisade = Process::start(&upstream.url(), &config).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    let log = palisade.log();
    assert!(!log.contains("not shared"), "{log}");
}

/// A second palisade started on the port of a running one must fail to start, not share
/// the port through `SO_REUSEPORT` and silently take part of the running one's traffic.
#[tokio::test]
async fn a_second_palisade_on_a_busy_port_fails_to_start() {
    let upstream = Upstream::start().await;
    let config = config_file("rate_limit = []\n");
    let first = Process::start(&upstream.url(), &config).await;
    let listen = first.proxy.trim_start_matches("http://").to_owned();
    let stderr_file = config.with_extension("second.stderr");
    let mut second = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--upstream", &upstream.url(), "--listen", &listen])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("palisade serve runs");
    let mut status = None;
    for _ in 0..200 {
        status = second.try_wait().expect("wait");
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if status.is_none() {
        let _ = second.kill();
        let _ = second.wait();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "the second palisade kept running"
    );
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    assert!(
        stderr.contains(&format!("cannot listen on {listen} (the proxy listener")),
        "{stderr}"
    );
    let reply = get(&format!("{}/", first.proxy), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);

    // A busy admin port is named as the admin listener's.
    let admin = first.admin.trim_start_matches("http://").to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "serve",
            "--upstream",
            &upstream.url(),
            "--admin-listen",
            &admin,
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--config")
        .arg(&config)
        .output()
        .expect("palisade serve runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {admin} (the admin listener")),
        "{stderr}"
    );
}

/// `--listen :8080` is refused with the form that works, as the file's `listen` is.
#[test]
fn a_listen_flag_without_an_ip_says_what_is_expected() {
    for flag in ["--listen", "--admin-listen"] {
        let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args([
                "serve",
                "--upstream",
                "http://127.0.0.1:3000",
                flag,
                ":8080",
            ])
            .output()
            .expect("palisade runs");
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("expected an IP address and a port"),
            "{stderr}"
        );
    }
}

/// Regression: with rate limits in memory, sessions in Redis and the `rediss://` URL in
/// `PALISADE_REDIS_URL` (as the docs advise, the file holding no `redis_url`), the file's
/// check judged `[session] redis_url`'s plain-text default instead and refused
/// `redis_ca_file` (and `redis_client_cert`): `check` failed and serve would not start.
#[test]
fn check_takes_the_sessions_tls_redis_url_from_the_environment() {
    let made = rcgen::generate_simple_self_signed(vec!["redis.internal".into()]).expect("cert");
    let config = config_file(
        "[state]\nredis_ca_file = \"ca.pem\"\nredis_client_cert = \"client.pem\"\n\
         redis_client_key = \"client.key\"\n[session]\nstore = \"redis\"\n",
    );
    let dir = config.parent().expect("config dir");
    std::fs::write(dir.join("ca.pem"), made.cert.pem()).expect("write CA");
    std::fs::write(dir.join("client.pem"), made.cert.pem()).expect("write cert");
    std::fs::write(dir.join("client.key"), made.signing_key.serialize_pem()).expect("key");
    let check = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["check", "--config"])
            .arg(&config)
            .env("PALISADE_REDIS_URL", url)
            .output()
            .expect("palisade check runs")
    };
    let tls = check("rediss://:hunter2@127.0.0.1:6380");
    let stderr = String::from_utf8_lossy(&tls.stderr);
    assert_eq!(tls.status.code(), Some(0), "{stderr}");

    let plain = check("redis://:hunter2@127.0.0.1:6379");
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("state.redis_ca_file") && stderr.contains("PALISADE_REDIS_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

/// `[[rate_limit]]` tables replace the built-in limits: a file with only a login limit
/// leaves every other path unlimited, and the start-up says so.
#[tokio::test]
async fn tables_that_limit_only_some_paths_are_warned_about() {
    let upstream = Upstream::start().await;
    let login = "[[rate_limit]]\nname = \"login\"\npath = \"/login\"\nmethods = [\"POST\"]\n\
                 limit = 5\nwindow = \"1m\"\n";
    let palisade = Process::start(&upstream.url(), &config_file(login)).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    let log = palisade.log();
    assert!(
        log.contains("no [[rate_limit]] table limits every request"),
        "{log}"
    );
    drop(palisade);

    let general = format!(
        "{login}[[rate_limit]]\nname = \"default\"\nstatic_assets = \"exclude\"\n\
         limit = 10\nwindow = \"10s\"\n"
    );
    let palisade = Process::start(&upstream.url(), &config_file(&general)).await;
    wait_until(|| palisade.log().contains("palisade started")).await;
    let log = palisade.log();
    assert!(!log.contains("limits every request"), "{log}");
}

/// `palisade demo` keeps its configuration and its upload spool in a directory of its own
/// and removes it when stopped with Ctrl-C (new-user finding: the directory, and the spool
/// in the system temporary directory, stayed behind).
#[tokio::test]
async fn the_demo_leaves_nothing_behind_when_stopped() {
    let (proxy_port, admin_port) = (free_port(), free_port());
    let stderr = std::env::temp_dir().join(format!("demo-{proxy_port}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["demo", "--listen", &format!("127.0.0.1:{proxy_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("palisade binary starts");
    let mut demo = Process {
        child,
        proxy: format!("http://127.0.0.1:{proxy_port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        stderr,
    };
    demo.wait_healthy().await;
    let reply = get_owned(format!("{}/", demo.proxy)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", demo.log());
    let dir = std::env::temp_dir().join(format!("palisade-demo-{}", demo.child.id()));
    assert!(dir.join("palisade.toml").is_file(), "{}", demo.log());
    assert!(dir.join("spool").is_dir(), "{}", demo.log());
    demo.signal("INT");
    let status = wait_for_exit(&mut demo.child).await;
    assert!(status.success(), "{status:?}: {}", demo.log());
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
