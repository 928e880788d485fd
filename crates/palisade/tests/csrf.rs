//! CSRF protection end to end: tokens from the `palisade_csrf` cookie and from
//! `GET /.palisade/csrf`, sent in `x-csrf-token` or the `_csrf` form field, checked against
//! the session of the request by a listening palisade in front of a real upstream.
//! Token expiry is tested by minting tokens with an old `iat` (no sleeping).

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::sessions::*;
use common::*;
use http::{Method, StatusCode};
use palisade_gateway::serve::Running;
use palisade_policy::csrf::CsrfKey;

const SECRET: &str = "csrf-test-secret-0123456789-abcdefghijklmnop";

/// A palisade with a known CSRF secret (from a file) and a webhook exemption.
async fn start(upstream: &Upstream) -> (Running, String) {
    let secret = config_file("").with_file_name("csrf-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret file");
    // Managed detection off: it refuses some of the sneaky paths below on its own (a `..`
    // written with escapes), and these tests are about the CSRF stage's answers.
    let toml = format!(
        "{MEMORY_SESSIONS}[csrf]\nsecret_file = {:?}\nexempt = [\"/api/webhooks/\"]\n\
         [waf]\nmanaged = false\n",
        secret.display().to_string()
    );
    let palisade = start_palisade(&upstream.url(), &toml).await;
    let base = format!("http://{}", palisade.proxy_addr);
    (palisade, base)
}

/// `POST base+path` as a browser with `who`'s cookies, plus `headers`.
async fn post(base: &str, path: &str, who: &LoggedIn, headers: &[(&str, &str)]) -> Reply {
    let cookie = who.cookie();
    let mut all = vec![("cookie", cookie.as_str())];
    all.extend_from_slice(headers);
    request(Method::POST, &format!("{base}{path}"), &all, "{}").await
}

/// The public session id of `who`, as the upstream sees it.
async fn public_id(base: &str, who: &LoggedIn) -> String {
    let reply = get(&format!("{base}/"), &[("cookie", &who.cookie())]).await;
    seen_identity(&reply).1.expect("a session")
}

fn refused_for(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(reply.json()["reason"], reason, "{}", reply.body);
    assert_eq!(reply.header("palisade-mitigated"), "csrf");
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_a_missing_one_refused() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let hits = upstream.hits();

    let missing = post(&base, "/items", &alice, &[]).await;
    refused_for(&missing, "missing");
    assert_eq!(missing.header("content-type"), "application/json");
    let html = post(&base, "/items", &alice, &[("accept", "text/html")]).await;
    assert_eq!(html.status, StatusCode::FORBIDDEN);
    assert!(
        html.body.contains("The CSRF token is missing."),
        "{}",
        html.body
    );
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let url = format!("{base}/items/1");
        let reply = request(method, &url, &[("cookie", &alice.cookie())], "").await;
        refused_for(&reply, "missing");
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "refused requests never reach the upstream"
    );

    let accepted = post(&base, "/items", &alice, &[("x-csrf-token", &alice.csrf)]).await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(seen_identity(&accepted).0.as_deref(), Some("alice"));
    assert_eq!(events(&palisade, "csrf.refused"), 5);
    palisade.shutdown().await;
}

#[tokio::test]
async fn tokens_of_another_session_expired_or_forged_are_refused() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let bob = login(&base, "bob", None).await;
    let id = public_id(&base, &alice).await;
    let key = CsrfKey::from_text(SECRET.as_bytes()).expect("key");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;

    let send = |token: String| {
        let (base, alice) = (base.clone(), alice.clone());
        async move { post(&base, "/items", &alice, &[("x-csrf-token", &token)]).await }
    };
    refused_for(&send(bob.csrf.clone()).await, "mismatch");
    refused_for(
        &send(key.mint(&id, 3600, now_ms - 7_200_000)).await,
        "expired",
    );
    refused_for(&send(tampered_signature(&alice.csrf)).await, "invalid");
    refused_for(&send(tampered_claims(&alice.csrf)).await, "invalid");
    refused_for(&send(alg_none(&id, now_ms)).await, "invalid");
    refused_for(&send(hs512(&id, now_ms)).await, "invalid");
    refused_for(&send("not.a.token".into()).await, "invalid");
    refused_for(&send("x".repeat(5000)).await, "invalid");

    // A token minted elsewhere with the shared secret (as the upstream could) is accepted.
    let minted = send(key.mint(&id, 3600, now_ms)).await;
    assert_eq!(minted.status, StatusCode::OK);
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_form_field_carries_the_token_for_html_forms() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let form = [
        ("cookie", alice.cookie()),
        ("content-type", "application/x-www-form-urlencoded".into()),
    ];
    let headers: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let url = format!("{base}/comments");

    let body = format!("text=hello+there&_csrf={}", alice.csrf);
    let accepted = request(Method::POST, &url, &headers, &body).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(
        accepted.json()["body"],
        body,
        "the body reaches the upstream intact"
    );

    let without = request(Method::POST, &url, &headers, "text=hello").await;
    refused_for(&without, "missing");
    let wrong = request(Method::POST, &url, &headers, "_csrf=abc.def.ghi&text=x").await;
    refused_for(&wrong, "invalid");
    // A body beyond the 64 KiB searched: the token must come first, and then it works.
    let big = format!("_csrf={}&text={}", alice.csrf, "x".repeat(200_000));
    assert_eq!(
        request(Method::POST, &url, &headers, &big).await.status,
        StatusCode::OK
    );
    let late = format!("text={}&_csrf={}", "x".repeat(200_000), alice.csrf);
    refused_for(
        &request(Method::POST, &url, &headers, &late).await,
        "missing",
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn exempt_paths_and_requests_without_a_cookie_credential_pass() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;

    let webhook = post(&base, "/api/webhooks/stripe", &alice, &[]).await;
    assert_eq!(webhook.status, StatusCode::OK);
    // Servlet containers read `..;` as `..`, and some upstreams decode twice.
    for sneaky in [
        "/api/webhooks/%2e%2e/admin",
        "/api/webhooks/..;/admin",
        "/api/webhooks/.;x=1/admin",
        "/api/webhooks/%252e%252e/admin",
    ] {
        refused_for(&post(&base, sneaky, &alice, &[]).await, "missing");
    }
    let anonymous = request(Method::POST, &format!("{base}/items"), &[], "{}").await;
    assert_eq!(
        anonymous.status,
        StatusCode::OK,
        "no cookie credential, nothing to forge"
    );
    let safe = get(&format!("{base}/items"), &[("cookie", &alice.cookie())]).await;
    assert_eq!(safe.status, StatusCode::OK);
    palisade.shutdown().await;
}

