//! Identity from bearer JWTs: the accepted shapes, and every way a token must be refused
//! (algorithm confusion, `alg: none`, unknown keys, bad encodings, oversized input).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_policy::identity::jwt::MAX_TOKEN_LEN;
use palisade_policy::identity::{
    IdentitySource, JwtConfig, JwtOutcome, JwtRejection, JwtVerifier, KeySet, OnInvalid,
};
use serde_json::{Value, json};

const SECRET: &[u8] = b"an-hs256-secret-that-is-long-enough!!";
const NOW_S: u64 = 1_700_000_000;
const NOW: u64 = NOW_S * 1000;
const RSA_PEM: &str = include_str!("fixtures/rsa2048.pem");
const RSA_PUB_PEM: &str = include_str!("fixtures/rsa2048.pub.pem");
const EC_PEM: &str = include_str!("fixtures/ec_p256.pem");

fn hs256_verifier(edit: impl FnOnce(&mut JwtConfig)) -> JwtVerifier {
    let mut config = JwtConfig {
        secret_env: Some("JWT_SECRET".into()),
        ..Default::default()
    };
    edit(&mut config);
    let settings = config.validate().expect("valid config");
    JwtVerifier::new(settings, KeySet::hs256(SECRET).expect("long secret"))
}

fn jwks_verifier() -> JwtVerifier {
    let rsa = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("rsa fixture");
    let ec = EncodingKey::from_ec_pem(EC_PEM.as_bytes()).expect("ec fixture");
    let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).expect("rsa jwk");
    rsa_jwk.common.key_id = Some("rsa-1".into());
    let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("ec jwk");
    ec_jwk.common.key_id = Some("ec-1".into());
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![rsa_jwk, ec_jwk],
    })
    .expect("json");
    let config = JwtConfig {
        jwks_file: Some("jwks.json".into()),
        ..Default::default()
    };
    let settings = config.validate().expect("valid config");
    JwtVerifier::new(settings, KeySet::from_jwks(&jwks).expect("jwks"))
}

fn claims() -> Value {
    json!({ "sub": "user-42", "exp": NOW_S + 600, "iat": NOW_S })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET).expect("key"),
        claims,
    )
}

/// A token with a hand-written header and an arbitrary signature.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn verify(v: &JwtVerifier, token: &str) -> Result<String, JwtRejection> {
    v.verify(token.as_bytes(), NOW)
        .map(|t| t.user_id.as_str().to_owned())
}

#[test]
fn a_valid_hs256_token_names_its_user() {
    assert_eq!(
        verify(&hs256_verifier(|_| ()), &hs256(&claims())),
        Ok("user-42".into())
    );
}

#[test]
fn rs256_and_es256_tokens_verify_with_the_key_their_kid_names() {
    let v = jwks_verifier();
    let rsa = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("rsa");
    let ec = EncodingKey::from_ec_pem(EC_PEM.as_bytes()).expect("ec");
    let rs = sign(Algorithm::RS256, Some("rsa-1"), &rsa, &claims());
    let es = sign(Algorithm::ES256, Some("ec-1"), &ec, &claims());
    assert_eq!(verify(&v, &rs), Ok("user-42".into()));
    assert_eq!(verify(&v, &es), Ok("user-42".into()));
    let crossed = sign(Algorithm::ES256, Some("rsa-1"), &ec, &claims());
    assert_eq!(verify(&v, &crossed), Err(JwtRejection::AlgorithmNotAllowed));
}

#[test]
fn an_rsa_public_key_used_as_an_hs256_secret_is_refused() {
    let v = jwks_verifier();
    let confused = EncodingKey::from_secret(RSA_PUB_PEM.as_bytes()).expect("key");
    let token = sign(Algorithm::HS256, Some("rsa-1"), &confused, &claims());
    assert_eq!(verify(&v, &token), Err(JwtRejection::AlgorithmNotAllowed));
}

