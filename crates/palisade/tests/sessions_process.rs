//! Sessions with the real `palisade` binary: start-up without a configuration file, secrets
//! from the environment (CSRF, HS256 JWT, admin token), start-up warnings, and the
//! `palisade sessions` CLI against the admin API.

mod common;

use common::binary::{Binary, ServeOptions, outputs, run};
use common::sessions::*;
use common::*;
use http::{Method, StatusCode};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789-abcdefgh";

#[tokio::test]
async fn serve_without_a_config_keeps_sessions_in_sqlite_in_the_working_directory() {
    let upstream = Upstream::start().await;
    let palisade = Binary::serve(&upstream.url(), ServeOptions::default()).await;

    let alice = login(&palisade.proxy, "alice", None).await;
    let reply = get(
        &format!("{}/", palisade.proxy),
        &[("cookie", &alice.cookie())],
    )
    .await;
    assert_eq!(seen_identity(&reply).0.as_deref(), Some("alice"));
    assert!(palisade.dir.join("palisade-sessions.db").exists());
    let log = palisade.log();
    assert!(log.contains("no CSRF secret configured"), "{log}");
    assert!(!log.contains(&alice.session), "secrets never reach the log");
}

#[tokio::test]
async fn secrets_come_from_the_environment_and_insecure_cookies_warn() {
    let upstream = Upstream::start().await;
    let config = config_file(
        "rate_limit = []\n[session]\nstore = \"memory\"\ninsecure_cookies = true\n\
         [identity.jwt]\nsecret_env = \"TEST_JWT_SECRET\"\n",
    );
    let env = vec![
        ("TEST_JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ("PALISADE_CSRF_SECRET".to_string(), "c".repeat(40)),
    ];
    let options = ServeOptions {
        config: Some(config),
        env,
        ..Default::default()
    };
    let palisade = Binary::serve(&upstream.url(), options).await;
    let log = palisade.log();
    assert!(log.contains("insecure_cookies = true"), "{log}");
    assert!(!log.contains("no CSRF secret configured"), "{log}");
    assert!(!log.contains(JWT_SECRET), "{log}");

    let token = hs256(&serde_json::json!({ "sub": "svc-1", "exp": now() + 600 }));
    let bearer = format!("Bearer {token}");
    let reply = get(
        &format!("{}/", palisade.proxy),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(seen_identity(&reply).0.as_deref(), Some("svc-1"));

    let reply = directive(
        &palisade.proxy,
        "/login",
        &["palisade-session-login: a".into()],
        None,
    )
    .await;
    let line = set_cookie_line(&reply, "palisade_session").expect("unprefixed cookie");
    assert!(line.ends_with("; HttpOnly; SameSite=Lax"), "{line}");
    assert!(!line.contains("Secure"), "{line}");
}

#[tokio::test]
async fn a_missing_jwt_secret_stops_start_up_with_a_clear_message() {
    let config = config_file("[identity.jwt]\nsecret_env = \"TEST_UNSET_JWT_SECRET\"\n");
    let output = run(
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--config",
            &config.display().to_string(),
        ],
        &[],
    );
    assert!(!output.status.success());
    let (_, stderr) = outputs(&output);
    assert_eq!(
        stderr
            .matches("TEST_UNSET_JWT_SECRET, which is not set")
            .count(),
        1,
        "said once: {stderr}"
    );
}

#[tokio::test]
async fn the_cli_lists_and_revokes_sessions_with_the_admin_token() {
    let upstream = Upstream::start().await;
    let env = vec![("PALISADE_ADMIN_TOKEN".to_string(), ADMIN_TOKEN.to_string())];
    let config = config_file(MEMORY_SESSIONS);
    let options = ServeOptions {
        config: Some(config),
        env,
        ..Default::default()
    };
    let palisade = Binary::serve(&upstream.url(), options).await;
    let phone = login(&palisade.proxy, "alice@example.com", Some("admin")).await;
    let laptop = login(&palisade.proxy, "alice@example.com", None).await;
    let admin = palisade.admin.as_str();
    let token = [("PALISADE_ADMIN_TOKEN", ADMIN_TOKEN)];

    let url = format!("{admin}/v1/users/alice%40example.com/sessions");
    assert_eq!(get(&url, &[]).await.status, StatusCode::UNAUTHORIZED);
    let refused = run(&["sessions", "list", "--user", "x", "--admin", admin], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(outputs(&refused).1.contains("set PALISADE_ADMIN_TOKEN"));
    let wrong = [("PALISADE_ADMIN_TOKEN", "not-the-admin-token-0123456789")];
    let refused = run(
        &["sessions", "list", "--user", "x", "--admin", admin],
        &wrong,
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = outputs(&refused).1;
    assert!(
        stderr.contains("PALISADE_ADMIN_TOKEN is not the token"),
        "{stderr}"
    );

    let list = run(
        &[
            "sessions",
            "list",
            "--user",
            "alice@example.com",
            "--admin",
            admin,
        ],
        &token,
    );
    let (stdout, stderr) = outputs(&list);
    assert!(list.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("2 live session(s) of user alice@example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("admin"), "roles are shown: {stdout}");
    let json = run(
        &[
            "sessions",
            "list",
            "--user",
            "alice@example.com",
            "--json",
            "--admin",
            admin,
        ],
        &token,
    );
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let phone_id = session_of(&palisade.proxy, &phone).await;
    assert!(
        answer["sessions"]
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["public_id"] == phone_id)
    );

    let one = run(
        &[
            "sessions",
            "revoke",
            "--session",
            &phone_id,
            "--admin",
            admin,
        ],
        &token,
    );
    assert!(one.status.success(), "{}", outputs(&one).1);
    assert_eq!(identity(&palisade.proxy, &phone).await, None);
    assert!(identity(&palisade.proxy, &laptop).await.is_some());
    let again = run(
        &[
            "sessions",
            "revoke",
            "--session",
            &phone_id,
            "--admin",
            admin,
        ],
        &token,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        outputs(&again).1.contains("no live session"),
        "{}",
        outputs(&again).1
    );

    let all = run(
        &[
            "sessions",
            "revoke",
            "--user",
            "alice@example.com",
            "--admin",
            admin,
        ],
        &token,
    );
    assert_eq!(
        outputs(&all).0.trim(),
        "revoked 1 session(s) of user alice@example.com"
    );
    assert_eq!(identity(&palisade.proxy, &laptop).await, None);

    let bad = run(
        &[
            "sessions",
            "revoke",
            "--session",
            "nothex",
            "--admin",
            admin,
        ],
        &token,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        outputs(&bad).1.contains("32 lowercase hex digits"),
        "{}",
        outputs(&bad).1
    );
    let down = run(
        &[
            "sessions",
            "list",
            "--user",
            "a",
            "--admin",
            "http://127.0.0.1:9",
        ],
        &token,
    );
    assert!(
        outputs(&down).1.contains("cannot reach the admin API"),
        "{}",
        outputs(&down).1
    );
    let revoke = request(
        Method::DELETE,
        &format!("{admin}/v1/users/a/sessions"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        revoke.status,
        StatusCode::UNAUTHORIZED,
        "every admin route needs the token"
    );
}

async fn identity(base: &str, who: &LoggedIn) -> Option<String> {
    let cookie = format!("{SESSION_COOKIE}={}", who.session);
    seen_identity(&get(&format!("{base}/"), &[("cookie", &cookie)]).await).0
}

async fn session_of(base: &str, who: &LoggedIn) -> String {
    let cookie = format!("{SESSION_COOKIE}={}", who.session);
    seen_identity(&get(&format!("{base}/"), &[("cookie", &cookie)]).await)
        .1
        .expect("session")
}

fn hs256(claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).expect("sign")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
