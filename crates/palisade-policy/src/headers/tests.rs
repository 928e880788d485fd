//! Tests of the `[headers]` policy: defaults, overrides, upstream values and cookies.

use super::*;

fn policy(toml_text: &str) -> HeaderPolicy {
    let config: HeadersConfig = toml::from_str(toml_text).expect("test config parses");
    HeaderPolicy::from_config(&config).expect("test config is valid")
}

fn config_error(toml_text: &str) -> String {
    match toml::from_str::<HeadersConfig>(toml_text) {
        Err(err) => err.to_string(),
        Ok(config) => HeaderPolicy::from_config(&config)
            .expect_err("config should be refused")
            .to_string(),
    }
}

fn response(upstream: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in upstream {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        headers.append(
            name,
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    headers
}

fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ascii"))
}

#[test]
fn defaults_are_the_strict_set_of_the_design_exactly() {
    let mut headers = HeaderMap::new();
    policy("").apply(&mut headers, "/", true);
    let expected = [
        (
            "content-security-policy",
            "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; \
             form-action 'self'; upgrade-insecure-requests",
        ),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains; preload",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("x-xss-protection", "1; mode=block"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ),
    ];
    for (name, want) in expected {
        assert_eq!(value(&headers, name), Some(want), "{name}");
    }
    assert_eq!(headers.len(), expected.len());
}

#[test]
fn hsts_is_not_sent_over_plain_http() {
    let mut headers = HeaderMap::new();
    policy("").apply(&mut headers, "/", false);
    assert_eq!(value(&headers, "strict-transport-security"), None);
    assert_eq!(value(&headers, "x-frame-options"), Some("DENY"));
}

/// RFC 6797 §7.2 binds the upstream's HSTS too: over plain HTTP it is removed, even where
/// palisade's own is turned off or the upstream's value would win; over TLS it is kept
/// where it wins.
#[test]
fn an_upstream_hsts_is_removed_over_plain_http_only() {
    let upstream = [("strict-transport-security", "max-age=60")];
    for config in [
        "",
        "strict_transport_security = false",
        "upstream_wins = [\"strict-transport-security\"]",
    ] {
        let policy = policy(config);
        let mut plain = response(&upstream);
        policy.apply(&mut plain, "/", false);
        assert_eq!(value(&plain, "strict-transport-security"), None, "{config}");
        let mut lines = response(&upstream);
        assert!(
            policy.apply_as_lines(&mut lines, "/", false).is_none(),
            "{config}"
        );
        assert_eq!(value(&lines, "strict-transport-security"), None, "{config}");
    }
    for config in [
        "strict_transport_security = false",
        "upstream_wins = [\"strict-transport-security\"]",
    ] {
        let mut tls = response(&upstream);
        policy(config).apply(&mut tls, "/", true);
        assert_eq!(
            value(&tls, "strict-transport-security"),
            Some("max-age=60"),
            "{config}"
        );
    }
}

#[test]
fn palisade_values_replace_the_upstreams_by_default() {
    let mut headers = response(&[
        ("x-frame-options", "ALLOWALL"),
        ("content-security-policy", "default-src *"),
        ("content-security-policy", "script-src *"),
    ]);
    policy("").apply(&mut headers, "/", true);
    assert_eq!(value(&headers, "x-frame-options"), Some("DENY"));
    let csp: Vec<_> = headers.get_all("content-security-policy").iter().collect();
    assert_eq!(csp.len(), 1);
    assert_eq!(csp[0], DEFAULT_CSP);
}

#[test]
fn an_upstream_csp_is_kept_when_the_operator_says_so() {
    let config = r#"upstream_wins = ["content-security-policy"]"#;
    let mut with_csp = response(&[
        ("content-security-policy", "script-src 'nonce-abc'"),
        ("x-frame-options", "SAMEORIGIN"),
    ]);
    policy(config).apply(&mut with_csp, "/", true);
    assert_eq!(
        value(&with_csp, "content-security-policy"),
        Some("script-src 'nonce-abc'")
    );
    assert_eq!(value(&with_csp, "x-frame-options"), Some("DENY"));

    let mut without = HeaderMap::new();
    policy(config).apply(&mut without, "/", true);
    assert_eq!(
        value(&without, "content-security-policy"),
        Some(DEFAULT_CSP)
    );
}

#[test]
fn a_header_turned_off_is_not_added_and_the_upstreams_passes() {
    let mut headers = response(&[("x-frame-options", "SAMEORIGIN")]);
    policy("x_frame_options = false\nx_xss_protection = false").apply(&mut headers, "/", true);
    assert_eq!(value(&headers, "x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(value(&headers, "x-xss-protection"), None);
}

#[test]
fn each_value_can_be_changed() {
    let config = r#"
        x_xss_protection = "0"
        referrer_policy = "no-referrer"
        strict_transport_security = "max-age=31536000"
        permissions_policy = "camera=(self)"
    "#;
    let mut headers = HeaderMap::new();
    policy(config).apply(&mut headers, "/", true);
    assert_eq!(value(&headers, "x-xss-protection"), Some("0"));
    assert_eq!(value(&headers, "referrer-policy"), Some("no-referrer"));
    assert_eq!(
        value(&headers, "strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(value(&headers, "permissions-policy"), Some("camera=(self)"));
}

#[test]
fn csp_report_only_sends_the_report_only_header_instead() {
    let mut headers = HeaderMap::new();
    policy("csp_report_only = true").apply(&mut headers, "/", true);
    assert_eq!(value(&headers, "content-security-policy"), None);
    assert_eq!(
        value(&headers, "content-security-policy-report-only"),
        Some(DEFAULT_CSP)
    );
}

#[test]
fn extra_csp_sources_are_appended_per_directive() {
    let config = r#"
        [csp_sources]
        script-src = ["https://cdn.example.com"]
        img-src = ["data:"]
    "#;
    let mut headers = HeaderMap::new();
    policy(config).apply(&mut headers, "/", true);
    let csp = value(&headers, "content-security-policy").expect("csp sent");
    assert!(csp.starts_with(DEFAULT_CSP), "{csp}");
    assert!(csp.ends_with("; img-src 'self' data:; script-src 'self' https://cdn.example.com"));
}

#[test]
fn the_longest_matching_path_prefix_wins() {
    let config = r#"
        [[paths]]
        prefix = "/embed"
        x_frame_options = "SAMEORIGIN"

        [[paths]]
        prefix = "/embed/public/"
        x_frame_options = false
        csp_sources = { frame-ancestors = ["https://partner.example.com"] }
    "#;
    let policy = policy(config);
    let frame = |path: &str| {
        let mut headers = HeaderMap::new();
        policy.apply(&mut headers, path, true);
        let csp = value(&headers, "content-security-policy")
            .expect("csp")
            .to_owned();
        (value(&headers, "x-frame-options").map(str::to_owned), csp)
    };
    assert_eq!(frame("/embed").0.as_deref(), Some("SAMEORIGIN"));
    assert_eq!(frame("/embed/x").0.as_deref(), Some("SAMEORIGIN"));
    let (xfo, csp) = frame("/embed/public/widget");
    assert_eq!(xfo, None);
    assert!(
        csp.contains("frame-ancestors https://partner.example.com;"),
        "{csp}"
    );
    assert_eq!(frame("/").0.as_deref(), Some("DENY"));
}

#[test]
fn a_prefix_matches_only_on_a_segment_boundary() {
    let policy = policy("[[paths]]\nprefix = \"/embed\"\nx_frame_options = false");
    let mut headers = HeaderMap::new();
    policy.apply(&mut headers, "/embedded-admin", true);
    assert_eq!(value(&headers, "x-frame-options"), Some("DENY"));
}

#[test]
fn a_path_with_dot_segments_never_gets_a_prefixs_weaker_headers() {
    let policy = policy("[[paths]]\nprefix = \"/embed/\"\nx_frame_options = false");
    for path in [
        "/embed/../admin",
        "/embed/%2e%2e/admin",
        "/embed/..\\admin",
        "/embed/./x",
    ] {
        let mut headers = HeaderMap::new();
        policy.apply(&mut headers, path, true);
        assert_eq!(value(&headers, "x-frame-options"), Some("DENY"), "{path}");
    }
}

#[test]
fn disabled_headers_leave_the_response_untouched() {
    let mut headers = response(&[("set-cookie", "sid=1")]);
    policy("enabled = false").apply(&mut headers, "/", true);
    assert_eq!(headers.len(), 1);
    assert_eq!(value(&headers, "set-cookie"), Some("sid=1"));
}

#[test]
fn every_upstream_cookie_is_hardened() {
    let mut headers = response(&[
        ("set-cookie", "sid=1; Path=/"),
        (
            "set-cookie",
            "theme=dark; HttpOnly; Secure; SameSite=Strict",
        ),
    ]);
    policy("").apply(&mut headers, "/", true);
    let cookies: Vec<_> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(
        cookies,
        [
            "sid=1; Path=/; HttpOnly; Secure; SameSite=Lax",
            "theme=dark; HttpOnly; Secure; SameSite=Strict"
        ]
    );
}

#[test]
fn cookie_hardening_can_be_turned_off_and_exempted() {
    let mut off = response(&[("set-cookie", "sid=1")]);
    policy("harden_cookies = false").apply(&mut off, "/", true);
    assert_eq!(value(&off, "set-cookie"), Some("sid=1"));

    let mut exempt = response(&[("set-cookie", "XSRF-TOKEN=t")]);
    policy(r#"httponly_exempt_cookies = ["XSRF-TOKEN"]"#).apply(&mut exempt, "/", false);
    assert_eq!(
        value(&exempt, "set-cookie"),
        Some("XSRF-TOKEN=t; SameSite=Lax")
    );
}

#[test]
fn values_that_browsers_would_not_understand_are_refused() {
    let err = config_error(r#"x_xss_protection = "2""#);
    assert!(err.contains("headers.x_xss_protection"), "{err}");
    assert!(config_error(r#"x_frame_options = "ALLOW-FROM x""#).contains("x_frame_options"));
    assert!(config_error(r#"strict_transport_security = "includeSubDomains""#).contains("max-age"));
}

#[test]
fn a_value_with_a_line_break_is_refused() {
    let err = config_error("referrer_policy = \"no-referrer\\r\\nSet-Cookie: a=b\"");
    assert!(err.contains("headers.referrer_policy"), "{err}");
}

#[test]
fn an_override_error_names_its_path_entry() {
    let err = config_error("[[paths]]\nprefix = \"/a\"\n\n[[paths]]\nprefix = \"b\"");
    assert!(err.starts_with("headers.paths[1].prefix"), "{err}");
    let err = config_error("[[paths]]\nprefix = \"/a\"\nx_xss_protection = \"yes\"");
    assert!(
        err.starts_with("headers.paths[0].x_xss_protection"),
        "{err}"
    );
}

#[test]
fn unknown_keys_and_true_are_refused_when_parsing() {
    assert!(config_error("x_frame_option = \"DENY\"").contains("unknown field"));
    assert!(config_error("x_frame_options = true").contains("false to turn the header off"));
    assert!(config_error(r#"upstream_wins = ["server"]"#).contains("unknown variant"));
}

#[test]
fn the_default_config_survives_a_round_trip_through_toml() {
    let text = toml::to_string(&HeadersConfig::default()).expect("serialises");
    let back: HeadersConfig = toml::from_str(&text).expect("parses back");
    assert_eq!(back, HeadersConfig::default());
}

/// The answer a client reads must not depend on which way the security headers were added:
/// put into the map, or written as lines after the answer's own fields.
#[test]
fn headers_as_lines_read_as_the_headers_put_into_the_map() {
    let configs = [
        "",
        "x_xss_protection = false\nupstream_wins = [\"referrer-policy\"]",
        "[[paths]]\nprefix = \"/embed/\"\nx_frame_options = false",
        "strict_transport_security = false",
    ];
    // Names as long as a managed one (`ratelimit-limit`, 15 bytes like `x-frame-options`),
    // a managed name the http crate does not know (`permissions-policy`), and names of 63
    // bytes and more, which share one length bit.
    let long = "x-".repeat(40);
    let answers: [&[(&str, &str)]; 7] = [
        &[("content-type", "text/html")],
        &[("set-cookie", "sid=1"), ("set-cookie", "b=2; Secure")],
        &[("x-frame-options", "SAMEORIGIN")],
        &[("referrer-policy", "unsafe-url"), ("set-cookie", "a=1")],
        &[
            ("ratelimit-limit", "10"),
            ("permissions-policy", "camera=(self)"),
        ],
        &[(&long[..79], "1"), (&long[..63], "2")],
        &[
            ("strict-transport-security", "max-age=60"),
            ("content-type", "text/css"),
        ],
    ];
    for text in configs {
        let policy = policy(text);
        for answer in answers {
            for (path, tls) in [("/", false), ("/embed/x", true), ("/a/../embed/", true)] {
                let mut put = response(answer);
                policy.apply(&mut put, path, tls);
                let mut written = response(answer);
                if let Some(lines) = policy.apply_as_lines(&mut written, path, tls) {
                    let lines = std::str::from_utf8(&lines).expect("text");
                    for line in lines.split_terminator("\r\n") {
                        let (name, value) = line.split_once(": ").expect("a field line");
                        let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
                        written.append(name, HeaderValue::from_str(value).expect("value"));
                    }
                }
                let fields = |map: &HeaderMap| {
                    let mut all: Vec<(String, String)> = map
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
                        .collect();
                    all.sort();
                    all
                };
                assert_eq!(
                    fields(&written),
                    fields(&put),
                    "{text:?} {answer:?} {path} {tls}"
                );
            }
        }
    }
}
