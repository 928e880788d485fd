//! Rule evaluation cost for 1, 10 and 100 rules on realistic requests (criterion).
//!
//! Each iteration evaluates a whole rule set against one request, computing the fields the
//! rules read on first use, as the gateway does. The rules mostly do not match, so every rule
//! runs: the worst case for a request that passes. `bench/rules.sh` runs this and prints the
//! figures against the 5 µs budget for 100 rules.
//!
//! Two groups: `rules` measures wall time as usual; `rules_cpu` measures the benchmark
//! thread's CPU time, which leaves out the time other processes hold the CPU on a shared
//! machine (cache pollution by them still counts).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use cpu_time::ThreadTime;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use palisade_expr::request::{Body, RequestFields, RequestInfo};
use palisade_expr::{RuleSet, Scheme};

/// Twenty rule shapes seen in real WAF configurations, cycled to build larger sets.
const SHAPES: &[&str] = &[
    r#"(http.request.uri.query contains "union" and http.request.uri.query contains "select")"#,
    r#"http.request.uri.path contains "/api/{n}/""#,
    r#"ip.geoip.country in {"CN" "RU" "KP"} and http.request.uri.path eq "/login{n}""#,
    r#"http.user_agent matches "(?i)(sqlmap|nikto|nessus){n}""#,
    r#"ip.src in {10.{n}.0.0/16 192.0.2.0/24}"#,
    r#"starts_with(http.request.uri.path, "/wp-admin{n}")"#,
    r#"lower(http.request.uri.query) contains "<script{n}""#,
    r#"any(http.request.headers["x-forwarded-for"][*] contains "10.{n}.")"#,
    r#"http.request.method in {"TRACE" "TRACK"} or http.request.uri.path eq "/.env{n}""#,
    r#"http.host wildcard "*.internal{n}.example""#,
    r#"ip.src.asnum in {6{n}00..6{n}99} and not ssl"#,
    r#"http.request.headers["x-api-key"][0] eq "revoked-key-{n}""#,
    r#"ends_with(http.request.uri.path, ".php{n}")"#,
    r#"http.request.full_uri contains "/../{n}""#,
    r#"url_decode(http.request.uri.query) contains "../../etc/passwd{n}""#,
    r#"http.cookie contains "admin=true{n}""#,
    r#"http.referer wildcard "*spam{n}.example/*""#,
    r#"len(http.request.uri.query) > 4000{n}"#,
    r#"any(lower(http.request.uri.args.names[*]) == "cmd{n}")"#,
    r#"http.request.uri.path matches "^/(admin|debug){n}/""#,
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

/// One request through the whole rule set, fields computed on first use.
fn evaluate(set: &RuleSet, req: &RequestInfo) -> usize {
    let outcome = set.evaluate(&RequestFields::new(black_box(req)));
    outcome.matches.len()
}

fn evaluation(c: &mut Criterion) {
    let scheme = Arc::new(Scheme::standard());
    let requests = [("browser_get", browser_get()), ("form_post", form_post())];
    let sets: Vec<(usize, RuleSet)> = [1, 10, 100]
        .into_iter()
        .map(|n| {
            let set = RuleSet::from_yaml("bench.yaml", &rules_yaml(n), scheme.clone());
            (n, set.expect("bench rules load"))
        })
        .collect();
    let mut wall = c.benchmark_group("rules");
    for (count, set) in &sets {
        for (name, req) in &requests {
            wall.bench_with_input(BenchmarkId::new(*name, count), req, |b, req| {
                b.iter(|| evaluate(set, req))
            });
        }
    }
    wall.finish();
    let mut cpu = c.benchmark_group("rules_cpu");
    for (count, set) in &sets {
        for (name, req) in &requests {
            cpu.bench_with_input(BenchmarkId::new(*name, count), req, |b, req| {
                b.iter_custom(|iters| {
                    let start = ThreadTime::now();
                    for _ in 0..iters {
                        black_box(evaluate(set, req));
                    }
                    start.elapsed()
                })
            });
        }
    }
    cpu.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
