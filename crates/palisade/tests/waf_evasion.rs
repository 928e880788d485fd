//! Regression tests for ways around managed detection found by attacking a listening
//! palisade: each test is named after the evasion it pins and sends the request that got
//! an attack to the upstream before the fix.

mod common;

use common::*;
use http::{Request, StatusCode};
use palisade_gateway::serve::Running;

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/126.0.0.0 Safari/537.36";
const XSS: &str = "%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E";
const UNION: &str = "1%27%20union%20select%20password%20from%20users--";

/// Palisade with `waf` as its `[waf]` section, no rate limits, no security log.
async fn start(upstream: &Upstream, waf: &str) -> Running {
    start_palisade(&upstream.url(), &format!("rate_limit = []\n[waf]\n{waf}\n")).await
}

async fn browse(palisade: &Running, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("user-agent", CHROME), ("accept", "text/html")];
    all.extend_from_slice(headers);
    get(&format!("http://{}{target}", palisade.proxy_addr), &all).await
}

async fn post(palisade: &Running, target: &str, content_type: &str, body: &[u8]) -> Reply {
    let request = Request::post(format!("http://{}{target}", palisade.proxy_addr))
        .header("user-agent", CHROME)
        .header("content-type", content_type)
        .body(full(body.to_vec()))
        .expect("request");
    send(request).await
}

#[tokio::test]
async fn an_argument_exclusion_does_not_cover_names_that_only_end_in_its_name() {
    let upstream = Upstream::start().await;
    let waf = "[[waf.exclusion]]\ndetectors = [\"xss\"]\nargs = [\"body_html\"]\n";
    let palisade = start(&upstream, waf).await;

    let excluded = browse(&palisade, &format!("/cms?body_html={XSS}"), &[]).await;
    assert_eq!(excluded.status, StatusCode::OK);
    // A query, form or cookie name is one name: `a.body_html` is not `body_html`.
    let dotted = browse(&palisade, &format!("/cms?a.body_html={XSS}"), &[]).await;
    assert_eq!(dotted.status, StatusCode::FORBIDDEN);
    let in_name = browse(&palisade, &format!("/cms?{XSS}.body_html=1"), &[]).await;
    assert_eq!(in_name.status, StatusCode::FORBIDDEN);
    let cookie = format!("a.body_html={XSS}");
    let cookie = browse(&palisade, "/cms", &[("cookie", &cookie)]).await;
    assert_eq!(cookie.status, StatusCode::FORBIDDEN);
    let form = format!("a.body_html={XSS}");
    let form = post(
        &palisade,
        "/cms",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    )
    .await;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    // JSON keys are named by their own key, at any depth.
    let nested = br#"{"post": {"body_html": "<script>alert(1)</script>"}}"#;
    let nested = post(&palisade, "/cms", "application/json", nested).await;
    assert_eq!(nested.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 2);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_path_exclusion_does_not_cover_paths_that_leave_its_prefix() {
    let upstream = Upstream::start().await;
    let waf = "[[waf.exclusion]]\ndetectors = [\"sqli\"]\npath_prefix = \"/api/search/\"\n";
    let palisade = start(&upstream, waf).await;

    let excluded = browse(&palisade, &format!("/api/search/items?q={UNION}"), &[]).await;
    assert_eq!(excluded.status, StatusCode::OK);
    for escape in [
        // Servlet containers read `..;` as `..`: this is `/api/admin`.
        "/api/search/..;/admin",
        "/api/search/..%3B/admin",
        "/api/search/%2e%2e;x/admin",
        // An upstream decodes once: these are not under `/api/search/` for it.
        "/api%252Fsearch/admin",
        "/api/search%252F..%252F..%252Fadmin/",
        "/api&%2347;search/admin",
    ] {
        let reply = browse(&palisade, &format!("{escape}?q={UNION}"), &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{escape}");
    }
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_text_body_declared_as_media_or_bytes_is_still_inspected() {
    let upstream = Upstream::start().await;
    let palisade = start(&upstream, "").await;

    let form = format!("q={UNION}");
    let json = br#"{"comment": "<img src=x onerror=alert(1)>"}"#;
    for (content_type, body) in [
        ("image/png", form.as_bytes()),
        ("application/octet-stream", form.as_bytes()),
        ("application/octet-stream", json.as_slice()),
        ("video/mp4", json.as_slice()),
        ("application/pdf", b"; cat /etc/passwd".as_slice()),
    ] {
        let reply = post(&palisade, "/api/comments", content_type, body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{content_type}");
    }
    // What the type says it is goes on to the upload checks, uninspected as text.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(b"q=1' union select password from users--");
    let reply = post(&palisade, "/api/avatar", "image/png", &png).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn an_attack_after_sixteen_kilobytes_of_one_value_is_still_inspected() {
    let upstream = Upstream::start().await;
    let palisade = start(&upstream, "").await;

    let padding = "x".repeat(17_000);
    let form = format!("q={padding}%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    let reply = post(
        &palisade,
        "/comments",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let json = format!(r#"{{"q": "{padding} {padding} 1' union select password from users--"}}"#);
    let reply = post(
        &palisade,
        "/api/comments",
        "application/json",
        json.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // A long benign value is still benign, window after window.
    let prose = "It's a long story, and O'Brien tells it well. ".repeat(800);
    let reply = post(
        &palisade,
        "/comments",
        "application/x-www-form-urlencoded",
        format!("q={}", prose.replace(' ', "+")).as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn an_attack_after_five_hundred_twelve_inputs_is_still_inspected() {
    let upstream = Upstream::start().await;
    let palisade = start(&upstream, "").await;

    let query = format!("/search?{}q={XSS}", "a&".repeat(600));
    assert_eq!(
        browse(&palisade, &query, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let cookies: Vec<String> = (0..600).map(|i| format!("c{i}=1")).collect();
    let cookie = format!("{}; q={XSS}", cookies.join("; "));
    let reply = browse(&palisade, "/", &[("cookie", &cookie)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let keys: Vec<String> = (0..600).map(|i| format!("\"k{i}\": \"v\"")).collect();
    let json = format!(
        "{{{}, \"q\": \"1' union select password from users--\"}}",
        keys.join(", ")
    );
    let reply = post(&palisade, "/api/items", "application/json", json.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Many benign inputs stay benign.
    let names: Vec<String> = (0..600)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"O'Brien {i}\", \"note\": \"it's fine\"}}"))
        .collect();
    let bulk = format!("[{}]", names.join(", "));
    let reply = post(&palisade, "/api/bulk", "application/json", bulk.as_bytes()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_climb_hidden_behind_an_encoded_slash_is_blocked() {
    // Rules keep `%2F` encoded (one segment), an upstream that decodes it climbs:
    // `/x/..%2fadmin` walked past a rule blocking `/admin`.
    let upstream = Upstream::start().await;
    let palisade = start(&upstream, "").await;
    for path in [
        "/x/..%2fadmin",
        "/x%2f..%2fadmin",
        "/static/..%5c..%5cadmin",
    ] {
        let reply = browse(&palisade, path, &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
    let encoded_name = browse(&palisade, "/files/reports%2F2024.pdf", &[]).await;
    assert_eq!(encoded_name.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    palisade.shutdown().await;
}
