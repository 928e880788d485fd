//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;

use palisade_expr::request::{Body, RequestFields, RequestInfo};
use palisade_expr::{Context, ExprError, Expression, Scheme};

/// A realistic browser request to `target`.
pub fn request(target: &str) -> RequestInfo {
    let ip: IpAddr = "203.0.113.9".parse().expect("ip");
    let mut req = RequestInfo::get(target, ip)
        .with_header("Host", "shop.example")
        .with_header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        )
        .with_header("Accept", "text/html")
        .with_header("Accept", "application/json")
        .with_header("Cookie", "session=abc123; theme=dark")
        .with_header("Referer", "https://shop.example/");
    req.tls = true;
    req.country = Some("DE".to_owned());
    req.asn = Some(3320);
    req
}

/// A POST with a urlencoded form body.
pub fn form_post(target: &str, body: &str) -> RequestInfo {
    let mut req = request(target).with_header("Content-Type", "application/x-www-form-urlencoded");
    req.method = "POST".to_owned();
    req.body = Some(Body::complete(body.as_bytes().to_vec()));
    req
}

/// Whether `expr` matches `req` with the standard scheme.
pub fn eval(expr: &str, req: &RequestInfo) -> bool {
    let scheme = Scheme::standard();
    let compiled = Expression::compile(expr, &scheme).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let fields = RequestFields::new(req);
    let cx = Context::new(&scheme, &fields);
    compiled.matches(&cx)
}

/// Whether `expr` matches the default request to `/`.
pub fn holds(expr: &str) -> bool {
    eval(expr, &request("/search?q=Union+Select&page=2&tag=a&tag=b"))
}

/// The compile error of `expr`.
pub fn error(expr: &str) -> ExprError {
    match Expression::compile(expr, &Scheme::standard()) {
        Ok(_) => panic!("{expr} compiled"),
        Err(e) => e,
    }
}
