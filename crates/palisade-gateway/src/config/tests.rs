use std::path::Path;
use std::time::Duration;

use palisade_policy::ratelimit::Algorithm;

use super::rate_limit::{AssetFilter, KeySpec, Mode};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Path::new("palisade.toml"), text)
}

fn first_error(text: &str) -> String {
    parse(text)
        .expect_err("config should be refused")
        .diagnostics[0]
        .to_string()
}

#[test]
fn an_empty_file_gives_the_safe_defaults() {
    let config = parse("").expect("empty config is valid");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert!(config.server.trusted_proxies.is_empty());
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
    let rules = config.rate_limit_rules();
    let default = rules
        .iter()
        .find(|r| r.name == "default")
        .expect("default rule");
    assert_eq!(default.quota.limit, 10);
    assert_eq!(default.quota.window, Duration::from_secs(10));
    assert_eq!(default.quota.algorithm, Algorithm::SlidingWindow);
    assert_eq!(default.static_assets, AssetFilter::Exclude);
}

#[test]
fn an_empty_rate_limit_array_turns_limits_off() {
    let config = parse("rate_limit = []").expect("valid");
    assert!(config.rate_limit_rules().is_empty());
}

#[test]
fn rate_limit_tables_replace_the_defaults() {
    let config = parse(
        r#"
[[rate_limit]]
name = "login"
path = "/login"
methods = ["post"]
key = "header:X-Api-Key"
algorithm = "token_bucket"
limit = 5
window = "1m"
mode = "log"
allow = ["10.0.0.0/8", "::1"]
"#,
    )
    .expect("valid");
    let rules = config.rate_limit_rules();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule.methods, vec![http::Method::POST]);
    assert_eq!(
        rule.key,
        KeySpec::Header("x-api-key".parse().expect("name"))
    );
    assert_eq!(rule.quota.algorithm, Algorithm::TokenBucket);
    assert_eq!(rule.quota.window, Duration::from_secs(60));
    assert_eq!(rule.mode, Mode::Log);
    assert!(rule.allow[0].contains("10.2.3.4".parse().expect("ip")));
}

