//! CSRF tokens interoperate with the npm `jose` package, both ways, run for real through
//! node. The pinned `jose` is installed from the npm registry into `tests/jose/` on first
//! use (`npm ci`, from the local cache when possible). Without node these tests fail with
//! instructions; they are never skipped.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use palisade_policy::csrf::{CsrfKey, CsrfRefusal};

const SECRET: &str = "a-shared-csrf-secret-of-at-least-32-bytes";
const SESSION: &str = "3b5d5c3712955042212316173ccf37be";
const NOW_S: u64 = 1_700_000_000;
const NOW: u64 = NOW_S * 1000;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/jose")
}

/// Installs `jose` once per test process; panics with the reason when that is impossible.
fn installed() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = project();
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.as_ref().is_ok_and(|o| o.status.success()),
            "the jose interop tests need node >= 20 on PATH (Debian: apt-get install nodejs npm)"
        );
        if !dir.join("node_modules/jose/package.json").exists() {
            let out = Command::new("npm")
                .args([
                    "ci",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--silent",
                ])
                .current_dir(&dir)
                .output()
                .expect("npm is needed to install jose (Debian: apt-get install npm)");
            assert!(out.status.success(), "npm ci failed: {}", text(&out.stderr));
        }
        dir
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn node(script: &str, secret: &str, args: &[&str]) -> Output {
    Command::new("node")
        .arg(script)
        .args(args)
        .env("PALISADE_CSRF_SECRET", secret)
        .current_dir(installed())
        .output()
        .expect("run node")
}

fn jose_mint(secret: &str, session: &str, iat: u64, exp: u64) -> String {
    let out = node(
        "mint.mjs",
        secret,
        &[session, &iat.to_string(), &exp.to_string()],
    );
    assert!(
        out.status.success(),
        "jose mint failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn key() -> CsrfKey {
    CsrfKey::from_secret(SECRET.as_bytes()).expect("long enough")
}

#[test]
fn a_token_minted_by_jose_verifies_in_palisade() {
    let token = jose_mint(SECRET, SESSION, NOW_S, NOW_S + 3600);
    let claims = key()
        .verify(token.as_bytes(), SESSION, NOW + 5_000)
        .expect("accepted");
    assert_eq!(
        (claims.session_id.as_str(), claims.exp),
        (SESSION, NOW_S + 3600)
    );
    let wrong = key().verify(token.as_bytes(), "another-session", NOW);
    assert_eq!(wrong.map(|_| ()), Err(CsrfRefusal::Mismatch));
    let late = key().verify(token.as_bytes(), SESSION, (NOW_S + 3600) * 1000);
    assert_eq!(late.map(|_| ()), Err(CsrfRefusal::Expired));
}

#[test]
fn a_token_minted_by_jose_with_another_secret_is_invalid() {
    let token = jose_mint(
        "some-other-secret-that-is-32-bytes-long",
        SESSION,
        NOW_S,
        NOW_S + 60,
    );
    let verdict = key().verify(token.as_bytes(), SESSION, NOW).map(|_| ());
    assert_eq!(verdict, Err(CsrfRefusal::Invalid));
}

#[test]
fn a_token_minted_by_palisade_verifies_in_jose() {
    let token = key().mint(SESSION, 3600, NOW);
    let now = (NOW_S + 10).to_string();
    let out = node("verify.mjs", SECRET, &[&token, &now]);
    assert!(
        out.status.success(),
        "jose refused palisade's token: {}",
        text(&out.stderr)
    );
    let verified: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verified["header"]["alg"], "HS256");
    assert_eq!(verified["payload"]["sessionId"], SESSION);
    assert_eq!(verified["payload"]["iat"], NOW_S);
    assert_eq!(verified["payload"]["exp"], NOW_S + 3600);
}

#[test]
fn jose_refuses_a_tampered_palisade_token() {
    let token = key().mint(SESSION, 3600, NOW);
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
    let out = node("verify.mjs", SECRET, &[&tampered, &NOW_S.to_string()]);
    assert!(!out.status.success(), "jose accepted a tampered token");
}
