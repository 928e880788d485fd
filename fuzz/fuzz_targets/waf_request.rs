//! The whole engine on a request cut from arbitrary bytes (method, target, one header, a
//! content type picked by the first byte, body): no panic, bounded findings, scores in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_waf::{Engine, Header, Request, WafSettings};

const TYPES: [&[u8]; 5] = [
    b"application/x-www-form-urlencoded",
    b"application/json",
    b"application/xml",
    b"multipart/form-data; boundary=b",
    b"text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |&b| b == 0);
    let target = parts.next().unwrap_or_default();
    let header = parts.next().unwrap_or_default();
    let cookie = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let headers = [
        Header::new(b"Content-Type", TYPES[usize::from(selector) % TYPES.len()]),
        Header::new(b"X-Fuzz", header),
        Header::new(b"Cookie", cookie),
    ];
    let engine = Engine::new(WafSettings::default());
    let verdict = engine.inspect(&Request {
        method: b"POST",
        target,
        version: b"HTTP/1.1",
        headers: &headers,
        body,
        body_truncated: selector & 0x80 != 0,
        local_addr: None,
    });
    assert!((1..=99).contains(&verdict.scores.overall()));
    assert!(verdict.findings.len() <= palisade_waf::verdict::MAX_FINDINGS);
});