#[test]
fn unknown_keys_are_reported_with_line_and_column() {
    let message = first_error("[server]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n");
    assert!(
        message.starts_with("palisade.toml:3:1: unknown field `lsiten`"),
        "{message}"
    );
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn a_host_name_as_listen_address_says_what_is_expected() {
    let message = first_error("[server]\nlisten = \"localhost:8080\"\n");
    assert!(
        message.starts_with("palisade.toml:2:10: invalid listen address"),
        "{message}"
    );
    assert!(message.contains("\"0.0.0.0:8080\""), "{message}");
    let message = first_error("[admin]\nlisten = \"9090\"\n");
    assert!(
        message.contains("expected an IP address and a port"),
        "{message}"
    );
    let config = parse("[server]\nlisten = \"[::1]:8080\"\n").expect("an IPv6 address");
    assert_eq!(config.server.listen.to_string(), "[::1]:8080");
}

#[test]
fn bad_durations_point_at_the_value() {
    let message = first_error("[server]\nheader_read_timeout = \"10 fortnights\"\n");
    assert!(message.starts_with("palisade.toml:2:23:"), "{message}");
    assert!(message.contains("for example"), "{message}");
}

#[test]
fn invalid_rules_say_what_was_expected() {
    let message =
        first_error("[[rate_limit]]\nname = \"a\"\nkey = \"cookie\"\nlimit = 1\nwindow = \"1s\"\n");
    assert!(message.contains("expected \\\"ip\\\"") || message.contains("expected \"ip\""));
    assert!(message.starts_with("palisade.toml:1:1:") || message.starts_with("palisade.toml:2"));
}

#[test]
fn duplicate_rule_names_are_refused() {
    let rule = "[[rate_limit]]\nname = \"a\"\nlimit = 1\nwindow = \"1s\"\n";
    let message = first_error(&format!("{rule}{rule}"));
    assert!(message.contains("duplicate rate_limit name"), "{message}");
}

#[test]
fn zero_limits_are_refused() {
    let message = first_error("[[rate_limit]]\nname = \"a\"\nlimit = 0\nwindow = \"1s\"\n");
    assert!(message.contains("at least 1"), "{message}");
}

#[test]
fn upstream_urls_must_be_plain_http_host_and_port() {
    assert!(first_error("[upstream]\nurl = \"ftp://x\"\n").contains("http://"));
    assert!(first_error("[upstream]\nurl = \"http://x/app\"\n").contains("without a path"));
    let config = parse("[upstream]\nurl = \"http://127.0.0.1:3000\"\n").expect("valid");
    assert_eq!(
        config.upstream.url.map(|u| u.to_string()),
        Some("http://127.0.0.1:3000".into())
    );
}

#[test]
fn flags_override_the_file() {
    let mut config = parse("[server]\nlisten = \"127.0.0.1:1\"\n").expect("valid");
    config.apply(&Overrides {
        listen: Some("127.0.0.1:2".parse().expect("addr")),
        ..Overrides::default()
    });
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:2");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let message = first_error("[server\n");
    assert!(message.starts_with("palisade.toml:1:"), "{message}");
}

/// Regression: serde stops at the first value it cannot read, which hid every later mistake;
/// each broken table is now reported, in file order, with the checks serde cannot make.
#[test]
fn every_broken_table_is_reported_in_file_order() {
    let text = "[server]\nmax_headers = -3\n\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                connect_timeout = 5\n\n[headers]\nbogus = true\n\n[[rate_limit]]\nname = \"x\"\n\
                limit = \"ten\"\n";
    let error = parse(text).expect_err("four mistakes");
    let places: Vec<(usize, usize)> = error
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column))
        .collect();
    assert_eq!(places, vec![(2, 15), (6, 19), (9, 1), (13, 9)], "{error}");
    assert!(
        error.diagnostics[0].to_string().contains("0 or greater"),
        "{error}"
    );
    assert!(
        error.diagnostics[2]
            .to_string()
            .contains("unknown field `bogus`"),
        "{error}"
    );
}

#[test]
fn a_table_written_twice_names_its_first_line() {
    let message = first_error("[server]\nlisten = \"127.0.0.1:1\"\n[server]\nmax_headers = 1\n");
    assert!(message.starts_with("palisade.toml:3:"), "{message}");
    assert!(message.contains("first written on line 1"), "{message}");
}

#[test]
fn trusted_proxies_accept_ranges_and_single_addresses() {
    let config =
        parse("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n").expect("valid");
    let proxies = &config.server.trusted_proxies;
    assert!(proxies[0].contains("10.9.9.9".parse().expect("ip")));
    assert!(proxies[1].contains("192.0.2.7".parse().expect("ip")));
    assert!(!proxies[1].contains("192.0.2.8".parse().expect("ip")));
    assert!(first_error("[server]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").contains("CIDR"));
}

#[test]
fn redis_credentials_in_the_file_are_refused_at_their_line() {
    let message =
        first_error("[state]\nbackend = \"redis\"\nredis_url = \"redis://:pw@127.0.0.1:6379\"\n");
    assert!(message.starts_with("palisade.toml:3:1:"), "{message}");
    assert!(message.contains("PALISADE_REDIS_URL"), "{message}");
}

#[test]
fn section_validation_errors_point_at_the_section() {
    let message = first_error("[state]\nbackend = \"redis\"\n");
    assert!(
        message.starts_with("palisade.toml:1:1: state.redis_url"),
        "{message}"
    );
}

#[test]
fn headers_section_is_parsed_with_its_defaults() {
    let config = parse("[headers]\nx_xss_protection = \"0\"\n").expect("valid");
    assert!(config.headers.enabled);
    assert!(first_error("[headers]\nx_frame_option = \"DENY\"\n").contains("unknown field"));
}
