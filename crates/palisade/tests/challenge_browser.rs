//! The challenge in a real headless Chromium: a client that palisade places in China (a
//! trusted proxy on 127.0.0.1 names it in `X-Forwarded-For`) gets the interstitial, the
//! browser solves it under the page's own Content-Security-Policy, and the original request
//! goes through. A browser that blocks cookies is told so.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::*;
use serde_json::json;

const RULES: &str = r#"rules:
  - name: Geo-blocking (if needed)
    expression: (ip.geoip.country in {"CN" "RU" "KP"})
    action: challenge
"#;

fn config() -> PathBuf {
    let shared = std::env::var_os("PALISADE_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let geo = shared.join("fixtures/geoip/GeoLite2-Country-Test.mmdb");
    let path = config_file(&format!(
        "rate_limit = []\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [waf]\nrules = \"waf.yaml\"\ngeoip_country_db = \"{}\"\n\
         [waf.challenge]\ndifficulty = 12\n[log]\nsecurity = \"off\"\n",
        geo.display()
    ));
    std::fs::write(path.with_file_name("waf.yaml"), RULES).expect("rules");
    path
}

#[tokio::test]
async fn chromium_solves_the_challenge_and_the_original_request_passes() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade_at(&upstream.url(), config()).await;
    let target = format!("http://{}/account?tab=orders", palisade.proxy_addr);
    let browser = Browser::start().await;
    browser
        .set_extra_headers(&[("X-Forwarded-For", "111.235.160.9")])
        .await;

    browser.goto(&target).await;
    let arrived = browser
        .wait_for(
            "return document.body && document.body.innerText.includes('\"method\"') \
             && location.href;",
            Duration::from_secs(30),
        )
        .await;
    if arrived.is_none() {
        browser
            .screenshot(Path::new("/tmp/palisade-challenge-failed.png"))
            .await;
        panic!("the challenge did not complete: {}", browser.text().await);
    }
    assert_eq!(arrived, Some(json!(target)));
    assert!(
        browser.text().await.contains("/account?tab=orders"),
        "upstream echoed the path"
    );

    let cookies = browser.cookies().await;
    let clearance = cookies
        .iter()
        .find(|c| c["name"] == "palisade_clearance")
        .expect("clearance cookie");
    assert_eq!(clearance["httpOnly"], true);
    assert_eq!(clearance["sameSite"], "Lax");

    // With the clearance, the next page loads without the interstitial.
    browser
        .goto(&format!("http://{}/next", palisade.proxy_addr))
        .await;
    assert!(browser.text().await.contains("\"/next\""));

    browser.quit().await;
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_browser_that_blocks_cookies_is_told_why_the_check_cannot_finish() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade_at(&upstream.url(), config()).await;
    let prefs = json!({ "profile.default_content_setting_values.cookies": 2 });
    let browser = Browser::start_with_prefs(prefs).await;
    browser
        .set_extra_headers(&[("X-Forwarded-For", "111.235.160.9")])
        .await;
    browser
        .goto(&format!("http://{}/", palisade.proxy_addr))
        .await;
    let warned = browser
        .wait_for(
            "return !document.getElementById('cookies').hidden;",
            Duration::from_secs(10),
        )
        .await;
    assert!(warned.is_some(), "{}", browser.text().await);
    assert!(browser.text().await.contains("does not accept cookies"));
    if let Some(path) = std::env::var_os("PALISADE_SCREENSHOT") {
        browser.screenshot(Path::new(&path)).await;
    }
    assert_eq!(upstream.hits(), 0);

    // The page's own SHA-256, used where WebCrypto is unavailable (plain http), agrees with
    // the standard's test vectors.
    let digest = |input: &str| {
        format!(
            "return Array.from(window.palisadeChallenge.sha256(new TextEncoder().encode({input:?})))\
             .map(b => b.toString(16).padStart(2, '0')).join('');"
        )
    };
    let vectors = [
        (
            "abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            "",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];
    for (input, expected) in vectors {
        let value = browser.execute(&digest(input), json!([])).await;
        assert_eq!(value, json!(expected), "{input:?}");
    }
    browser.quit().await;
    palisade.shutdown().await;
}
