//! The `[session]`, `[identity.jwt]` and `[csrf]` sections as an operator writes them.

use palisade_policy::csrf::CsrfConfig;
use palisade_policy::identity::{IdentityConfig, KeySource, OnInvalid};
use palisade_policy::session::{SessionConfig, StoreKind};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    session: SessionConfig,
    identity: IdentityConfig,
    csrf: CsrfConfig,
}

fn parse(text: &str) -> Result<File, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let file = parse("").expect("empty is valid");
    let session = file.session.validate().expect("defaults validate");
    assert_eq!(session.cookie_name, "__Host-palisade_session");
    assert_eq!(file.session.store, StoreKind::Sqlite);
    let secs = |d: palisade_policy::units::HumanDuration| d.0.as_secs();
    assert_eq!(secs(file.session.idle_timeout), 7 * 86_400);
    assert_eq!(secs(file.session.rotate_after), 86_400);
    assert_eq!(secs(file.session.rotation_grace), 60);
    assert_eq!(secs(file.session.absolute_timeout), 30 * 86_400);
    assert!(file.identity.jwt.is_none());
    let csrf = file.csrf.validate(false).expect("defaults validate");
    assert!(csrf.enabled);
    assert_eq!(
        (csrf.header.as_str(), csrf.form_field.as_str()),
        ("x-csrf-token", "_csrf")
    );
    assert_eq!(
        (csrf.cookie_name.as_str(), csrf.ttl_secs),
        ("palisade_csrf", 3600)
    );
}

#[test]
fn every_section_reads_as_documented() {
    let file = parse(
        r#"
        [session]
        insecure_cookies = true
        idle_timeout = "2h"
        store = "redis"
        redis_prefix = "app1:sessions:"

        [identity.jwt]
        jwks_file = "/etc/palisade/jwks.json"
        audience = "authenticated"
        user_claim = "email"
        on_invalid = "reject"

        [csrf]
        exempt = ["/api/webhooks/"]
        token_ttl = "30m"
        "#,
    )
    .expect("valid file");
    let session = file.session.validate().expect("valid");
    assert_eq!(session.cookie_name, "palisade_session");
    assert_eq!(session.lifetimes.idle_ms, 7_200_000);
    assert_eq!(file.session.store, StoreKind::Redis);
    let jwt = file
        .identity
        .jwt
        .expect("jwt section")
        .validate()
        .expect("valid");
    assert_eq!(
        jwt.keys,
        KeySource::JwksFile("/etc/palisade/jwks.json".into())
    );
    assert_eq!(
        (jwt.user_claim.as_str(), jwt.on_invalid),
        ("email", OnInvalid::Reject)
    );
    let csrf = file.csrf.validate(true).expect("valid");
    assert_eq!((csrf.ttl_secs, csrf.insecure_cookies), (1800, true));
}

#[test]
fn unknown_keys_and_bad_values_are_refused_by_name() {
    let typo = parse("[session]\nidle_timout = \"1d\"").expect_err("typo");
    assert!(typo.contains("idle_timout"), "{typo}");
    let store = parse("[session]\nstore = \"postgres\"").expect_err("no such store");
    assert!(store.contains("postgres"), "{store}");
    let duration = parse("[csrf]\ntoken_ttl = \"an hour\"").expect_err("bad duration");
    assert!(duration.contains("for example"), "{duration}");
    let jwt = parse("[identity.jwt]\nsecret = \"inline secrets are not allowed\"").expect_err("x");
    assert!(jwt.contains("secret"), "{jwt}");
}
