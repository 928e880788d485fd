//! Compile errors: what they say and where they point.

mod common;
use common::error;
use palisade_expr::{Expression, MAX_DEPTH, MAX_EXPRESSION_BYTES, Scheme};

fn message(expr: &str) -> String {
    let e = error(expr);
    format!("{}:{}: {}", e.line, e.column, e.message)
}

#[test]
fn a_number_after_contains_is_reported_as_expected_a_string() {
    assert_eq!(
        message("http.request.uri.query contains 42"),
        "1:33: expected a string after 'contains', found 42"
    );
}

#[test]
fn contains_on_an_address_is_a_type_error() {
    let m = message(r#"ip.src contains "x""#);
    assert_eq!(
        m,
        "1:8: 'contains' needs a string on its left, but ip.src is an IP address"
    );
}

#[test]
fn unknown_fields_are_errors_with_a_suggestion() {
    let m = message(r#"http.request.uri.pth == "/""#);
    assert!(
        m.starts_with("1:1: unknown field 'http.request.uri.pth'"),
        "{m}"
    );
    let m = message(r#"ssl and http.user_agnt == "x""#);
    assert!(m.starts_with("1:9: unknown field"), "{m}");
    assert!(message("lower == 1").contains("is a function"));
}

#[test]
fn unknown_functions_are_errors_naming_the_known_ones() {
    let m = message(r#"sha256(http.host) == "x""#);
    assert!(
        m.starts_with("1:1: unknown function 'sha256'; the functions are any, all"),
        "{m}"
    );
}

#[test]
fn literals_of_the_wrong_type_are_refused() {
    assert!(message(r#"ip.src.asnum == "3320""#).contains("expected an integer after '=='"));
    assert!(message("http.host == 1.2.3.4").contains("expected a string after '=='"));
    assert!(message("ip.src == 10.0.0.0/8").contains("test a network with 'in'"));
    assert!(
        message(r#"ip.src in {"x"}"#)
            .contains("expected an IP address, a network or a range in the set, found \"x\"")
    );
    assert!(message(r#"ip.src.asnum in {1 "x"}"#).contains("1:20: expected an integer or a range"));
}

#[test]
fn arrays_must_be_indexed_or_starred_before_comparing() {
    let m = message(r#"http.request.headers["accept"] == "x""#);
    assert!(m.contains("use [*] inside any(...) or all(...)"), "{m}");
    let m = message(r#"http.request.headers.names[*] == "x""#);
    assert!(m.contains("wrap it in any(...) or all(...)"), "{m}");
    assert!(message(r#"http.request.headers[0][0] == "x""#).contains("index it by name"));
    assert!(message(r#"http.request.headers.names["a"] == "x""#).contains("index it by position"));
    assert!(message(r#"http.host[0] == "x""#).contains("cannot be indexed"));
}

#[test]
fn non_boolean_expressions_are_not_conditions() {
    assert!(
        message("http.host")
            .contains("expected a condition (a boolean expression), found a string")
    );
    assert!(message("ssl and ip.src.asnum").contains("expected a condition on each side of 'and'"));
    assert!(message("not http.host").contains("expected a condition after 'not'"));
}

#[test]
fn syntax_errors_say_what_was_expected() {
    assert_eq!(
        message("ssl and"),
        "1:8: expected a field, a function call or '(', found the end of the expression"
    );
    assert_eq!(
        message("(ssl"),
        "1:5: expected ')', found the end of the expression"
    );
    assert_eq!(message("ssl)"), "1:4: unmatched ')'");
    assert_eq!(
        message("ssl ssl"),
        "1:5: expected 'and', 'or', 'xor' or the end of the expression, found ssl"
    );
    assert!(message("http.host = \"a\"").contains("write '==' or 'eq'"));
    assert!(message("ip.src in 10.0.0.0/8").contains("expected '{' to open a set after 'in'"));
    assert!(message("ip.src.asnum in {}").contains("expected a value or '}' in the set"));
    assert!(message("ip.src.asnum in {9..1}").contains("the lower first"));
    assert!(message("http.host contains").contains("expected a string after 'contains'"));
}

#[test]
fn positions_count_lines_and_characters() {
    let e = error("ssl and\n  http.host contains 42");
    assert_eq!((e.line, e.column), (2, 22));
    let e = error("http.host == \"é\" and ip.src contains \"x\"");
    assert_eq!((e.line, e.column), (1, 29));
}

#[test]
fn function_arguments_are_checked() {
    assert!(message("lower(ip.src) == \"x\"").contains(
        "expected a string as the first argument of lower(...), found ip.src (an IP address)"
    ));
    assert!(message("len() == 1").contains("len(...) takes 1 argument, found 0"));
    assert!(message("cidr(ip.src, 33, 64) == 1.2.3.4").contains("bits from 1 to 32"));
    assert!(message("cidr(ip.src, ip.src.asnum, 64) == 1.2.3.4").contains("bits from 1 to 32"));
    assert!(
        message(r#"url_decode(http.host, "x") == "a""#).contains("unknown url_decode option 'x'")
    );
    assert!(message(r#"any(ssl)"#).contains("a [*] comparison"));
    assert!(message(r#"regex_replace(http.host, http.host, "x") == "a""#).contains("(a literal)"));
    assert!(
        message(r#"starts_with(http.host, http.request.headers.names[*])"#)
            .contains("only the first argument")
    );
}

#[test]
fn bad_regular_expressions_are_compile_errors() {
    assert!(message(r#"http.host matches "(""#).starts_with("1:19: invalid regular expression"));
    assert!(message(r#"http.host matches r"\p{Nope}""#).contains("invalid regular expression"));
}

#[test]
fn regular_expressions_over_the_size_limit_are_refused() {
    let m = message(r#"http.host matches r"(\w{50}){50}""#);
    assert!(m.contains("larger than 256 KiB once compiled"), "{m}");
}

#[test]
fn bad_escapes_point_at_the_backslash() {
    assert_eq!(
        message(r#"http.host matches "\d+""#),
        "1:20: unknown escape '\\d' in a string: write '\\\\' for a backslash, or use a raw string r\"...\""
    );
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let deep = format!("{}ssl{}", "(".repeat(100_000 / 2), ")".repeat(100_000 / 2));
    let e = Expression::compile(&deep, &Scheme::standard()).expect_err("too long");
    assert!(e.message.contains("bytes long"), "{}", e.message);
    let nested = format!(
        "{}ssl{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(error(&nested).message.contains("nested deeper than"));
    let nots = format!("{}ssl", "not ".repeat(MAX_DEPTH + 1));
    assert!(error(&nots).message.contains("nested deeper than"));
    let ok = format!(
        "{}ssl{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(Expression::compile(&ok, &Scheme::standard()).is_ok());
}

#[test]
fn long_flat_chains_cost_no_depth() {
    let chain = vec!["ssl"; 2000].join(" or ");
    assert!(chain.len() < MAX_EXPRESSION_BYTES);
    assert!(Expression::compile(&chain, &Scheme::standard()).is_ok());
}

/// Found by the fuzzer: `!` nested to the limit printed as `not (not (...))`, twice as deep.
#[test]
fn printing_deeply_negated_expressions_keeps_their_depth() {
    let text = format!("{}ssl", "!".repeat(MAX_DEPTH));
    let printed = palisade_expr::parse(&text).expect("parses").to_string();
    assert!(palisade_expr::parse(&printed).is_ok(), "{printed}");
}
