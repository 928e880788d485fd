//! Hostile shapes of input: the engine never panics, does bounded work, still decides, and
//! says when inspection had to stop early.

use palisade_waf::{Action, Engine, Header, Limits, Request, StopReason, WafSettings};

fn engine() -> Engine {
    Engine::new(WafSettings::default())
}

fn form(body: &[u8]) -> palisade_waf::Verdict {
    let headers = [
        Header::new(b"Host", b"a.example"),
        Header::new(b"User-Agent", b"test"),
        Header::new(b"Content-Type", b"application/x-www-form-urlencoded"),
    ];
    engine().inspect(&Request {
        method: b"POST",
        target: b"/submit",
        version: b"HTTP/1.1",
        headers: &headers,
        body,
        body_truncated: false,
        local_addr: None,
    })
}

#[test]
fn invalid_utf8_everywhere_is_inspected_without_panicking() {
    let junk: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    let headers = [
        Header::new(b"User-Agent", &junk),
        Header::new(&junk[..40], &junk),
    ];
    let v = engine().inspect(&Request {
        method: &junk[..7],
        target: &junk,
        version: &junk[..8],
        headers: &headers,
        body: &junk,
        body_truncated: false,
        local_addr: None,
    });
    assert!(v.scores.overall() >= 1);
}

#[test]
fn enormous_argument_counts_stop_at_the_input_limit() {
    let body = "a=1&".repeat(100_000);
    let v = form(body.as_bytes());
    assert!(
        v.incomplete.contains(&StopReason::TooManyInputs),
        "{:?}",
        v.incomplete
    );
}

#[test]
fn a_one_megabyte_argument_is_inspected_in_part_and_reported() {
    let mut body = b"q=".to_vec();
    body.extend(std::iter::repeat_n(b'x', 1 << 20));
    let v = form(&body);
    assert!(v.incomplete.contains(&StopReason::ValueTooLong));
    assert_eq!(v.action, Action::Allow);
}

#[test]
fn an_attack_at_the_start_of_a_huge_argument_is_still_caught() {
    let mut body = b"q=1%27%20OR%20%271%27%3D%271".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1 << 20));
    assert_eq!(form(&body).action, Action::Block);
}

#[test]
fn deeply_nested_json_stops_at_the_depth_limit() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let headers = [Header::new(b"Content-Type", b"application/json")];
    let v = engine().inspect(&Request {
        method: b"POST",
        target: b"/api",
        headers: &headers,
        body: body.as_bytes(),
        ..Request::default()
    });
    assert!(
        v.incomplete.contains(&StopReason::TooDeep),
        "{:?}",
        v.incomplete
    );
}

#[test]
fn broken_multipart_is_inspected_as_raw_text_and_reported() {
    let headers = [Header::new(
        b"Content-Type",
        b"multipart/form-data; boundary=zz",
    )];
    let body = b"--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n<script>alert(1)</script>";
    let v = engine().inspect(&Request {
        method: b"POST",
        target: b"/upload",
        headers: &headers,
        body,
        ..Request::default()
    });
    assert!(
        v.incomplete.contains(&StopReason::MalformedBody),
        "{:?}",
        v.incomplete
    );
    assert_eq!(v.action, Action::Block);
}

#[test]
fn encodings_that_decode_forever_stop_after_bounded_rounds() {
    let mut payload = String::from("<script>");
    for _ in 0..12 {
        payload = payload
            .replace('%', "%25")
            .replace('<', "%3C")
            .replace('>', "%3E");
    }
    let v = form(format!("q={payload}").as_bytes());
    let reasons: Vec<&str> = v.findings.iter().map(|f| f.reason).collect();
    assert!(reasons.contains(&"endless encoding"), "{reasons:?}");
}

#[test]
fn a_truncated_body_is_reported_and_what_was_seen_still_decides() {
    let headers = [Header::new(
        b"Content-Type",
        b"application/x-www-form-urlencoded",
    )];
    let v = engine().inspect(&Request {
        method: b"POST",
        target: b"/submit",
        headers: &headers,
        body: b"comment=hello&cmd=%3Bcat%20%2Fetc%2Fpasswd",
        body_truncated: true,
        ..Request::default()
    });
    assert!(v.incomplete.contains(&StopReason::BodyTruncated));
    assert_eq!(v.action, Action::Block);
}

#[test]
fn total_work_is_bounded_by_the_request_budget() {
    let limits = Limits {
        max_total: 64 * 1024,
        ..Limits::default()
    };
    let engine = Engine::with_limits(WafSettings::default(), limits);
    let body = "k=".to_string() + &"v".repeat(10_000) + &"&k=vvvv".repeat(50_000);
    let headers = [Header::new(
        b"Content-Type",
        b"application/x-www-form-urlencoded",
    )];
    let v = engine.inspect(&Request {
        method: b"POST",
        target: b"/",
        headers: &headers,
        body: body.as_bytes(),
        ..Request::default()
    });
    assert!(
        v.incomplete.contains(&StopReason::TotalBudget)
            || v.incomplete.contains(&StopReason::TooManyInputs),
        "{:?}",
        v.incomplete
    );
}

#[test]
fn findings_and_fragments_stay_small_whatever_the_input() {
    let body = format!("q={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E".repeat(5_000));
    let v = form(body.as_bytes());
    assert!(v.findings.len() <= palisade_waf::verdict::MAX_FINDINGS);
    assert!(
        v.findings
            .iter()
            .all(|f| f.matched.chars().count() <= palisade_waf::verdict::MAX_FRAGMENT + 1)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_give_a_verdict_with_scores_in_range(
            target in proptest::collection::vec(any::<u8>(), 0..300),
            body in proptest::collection::vec(any::<u8>(), 0..600),
            kind in 0usize..4,
        ) {
            let types: [&[u8]; 4] = [b"application/json", b"application/xml", b"multipart/form-data; boundary=a", b"application/x-www-form-urlencoded"];
            let headers = [Header::new(b"Content-Type", types[kind]), Header::new(b"Cookie", &body[..body.len().min(40)])];
            let v = engine().inspect(&Request { method: b"POST", target: &target, headers: &headers, body: &body, ..Request::default() });
            prop_assert!((1..=99).contains(&v.scores.overall()));
            prop_assert!(v.findings.iter().all(|f| (1..=99).contains(&f.score)));
        }

        #[test]
        fn decoding_never_lengthens_text(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (text, _) = palisade_waf::normalize::decode(&raw, palisade_waf::normalize::Plus::IsSpace);
            // Replacement characters for invalid bytes are the only growth (3 bytes for 1).
            prop_assert!(text.len() <= raw.len() * 3);
        }
    }
}
