//! Fuzzes the expression lexer, parser, type checker and evaluator: any text must either fail
//! with an error or compile to an expression that evaluates without panicking, and printing a
//! parsed expression must give text that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_expr::request::{RequestFields, RequestInfo};
use palisade_expr::{Context, Expression, Scheme, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = parse(text) {
        let printed = ast.to_string();
        assert!(
            parse(&printed).is_ok(),
            "printed form does not parse: {printed}"
        );
    }
    let scheme = Scheme::standard();
    let Ok(expression) = Expression::compile(text, &scheme) else {
        return;
    };
    let request = RequestInfo::from_cli(
        "POST /search?q=union+select&a=%41 HTTP/1.1",
        &[
            "Host: shop.example",
            "Cookie: a=1; b=2",
            "Content-Type: application/x-www-form-urlencoded",
        ],
        Some(b"user=admin&pass=x".to_vec()),
        None,
    )
    .expect("fixed request parses");
    let fields = RequestFields::new(&request);
    let cx = Context::new(&scheme, &fields);
    let _ = expression.matches(&cx);
    let _ = expression.explain(&cx);
});
