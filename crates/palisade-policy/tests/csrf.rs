//! CSRF: which requests need a token, every refusal reason, and the cookie that hands
//! tokens to pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_policy::csrf::{
    Csrf, CsrfConfig, CsrfKey, CsrfPass, CsrfRefusal, CsrfRequest, CsrfSettings, CsrfVerdict,
    TokenEndpoint,
};
use serde_json::json;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-csrf";
const NOW_S: u64 = 1_700_000_000;
const NOW: u64 = NOW_S * 1000;
const SESSION: &str = "8f14e45fceea167a5a36dedd4bea2543";

fn csrf() -> Csrf {
    let config = CsrfConfig {
        exempt: vec!["/api/webhooks/".into()],
        ..Default::default()
    };
    Csrf::new(
        config.validate(false).expect("valid"),
        CsrfKey::from_secret(SECRET).expect("key"),
    )
}

fn post<'a>(token: Option<&'a [u8]>) -> CsrfRequest<'a> {
    CsrfRequest {
        method: "POST",
        path: "/account/email",
        binding: Some(SESSION),
        header_token: token,
        host: Some(b"app.example.com"),
        ..Default::default()
    }
}

fn refused(reason: CsrfRefusal) -> CsrfVerdict {
    CsrfVerdict::Refuse(reason)
}

fn sign_with(alg: Algorithm, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_secret(SECRET).expect("key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign")
}

#[test]
fn a_valid_token_for_this_session_is_accepted() {
    let csrf = csrf();
    let token = csrf.mint(SESSION, NOW);
    let verdict = csrf.check(&post(Some(token.as_bytes())), NOW + 1000);
    assert_eq!(verdict, CsrfVerdict::Pass(CsrfPass::ValidToken));
}

#[test]
fn a_post_without_a_token_is_refused_as_missing() {
    assert_eq!(
        csrf().check(&post(None), NOW),
        refused(CsrfRefusal::Missing)
    );
    assert_eq!(
        csrf().check(&post(Some(b"  ")), NOW),
        refused(CsrfRefusal::Missing)
    );
}

#[test]
fn a_token_of_another_session_is_refused_as_mismatch() {
    let csrf = csrf();
    let token = csrf.mint("another-session", NOW);
    assert_eq!(
        csrf.check(&post(Some(token.as_bytes())), NOW),
        refused(CsrfRefusal::Mismatch)
    );
}

#[test]
fn a_token_is_valid_for_one_hour_exactly() {
    let csrf = csrf();
    let token = csrf.mint(SESSION, NOW);
    let req = post(Some(token.as_bytes()));
    assert_eq!(
        csrf.check(&req, NOW + 3_599_999),
        CsrfVerdict::Pass(CsrfPass::ValidToken)
    );
    assert_eq!(
        csrf.check(&req, NOW + 3_600_000),
        refused(CsrfRefusal::Expired)
    );
}

#[test]
fn tampered_unsigned_and_hs512_tokens_are_refused_as_invalid() {
    let csrf = csrf();
    let token = csrf.mint(SESSION, NOW);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let claims = json!({ "sessionId": SESSION, "iat": NOW_S, "exp": NOW_S + 999_999 });
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let hs512 = sign_with(Algorithm::HS512, &claims);
    let no_exp = sign_with(
        Algorithm::HS256,
        &json!({ "sessionId": SESSION, "iat": NOW_S }),
    );
    for bad in [
        tampered,
        none,
        hs512,
        no_exp,
        "garbage".into(),
        "a.b.c".into(),
    ] {
        let verdict = csrf.check(&post(Some(bad.as_bytes())), NOW);
        assert_eq!(verdict, refused(CsrfRefusal::Invalid), "{bad}");
    }
    let huge = "a".repeat(5000);
    assert_eq!(
        csrf.check(&post(Some(huge.as_bytes())), NOW),
        refused(CsrfRefusal::Invalid)
    );
}

#[test]
fn cross_site_requests_are_refused_even_with_a_valid_token() {
    let csrf = csrf();
    let token = csrf.mint(SESSION, NOW);
    let cross = CsrfRequest {
        sec_fetch_site: Some(b"cross-site"),
        ..post(Some(token.as_bytes()))
    };
    assert_eq!(csrf.check(&cross, NOW), refused(CsrfRefusal::CrossSite));
    for origin in [
        &b"https://evil.example"[..],
        b"null",
        b"https://app.example.com.evil.io",
    ] {
        let req = CsrfRequest {
            origin: Some(origin),
            ..post(Some(token.as_bytes()))
        };
        assert_eq!(
            csrf.check(&req, NOW),
            refused(CsrfRefusal::CrossSite),
            "{origin:?}"
        );
    }
    let same = CsrfRequest {
        origin: Some(b"https://App.Example.com:443"),
        sec_fetch_site: Some(b"same-origin"),
        ..post(Some(token.as_bytes()))
    };
    assert_eq!(
        csrf.check(&same, NOW),
        CsrfVerdict::Pass(CsrfPass::ValidToken)
    );
}

#[test]
fn a_trusted_origin_may_post_with_a_token() {
    let config = CsrfConfig {
        trusted_origins: vec!["https://admin.example.com".into()],
        ..Default::default()
    };
    let key = CsrfKey::from_secret(SECRET).expect("key");
    let csrf = Csrf::new(config.validate(false).expect("valid"), key);
    let token = csrf.mint(SESSION, NOW);
    let req = CsrfRequest {
        origin: Some(b"https://admin.example.com"),
        sec_fetch_site: Some(b"cross-site"),
        ..post(Some(token.as_bytes()))
    };
    assert_eq!(
        csrf.check(&req, NOW),
        CsrfVerdict::Pass(CsrfPass::ValidToken)
    );
}

