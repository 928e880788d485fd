//! Sessions end to end: a real upstream that logs users in and out through response
//! headers, a real palisade in front of it, real HTTP over loopback. Lifetimes and rotation
//! timing are tested with an injected clock in `palisade-policy`; these tests check the
//! wiring: cookies, headers, stores, the admin API and bad input.

mod common;

use common::sessions::*;
use common::*;
use http::{Method, StatusCode};

fn base(palisade: &palisade_gateway::serve::Running) -> String {
    format!("http://{}", palisade.proxy_addr)
}

#[tokio::test]
async fn a_login_header_becomes_a_hardened_cookie_and_identity_headers_upstream() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);

    let reply = directive(
        &base,
        "/login",
        &[
            "palisade-session-login: alice".into(),
            "palisade-session-roles: admin,editor".into(),
        ],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("palisade-session-login").is_none());
    assert!(reply.headers.get("palisade-session-roles").is_none());
    let line = set_cookie_line(&reply, SESSION_COOKIE).expect("session cookie");
    let secret = set_cookie_value(&reply, SESSION_COOKIE).expect("value");
    assert_eq!(secret.len(), 43, "{line}");
    assert_eq!(
        line,
        format!(
            "{SESSION_COOKIE}={secret}; Path=/; Max-Age=2592000; Secure; HttpOnly; SameSite=Lax"
        )
    );
    let csrf_line = set_cookie_line(&reply, CSRF_COOKIE).expect("csrf cookie");
    assert!(
        !csrf_line.contains("HttpOnly"),
        "scripts read it: {csrf_line}"
    );
    assert!(csrf_line.contains("Secure") && csrf_line.contains("SameSite=Lax"));

    let cookie = format!("{SESSION_COOKIE}={secret}");
    let echo = get(&format!("{base}/whoami"), &[("cookie", &cookie)]).await;
    let (user, session, roles) = seen_identity(&echo);
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(roles.as_deref(), Some("admin,editor"));
    let session = session.expect("session id");
    assert!(session.len() == 32 && session.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        !echo.body.contains(&secret),
        "the secret is never sent upstream in a header"
    );
    assert_eq!(events(&palisade, "session.created"), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let forged = [
        ("palisade-user-id", "admin"),
        ("palisade-session-id", "00000000000000000000000000000000"),
        ("palisade_user_roles", "admin"),
        ("Palisade-User-Roles", "root"),
    ];

    let anonymous = get(&format!("{base}/"), &forged).await;
    assert_eq!(seen_identity(&anonymous), (None, None, None));
    let echo = anonymous.json();
    assert!(echo["headers"]["palisade_user_roles"].is_null());

    let alice = login(&base, "alice", None).await;
    let cookie = format!("{SESSION_COOKIE}={}", alice.session);
    let mut headers = forged.to_vec();
    headers.push(("cookie", &cookie));
    let with_session = get(&format!("{base}/"), &headers).await;
    let (user, session, roles) = seen_identity(&with_session);
    assert_eq!(user.as_deref(), Some("alice"));
    assert_ne!(session.as_deref(), Some("00000000000000000000000000000000"));
    assert_eq!(roles, None, "alice has no roles, whatever the client says");
    assert_eq!(events(&palisade, "identity.headers_stripped"), 2);
    palisade.shutdown().await;
}

