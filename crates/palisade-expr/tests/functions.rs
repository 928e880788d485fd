//! Every function, arrays and maps with `[*]`, `[0]` and `["name"]`.

mod common;
use common::{eval, form_post, holds, request};

#[test]
fn lower_and_upper_change_ascii_letters_only() {
    assert!(holds(
        r#"lower(http.request.uri.query) == "q=union+select&page=2&tag=a&tag=b""#
    ));
    assert!(holds(r#"upper(http.request.method) == "GET""#));
    let req = request("/%C3%89T%C3%89?x=Ä");
    assert!(eval(r#"lower(http.request.uri.query) == "x=Ä""#, &req));
}

#[test]
fn len_counts_bytes_elements_and_keys() {
    assert!(holds("len(http.request.method) == 3"));
    assert!(holds("len(http.request.uri.args) == 3"));
    assert!(holds(r#"len(http.request.uri.args["tag"]) == 2"#));
    assert!(holds("len(http.request.headers.names) == 6"));
    assert!(holds("len(http.request.body.raw) == 0"));
}

#[test]
fn starts_with_and_ends_with_compare_prefixes_and_suffixes() {
    assert!(holds(r#"starts_with(http.request.uri.path, "/sea")"#));
    assert!(!holds(r#"starts_with(http.request.uri.path, "/SEA")"#));
    assert!(holds(r#"ends_with(http.host, ".example")"#));
    assert!(holds(
        r#"starts_with(http.referer, concat("https://", http.host))"#
    ));
}

#[test]
fn url_decode_decodes_once_or_recursively_and_optionally_unicode() {
    let req = request("/x?q=%2527%20OR%201%3D1--");
    assert!(eval(
        r#"url_decode(http.request.uri.query) == "q=%27 OR 1=1--""#,
        &req
    ));
    assert!(eval(
        r#"url_decode(http.request.uri.query, "r") == "q=' OR 1=1--""#,
        &req
    ));
    let req = request("/x?q=%u003cscript%u003e");
    assert!(eval(
        r#"url_decode(http.request.uri.query, "u") contains "<script>""#,
        &req
    ));
    assert!(!eval(
        r#"url_decode(http.request.uri.query) contains "<script>""#,
        &req
    ));
}

#[test]
fn concat_joins_strings_and_arrays() {
    assert!(holds(
        r#"concat(http.request.method, " ", http.request.uri.path) == "GET /search""#
    ));
    assert!(holds(
        r#"len(concat(http.request.uri.args.names, http.request.headers.names)) == 10"#
    ));
}

#[test]
fn to_string_prints_integers_booleans_and_addresses() {
    assert!(holds(r#"to_string(ip.src.asnum) == "3320""#));
    assert!(holds(r#"to_string(ssl) == "true""#));
    assert!(holds(r#"to_string(ip.src) == "203.0.113.9""#));
}

#[test]
fn remove_bytes_drops_every_listed_byte() {
    let req = request("/x?q=sel/**/ect");
    assert!(eval(
        r#"remove_bytes(http.request.uri.query, "/*") == "q=select""#,
        &req
    ));
}

#[test]
fn cidr_masks_the_address_by_family() {
    assert!(holds("cidr(ip.src, 24, 64) == 203.0.113.0"));
    let mut req = request("/");
    req.client_ip = "2001:db8:1:2:3::9".parse().expect("ip");
    assert!(eval("cidr(ip.src, 24, 48) == 2001:db8:1::", &req));
}

#[test]
fn regex_replace_replaces_the_first_match_with_groups() {
    assert!(holds(
        r#"regex_replace(http.request.uri.path, "^/(s)earch$", "/${1}ought") == "/sought""#
    ));
    let req = request("/a/a/a");
    assert!(eval(
        r#"regex_replace(http.request.uri.path, "a", "b") == "/b/a/a""#,
        &req
    ));
    assert!(eval(
        r#"regex_replace(http.request.uri.path, "^/z", "b") == "/a/a/a""#,
        &req
    ));
}

#[test]
fn any_and_all_consume_star_comparisons() {
    assert!(holds(
        r#"any(http.request.headers["accept"][*] == "application/json")"#
    ));
    assert!(!holds(
        r#"all(http.request.headers["accept"][*] == "application/json")"#
    ));
    assert!(holds(
        r#"all(http.request.uri.args["tag"][*] in {"a" "b"})"#
    ));
    assert!(holds(
        r#"any(lower(http.request.headers.names[*]) == "user-agent")"#
    ));
    assert!(
        holds(r#"any(http.request.headers.names[*] == "User-Agent")"#),
        "names keep their case"
    );
    assert!(holds(
        r#"any(not http.request.uri.args.values[*] contains "x")"#
    ));
    assert!(holds(
        r#"any(starts_with(http.request.uri.args.values[*], "Un"))"#
    ));
}

#[test]
fn star_over_a_map_iterates_its_values() {
    assert!(holds(r#"any(len(http.request.uri.args[*]) == 2)"#));
}

#[test]
fn all_of_an_empty_array_is_true_and_any_is_false() {
    assert!(holds(r#"all(http.request.body.form.names[*] == "x")"#));
    assert!(!holds(r#"any(http.request.body.form.names[*] == "x")"#));
}

#[test]
fn map_lookups_use_lower_case_header_names_and_raw_values() {
    assert!(holds(
        r#"http.request.headers["user-agent"][0] contains "Firefox""#
    ));
    assert!(!holds(
        r#"http.request.headers["User-Agent"][0] contains "Firefox""#
    ));
    assert!(holds(
        r#"http.request.headers["accept"][1] == "application/json""#
    ));
    assert!(holds(r#"http.request.uri.args["q"][0] == "Union+Select""#));
    assert!(holds(r#"http.request.cookies["theme"][0] == "dark""#));
}

#[test]
fn missing_keys_and_positions_make_every_comparison_false() {
    assert!(!holds(r#"http.request.headers["x-missing"][0] == "a""#));
    assert!(!holds(r#"http.request.headers["x-missing"][0] != "a""#));
    assert!(holds(r#"not http.request.headers["x-missing"][0] == "a""#));
    assert!(!holds(r#"http.request.headers["accept"][5] contains """#));
    assert!(!holds(r#"http.request.headers["accept"][-1] contains """#));
    assert!(!holds(r#"len(http.request.headers["x-missing"]) == 0"#));
    assert!(!holds(
        r#"any(http.request.headers["x-missing"][*] == "a")"#
    ));
}

#[test]
fn form_bodies_are_decoded_into_maps() {
    let req = form_post("/login", "user=ad%6Din&pass=a+b&pass=c");
    assert!(eval(
        r#"http.request.body.form["user"][0] == "admin""#,
        &req
    ));
    assert!(eval(
        r#"any(http.request.body.form["pass"][*] == "a b")"#,
        &req
    ));
    assert!(eval(r#"http.request.body.form.names[2] == "pass""#, &req));
    assert!(eval(r#"http.request.body.raw contains "ad%6Din""#, &req));
    assert!(eval("http.request.body.size == 28", &req));
}

#[test]
fn functions_compose_and_nest() {
    assert!(holds(
        r#"lower(url_decode(upper(http.request.uri.query))) contains "union select""#
    ));
}
