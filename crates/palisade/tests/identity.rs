//! Identity from JWTs end to end: ES256 tokens checked against a JWKS file by a listening
//! palisade, the identity sent upstream, CSRF for tokens in cookies, and bad tokens
//! (forged, expired, oversized, unknown key) turned into anonymous requests with an event,
//! or a 401 with `on_invalid = "reject"`. (HS256 with a secret from the environment is
//! tested against the real binary in `sessions_process.rs`.)

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::sessions::*;
use common::*;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_gateway::serve::Running;
use serde_json::json;

/// An ES256 signer and the JWKS file palisade verifies with.
struct Issuer {
    key: EncodingKey,
    jwks: std::path::PathBuf,
    public: Vec<u8>,
}

impl Issuer {
    fn new() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let public = pair.public_key_raw().to_vec();
        assert_eq!(
            (public.len(), public[0]),
            (65, 4),
            "uncompressed P-256 point"
        );
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..]),
        });
        let jwks = config_file("").with_file_name("jwks.json");
        std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).expect("jwks");
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
        Self { key, jwks, public }
    }

    fn token(&self, claims: serde_json::Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    fn valid(&self, user: &str) -> String {
        self.token(
            json!({ "sub": user, "exp": now() + 600, "role": ["reader"] }),
            "k1",
        )
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn start(upstream: &Upstream, issuer: &Issuer, extra: &str) -> (Running, String) {
    let toml = format!(
        "{MEMORY_SESSIONS}[identity.jwt]\njwks_file = {:?}\nroles_claim = \"role\"\n\
         cookie = \"sb-access-token\"\n{extra}",
        issuer.jwks.display().to_string()
    );
    let palisade = start_palisade(&upstream.url(), &toml).await;
    let base = format!("http://{}", palisade.proxy_addr);
    (palisade, base)
}

#[tokio::test]
async fn a_bearer_token_identifies_the_user_and_needs_no_csrf_token() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let (palisade, base) = start(&upstream, &issuer, "").await;
    let bearer = format!("Bearer {}", issuer.valid("user-7"));

    let reply = get(&format!("{base}/"), &[("authorization", &bearer)]).await;
    let (user, session, roles) = seen_identity(&reply);
    assert_eq!(user.as_deref(), Some("user-7"));
    assert_eq!(session, None, "a token is not a palisade session");
    assert_eq!(roles.as_deref(), Some("reader"));

    // No ambient credential: a bearer-only POST needs no CSRF token.
    let url = format!("{base}/api/items");
    let posted = request(Method::POST, &url, &[("authorization", &bearer)], "{}").await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(seen_identity(&posted).0.as_deref(), Some("user-7"));
    let metrics = &palisade.gateway.services().metrics;
    assert_eq!(metrics.identity_resolutions.value(&["jwt_bearer"]), 2);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_session_takes_precedence_over_a_bearer_token() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let (palisade, base) = start(&upstream, &issuer, "").await;
    let alice = login(&base, "alice", None).await;
    let bearer = format!("Bearer {}", issuer.valid("user-7"));
    let headers = [
        ("authorization", bearer.as_str()),
        ("cookie", &alice.cookie()),
    ];

    let reply = get(&format!("{base}/"), &headers).await;
    assert_eq!(seen_identity(&reply).0.as_deref(), Some("alice"));
    // The session cookie is ambient, so the POST needs alice's CSRF token after all.
    let posted = request(Method::POST, &format!("{base}/items"), &headers, "{}").await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_token_in_a_cookie_needs_a_csrf_token_bound_to_it() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let (palisade, base) = start(&upstream, &issuer, "").await;
    let cookie = format!("sb-access-token={}", issuer.valid("user-7"));
    let url = format!("{base}/items");

    let refused = request(Method::POST, &url, &[("cookie", &cookie)], "{}").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let endpoint = get(&format!("{base}/.palisade/csrf"), &[("cookie", &cookie)]).await;
    assert_eq!(endpoint.status, StatusCode::OK);
    let token = endpoint.json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrf-token", token.as_str()),
    ];
    let accepted = request(Method::POST, &url, &headers, "{}").await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(seen_identity(&accepted).0.as_deref(), Some("user-7"));
    assert!(
        set_cookie_line(&endpoint, CSRF_COOKIE).is_some(),
        "cookie for scripts too"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn invalid_tokens_make_the_request_anonymous_with_an_event() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let (palisade, base) = start(&upstream, &issuer, "").await;
    let bad = bad_tokens(&issuer);

    for token in &bad {
        let bearer = format!("Bearer {token}");
        let reply = get(&format!("{base}/"), &[("authorization", &bearer)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{token:.60}");
        assert_eq!(seen_identity(&reply), (None, None, None), "{token:.60}");
    }
    let valid = format!("Bearer {}", issuer.valid("user-7"));
    let twice = [
        ("authorization", valid.as_str()),
        ("authorization", valid.as_str()),
    ];
    assert_eq!(
        seen_identity(&get(&format!("{base}/"), &twice).await).0,
        None
    );
    let count = bad.len() as u64 + 1;
    assert_eq!(events(&palisade, "identity.invalid_jwt"), count);
    let metrics = &palisade.gateway.services().metrics;
    assert_eq!(metrics.identity_resolutions.value(&["invalid_jwt"]), count);
    palisade.shutdown().await;
}

#[tokio::test]
async fn on_invalid_reject_answers_401() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let (palisade, base) = start(&upstream, &issuer, "on_invalid = \"reject\"\n").await;
    let hits = upstream.hits();

    for token in bad_tokens(&issuer) {
        let bearer = format!("Bearer {token}");
        let reply = get(&format!("{base}/"), &[("authorization", &bearer)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:.60}");
        assert_eq!(
            reply.header("www-authenticate"),
            "Bearer error=\"invalid_token\""
        );
    }
    assert_eq!(upstream.hits(), hits);
    let valid = format!("Bearer {}", issuer.valid("user-7"));
    let reply = get(&format!("{base}/"), &[("authorization", &valid)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    palisade.shutdown().await;
}

/// Tokens that must never identify anyone.
fn bad_tokens(issuer: &Issuer) -> Vec<String> {
    let claims = json!({ "sub": "admin", "exp": now() + 600 });
    let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let valid = issuer.valid("user-7");
    let parts: Vec<&str> = valid.split('.').collect();
    let confusion = {
        // HS256 "signed" with the public key: the classic algorithm confusion.
        let key = EncodingKey::from_secret(&issuer.public).expect("hmac key");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &key).expect("sign")
    };
    vec![
        format!(
            "{}.{}.",
            encode(&json!({"alg": "none", "kid": "k1"})),
            encode(&claims)
        ),
        confusion,
        issuer.token(json!({ "sub": "user-7", "exp": now() - 600 }), "k1"),
        issuer.token(json!({ "sub": "user-7" }), "k1"),
        issuer.token(json!({ "sub": "user-7", "exp": now() + 600 }), "other-kid"),
        issuer.token(json!({ "sub": "x".repeat(9000), "exp": now() + 600 }), "k1"),
        issuer.token(json!({ "sub": "a\u{7}b", "exp": now() + 600 }), "k1"),
        format!("{}.{}.{}", parts[0], encode(&claims), parts[2]),
        format!("{}.!!!.{}", parts[0], parts[2]),
        "garbage".into(),
    ]
}