/// `Connection` may name hop-by-hop fields for the proxy to drop; a client naming the
/// identity headers must not make palisade drop the ones it set itself.
#[tokio::test]
async fn a_connection_header_cannot_remove_the_identity_headers() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", Some("admin")).await;
    let cookie = format!("{SESSION_COOKIE}={}", alice.session);
    let connection = "palisade-user-id, palisade-session-id, palisade-user-roles, x-forwarded-for";
    let reply = get(
        &format!("{base}/"),
        &[("cookie", &cookie), ("connection", connection)],
    )
    .await;
    let (user, session, roles) = seen_identity(&reply);
    assert_eq!(user.as_deref(), Some("alice"));
    assert!(session.is_some());
    assert_eq!(roles.as_deref(), Some("admin"));
    assert_eq!(reply.json()["headers"]["x-forwarded-for"], "127.0.0.1");
    palisade.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_both_cookies() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", None).await;

    let reply = directive(
        &base,
        "/logout",
        &["palisade-session-logout: 1".into()],
        Some(&alice.cookie()),
    )
    .await;
    assert!(reply.headers.get("palisade-session-logout").is_none());
    assert_eq!(
        set_cookie_value(&reply, SESSION_COOKIE).as_deref(),
        Some("")
    );
    assert!(set_cookie_line(&reply, SESSION_COOKIE).is_some_and(|l| l.contains("Max-Age=0")));
    assert!(set_cookie_line(&reply, CSRF_COOKIE).is_some_and(|l| l.contains("Max-Age=0")));
    assert_eq!(events(&palisade, "session.logged_out"), 1);

    let after = get(&format!("{base}/"), &[("cookie", &alice.cookie())]).await;
    assert_eq!(seen_identity(&after), (None, None, None));
    assert!(set_cookie_line(&after, SESSION_COOKIE).is_some_and(|l| l.contains("Max-Age=0")));
    assert_eq!(events(&palisade, "session.refused"), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn rotation_gives_a_new_secret_for_the_same_session() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", None).await;
    let old = format!("{SESSION_COOKIE}={}", alice.session);
    let before = seen_identity(&get(&format!("{base}/"), &[("cookie", &old)]).await);

    let reply = directive(
        &base,
        "/promote",
        &["palisade-session-rotate: 1".into()],
        Some(&old),
    )
    .await;
    assert!(reply.headers.get("palisade-session-rotate").is_none());
    let new_secret = set_cookie_value(&reply, SESSION_COOKIE).expect("new secret");
    assert_eq!(new_secret.len(), 43);
    assert_ne!(new_secret, alice.session);
    assert_eq!(events(&palisade, "session.rotated"), 1);

    let new = format!("{SESSION_COOKIE}={new_secret}");
    let after = seen_identity(&get(&format!("{base}/"), &[("cookie", &new)]).await);
    assert_eq!(after, before, "same user, same public session id");
    // The replaced secret still works within the grace period (parallel requests).
    let grace = seen_identity(&get(&format!("{base}/"), &[("cookie", &old)]).await);
    assert_eq!(grace, before);
    palisade.shutdown().await;
}

#[tokio::test]
async fn refused_login_directives_are_events_not_sessions() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let long = "u".repeat(300);
    let cases = [
        vec![format!("palisade-session-login: {long}")],
        vec![
            "palisade-session-login: alice".into(),
            "palisade-session-login: bob".into(),
        ],
        vec![
            "palisade-session-login: alice".into(),
            "palisade-session-roles: a b".into(),
        ],
        vec!["palisade-session-logout: please".into()],
    ];
    for directives in &cases {
        let reply = directive(&base, "/login", directives, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            set_cookie_line(&reply, SESSION_COOKIE).is_none(),
            "{directives:?}"
        );
        let leaked = reply
            .headers
            .keys()
            .any(|n| n.as_str().starts_with("palisade-session"));
        assert!(
            !leaked,
            "directive headers are stripped: {:?}",
            reply.headers
        );
    }
    assert_eq!(
        events(&palisade, "session.directive_refused"),
        cases.len() as u64
    );
    assert_eq!(events(&palisade, "session.created"), 0);
    palisade.shutdown().await;
}

