//! Managed attack detection in a listening palisade, through a real HTTP client: blocks
//! and their events and metrics, log mode, exclusions, `waf.score*` fields in rules, rules
//! skipping the managed phase, the body inspection cap, and strictly benign traffic that
//! must never be blocked.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use palisade_gateway::serve::Running;

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/126.0.0.0 Safari/537.36";
const SQLI: &str = "/search?q=1%27%20OR%20%271%27%3D%271";
const XSS: &str = "%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E";

/// Palisade with `waf` as its `[waf]` section (and `rules` as `waf.yaml` when given), the
/// security log beside the configuration, no rate limits.
async fn start(upstream: &Upstream, waf: &str, rules: Option<&str>) -> (Running, PathBuf) {
    let path = config_file("");
    let dir = path.parent().expect("dir").to_path_buf();
    let rules_key = match rules {
        Some(yaml) => {
            std::fs::write(dir.join("waf.yaml"), yaml).expect("rules file");
            "rules = \"waf.yaml\"\n"
        }
        None => "",
    };
    let toml = format!(
        "rate_limit = []\n[log]\nsecurity = \"{}\"\n\n[waf]\n{rules_key}{waf}\n",
        dir.join("events.log").display()
    );
    std::fs::write(&path, toml).expect("config");
    let palisade = start_palisade_at(&upstream.url(), path.clone()).await;
    (palisade, path)
}

fn url(palisade: &Running, target: &str) -> String {
    format!("http://{}{target}", palisade.proxy_addr)
}

async fn browse(palisade: &Running, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("user-agent", CHROME), ("accept", "text/html")];
    all.extend_from_slice(headers);
    get(&url(palisade, target), &all).await
}

async fn post(palisade: &Running, target: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let request = Request::post(url(palisade, target))
        .header("user-agent", CHROME)
        .header("content-type", content_type)
        .body(full(body))
        .expect("request");
    send(request).await
}

/// The `waf.managed` events written so far, waiting (bounded) until there are `count`.
async fn managed_events(config: &Path, count: usize) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        found = logged_events(&config.with_file_name("events.log"), "waf.managed");
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {count} waf.managed events, found {found:?}");
}

async fn metrics(palisade: &Running) -> String {
    get(&format!("http://{}/metrics", palisade.admin_addr), &[])
        .await
        .body
}

