//! Property tests: no input makes the parser, compiler, loader or field code panic, and
//! printing a parsed expression gives text that parses back to the same meaning.

mod common;
use std::sync::Arc;

use common::request;
use palisade_expr::request::{RequestFields, RequestInfo};
use palisade_expr::{Context, Expression, RuleSet, Scheme, StandardField, parse};
use proptest::prelude::*;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn leaf() -> impl Strategy<Value = String> {
    let text = "[a-zA-Z0-9 \"\\\\/=&+%é]{0,8}";
    prop_oneof![
        text.prop_map(|s| format!("http.request.uri.query contains {}", quote(&s))),
        text.prop_map(|s| format!("lower(http.user_agent) == {}", quote(&s))),
        text.prop_map(|s| format!(
            "http.request.uri.path wildcard {}",
            quote(&s.replace('\\', ""))
        )),
        any::<i64>().prop_map(|n| format!("ip.src.asnum >= {n}")),
        (0i64..5000, 0i64..5000).prop_map(|(a, b)| format!(
            "ip.src.asnum in {{{}..{} 7}}",
            a.min(b),
            a.max(b)
        )),
        Just("ssl".to_owned()),
        Just("ip.src in {203.0.113.0/24 ::1 10.0.0.1..10.0.0.9}".to_owned()),
        Just(r#"any(http.request.headers["accept"][*] contains "json")"#.to_owned()),
        Just(r#"http.request.uri.args["q"][0] ~ r"^[a-z]+$""#.to_owned()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                inner.clone(),
                prop::sample::select(vec!["and", "&&", "or", "||", "xor", "^^"])
            )
                .prop_map(|(a, b, op)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn matches(expr: &str, req: &RequestInfo) -> bool {
    let scheme = Scheme::standard();
    let compiled = Expression::compile(expr, &scheme).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let fields = RequestFields::new(req);
    compiled.matches(&Context::new(&scheme, &fields))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn printing_then_parsing_keeps_text_and_meaning(expr in expression()) {
        let printed = parse(&expr).expect("generated expressions parse").to_string();
        let reprinted = parse(&printed).expect("printed expressions parse").to_string();
        prop_assert_eq!(&printed, &reprinted);
        let req = request("/search?q=abc&x=%41").with_header("Accept", "application/json");
        prop_assert_eq!(matches(&expr, &req), matches(&printed, &req));
    }

    #[test]
    fn the_compiler_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = Expression::compile(&text, &Scheme::standard());
    }

    #[test]
    fn the_compiler_never_panics_on_token_soup(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "(", ")", "{", "}", "[", "]", "*", ",", "..", "==", "~", "!", "&&", "not", "and", "in",
            "strict", "wildcard", "ssl", "ip.src", "http.request.headers", "any", "lower", "len",
            "\"x\"", "r#\"y\"#", "42", "-1", "1.2.3.4", "::1", "10.0.0.0/8", "fe80::", "true",
        ]), 0..40)
    ) {
        let text = tokens.join(" ");
        let _ = Expression::compile(&text, &Scheme::standard());
    }

    #[test]
    fn the_rules_loader_never_panics(text in "(rules:\n)?( *- *|\\PC|\n| ){0,300}") {
        let _ = RuleSet::from_yaml("fuzz.yaml", &text, Arc::new(Scheme::standard()));
    }

    #[test]
    fn request_fields_never_panic(
        target in "\\PC{0,60}",
        name in "[A-Za-z-]{1,10}",
        value in prop::collection::vec(any::<u8>(), 0..40),
        body in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut req = request(&target);
        req.headers.push((name, value));
        req.headers.push(("content-type".into(), b"application/x-www-form-urlencoded".to_vec()));
        req.body = Some(palisade_expr::request::Body::complete(body));
        for def in Scheme::standard().fields() {
            if let Some(field) = def.standard() {
                prop_assert!(req.standard_value(field).has_type(def.ty()));
            }
        }
        let _ = req.standard_value(StandardField::BodyForm);
    }
}
