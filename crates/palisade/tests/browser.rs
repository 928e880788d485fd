//! The headless-Chromium harness itself: a page served through palisade loads, runs its
//! script and keeps cookies. Other browser tests build on `common::browser::Browser`.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::*;

#[tokio::test]
async fn chromium_loads_a_page_through_palisade_and_keeps_its_cookies() {
    let upstream = Upstream::start().await;
    let palisade = start_palisade(&upstream.url(), "rate_limit = []").await;
    let base = format!("http://{}", palisade.proxy_addr);
    let browser = Browser::start().await;

    browser.goto(&format!("{base}/cookie")).await;
    assert_eq!(browser.text().await.trim(), "cookie");
    let cookies = browser.cookies().await;
    let sid = cookies
        .iter()
        .find(|c| c["name"] == "sid")
        .expect("sid cookie");
    assert_eq!(sid["httpOnly"], true, "palisade hardened the cookie: {sid}");

    browser.goto(&format!("{base}/echo")).await;
    let seen = browser
        .wait_for(
            "return document.body && document.body.innerText.includes('sid=abc') && 'sent';",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        seen,
        Some(serde_json::json!("sent")),
        "the cookie came back"
    );

    browser.quit().await;
    palisade.shutdown().await;
}