#[test]
fn alg_none_and_other_hmac_strengths_are_refused() {
    let v = hs256_verifier(|_| ());
    let none = forged(&json!({ "alg": "none", "typ": "JWT" }), &claims(), b"");
    assert_eq!(verify(&v, &none), Err(JwtRejection::AlgorithmNotAllowed));
    let hs512 = sign(
        Algorithm::HS512,
        None,
        &EncodingKey::from_secret(SECRET).expect("k"),
        &claims(),
    );
    assert_eq!(verify(&v, &hs512), Err(JwtRejection::AlgorithmNotAllowed));
}

#[test]
fn a_token_without_a_valid_signature_is_refused() {
    let v = hs256_verifier(|_| ());
    let token = hs256(&claims());
    let (head, _) = token.rsplit_once('.').expect("three parts");
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    assert_eq!(verify(&v, &tampered), Err(JwtRejection::BadSignature));
    let other = EncodingKey::from_secret(b"another-secret-that-is-long-enough!!!").expect("k");
    let foreign = sign(Algorithm::HS256, None, &other, &claims());
    assert_eq!(verify(&v, &foreign), Err(JwtRejection::BadSignature));
}

#[test]
fn expiry_is_required_and_judged_against_the_given_time_with_leeway() {
    let v = hs256_verifier(|_| ());
    let no_exp = hs256(&json!({ "sub": "u" }));
    assert_eq!(verify(&v, &no_exp), Err(JwtRejection::MissingExpiry));
    let just_expired = hs256(&json!({ "sub": "u", "exp": NOW_S - 59 }));
    assert_eq!(
        verify(&v, &just_expired),
        Ok("u".into()),
        "within the 60 s leeway"
    );
    let expired = hs256(&json!({ "sub": "u", "exp": NOW_S - 60 }));
    assert_eq!(verify(&v, &expired), Err(JwtRejection::Expired));
    let early = hs256(&json!({ "sub": "u", "exp": NOW_S + 600, "nbf": NOW_S + 120 }));
    assert_eq!(verify(&v, &early), Err(JwtRejection::NotYetValid));
}

#[test]
fn issuer_and_audience_are_checked_only_when_configured() {
    let token = hs256(&json!({ "sub": "u", "exp": NOW_S + 60, "iss": "a", "aud": "app" }));
    assert_eq!(verify(&hs256_verifier(|_| ()), &token), Ok("u".into()));
    let strict = hs256_verifier(|c| {
        c.issuer = Some("a".into());
        c.audience = Some("app".into());
    });
    assert_eq!(verify(&strict, &token), Ok("u".into()));
    let wrong_iss = hs256(&json!({ "sub": "u", "exp": NOW_S + 60, "iss": "b", "aud": "app" }));
    assert_eq!(verify(&strict, &wrong_iss), Err(JwtRejection::WrongIssuer));
    let no_aud = hs256(&json!({ "sub": "u", "exp": NOW_S + 60, "iss": "a" }));
    assert_eq!(verify(&strict, &no_aud), Err(JwtRejection::WrongAudience));
}

#[test]
fn the_user_and_roles_come_from_the_configured_claims() {
    let v = hs256_verifier(|c| {
        c.user_claim = "email".into();
        c.roles_claim = Some("roles".into());
    });
    let token = hs256(&json!({ "email": "a@b.c", "roles": ["admin", "x"], "exp": NOW_S + 9 }));
    let verified = v.verify(token.as_bytes(), NOW).expect("valid");
    assert_eq!(verified.user_id.as_str(), "a@b.c");
    assert_eq!(verified.roles.to_header_value(), "admin,x");
    let bad_user = hs256(&json!({ "email": "a\nb", "exp": NOW_S + 9 }));
    assert_eq!(verify(&v, &bad_user), Err(JwtRejection::InvalidUser));
    let bad_roles = hs256(&json!({ "email": "a", "roles": [1], "exp": NOW_S + 9 }));
    assert_eq!(verify(&v, &bad_roles), Err(JwtRejection::InvalidRoles));
}