#[tokio::test]
async fn garbage_oversized_and_duplicated_session_cookies_give_no_session() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", None).await;
    let bob = login(&base, "bob", None).await;
    let cookie = |value: &str| format!("{SESSION_COOKIE}={value}");
    let huge = "A".repeat(6000);
    // Well-formed (canonical base64url of 32 zero bytes) but no session has it.
    let unknown = "A".repeat(43);
    let bad = [
        cookie("garbage"),
        cookie(&huge),
        cookie("%00%0d%0a"),
        cookie(&format!("\"{}", alice.session)),
        format!("{}; {}", cookie(&alice.session), cookie(&bob.session)),
        format!("{}; {}", cookie(&alice.session), cookie("x")),
        format!("{}; {}", cookie(&alice.session), cookie(&huge)),
        cookie(&unknown),
    ];
    for header in &bad {
        let reply = get(&format!("{base}/"), &[("cookie", header.as_str())]).await;
        assert_eq!(reply.status, StatusCode::OK, "{header:.80}");
        assert_eq!(seen_identity(&reply), (None, None, None), "{header:.80}");
        let cleared = set_cookie_line(&reply, SESSION_COOKIE);
        assert!(
            cleared.is_some_and(|l| l.contains("Max-Age=0")),
            "{header:.80}"
        );
    }
    assert_eq!(events(&palisade, "session.bad_cookie"), 7);
    assert_eq!(events(&palisade, "session.refused"), 1);

    // Two Cookie headers (as HTTP/2 sends them) with different sessions: neither is used.
    let two = [
        ("cookie", cookie(&alice.session)),
        ("cookie", cookie(&bob.session)),
    ];
    let pairs: Vec<(&str, &str)> = two.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = get(&format!("{base}/"), &pairs).await;
    assert_eq!(seen_identity(&reply), (None, None, None));
    palisade.shutdown().await;
}

#[tokio::test]
async fn control_characters_in_headers_never_crash_or_authenticate() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {SESSION_COOKIE}=a\x01b\x7fc\r\n\
         Authorization: Bearer \x01\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(
        palisade.proxy_addr,
        head.as_bytes(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    assert!(!answer.contains("palisade-user-id"), "{answer}");
    // palisade still serves.
    let reply = get(&format!("{}/", base(&palisade)), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_lists_and_revokes_sessions() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), MEMORY_SESSIONS).await;
    let base = base(&palisade);
    let admin = format!("http://{}", palisade.admin_addr);
    let phone = login(&base, "alice", Some("admin")).await;
    let laptop = login(&base, "alice", None).await;
    let bob = login(&base, "bob", None).await;

    let listed = get(&format!("{admin}/v1/users/alice/sessions"), &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.header("content-type"), "application/json");
    let json = listed.json();
    assert_eq!(json["user_id"], "alice");
    let sessions = json["sessions"].as_array().expect("array");
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .all(|s| s["public_id"].as_str().is_some_and(|id| id.len() == 32))
    );
    assert!(!listed.body.contains(&phone.session) && !listed.body.contains(&laptop.session));

    let phone_id = session_id(&base, &phone).await;
    let url = format!("{admin}/v1/sessions/{phone_id}");
    let revoked = request(Method::DELETE, &url, &[], "").await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.json()["revoked"], 1);
    assert_eq!(
        request(Method::DELETE, &url, &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(identity_of(&base, &phone).await, None);
    assert_eq!(identity_of(&base, &laptop).await.as_deref(), Some("alice"));

    let all = request(
        Method::DELETE,
        &format!("{admin}/v1/users/alice/sessions"),
        &[],
        "",
    )
    .await;
    assert_eq!(all.json()["revoked"], 1);
    assert_eq!(identity_of(&base, &laptop).await, None);
    assert_eq!(identity_of(&base, &bob).await.as_deref(), Some("bob"));
    assert_eq!(events(&palisade, "session.revoked"), 2);

    for bad in [
        "/v1/sessions/nothex",
        "/v1/users/%0A/sessions",
        "/v1/users/%zz/sessions",
    ] {
        let method = if bad.starts_with("/v1/sessions") {
            Method::DELETE
        } else {
            Method::GET
        };
        let reply = request(method, &format!("{admin}{bad}"), &[], "").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.json()["error"], "bad_request");
    }
    palisade.shutdown().await;
}

#[tokio::test]
async fn sqlite_sessions_survive_a_restart() {
    let upstream = Upstream::start().await;
    let dir = config_file("").with_file_name("state");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("sessions.db");
    let toml = format!(
        "rate_limit = []\n[session]\nsqlite_path = {:?}\n",
        db.display().to_string()
    );

    let first = start_palisade(&upstream.url(), &toml).await;
    let alice = login(&base(&first), "alice", None).await;
    first.shutdown().await;
    assert!(db.exists());

    let second = start_palisade(&upstream.url(), &toml).await;
    assert_eq!(
        identity_of(&base(&second), &alice).await.as_deref(),
        Some("alice")
    );
    second.shutdown().await;
}

