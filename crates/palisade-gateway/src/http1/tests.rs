use super::*;

fn limits(max_head: usize, max_headers: usize) -> HeadLimits {
    HeadLimits {
        max_head,
        max_headers,
    }
}

fn parsed(head: &str) -> Parsed {
    let mut fields = Vec::new();
    parse(head.as_bytes(), limits(8192, 100), &mut fields)
}

fn is_plain(head: &str) -> bool {
    matches!(parsed(head), Parsed::Plain { .. })
}

fn is_for_hyper(head: &str) -> bool {
    matches!(parsed(head), Parsed::Hyper)
}

#[test]
fn plain_heads_are_parsed_with_their_fields_in_place() {
    let text = b"\r\nGET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nAccept: text/html\r\n\r\nGET";
    let mut fields = Vec::new();
    let Parsed::Plain {
        len,
        method,
        target,
    } = parse(text, limits(8192, 100), &mut fields)
    else {
        panic!("not plain");
    };
    assert_eq!(method, Method::GET);
    assert_eq!(&text[target.clone()], b"/a?b=1");
    assert_eq!(&text[len..], b"GET", "the next request's bytes are left");
    let head = Bytes::copy_from_slice(&text[..len]);
    let request = request(&head, method, target, &mut fields).expect("request");
    assert_eq!(request.uri, "/a?b=1");
    assert_eq!(request.version, Version::HTTP_11);
    assert_eq!(request.headers["host"], "x");
    let accepts: Vec<_> = request.headers.get_all("accept").iter().collect();
    assert_eq!(accepts, ["*/*", "text/html"]);
}