#[test]
fn safe_methods_bearer_only_requests_and_exempt_paths_pass_without_a_token() {
    let csrf = csrf();
    let get = CsrfRequest {
        method: "GET",
        ..post(None)
    };
    assert_eq!(
        csrf.check(&get, NOW),
        CsrfVerdict::Pass(CsrfPass::SafeMethod)
    );
    let bearer_only = CsrfRequest {
        binding: None,
        ..post(None)
    };
    assert_eq!(
        csrf.check(&bearer_only, NOW),
        CsrfVerdict::Pass(CsrfPass::NoCookieCredential)
    );
    let webhook = CsrfRequest {
        path: "/api/webhooks/stripe",
        ..post(None)
    };
    assert_eq!(
        csrf.check(&webhook, NOW),
        CsrfVerdict::Pass(CsrfPass::ExemptPath)
    );
    let custom = CsrfRequest {
        method: "PROPPATCH",
        ..post(None)
    };
    assert_eq!(csrf.check(&custom, NOW), refused(CsrfRefusal::Missing));
}

#[test]
fn exempt_prefixes_do_not_cover_paths_that_climb_out_of_them() {
    let csrf = csrf();
    for path in [
        "/api/webhooks/../account",
        "/api/webhooks/%2e%2e/account",
        "/api/webhooks\\x",
        "/api/webhooks/..;/account",
        "/api/webhooks/..;jsessionid=1/account",
        "/api/webhooks/%252e%252e/account",
    ] {
        let req = CsrfRequest { path, ..post(None) };
        assert_eq!(
            csrf.check(&req, NOW),
            refused(CsrfRefusal::Missing),
            "{path}"
        );
    }
}

#[test]
fn classic_forms_send_the_token_as_the_csrf_field() {
    let csrf = csrf();
    let token = csrf.mint(SESSION, NOW);
    let body = format!("email=a%40b.c&_csrf={token}");
    let content_type = Some(&b"application/x-www-form-urlencoded"[..]);
    let found = csrf
        .form_token(content_type, body.as_bytes())
        .expect("field found");
    let req = CsrfRequest {
        form_token: Some(&found),
        ..post(None)
    };
    assert_eq!(
        csrf.check(&req, NOW),
        CsrfVerdict::Pass(CsrfPass::ValidToken)
    );
    assert_eq!(
        csrf.form_token(Some(b"application/json"), body.as_bytes()),
        None
    );
}

#[test]
fn the_token_endpoint_serves_same_origin_sessions_only() {
    let csrf = csrf();
    let get = CsrfRequest {
        method: "GET",
        ..post(None)
    };
    let TokenEndpoint::Token(body) = csrf.token_endpoint(&get, NOW) else {
        panic!()
    };
    let token: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = token["token"].as_str().expect("token field");
    assert!(csrf.verify(token.as_bytes(), SESSION, NOW).is_ok());
    let anonymous = CsrfRequest {
        binding: None,
        ..get
    };
    assert_eq!(
        csrf.token_endpoint(&anonymous, NOW),
        TokenEndpoint::NoSession
    );
    let foreign = CsrfRequest {
        origin: Some(b"https://evil.example"),
        ..get
    };
    assert_eq!(csrf.token_endpoint(&foreign, NOW), TokenEndpoint::CrossSite);
}

#[test]
fn the_csrf_cookie_is_readable_by_scripts_and_refreshed_at_half_life() {
    let csrf = csrf();
    let fresh = csrf
        .response_cookie(Some(SESSION), true, std::iter::empty(), NOW)
        .expect("set");
    let text = fresh.as_str().to_owned();
    assert!(text.starts_with("palisade_csrf=ey"), "{text}");
    assert!(text.contains("Max-Age=3600; Secure; SameSite=Lax") && !text.contains("HttpOnly"));
    let sent = text.split(';').next().expect("pair").to_owned();
    let again = |at| csrf.response_cookie(Some(SESSION), false, [sent.as_bytes()], at);
    assert!(again(NOW + 1_799_000).is_none(), "still fresh");
    assert!(
        again(NOW + 1_800_000).is_some(),
        "refreshed past half its life"
    );
    let other = csrf.response_cookie(Some("other"), false, [sent.as_bytes()], NOW);
    assert!(other.is_some(), "a token of another session is replaced");
    let logout = csrf
        .response_cookie(None, true, [sent.as_bytes()], NOW)
        .expect("cleared");
    assert!(
        logout
            .as_str()
            .starts_with("palisade_csrf=; Path=/; Max-Age=0")
    );
    assert!(
        csrf.response_cookie(None, false, std::iter::empty(), NOW)
            .is_none()
    );
}

#[test]
fn refusals_answer_json_or_html_by_accept() {
    let (kind, body) = CsrfRefusal::Expired.body(Some(b"application/json"));
    assert_eq!(kind, "application/json");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(value["reason"], "expired");
    let (kind, body) = CsrfRefusal::Missing.body(Some(b"text/html,application/xhtml+xml"));
    assert!(kind.starts_with("text/html") && body.contains("The CSRF token is missing."));
}

#[test]
fn short_secrets_are_refused_and_keys_are_never_printed() {
    assert!(CsrfKey::from_secret(b"too short").is_err());
    let key = CsrfKey::from_text(b"0123456789abcdef0123456789abcdef\n").expect("trimmed");
    assert_eq!(format!("{key:?}"), "CsrfKey(<redacted>)");
    let defaults = CsrfSettings::defaults();
    assert_eq!(
        (defaults.header.as_str(), defaults.ttl_secs),
        ("x-csrf-token", 3600)
    );
}