#[tokio::test]
async fn sqlite_is_the_default_store_next_to_the_configuration() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []\n").await;
    login(&base(&palisade), "alice", None).await;
    let file = palisade.gateway.config_file().expect("file").to_path_buf();
    palisade.shutdown().await;
    assert!(file.with_file_name("palisade-sessions.db").exists());
}

#[tokio::test]
async fn two_instances_sharing_redis_see_the_same_sessions() {
    let upstream = Upstream::start().await;
    let prefix = format!("palisade-test:{}:{}:", std::process::id(), free_port());
    let toml = format!(
        "rate_limit = []\n[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
         redis_prefix = \"{prefix}\"\n"
    );
    let a = start_palisade(&upstream.url(), &toml).await;
    let b = start_palisade(&upstream.url(), &toml).await;

    let alice = login(&base(&a), "alice", None).await;
    assert_eq!(
        identity_of(&base(&b), &alice).await.as_deref(),
        Some("alice")
    );
    let logout = directive(
        &base(&b),
        "/logout",
        &["palisade-session-logout: 1".into()],
        Some(&alice.cookie()),
    )
    .await;
    assert_eq!(logout.status, StatusCode::OK);
    assert_eq!(identity_of(&base(&a), &alice).await, None);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn user_keyed_rate_limits_count_each_user_apart() {
    let upstream = Upstream::start().await;
    let toml = "[[rate_limit]]\nname = \"per-user\"\npath = \"/api/\"\nkey = \"user\"\nlimit = 2\n\
                window = \"1m\"\n[session]\nstore = \"memory\"\n";
    let palisade = start_palisade(&upstream.url(), toml).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", None).await;
    let bob = login(&base, "bob", None).await;
    let api = format!("{base}/api/items");
    let status = |who: &LoggedIn| {
        let cookie = format!("{SESSION_COOKIE}={}", who.session);
        let api = api.clone();
        async move { get(&api, &[("cookie", &cookie)]).await.status }
    };

    assert_eq!(status(&alice).await, StatusCode::OK);
    assert_eq!(status(&alice).await, StatusCode::OK);
    assert_eq!(status(&alice).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&bob).await, StatusCode::OK, "bob has his own quota");
    assert_eq!(
        get(&api, &[]).await.status,
        StatusCode::OK,
        "anonymous: by IP"
    );
    palisade.shutdown().await;
}

/// The user the upstream sees for this browser, if any.
async fn identity_of(base: &str, who: &LoggedIn) -> Option<String> {
    let cookie = format!("{SESSION_COOKIE}={}", who.session);
    seen_identity(&get(&format!("{base}/"), &[("cookie", &cookie)]).await).0
}

/// The public session id the upstream sees for this browser.
async fn session_id(base: &str, who: &LoggedIn) -> String {
    let cookie = format!("{SESSION_COOKIE}={}", who.session);
    let reply = get(&format!("{base}/"), &[("cookie", &cookie)]).await;
    seen_identity(&reply).1.expect("a session")
}

#[tokio::test]
async fn waf_rules_see_the_session_user() {
    let upstream = Upstream::start().await;
    let rules = config_file("").with_file_name("rules.yaml");
    let yaml = "rules:\n  - name: No mallory\n    expression: (palisade.user.id eq \"mallory\")\n    \
                action: block\n";
    std::fs::write(&rules, yaml).expect("rules file");
    let toml = format!(
        "{MEMORY_SESSIONS}[waf]\nrules = {:?}\n",
        rules.display().to_string()
    );
    let palisade = start_palisade(&upstream.url(), &toml).await;
    let base = base(&palisade);
    let alice = login(&base, "alice", None).await;
    let mallory = login(&base, "mallory", None).await;

    let status = |who: &LoggedIn| {
        let (url, cookie) = (
            format!("{base}/"),
            format!("{SESSION_COOKIE}={}", who.session),
        );
        async move { get(&url, &[("cookie", &cookie)]).await.status }
    };
    assert_eq!(status(&alice).await, StatusCode::OK);
    assert_eq!(status(&mallory).await, StatusCode::FORBIDDEN);
    assert_eq!(get(&format!("{base}/"), &[]).await.status, StatusCode::OK);
    palisade.shutdown().await;
}
