//! Every operator in both spellings, precedence, literals and their corner cases.

mod common;
use common::{eval, holds, request};

#[test]
fn equality_in_both_spellings_is_case_sensitive() {
    assert!(holds(r#"http.request.method eq "GET""#));
    assert!(holds(r#"http.request.method == "GET""#));
    assert!(!holds(r#"http.request.method == "get""#));
    assert!(holds(r#"http.request.method ne "POST""#));
    assert!(holds(r#"http.request.method != "POST""#));
}

#[test]
fn ordering_operators_compare_integers_strings_and_addresses() {
    assert!(holds("ip.src.asnum lt 4000 and ip.src.asnum < 4000"));
    assert!(holds("ip.src.asnum le 3320 and ip.src.asnum <= 3320"));
    assert!(holds("ip.src.asnum gt 3000 and ip.src.asnum > 3000"));
    assert!(holds("ip.src.asnum ge 3320 and ip.src.asnum >= 3320"));
    assert!(!holds("ip.src.asnum > 3320"));
    assert!(holds(r#"http.request.method < "POST""#));
    assert!(holds("ip.src > 203.0.113.1 and ip.src <= 203.0.113.9"));
}

#[test]
fn contains_searches_bytes_case_sensitively() {
    assert!(holds(r#"http.request.uri.query contains "Union""#));
    assert!(!holds(r#"http.request.uri.query contains "union""#));
    assert!(holds(r#"lower(http.request.uri.query) contains "union""#));
    assert!(holds(r#"http.request.uri.query contains """#));
}

#[test]
fn matches_uses_regular_expressions_in_both_spellings() {
    assert!(holds(r#"http.request.uri.path matches "^/sea.ch$""#));
    assert!(holds(r#"http.request.uri.query ~ r"page=\d+""#));
    assert!(holds(
        r#"http.request.uri.query ~ "(?i)union\\s*\\+?select""#
    ));
    assert!(!holds(r#"http.request.uri.path ~ "^/admin""#));
}

#[test]
fn wildcard_is_case_insensitive_and_strict_wildcard_is_not() {
    assert!(holds(
        r#"http.request.full_uri wildcard "HTTPS://shop.example/search*""#
    ));
    assert!(!holds(
        r#"http.request.full_uri strict wildcard "HTTPS://shop.example/search*""#
    ));
    assert!(holds(
        r#"http.request.full_uri strict wildcard "https://*.example/*""#
    ));
    assert!(
        !holds(r#"http.host wildcard "example""#),
        "wildcards match the whole value"
    );
    assert!(holds(r#"http.host wildcard "*""#));
}

#[test]
fn wildcard_escapes_make_stars_and_backslashes_literal() {
    // The query, because the path field reads a backslash as a slash.
    let req = request("/?a*b\\c");
    assert!(eval(
        r#"http.request.uri.query wildcard "a\\*b\\\\c""#,
        &req
    ));
    assert!(!eval(
        r#"http.request.uri.path wildcard "/a\\*c""#,
        &request("/abc")
    ));
    assert!(eval(
        r#"http.request.uri.path wildcard "/a.c""#,
        &request("/a.c")
    ));
    assert!(
        !eval(r#"http.request.uri.path wildcard "/a.c""#, &request("/abc")),
        "dot is literal"
    );
}

#[test]
fn in_sets_hold_strings_integers_ranges_addresses_and_networks() {
    assert!(holds(r#"http.request.method in {"GET" "HEAD"}"#));
    assert!(!holds(r#"http.request.method in {"POST" "PUT"}"#));
    assert!(holds("ip.src.asnum in {1..100 3000..4000}"));
    assert!(!holds("ip.src.asnum in {1..100 5000}"));
    assert!(holds("ip.src in {10.0.0.0/8 203.0.113.0/24}"));
    assert!(holds("ip.src in {203.0.113.9}"));
    assert!(holds("ip.src in {203.0.113.1..203.0.113.10}"));
    assert!(!holds("ip.src in {2001:db8::/32 10.0.0.0/8}"));
    assert!(holds(r#"ip.geoip.country in {"CN" "RU" "KP" "DE"}"#));
}

#[test]
fn ipv4_mapped_client_addresses_match_ipv4_networks() {
    let mut req = request("/");
    req.client_ip = "::ffff:10.1.2.3".parse().expect("ip");
    assert!(eval("ip.src in {10.0.0.0/8}", &req));
    req.client_ip = "2001:db8::5".parse().expect("ip");
    assert!(eval("ip.src in {2001:db8::/32}", &req));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_xor_then_or() {
    // true or false and false == true or (false and false)
    assert!(holds("ssl or not ssl and not ssl"));
    // not ssl and ssl == (not ssl) and ssl
    assert!(!holds("not ssl and ssl"));
    // ssl xor ssl or ssl == (ssl xor ssl) or ssl
    assert!(holds("ssl xor ssl or ssl"));
    // ssl xor ssl and not ssl == ssl xor (ssl and not ssl)
    assert!(holds("ssl xor ssl and not ssl"));
    assert!(holds("ssl ^^ not ssl"));
    assert!(!holds("ssl ^^ ssl"));
    assert!(holds("!(not ssl) && (ssl || !ssl)"));
    assert!(!holds("not (ssl or ssl)"));
}

#[test]
fn xor_chains_are_true_for_an_odd_count() {
    assert!(holds("ssl xor ssl xor ssl"));
    assert!(!holds("ssl xor ssl xor ssl xor ssl"));
}

#[test]
fn boolean_fields_stand_alone_and_compare_with_literals() {
    assert!(holds("ssl"));
    assert!(holds("ssl == true"));
    assert!(!holds("http.request.body.truncated"));
    let mut req = request("/");
    req.tls = false;
    assert!(eval("not ssl", &req));
}

#[test]
fn raw_strings_take_backslashes_and_quotes_literally() {
    let req = request(r#"/p?x="a\b""#);
    assert!(eval(r#"http.request.uri.query contains r"\b""#, &req));
    assert!(eval(
        r##"http.request.uri.query contains r#""a\b""#"##,
        &req
    ));
    assert!(eval(r#"http.request.uri.query contains "\"a\\b\"""#, &req));
    assert!(eval(r#"http.request.uri.query contains "\x22""#, &req));
}

#[test]
fn word_operators_need_no_spaces_around_symbols() {
    assert!(holds(r#"(ssl)&&(http.request.method=="GET")"#));
    assert!(holds("ip.src.asnum>=3320&&ip.src.asnum<=3320"));
}

#[test]
fn expressions_can_span_lines() {
    assert!(holds("ssl\n  and http.request.method == \"GET\"\n"));
}
