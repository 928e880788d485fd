//! Fuzzes JWT verification on arbitrary bytes: bearer identity (HS256 key set) and CSRF
//! tokens. Invariants: no panic, and nothing unsigned by the key is ever accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_policy::csrf::CsrfKey;
use palisade_policy::identity::{JwtConfig, JwtVerifier, KeySet, bearer_token};

const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-fuzzing!!";

fuzz_target!(|data: &[u8]| {
    let config = JwtConfig { secret_env: Some("FUZZ".into()), ..Default::default() };
    let settings = config.validate().expect("valid config");
    let verifier = JwtVerifier::new(settings, KeySet::hs256(SECRET).expect("long secret"));
    assert!(verifier.verify(data, 1_700_000_000_000).is_err(), "forged token accepted");
    let _ = bearer_token(data);

    let csrf = CsrfKey::from_secret(SECRET).expect("long secret");
    assert!(csrf.verify(data, "session", 1_700_000_000_000).is_err(), "forged CSRF token accepted");
});
