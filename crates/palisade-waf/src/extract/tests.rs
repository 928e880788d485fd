use super::*;
use crate::request::Header;

fn inputs<'r>(req: &Request<'r>) -> Collector<'r> {
    let mut c = Collector::new(Limits::default());
    collect(req, &mut c);
    c
}

fn located(c: &Collector<'_>) -> Vec<(String, String)> {
    c.inputs
        .iter()
        .map(|i| (i.location.to_string(), i.text.clone()))
        .collect()
}

#[test]
fn query_names_and_values_are_separate_decoded_inputs() {
    let req = Request {
        target: b"/p?q=a%20b&x%3D1=2",
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("args.q".into(), "a b".into())));
    assert!(got.contains(&("args_names.x=1".into(), "x=1".into())));
}

#[test]
fn cookies_are_split_into_names_and_values() {
    let headers = [Header::new(b"Cookie", b"a=1; theme=dark")];
    let req = Request {
        target: b"/",
        headers: &headers,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("cookies.theme".into(), "dark".into())));
}

#[test]
fn json_keys_and_strings_are_named_by_path() {
    let headers = [Header::new(b"Content-Type", b"application/json")];
    let body = br#"{"user":{"name":"O\u0027Brien","tags":["a","b"]},"n":1}"#;
    let req = Request {
        target: b"/",
        headers: &headers,
        body,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("body.json.user.name".into(), "O'Brien".into())));
    assert!(got.contains(&("body.json.user.tags".into(), "b".into())));
    assert!(got.contains(&("body.json_keys.user".into(), "user".into())));
}

#[test]
fn multipart_fields_and_file_names_are_inspected() {
    let headers = [Header::new(
        b"Content-Type",
        b"multipart/form-data; boundary=XX",
    )];
    let body = b"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\x00\x01\r\n--XX--\r\n";
    let req = Request {
        target: b"/",
        headers: &headers,
        body,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("body.multipart.title".into(), "hello".into())));
    assert!(got.contains(&("body.filename.f".into(), "a.php".into())));
}

#[test]
fn xml_text_and_attribute_values_are_inspected_but_not_names() {
    let headers = [Header::new(b"Content-Type", b"application/xml")];
    let body = b"<?xml version=\"1.0\"?><root><a probe=\"v1\">text</a></root>";
    let req = Request {
        target: b"/",
        headers: &headers,
        body,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("body.xml.root.a@probe".into(), "v1".into())));
    assert!(got.contains(&("body.xml.root.a".into(), "text".into())));
    assert!(!got.iter().any(|(_, t)| t == "root"));
}

#[test]
fn referer_query_values_are_inspected() {
    let headers = [Header::new(b"Referer", b"https://a.example/?q=hello+world")];
    let req = Request {
        target: b"/",
        headers: &headers,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("headers.referer".into(), "hello world".into())));
}

#[test]
fn structured_headers_are_left_to_request_checks() {
    let headers = [
        Header::new(b"Accept", b"text/html"),
        Header::new(b"X-Custom", b"v"),
    ];
    let req = Request {
        target: b"/",
        headers: &headers,
        ..Request::default()
    };
    let got = located(&inputs(&req));
    assert!(got.contains(&("headers.x-custom".into(), "v".into())));
    assert!(!got.iter().any(|(l, _)| l == "headers.accept"));
}

#[test]
fn a_truncated_body_is_reported() {
    let req = Request {
        target: b"/",
        body: b"a=1",
        body_truncated: true,
        ..Request::default()
    };
    assert!(inputs(&req).stops.contains(&StopReason::BodyTruncated));
}

#[test]
fn exclusion_names_are_whole_field_names_and_last_json_keys() {
    let headers = [Header::new(b"Content-Type", b"application/json")];
    let req = Request {
        target: b"/p?a.html=1",
        headers: &headers,
        body: br#"{"post": {"html": "x"}}"#,
        ..Request::default()
    };
    let c = inputs(&req);
    let name_of = |location: &str| {
        c.inputs
            .iter()
            .find(|i| i.location.to_string() == location)
            .and_then(|i| i.location.arg_name())
            .map(str::to_owned)
    };
    assert_eq!(name_of("args.a.html").as_deref(), Some("a.html"));
    assert_eq!(name_of("body.json.post.html").as_deref(), Some("html"));
}

#[test]
fn a_long_value_is_kept_in_overlapping_windows_cut_outside_escapes() {
    let mut raw = "é".repeat(9000).into_bytes();
    raw.extend_from_slice(b"%3Cscript%3E");
    raw.extend(std::iter::repeat_n(b'a', 20_000));
    let mut c = Collector::new(Limits::default());
    assert!(c.push(Source::Arg, "q", raw.as_slice().into(), Plus::IsSpace));
    assert!(c.inputs.len() >= 3, "{}", c.inputs.len());
    assert!(c.stops.is_empty(), "{:?}", c.stops);
    assert!(c.inputs.iter().any(|i| i.text.contains("<script>")));
    for input in &c.inputs {
        assert!(!input.text.contains('\u{FFFD}'), "a character was cut");
        assert!(input.raw.len() <= Limits::default().max_value_len);
    }
}

#[test]
fn inputs_past_the_limit_are_inspected_as_they_come_not_dropped() {
    let target = format!("/p?{}q=%3Cscript%3E", "a=1&".repeat(600));
    let req = Request {
        target: target.as_bytes(),
        ..Request::default()
    };
    let c = inputs(&req);
    assert_eq!(c.inputs.len(), Limits::default().max_inputs);
    assert!(c.stops.contains(&StopReason::TooManyInputs));
    let found = c
        .overflow_findings
        .first()
        .expect("the last argument is inspected");
    assert_eq!(found.location.to_string(), "args.q");
    assert!(found.matched.contains("<script>"), "{}", found.matched);
}

/// The table-driven test for encoded-looking text says what the pairwise definition says:
/// a capital after a letter or digit, or a digit after a letter, anywhere.
#[test]
fn encoded_looking_text_is_found_as_the_pairwise_rule_says() {
    fn pairwise(text: &[u8]) -> bool {
        text.windows(2).any(|w| {
            w[0].is_ascii_alphanumeric()
                && (w[1].is_ascii_uppercase()
                    || w[0].is_ascii_alphabetic() && w[1].is_ascii_digit())
        })
    }
    let mut checked = 0;
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let pair = [a, b];
            // Only whole UTF-8 text reaches the test; bytes of other characters are never
            // letters or digits, so the pairs that are not UTF-8 are read as Latin-1 text.
            let text: String = pair.iter().map(|&byte| char::from(byte)).collect();
            assert_eq!(
                super::maybe_encoded(&text),
                pairwise(text.as_bytes()),
                "{pair:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 65_536);
    for (text, expected) in [
        ("plain words only", false),
        ("x86_64", true),
        ("eyJhbGciOi", true),
        ("Title Case Words", false),
        ("a", false),
        ("", false),
        ("2024-01-01", false),
        ("v2", true),
    ] {
        assert_eq!(super::maybe_encoded(text), expected, "{text}");
    }
}