#[tokio::test]
async fn cross_site_requests_are_refused_even_with_a_valid_token() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let token = ("x-csrf-token", alice.csrf.as_str());

    let site = post(
        &base,
        "/items",
        &alice,
        &[token, ("sec-fetch-site", "cross-site")],
    )
    .await;
    refused_for(&site, "cross_site");
    let origin = post(
        &base,
        "/items",
        &alice,
        &[token, ("origin", "http://evil.example")],
    )
    .await;
    refused_for(&origin, "cross_site");
    let null = post(&base, "/items", &alice, &[token, ("origin", "null")]).await;
    refused_for(&null, "cross_site");

    let own_origin = format!("http://{}", palisade.proxy_addr);
    let same = post(
        &base,
        "/items",
        &alice,
        &[
            token,
            ("origin", &own_origin),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(same.status, StatusCode::OK);
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_token_endpoint_serves_same_origin_callers_with_a_session() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let url = format!("{base}/.palisade/csrf");
    let hits = upstream.hits();

    let reply = get(&url, &[("cookie", &alice.cookie())]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), "no-store");
    let token = reply.json()["token"].as_str().expect("token").to_string();
    let used = post(&base, "/items", &alice, &[("x-csrf-token", &token)]).await;
    assert_eq!(used.status, StatusCode::OK);

    assert_eq!(get(&url, &[]).await.status, StatusCode::UNAUTHORIZED);
    let cross = get(
        &url,
        &[
            ("cookie", &alice.cookie()),
            ("origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let post_it = request(Method::POST, &url, &[("cookie", &alice.cookie())], "").await;
    assert_eq!(post_it.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        upstream.hits(),
        hits + 1,
        "only the accepted POST reached the upstream"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn the_csrf_cookie_is_issued_when_missing_and_kept_while_fresh() {
    let upstream = Upstream::start().await;
    let (palisade, base) = start(&upstream).await;
    let alice = login(&base, "alice", None).await;
    let bob = login(&base, "bob", None).await;

    let fresh = get(&format!("{base}/"), &[("cookie", &alice.cookie())]).await;
    assert_eq!(
        set_cookie_line(&fresh, CSRF_COOKIE),
        None,
        "a fresh token is kept"
    );
    let session_only = format!("{SESSION_COOKIE}={}", alice.session);
    let missing = get(&format!("{base}/"), &[("cookie", &session_only)]).await;
    let issued = set_cookie_value(&missing, CSRF_COOKIE).expect("issued");
    assert!(!issued.is_empty());
    let mixed = format!(
        "{SESSION_COOKIE}={}; {CSRF_COOKIE}={}",
        alice.session, bob.csrf
    );
    let other = get(&format!("{base}/"), &[("cookie", &mixed)]).await;
    let reissued = set_cookie_value(&other, CSRF_COOKIE).expect("reissued for alice");
    assert_ne!(reissued, bob.csrf);
    palisade.shutdown().await;
}

fn tampered_signature(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// The same signature over claims for another session.
fn tampered_claims(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).expect("claims");
    let text = String::from_utf8(claims).expect("utf8");
    let forged = text.replacen("\"sessionId\":\"", "\"sessionId\":\"f", 1);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged),
        parts[2]
    )
}

fn claims(id: &str, now_ms: u64) -> serde_json::Value {
    let iat = now_ms / 1000;
    serde_json::json!({ "sessionId": id, "iat": iat, "exp": iat + 3600 })
}

fn alg_none(id: &str, now_ms: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims(id, now_ms).to_string());
    format!("{header}.{body}.")
}

fn hs512(id: &str, now_ms: u64) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, &claims(id, now_ms), &key).expect("hs512")
}
