use palisade_expr::request::{Body, RequestFields, RequestInfo};
use palisade_expr::{RuleSet, Scheme};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
const SHAPES: &[&str] = &[
    r#"ip.src.asnum eq 5{n}"#,
    r#"not ssl"#,
    r#"http.cookie eq "zzz{n}""#,
    r#"ip.src.asnum eq 5{n} or ip.src.asnum eq 6{n} or ip.src.asnum eq 7{n} or ip.src.asnum eq 8{n}"#,
];

fn rules_yaml(count: usize) -> String {
    let mut text = String::from("rules:\n");
    for i in 0..count {
        let expression = SHAPES[i % SHAPES.len()].replace("{n}", &i.to_string());
        let escaped = expression.replace('\'', "''");
        text.push_str(&format!(
            "  - name: rule {i}\n    expression: '{escaped}'\n    action: block\n"
        ));
    }
    text
}

fn browser_get() -> RequestInfo {
    let ip: IpAddr = "198.51.100.23".parse().expect("literal address");
    let mut req = RequestInfo::get("/products/search?q=red+shoes&size=42&page=3&sort=price", ip)
        .with_header("Host", "shop.example")
        .with_header("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36")
        .with_header("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .with_header("Accept-Language", "en-US,en;q=0.9")
        .with_header("Accept-Encoding", "gzip, deflate, br")
        .with_header("Referer", "https://shop.example/products")
        .with_header("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1");
    req.tls = true;
    req.country = Some("NL".to_owned());
    req.asn = Some(1136);
    req
}

fn form_post() -> RequestInfo {
    let mut req = browser_get().with_header("Content-Type", "application/x-www-form-urlencoded");
    req.method = "POST".to_owned();
    req.target = "/account/login".to_owned();
    req.body = Some(Body::complete(
        b"user=alice%40example.com&password=correct+horse&remember=1".to_vec(),
    ));
    req
}

fn main() {
    let scheme = Arc::new(Scheme::standard());
    let req = browser_get();
    for (i, shape) in SHAPES.iter().enumerate() {
        let mut text = String::from("rules:\n");
        for j in 0..100 {
            let e = shape
                .replace("{n}", &(i + 20 * j % 5).to_string())
                .replace('\'', "''");
            text.push_str(&format!(
                "  - name: r{j}\n    expression: '{e}'\n    action: block\n"
            ));
        }
        let set = RuleSet::from_yaml("x", &text, scheme.clone()).expect("load");
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(set.evaluate(&RequestFields::new(&req)).matches.len());
        }
        println!(
            "{:>8.1} ns/rule  {}",
            t.elapsed().as_nanos() as f64 / n as f64 / 100.0,
            shape
        );
    }
    let empty = RuleSet::from_yaml("x", "rules: []", scheme.clone()).expect("load");
    let t = Instant::now();
    for _ in 0..20000 {
        std::hint::black_box(empty.evaluate(&RequestFields::new(&req)).matches.len());
    }
    println!(
        "empty set: {:.1} ns",
        t.elapsed().as_nanos() as f64 / 20000.0
    );
}
