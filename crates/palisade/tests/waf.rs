//! WAF rules in a listening palisade: the requirements' rules file as written, blocking,
//! rate limits, the challenge and its clearance cookie, body rules, skips, events and
//! reloads. Clients "from China" come through a trusted proxy on 127.0.0.1 that names them
//! in `X-Forwarded-For`; the geo database is MaxMind's test database from `shared/`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use http::{Request, StatusCode};
use palisade_gateway::serve::Running;
use palisade_policy::challenge::{ChallengeKey, ClientBinding, is_solution};

/// The requirements' own example, unchanged.
const REQUIREMENTS: &str = r#"rules:
  - name: Block SQL Injection
    expression: (http.request.uri.query contains "union" and http.request.uri.query contains "select")
    action: block
  - name: Rate Limit API
    expression: (http.request.uri.path contains "/api/")
    action: rate_limit
    threshold: 100/minute
  - name: Geo-blocking (if needed)
    expression: (ip.geoip.country in {"CN" "RU" "KP"})
    action: challenge
"#;

const SECRET: &[u8] = b"a test secret of at least thirty-two bytes, never used in production";
const CN: &str = "111.235.160.9";
const GB: &str = "81.2.69.142";
const UA: &str = "palisade-tests/1.0";

fn shared() -> PathBuf {
    std::env::var_os("PALISADE_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    )
}

/// A configuration directory: `palisade.toml` (the `[waf]` section below plus `extra`),
/// `waf.yaml` holding `rules`, the challenge secret, and the security log.
fn config_dir(rules: &str, extra: &str) -> PathBuf {
    let geo = shared().join("fixtures/geoip/GeoLite2-Country-Test.mmdb");
    let path = config_file("");
    let dir = path.parent().expect("dir").to_path_buf();
    std::fs::write(dir.join("waf.yaml"), rules).expect("rules file");
    std::fs::write(dir.join("challenge.key"), SECRET).expect("secret file");
    let toml = format!(
        "{extra}\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
         [waf]\nrules = \"waf.yaml\"\ngeoip_country_db = \"{}\"\n\n\
         [waf.challenge]\ndifficulty = 8\nsecret_file = \"challenge.key\"\n\n\
         [log]\nsecurity = \"{}\"\n",
        geo.display(),
        dir.join("events.log").display(),
    );
    std::fs::write(&path, toml).expect("config");
    path
}

async fn start(upstream: &Upstream, rules: &str, extra: &str) -> (Running, PathBuf) {
    let path = config_dir(rules, extra);
    let palisade = start_palisade_at(&upstream.url(), path.clone()).await;
    (palisade, path)
}

fn url(palisade: &Running, path: &str) -> String {
    format!("http://{}{path}", palisade.proxy_addr)
}

/// `GET path` as the client `ip` (named by the trusted proxy), with extra headers.
async fn get_as(palisade: &Running, ip: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("x-forwarded-for", ip), ("user-agent", UA)];
    all.extend_from_slice(headers);
    get(&url(palisade, path), &all).await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn clearance_for(ip: &str, at: u64, ttl: Duration) -> String {
    let key = ChallengeKey::from_secret(SECRET).expect("key");
    let binding = ClientBinding::new(ip.parse().expect("ip"), UA.as_bytes());
    key.clearance(&binding, at, ttl).value
}

fn events(config: &Path) -> String {
    std::fs::read_to_string(config.with_file_name("events.log")).unwrap_or_default()
}

/// Waits (bounded) for the log writer to flush a line containing `needle`.
async fn wait_for_event(config: &Path, needle: &str) -> String {
    for _ in 0..100 {
        let log = events(config);
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no event containing {needle:?} in:\n{}", events(config));
}

#[tokio::test]
async fn union_and_select_together_are_blocked_and_one_word_alone_is_not() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;

    let blocked = get_as(&palisade, GB, "/search?q=union+select+password", &[]).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert_eq!(blocked.header("palisade-mitigated"), "block");
    assert!(
        blocked.body.contains("Block SQL Injection"),
        "{}",
        blocked.body
    );
    assert_eq!(upstream.hits(), 0);

    for query in ["q=union", "q=select", "q=onion+selection"] {
        let reply = get_as(&palisade, GB, &format!("/search?{query}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
    }
    assert_eq!(upstream.hits(), 3);

    let log = wait_for_event(&config, "\"rule.outcome\":\"blocked\"").await;
    let line = log.lines().find(|l| l.contains("blocked")).expect("event");
    let event: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(event["event"], "waf.rule");
    assert_eq!(event["rule.name"], "Block SQL Injection");
    assert_eq!(event["rule.action"], "block");
    assert_eq!(event["client.ip"], GB);
    assert_eq!(
        event["rule.fields"]["http.request.uri.query"],
        "q=union+select+password"
    );
    assert_eq!(event["http.status"], 403);
    palisade.shutdown().await;
}

#[tokio::test]
async fn api_paths_get_429_after_100_requests_in_a_minute() {
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    for i in 0..100 {
        let reply = get_as(&palisade, GB, "/api/items", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
    }
    let limited = get_as(&palisade, GB, "/api/items", &[]).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("palisade-mitigated"), "rate_limit");
    assert_eq!(limited.header("ratelimit-limit"), "100");
    assert!(
        limited
            .header("retry-after")
            .parse::<u64>()
            .expect("seconds")
            >= 1
    );

    // Another client has its own count, and other paths are not limited.
    assert_eq!(
        get_as(&palisade, "81.2.69.143", "/api/items", &[])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&palisade, GB, "/home", &[]).await.status,
        StatusCode::OK
    );

    let metrics = get(&format!("http://{}/metrics", palisade.admin_addr), &[]).await;
    assert!(
        metrics.body.contains(
            "palisade_waf_rule_matches_total{rule=\"Rate Limit API\",action=\"rate_limit\",\
             outcome=\"rate_limited\"} 1"
        ),
        "{}",
        metrics.body
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_client_from_cn_gets_the_challenge_page_and_json_clients_a_json_403() {
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;

    let page = get_as(&palisade, CN, "/account?tab=1", &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.header("palisade-mitigated"), "challenge");
    assert!(page.header("content-type").starts_with("text/html"));
    let csp = page.header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(
        page.header("x-frame-options"),
        "DENY",
        "the other headers still apply"
    );
    assert!(page.body.contains("checking your browser"));
    assert!(page.body.contains("value=\"/account?tab=1\""));

    let json = get_as(
        &palisade,
        CN,
        "/api/items",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(json.status, StatusCode::FORBIDDEN);
    assert_eq!(json.header("palisade-mitigated"), "challenge");
    assert_eq!(json.json()["challenge"], "proof_of_work");
    assert!(
        json.json()["message"]
            .as_str()
            .expect("message")
            .contains("challenge is required")
    );

    let elsewhere = get_as(&palisade, GB, "/account", &[]).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

/// Extracts `name="token" value="..."` and the difficulty from a challenge page.
fn puzzle(page: &str) -> (String, u8) {
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("token in page");
    let difficulty = page
        .split("data-difficulty=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|d| d.parse().ok())
        .expect("difficulty in page");
    (token.to_string(), difficulty)
}

fn solve(token: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| is_solution(token, nonce, difficulty))
        .expect("a nonce exists")
}

async fn post_answer(palisade: &Running, ip: &str, body: String) -> Reply {
    let request = Request::post(url(palisade, "/.palisade/challenge"))
        .header("x-forwarded-for", ip)
        .header("user-agent", UA)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .expect("request");
    send(request).await
}

#[tokio::test]
async fn a_solved_challenge_sets_a_clearance_that_lets_the_client_through_once_per_puzzle() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    let page = get_as(&palisade, CN, "/account", &[]).await;
    let (token, difficulty) = puzzle(&page.body);
    assert_eq!(difficulty, 8);
    let nonce = solve(&token, difficulty);
    let answer = format!("token={token}&nonce={nonce}&return=%2Faccount%3Ftab%3D2");

    let passed = post_answer(&palisade, CN, answer.clone()).await;
    assert_eq!(passed.status, StatusCode::SEE_OTHER);
    assert_eq!(passed.header("location"), "/account?tab=2");
    let cookie = passed.header("set-cookie").to_string();
    assert!(cookie.starts_with("palisade_clearance=c1."), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let value = cookie.split(';').next().expect("pair").to_string();

    let through = get_as(&palisade, CN, "/account?tab=2", &[("cookie", &value)]).await;
    assert_eq!(through.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);

    // The same work sent again is refused, and a fresh page is served.
    let replayed = post_answer(&palisade, CN, answer).await;
    assert_eq!(replayed.status, StatusCode::FORBIDDEN);
    assert!(replayed.body.contains("did not succeed"));
    wait_for_event(&config, "\"challenge.reason\":\"replayed\"").await;
    let log = wait_for_event(&config, "\"event\":\"challenge.passed\"").await;
    assert!(
        !log.contains(&value["palisade_clearance=".len()..]),
        "clearance logged"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_answer_endpoint_never_redirects_to_another_site() {
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    for evil in [
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let page = get_as(&palisade, CN, "/", &[]).await;
        let (token, difficulty) = puzzle(&page.body);
        let nonce = solve(&token, difficulty);
        let body = format!("token={token}&nonce={nonce}&return={evil}");
        let reply = post_answer(&palisade, CN, body).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(reply.header("location"), "/", "{evil}");
    }
    palisade.shutdown().await;
}

#[tokio::test]
async fn wrong_work_and_answers_from_another_network_are_refused() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    let page = get_as(&palisade, CN, "/", &[]).await;
    let (token, difficulty) = puzzle(&page.body);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| !is_solution(&token, nonce, difficulty))
        .expect("a wrong nonce");
    let reply = post_answer(&palisade, CN, format!("token={token}&nonce={wrong}")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get("set-cookie").is_none());
    wait_for_event(&config, "\"challenge.reason\":\"insufficient_work\"").await;

    let nonce = solve(&token, difficulty);
    let moved = post_answer(
        &palisade,
        "111.235.161.9",
        format!("token={token}&nonce={nonce}"),
    )
    .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    wait_for_event(&config, "\"challenge.reason\":\"bad_signature\"").await;

    let get_answer = get_as(&palisade, CN, "/.palisade/challenge", &[]).await;
    assert_eq!(get_answer.status, StatusCode::METHOD_NOT_ALLOWED);
    palisade.shutdown().await;
}

#[tokio::test]
async fn forged_expired_and_other_network_clearances_are_refused() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    let hour = Duration::from_secs(3600);
    let valid = clearance_for(CN, now_ms(), hour);
    let cases = [
        (
            "forged",
            "c1.99999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        ),
        ("expired", clearance_for(CN, now_ms() - 2 * 3_600_000, hour)),
        ("other network", clearance_for(GB, now_ms(), hour)),
        ("tampered", valid.replacen("c1.", "c1.9", 1)),
    ];
    for (case, value) in &cases {
        let cookie = format!("palisade_clearance={value}");
        let reply = get_as(&palisade, CN, "/", &[("cookie", &cookie)]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{case}");
        assert_eq!(reply.header("palisade-mitigated"), "challenge", "{case}");
    }
    assert_eq!(upstream.hits(), 0);
    wait_for_event(&config, "\"challenge.clearance\":\"expired\"").await;
    wait_for_event(&config, "\"challenge.clearance\":\"bad_signature\"").await;

    let cookie = format!("palisade_clearance={valid}");
    let reply = get_as(&palisade, CN, "/", &[("cookie", &cookie)]).await;
    assert_eq!(reply.status, StatusCode::OK, "the genuine clearance passes");
    let log = wait_for_event(&config, "\"rule.outcome\":\"cleared\"").await;
    assert!(!log.contains(&valid), "clearance values are never logged");
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_reload_with_a_broken_rules_file_keeps_the_rules_in_force() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, REQUIREMENTS, "rate_limit = []").await;
    let rules = config.with_file_name("waf.yaml");
    let broken = REQUIREMENTS.replace("contains \"select\"", "contains 42");
    std::fs::write(&rules, broken).expect("write");

    let err = palisade.gateway.reload().expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("waf.yaml:3:") && message.contains("expected a string"),
        "{message}"
    );
    let blocked = get_as(&palisade, GB, "/s?q=union+select", &[]).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN, "the old rules stay");

    let replaced = "rules:\n  - name: Only\n    expression: http.request.uri.path eq \"/x\"\n    \
                    action: block\n";
    std::fs::write(&rules, replaced).expect("write");
    palisade.gateway.reload().expect("applied");
    assert_eq!(
        get_as(&palisade, GB, "/s?q=union+select", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&palisade, GB, "/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn body_rules_read_the_form_and_the_whole_body_still_reaches_the_upstream() {
    let rules = r#"rules:
  - name: Script in comment
    expression: any(lower(http.request.body.form["comment"][*]) contains "<script")
    action: block
    status: 422
    body: comments may not contain scripts
"#;
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, rules, "rate_limit = []").await;
    let post = |body: &str| {
        Request::post(url(&palisade, "/comments"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(body.to_string()))
            .expect("request")
    };
    let refused = send(post("name=a&comment=%3CSCRIPT%3Ealert(1)")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body, "comments may not contain scripts");
    assert_eq!(refused.header("palisade-mitigated"), "block");

    let long = format!("name=a&comment={}", "x".repeat(200_000));
    let passed = send(post(&long)).await;
    assert_eq!(passed.status, StatusCode::OK);
    let echoed = passed.json();
    assert_eq!(echoed["body"].as_str().map(str::len), Some(long.len()));
    palisade.shutdown().await;
}

#[tokio::test]
async fn skip_and_log_rules_let_requests_through_and_skip_later_phases() {
    let rules = r#"rules:
  - name: Health checks
    expression: http.request.uri.path eq "/health"
    action: skip
    skip: [rate_limit, Audit]
  - name: Audit
    expression: http.request.uri.path eq "/health"
    action: block
  - name: Would block
    expression: http.cookie contains "evil"
    action: block
    mode: log
"#;
    let extra = "[[rate_limit]]\nname = \"tight\"\nlimit = 1\nwindow = \"1m\"\n";
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, rules, extra).await;
    for _ in 0..3 {
        let reply = get_as(&palisade, GB, "/health", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "not limited, not blocked");
    }
    let cookie = "session=evil-s3cret-value";
    assert_eq!(
        get_as(&palisade, GB, "/page", &[("cookie", cookie)])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&palisade, GB, "/page", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the rate limit applies where it was not skipped"
    );
    let log = wait_for_event(&config, "Would block").await;
    assert!(log.contains("\"rule.outcome\":\"skipped\""));
    assert!(log.contains("\"http.cookie\":\"(redacted)\""), "{log}");
    assert!(!log.contains("s3cret"), "cookie values are never logged");
    palisade.shutdown().await;
}

#[tokio::test]
async fn rate_limit_rules_share_their_count_through_redis() {
    let rules = r#"rules:
  - name: API keys
    expression: starts_with(http.request.uri.path, "/api/")
    action: rate_limit
    threshold: 3/minute
    key: header:x-api-key
"#;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let extra = format!(
        "rate_limit = []\n[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
         key_prefix = \"palisade-waf-test:{}:{nanos}:\"\n",
        std::process::id()
    );
    let upstream = Upstream::start().await;
    let (a, _) = start(&upstream, rules, &extra).await;
    let (b, _) = start(&upstream, rules, &extra).await;
    let key = [("x-api-key", "k-123")];
    for palisade in [&a, &b, &a] {
        assert_eq!(
            get_as(palisade, GB, "/api/x", &key).await.status,
            StatusCode::OK
        );
    }
    let limited = get_as(&b, "81.2.69.150", "/api/x", &key).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "same key, other instance and IP"
    );
    let other_key = [("x-api-key", "k-456")];
    assert_eq!(
        get_as(&b, GB, "/api/x", &other_key).await.status,
        StatusCode::OK
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn rules_see_the_session_user_and_can_skip_the_csrf_check() {
    use common::sessions::{MEMORY_SESSIONS, login};
    let rules = r#"rules:
  - name: Banned user
    expression: palisade.user.id eq "mallory"
    action: block
  - name: Signed webhooks
    expression: starts_with(http.request.uri.path, "/hooks/")
    action: skip
    skip: [csrf]
"#;
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, rules, MEMORY_SESSIONS).await;
    let base = format!("http://{}", palisade.proxy_addr);
    let alice = login(&base, "alice", None).await;
    let mallory = login(&base, "mallory", None).await;

    let banned = get(&format!("{base}/"), &[("cookie", &mallory.cookie())]).await;
    assert_eq!(banned.status, StatusCode::FORBIDDEN);
    assert!(banned.body.contains("Banned user"));
    assert_eq!(
        get(&format!("{base}/"), &[("cookie", &alice.cookie())])
            .await
            .status,
        StatusCode::OK
    );

    let post = |path: &str| {
        Request::post(format!("{base}{path}"))
            .header("cookie", alice.cookie())
            .body(full("{}"))
            .expect("request")
    };
    let refused = send(post("/items")).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "no token: CSRF refuses"
    );
    assert_eq!(refused.header("palisade-mitigated"), "csrf");
    let skipped = send(post("/hooks/build")).await;
    assert_eq!(
        skipped.status,
        StatusCode::OK,
        "the skip rule turned the CSRF check off"
    );
    palisade.shutdown().await;
}