#[test]
fn heads_with_bodies_options_or_other_forms_go_to_hyper() {
    for head in [
        "POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nTE: trailers\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: keep-alive, x-secret\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "PRI * HTTP/2.0\r\n",
    ] {
        assert!(is_for_hyper(head), "{head:?} should go to hyper");
    }
    assert!(is_plain("GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(is_plain("HEAD / HTTP/1.1\r\n\r\n"));
}

/// The kind of `request.malformed` event a head is refused with, if it is refused here.
fn refused_as(head: &[u8], limits: HeadLimits) -> Option<&'static str> {
    match parse(head, limits, &mut Vec::new()) {
        Parsed::Refused(refusal) => Some(refusal.kind()),
        _ => None,
    }
}

/// Heads hyper would refuse with a bare answer are refused here, with palisade's page.
#[test]
fn heads_that_are_not_http_are_refused_here() {
    let heads: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: b\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
        // A TLS ClientHello on a plain port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for head in heads {
        assert_eq!(
            refused_as(head, limits(8192, 100)),
            Some("malformed_head"),
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
    // obs-fold is named as such; other mistakes in httparse's words.
    let detail = |head: &[u8]| match parse(head, limits(8192, 100), &mut Vec::new()) {
        Parsed::Refused(refusal) => refusal.detail().to_owned(),
        other => panic!("not refused: {other:?}"),
    };
    assert!(
        detail(heads[0]).starts_with("obs-fold"),
        "{}",
        detail(heads[0])
    );
    assert!(detail(b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n").starts_with("obs-fold"));
    assert_eq!(detail(heads[1]), "invalid header name");
    let indented_first = detail(b"\r\nGET / HTTP/1.1\r\n Host: x\r\n\r\n");
    assert!(
        indented_first.starts_with("white space between"),
        "{indented_first}"
    );
    // A target httparse reads but that is not a URI (`http` refuses `<`), or too long to be
    // one: refused once the head is whole.
    let mut fields = Vec::new();
    for (target, kind, status) in [
        ("/a<b".to_owned(), "malformed_head", 400),
        (format!("/{}", "a".repeat(70_000)), "uri_too_long", 414),
    ] {
        let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let Parsed::Plain {
            len,
            method,
            target,
        } = parse(text.as_bytes(), limits(1 << 20, 100), &mut fields)
        else {
            panic!("not parsed: {target:?}");
        };
        let head = Bytes::copy_from_slice(&text.as_bytes()[..len]);
        let Err(Some(refusal)) = request(&head, method, target, &mut fields) else {
            panic!("not refused: {text:.40}");
        };
        assert_eq!(refusal.kind(), kind);
        assert_eq!(refusal.status(), status);
    }
}

#[test]
fn heads_past_the_limits_are_refused_or_go_to_hyper() {
    let mut fields = Vec::new();
    // More fields than this loop parses: hyper applies a `max_headers` above that.
    let many: String = (0..=MAX_FIELDS).map(|i| format!("x-{i}: v\r\n")).collect();
    assert!(is_for_hyper(&format!("GET / HTTP/1.1\r\n{many}\r\n")));
    let three = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(
        refused_as(three.as_bytes(), limits(8192, 2)),
        Some("head_too_large")
    );
    assert!(matches!(
        parse(three.as_bytes(), limits(8192, 3), &mut fields),
        Parsed::Plain { .. }
    ));
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
    assert_eq!(
        refused_as(long.as_bytes(), limits(100, 100)),
        Some("head_too_large")
    );
    let partial = format!("GET /{}", "a".repeat(200));
    assert_eq!(
        refused_as(partial.as_bytes(), limits(100, 100)),
        Some("head_too_large")
    );
    assert!(matches!(
        parse(partial.as_bytes(), limits(8192, 100), &mut fields),
        Parsed::Partial
    ));
    assert!(matches!(
        parse(b"", limits(8192, 100), &mut fields),
        Parsed::Partial
    ));
}

fn head_of(
    status: u16,
    fields: &[(&str, &str)],
    body: BodySize,
    head_request: bool,
) -> (String, Framing, bool) {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    for (name, value) in fields {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    let (parts, ()) = response.into_parts();
    let mut out = Vec::new();
    let (framing, keep) = write_head(&mut out, &parts, None, body, head_request);
    (String::from_utf8(out).expect("text"), framing, keep)
}

const EMPTY: BodySize = BodySize {
    empty: true,
    exact: Some(0),
};
const UNKNOWN: BodySize = BodySize {
    empty: false,
    exact: None,
};

fn exact(n: u64) -> BodySize {
    BodySize {
        empty: false,
        exact: Some(n),
    }
}

#[test]
fn answers_are_framed_by_their_length_or_chunked() {
    let (head, framing, keep) = head_of(200, &[("x-a", "1"), ("date", "d")], exact(5), false);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: d\r\ncontent-length: 5\r\n\r\n"
    );
    assert_eq!(framing, Framing::Length(5));
    assert!(keep);

    let (head, framing, _) = head_of(200, &[("content-length", "7")], UNKNOWN, false);
    assert!(head.contains("content-length: 7\r\n"), "{head}");
    assert_eq!(framing, Framing::Length(7));

    let (head, framing, _) = head_of(
        200,
        &[("transfer-encoding", "gzip"), ("trailer", "x")],
        UNKNOWN,
        false,
    );
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(
        !head.contains("gzip") && !head.contains("trailer"),
        "{head}"
    );
    assert_eq!(framing, Framing::Chunked);

    // A body's exact size wins over a header that disagrees; repeats are dropped.
    let (head, framing, _) = head_of(
        200,
        &[("content-length", "9"), ("content-length", "9")],
        exact(3),
        false,
    );
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    assert!(head.contains("content-length: 3\r\n"), "{head}");
    assert_eq!(framing, Framing::Length(3));
}

#[test]
fn bodiless_answers_send_no_body_and_say_so_as_hyper_does() {
    // An empty answer says `content-length: 0`, whatever a header claimed.
    let (head, framing, _) = head_of(200, &[("content-length", "12")], EMPTY, false);
    assert!(head.contains("content-length: 0\r\n"), "{head}");
    assert!(!head.contains("content-length: 12"), "{head}");
    assert_eq!(framing, Framing::Length(0));
    // HEAD keeps the length of the body it would have had.
    let (head, framing, _) = head_of(200, &[("content-length", "12")], EMPTY, true);
    assert!(head.contains("content-length: 12\r\n"), "{head}");
    assert_eq!(framing, Framing::Length(0));
    let (head, framing, _) = head_of(200, &[], UNKNOWN, true);
    assert!(!head.contains("chunked"), "{head}");
    assert_eq!(framing, Framing::Length(0));
    for status in [204, 304] {
        let (head, framing, _) = head_of(status, &[("content-length", "4")], EMPTY, false);
        assert!(!head.contains("content-length"), "{head}");
        assert_eq!(framing, Framing::Length(0));
    }
}

#[test]
fn connection_close_ends_the_connection_and_a_date_is_added() {
    let (head, _, keep) = head_of(503, &[("connection", "Keep-Alive, Close")], EMPTY, false);
    assert!(!keep);
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    let date = head
        .lines()
        .find_map(|line| line.strip_prefix("date: "))
        .expect("a date");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    let (_, _, keep) = head_of(200, &[("connection", "keep-alive")], EMPTY, false);
    assert!(keep);
}

#[test]
fn an_upstream_reason_phrase_is_kept() {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(299).expect("status");
    response
        .extensions_mut()
        .insert(hyper::ext::ReasonPhrase::try_from(&b"Fine Thanks"[..]).expect("reason"));
    let (parts, ()) = response.into_parts();
    let mut out = Vec::new();
    write_head(&mut out, &parts, None, EMPTY, false);
    assert!(out.starts_with(b"HTTP/1.1 299 Fine Thanks\r\n"));
}
