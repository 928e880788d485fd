//! Cost of the whole detection (extraction, normalisation, every detector, verdict) for the
//! request shapes ModSecurity + CRS is measured on: a GET with three query arguments and six
//! headers, and a 1 KB urlencoded form POST. `bench/waf-detection` runs these and prints the
//! ratio against ModSecurity's figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_waf::{Engine, Header, Request, WafSettings};

const UA: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn get_headers() -> [Header<'static>; 6] {
    [
        Header::new(b"Host", b"shop.example.com"),
        Header::new(b"User-Agent", UA),
        Header::new(
            b"Accept",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        Header::new(b"Accept-Language", b"en-GB,en;q=0.9"),
        Header::new(b"Accept-Encoding", b"gzip, deflate, br"),
        Header::new(b"Cookie", b"session=3q2+7wAAAAE; theme=dark"),
    ]
}

/// A 1 KB form as a shop checkout sends it: names, address, a comment in prose.
fn form_body() -> Vec<u8> {
    let mut body = String::from(
        "first_name=Siobh%C3%A1n&last_name=O%27Brien&email=siobhan.obrien%40example.ie\
         &address=12+O%27Connell+St.%2C+Apt+%234&city=Dublin&postcode=D01+F5P2&country=IE\
         &phone=%2B353+1+555+0100&delivery=express&gift=1&newsletter=0",
    );
    let mut n = 0;
    while body.len() < 1024 {
        body.push_str(&format!(
            "&note{n}=Please+leave+the+parcel+with+the+neighbour+if+nobody+is+home%2C+thanks%21"
        ));
        n += 1;
    }
    body.truncate(1024);
    body.into_bytes()
}

fn detection(c: &mut Criterion) {
    let engine = Engine::new(WafSettings::default());
    let headers = get_headers();
    let get = Request {
        method: b"GET",
        target: b"/search?q=running+shoes&page=2&sort=price_asc",
        version: b"HTTP/1.1",
        headers: &headers,
        ..Request::default()
    };
    c.bench_function("detect_get_3_args_6_headers", |b| {
        b.iter(|| black_box(engine.inspect(black_box(&get))))
    });

    let body = form_body();
    let post_headers = [
        Header::new(b"Host", b"shop.example.com"),
        Header::new(b"User-Agent", UA),
        Header::new(b"Accept", b"text/html,application/xhtml+xml"),
        Header::new(b"Content-Type", b"application/x-www-form-urlencoded"),
        Header::new(b"Content-Length", b"1024"),
        Header::new(b"Cookie", b"session=3q2+7wAAAAE; theme=dark"),
    ];
    let post = Request {
        method: b"POST",
        target: b"/checkout",
        version: b"HTTP/1.1",
        headers: &post_headers,
        body: &body,
        body_truncated: false,
        local_addr: None,
    };
    c.bench_function("detect_post_1kb_form", |b| {
        b.iter(|| black_box(engine.inspect(black_box(&post))))
    });

    let attack = Request {
        method: b"GET",
        target: b"/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--&page=2&sort=price",
        version: b"HTTP/1.1",
        headers: &headers,
        ..Request::default()
    };
    c.bench_function("detect_get_sqli_attack", |b| {
        b.iter(|| black_box(engine.inspect(black_box(&attack))))
    });
}

criterion_group!(benches, detection);
criterion_main!(benches);