#[tokio::test]
async fn an_injection_is_blocked_with_a_403_an_event_and_a_metric() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, "", None).await;

    let page = browse(&palisade, SQLI, &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.header("palisade-mitigated"), "block");
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.body.contains("web application firewall"),
        "{}",
        page.body
    );
    let json = get(
        &url(&palisade, SQLI),
        &[("user-agent", CHROME), ("accept", "application/json")],
    )
    .await;
    assert_eq!(json.status, StatusCode::FORBIDDEN);
    assert_eq!(json.json()["status"], 403);
    assert_eq!(upstream.hits(), 0);

    let events = managed_events(&config, 2).await;
    let event = &events[0];
    assert_eq!(event["waf.outcome"], "blocked");
    assert_eq!(event["waf.class"], "sqli");
    assert_eq!(event["waf.location"], "args.q");
    let matched = event["waf.matched"].as_str().expect("fragment");
    assert!(matched.to_lowercase().contains("or '1'='1"), "{matched}");
    assert!(event["waf.score"].as_u64().expect("score") <= 20);
    assert_eq!(event["waf.score.sqli"], event["waf.score"]);
    assert_eq!(event["waf.score.xss"], 99);
    assert_eq!(event["waf.paranoia"], 1);
    assert_eq!(event["waf.incomplete"], false);
    assert_eq!(event["http.status"], 403);
    assert_eq!(event["url.path"], "/search");
    let metrics = metrics(&palisade).await;
    assert!(
        metrics.contains("palisade_waf_managed_total{class=\"sqli\",action=\"blocked\"} 2"),
        "{metrics}"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn log_mode_lets_the_attack_through_and_records_that_it_would_have_blocked() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, "mode = \"log\"", None).await;
    let reply = browse(&palisade, &format!("/comment?text={XSS}"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
    let events = managed_events(&config, 1).await;
    assert_eq!(events[0]["waf.outcome"], "logged");
    assert_eq!(events[0]["waf.class"], "xss");
    assert_eq!(events[0]["waf.location"], "args.text");
    assert!(events[0].get("http.status").is_none());
    let metrics = metrics(&palisade).await;
    assert!(
        metrics.contains("palisade_waf_managed_total{class=\"xss\",action=\"logged\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_requests_total{class=\"2xx\",decision=\"logged\"} 1"),
        "{metrics}"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn managed_false_turns_detection_off() {
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, "managed = false", None).await;
    assert_eq!(browse(&palisade, SQLI, &[]).await.status, StatusCode::OK);
    palisade.shutdown().await;
}

#[tokio::test]
async fn an_exclusion_silences_one_class_for_one_argument_under_one_path() {
    let upstream = Upstream::start().await;
    let waf = "[[waf.exclusion]]\ndetectors = [\"xss\"]\npath_prefix = \"/cms\"\n\
               args = [\"html\"]\n";
    let (palisade, _) = start(&upstream, waf, None).await;
    let excluded = browse(&palisade, &format!("/cms/save?html={XSS}"), &[]).await;
    assert_eq!(excluded.status, StatusCode::OK);
    let other_arg = browse(&palisade, &format!("/cms/save?title={XSS}"), &[]).await;
    assert_eq!(other_arg.status, StatusCode::FORBIDDEN);
    let other_path = browse(&palisade, &format!("/blog?html={XSS}"), &[]).await;
    assert_eq!(other_path.status, StatusCode::FORBIDDEN);
    let other_class = browse(&palisade, "/cms/save?html=1%27%20OR%20%271%27%3D%271", &[]).await;
    assert_eq!(other_class.status, StatusCode::FORBIDDEN);
    palisade.shutdown().await;
}

#[tokio::test]
async fn rules_read_the_scores_of_the_one_inspection_the_managed_stage_reuses() {
    let rules = "rules:\n  - name: Teapot on XSS\n    expression: waf.score.xss lt 20\n    \
                 action: block\n    status: 418\n  - name: Note any attack\n    \
                 expression: waf.score lt 50\n    action: log\n";
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, "", Some(rules)).await;

    // The rule answers first: the managed stage never runs.
    let xss = browse(&palisade, &format!("/c?text={XSS}"), &[]).await;
    assert_eq!(xss.status, StatusCode::IM_A_TEAPOT);
    // A log rule sees the SQL score; the managed stage then blocks on the same verdict.
    let sqli = browse(&palisade, SQLI, &[]).await;
    assert_eq!(sqli.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browse(&palisade, "/c?text=hello", &[]).await.status,
        StatusCode::OK
    );

    let events = managed_events(&config, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["waf.class"], "sqli");
    let log = std::fs::read_to_string(config.with_file_name("events.log")).expect("log");
    assert!(log.contains("\"rule.name\":\"Note any attack\""), "{log}");
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_rule_skipping_the_managed_phase_lets_its_requests_through() {
    let rules = "rules:\n  - name: Trusted importer\n    \
                 expression: http.request.uri.path eq \"/import\"\n    action: skip\n    \
                 skip: [managed]\n";
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, "", Some(rules)).await;
    let skipped = browse(&palisade, "/import?q=1%27%20OR%20%271%27%3D%271", &[]).await;
    assert_eq!(skipped.status, StatusCode::OK);
    assert_eq!(
        browse(&palisade, SQLI, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let metrics = metrics(&palisade).await;
    assert!(
        metrics.contains("palisade_waf_managed_total{class=\"none\",action=\"skipped\"} 1"),
        "{metrics}"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn form_json_and_multipart_bodies_are_inspected() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, "", None).await;
    let form = post(
        &palisade,
        "/login",
        "application/x-www-form-urlencoded",
        b"user=admin%27--&password=x".to_vec(),
    )
    .await;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    let json = post(
        &palisade,
        "/api/run",
        "application/json",
        br#"{"job": {"cmd": "; cat /etc/passwd"}}"#.to_vec(),
    )
    .await;
    assert_eq!(json.status, StatusCode::FORBIDDEN);
    let multipart = b"--b\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n\
        <img src=x onerror=alert(1)>\r\n--b--\r\n";
    let reply = post(
        &palisade,
        "/profile",
        "multipart/form-data; boundary=b",
        multipart.to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.hits(), 0);
    let events = managed_events(&config, 3).await;
    let locations: Vec<&str> = events
        .iter()
        .map(|e| e["waf.location"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        locations,
        ["body.form.user", "body.json.job.cmd", "body.multipart.bio"]
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_body_past_the_limit_is_inspected_in_part_and_the_event_says_so() {
    let upstream = Upstream::start().await;
    let (palisade, config) = start(&upstream, "body_limit = \"1KB\"", None).await;
    let padding = "a".repeat(4096);
    let early = format!("q=1%27%20OR%20%271%27%3D%271&pad={padding}");
    let reply = post(
        &palisade,
        "/f",
        "application/x-www-form-urlencoded",
        early.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let events = managed_events(&config, 1).await;
    assert_eq!(events[0]["waf.incomplete"], true);
    assert_eq!(events[0]["waf.incomplete_reasons"][0], "body_truncated");
    // Past the cap nothing is read: the documented cost of a bounded inspection.
    let late = format!("pad={padding}&q=1%27%20OR%20%271%27%3D%271");
    let reply = post(
        &palisade,
        "/f",
        "application/x-www-form-urlencoded",
        late.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = metrics(&palisade).await;
    assert!(
        metrics.contains("palisade_waf_managed_incomplete_total{reason=\"body_truncated\"} 2"),
        "{metrics}"
    );
    palisade.shutdown().await;
}

#[tokio::test]
async fn strictly_benign_traffic_is_never_blocked() {
    let upstream = Upstream::start().await;
    let (palisade, _) = start(&upstream, "", None).await;
    let referer = url(&palisade, "/products?page=2");
    let cookies = "theme=dark; _ga=GA1.2.1234567890.1700000000; lang=en-GB";
    let browser = [
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", referer.as_str()),
        ("cookie", cookies),
        ("sec-fetch-site", "same-origin"),
    ];
    let pages = [
        "/",
        "/products?page=2&sort=price-asc",
        "/search?q=O%27Brien",
        "/search?q=select+a+union+of+drop-down+menus",
        "/search?q=how+to+drop+a+table+from+a+script%3F",
        "/blog/2024/05/why-we-select-union-members",
        "/people/o'brien",
        "/static/app.min.js?v=3.2.1",
        "/search?q=C%2B%2B+%26+C%23",
        "/maps?ll=51.5074,-0.1278&z=12",
    ];
    for page in pages {
        let reply = browse(&palisade, page, &browser).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}");
    }

    let forms: [(&str, &str, &[u8]); 4] = [
        (
            "/signup",
            "application/x-www-form-urlencoded",
            b"first=Siobh%C3%A1n&last=O%27Brien&email=s.obrien%40example.ie&agree=on",
        ),
        (
            "/comments",
            "application/x-www-form-urlencoded",
            b"text=Please+select+the+union+of+both+lists%2C+then+drop+the+old+script+\
              from+the+table.+It%27s+easy%21",
        ),
        (
            "/api/orders",
            "application/json",
            br#"{"customer": {"name": "Dara O'Brien", "note": "I'd select the blue one; drop me a line"},
                "items": [{"sku": "A-17", "qty": 2}, {"sku": "B-3", "qty": 1}], "gift": false}"#,
        ),
        (
            "/api/search",
            "application/json",
            br#"{"query": "union select", "filters": {"from": "2024-01-01", "to": "2024-12-31"}}"#,
        ),
    ];
    for (path, content_type, body) in forms {
        let reply = post(&palisade, path, content_type, body.to_vec()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }

    // An image upload: binary file parts are not read as text.
    let mut upload = b"--b\r\nContent-Disposition: form-data; name=\"avatar\"; \
        filename=\"me.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n"
        .to_vec();
    for i in 0..2048u32 {
        upload.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
    }
    upload.extend_from_slice(b"' or 1=1 -- <script>\x00\xff\r\n--b--\r\n");
    let reply = post(
        &palisade,
        "/avatar",
        "multipart/form-data; boundary=b",
        upload,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.hits(), pages.len() + forms.len() + 1);
    palisade.shutdown().await;
}

#[tokio::test]
async fn a_host_naming_a_public_address_counts_only_from_paranoia_two() {
    let upstream = Upstream::start().await;
    let (default, _) = start(&upstream, "", None).await;
    let local = default.proxy_addr.to_string();
    for host in [local.as_str(), "localhost", "203.0.113.9"] {
        let reply = browse(&default, "/", &[("host", host)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
    }
    default.shutdown().await;

    let (strict, _) = start(&upstream, "paranoia = 2", None).await;
    let local = strict.proxy_addr.to_string();
    let own = browse(&strict, "/", &[("host", local.as_str())]).await;
    assert_eq!(own.status, StatusCode::OK);
    let public = browse(&strict, "/", &[("host", "203.0.113.9")]).await;
    assert_eq!(public.status, StatusCode::FORBIDDEN);
    strict.shutdown().await;
}