#[test]
fn garbage_unknown_keys_and_oversized_tokens_are_refused_without_panicking() {
    let v = jwks_verifier();
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "!!!.***.???",
        "eyJ.eyJ.sig",
    ] {
        assert_eq!(verify(&v, junk), Err(JwtRejection::Malformed), "{junk:?}");
    }
    let unknown = forged(&json!({ "alg": "RS256", "kid": "nope" }), &claims(), b"sig");
    assert_eq!(verify(&v, &unknown), Err(JwtRejection::UnknownKey));
    let no_kid = forged(&json!({ "alg": "RS256" }), &claims(), b"sig");
    assert_eq!(
        verify(&v, &no_kid),
        Err(JwtRejection::UnknownKey),
        "two keys, no kid"
    );
    let huge = hs256(&json!({ "sub": "u", "exp": NOW_S + 9, "pad": "x".repeat(MAX_TOKEN_LEN) }));
    assert_eq!(
        verify(&hs256_verifier(|_| ()), &huge),
        Err(JwtRejection::TooLarge)
    );
    let crit = forged(&json!({ "alg": "HS256", "crit": ["exp"] }), &claims(), b"");
    assert_eq!(
        verify(&hs256_verifier(|_| ()), &crit),
        Err(JwtRejection::CriticalExtension)
    );
}

#[test]
fn tokens_come_from_the_bearer_header_first_then_the_cookie() {
    let v = hs256_verifier(|c| c.cookie = Some("sb-access-token".into()));
    let token = hs256(&claims());
    let header = format!("bEaReR {token}");
    let bearer = v.identify(Some(header.as_bytes()), std::iter::empty(), NOW);
    let JwtOutcome::Valid(identity) = bearer else {
        panic!("{bearer:?}")
    };
    assert_eq!(identity.source, IdentitySource::Bearer);
    assert_eq!(
        identity.csrf_binding(),
        None,
        "a bearer token is not ambient"
    );

    let cookie = format!("a=1; sb-access-token={token}");
    let from_cookie = v.identify(Some(b"Basic Zm9vOmJhcg=="), [cookie.as_bytes()], NOW);
    let JwtOutcome::Valid(identity) = from_cookie else {
        panic!("{from_cookie:?}")
    };
    assert!(
        identity
            .csrf_binding()
            .is_some_and(|b| b.starts_with("jwt-"))
    );
    assert_eq!(
        v.identify(None, [b"a=1".as_slice()], NOW),
        JwtOutcome::Absent
    );
}

#[test]
fn an_invalid_token_is_anonymous_by_default_and_rejected_when_configured() {
    let lenient = hs256_verifier(|_| ());
    let outcome = lenient.identify(Some(b"Bearer x.y.z"), std::iter::empty(), NOW);
    let expected = JwtOutcome::Invalid {
        rejection: JwtRejection::Malformed,
        reject: false,
    };
    assert_eq!(outcome, expected);
    let strict = hs256_verifier(|c| c.on_invalid = OnInvalid::Reject);
    let outcome = strict.identify(Some(b"Bearer x.y.z"), std::iter::empty(), NOW);
    assert!(matches!(outcome, JwtOutcome::Invalid { reject: true, .. }));
}

#[test]
fn weak_keys_and_unsupported_jwks_entries_are_configuration_errors() {
    assert!(KeySet::hs256(b"short").is_err());
    let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
    assert!(
        KeySet::from_jwks(oct).is_err(),
        "symmetric keys do not belong in a JWKS file"
    );
    assert!(KeySet::from_jwks(r#"{"keys":[]}"#).is_err());
    assert!(KeySet::from_jwks("not json").is_err());
    let both = JwtConfig {
        secret_env: Some("S".into()),
        jwks_file: Some("k.json".into()),
        ..Default::default()
    };
    assert!(both.validate().is_err());
}

#[test]
fn key_sets_never_show_key_material_in_debug_output() {
    let shown = format!("{:?}", KeySet::hs256(SECRET).expect("key"));
    assert!(!shown.contains("an-hs256-secret"), "{shown}");
    assert!(shown.contains("redacted"));
}
