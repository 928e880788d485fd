use super::*;
use crate::events::EventBus;

/// The forwarding fields put into `headers`, as for a request hyper's client sends.
fn set_forwarding_headers(
    headers: &mut HeaderMap,
    ctx: &RequestContext,
    host: Option<&HeaderValue>,
) {
    let present = Present::of(headers).forwarding;
    ForwardingFields::of(headers, present, ctx, host).insert_into(headers);
}

#[test]
fn credentials_are_told_from_other_headers() {
    for name in [
        "authorization",
        "cookie",
        "x-api-key",
        "x-auth-token",
        "x-client-secret",
    ] {
        assert!(is_credential(&HeaderName::from_static(name)), "{name}");
    }
    for name in ["accept", "user-agent", "x-request-id", "content-type"] {
        assert!(!is_credential(&HeaderName::from_static(name)), "{name}");
    }
}

#[test]
fn grpc_trailers_keep_the_status_and_metadata_and_lose_what_the_head_would() {
    let mut trailers = headers(&[
        ("grpc-status", "0"),
        ("grpc-message", "ok"),
        ("x-request-cost", "3"),
        ("trace-bin", "AAEC"),
        ("set-cookie", "sid=trailer"),
        ("server", "trailerleak"),
        ("palisade-session-login", "42"),
        ("strict-transport-security", "max-age=0"),
        ("content-security-policy-report-only", "default-src *"),
        ("content-length", "9"),
        ("connection", "close"),
        ("proxy-authenticate", "Basic"),
    ]);
    strip_trailer_fields(&mut trailers);
    let kept: Vec<&str> = trailers.keys().map(HeaderName::as_str).collect();
    assert_eq!(
        kept,
        ["grpc-status", "grpc-message", "x-request-cost", "trace-bin"]
    );
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn ctx(peer: &str, trusted: bool) -> RequestContext {
    let mut ctx = RequestContext::new(
        peer.parse().expect("addr"),
        false,
        EventBus::new(Vec::new()),
    );
    ctx.peer_trusted = trusted;
    ctx
}

/// The context of a request from the trusted proxy `peer` on behalf of `client` (the
/// address the client-IP stage settled on).
fn trusted_ctx(peer: &str, client: &str) -> RequestContext {
    let mut context = ctx(peer, true);
    context.client_ip = client.parse().expect("ip");
    context
}

#[test]
fn hop_by_hop_fields_and_those_named_in_connection_are_removed() {
    let mut h = headers(&[
        ("connection", "keep-alive, x-secret-hop"),
        ("keep-alive", "timeout=5"),
        ("x-secret-hop", "1"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("proxy-connection", "keep-alive"),
        ("x-end-to-end", "kept"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x-end-to-end"], "kept");
}

/// Options are compared without regard to case or spaces; one that names a field present
/// removes it even when it is a usual option's word (`close`); the identity headers and
/// the forwarding fields stay (red-team finding: a trusted proxy's `X-Forwarded-Proto:
/// https` named in `Connection` made palisade treat the request as TLS while the upstream
/// was told `http`).
/// A value with a byte outside ASCII (obs-text) still has its other options honoured:
/// read as text, such a value was skipped whole, and the fields it named went upstream.
#[test]
fn connection_options_are_read_whatever_their_spelling() {
    let mut h = headers(&[
        ("connection", "Close, , X-Secret-Hop ,KEEP-ALIVE"),
        (
            "connection",
            "palisade-user-id,\tx-other-hop, X-Forwarded-Proto, forwarded",
        ),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=192.0.2.1"),
        ("close", "1"),
        ("x-secret-hop", "1"),
        ("x-other-hop", "1"),
        ("palisade-user-id", "u-1"),
        ("x-end-to-end", "kept"),
        ("x-latin-hop", "1"),
    ]);
    h.append(
        header::CONNECTION,
        HeaderValue::from_bytes(b"x-latin-hop, caf\xe9").expect("obs-text is a valid value"),
    );
    strip_hop_by_hop(&mut h, false);
    let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        [
            "forwarded",
            "palisade-user-id",
            "x-end-to-end",
            "x-forwarded-proto"
        ],
        "{h:?}"
    );
}

#[test]
fn hop_by_hop_names_are_found_at_their_place_in_the_list() {
    for (at, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(hop_by_hop_index(name), Some(at), "{name}");
    }
    for (name, text) in REVEALING.iter().zip(REVEALING_NAMES) {
        assert_eq!(name.as_str(), text);
    }
    assert_eq!(hop_by_hop_index(&header::HOST), None);
}

#[test]
fn upgrade_handshakes_keep_their_upgrade_fields() {
    let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
    assert!(wants_upgrade(&h));
    for other in ["h2c", "websocket, h2c", "TLS/1.2"] {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", other)]);
        assert!(!wants_upgrade(&h), "{other}");
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{other}: {h:?}");
    }
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "upgrade");
}

#[test]
fn forwarding_headers_from_untrusted_peers_are_replaced() {
    let mut h = headers(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=6.6.6.6"),
    ]);
    let host = HeaderValue::from_static("app.test");
    set_forwarding_headers(&mut h, &ctx("192.0.2.1:5000", false), Some(&host));
    assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "app.test");
    assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http;host=\"app.test\"");
}

#[test]
fn forwarding_headers_from_trusted_proxies_are_extended() {
    let mut h = headers(&[
        ("x-forwarded-for", "198.51.100.7"),
        ("x-forwarded-proto", "https"),
    ]);
    let context = trusted_ctx("[::1]:5000", "198.51.100.7");
    set_forwarding_headers(&mut h, &context, None);
    assert_eq!(h["x-forwarded-for"], "198.51.100.7, ::1");
    assert_eq!(h["x-forwarded-proto"], "https");
    // The proxy spoke only `X-Forwarded-*`: `Forwarded` tells the same client and scheme
    // first, then palisade's own hop (red-team finding: it named the proxy and `http` alone).
    assert_eq!(
        h["forwarded"],
        "for=198.51.100.7;proto=https, for=\"[::1]\";proto=http"
    );
}

/// Hops told of only in `X-Forwarded-*` become `Forwarded` elements: the hops palisade
/// believed, from the client it settled on (the items a client wrote left of it are not
/// told again), IPv6 quoted and bracketed, the scheme only when it is one, the host only
/// when it is a plain host; a proxy's own `Forwarded` is extended instead (red-team
/// findings on the first version: a forged leftmost item carried the scheme, `;proto=`
/// inside a quoted host, 15 000 unreadable items told as `for=unknown`).
#[test]
fn a_trusted_proxys_x_forwarded_fields_are_told_again_in_forwarded() {
    let forwarded = |client: &str, sent: &[(&'static str, &'static str)]| {
        let mut h = headers(sent);
        let context = trusted_ctx("10.0.0.2:5000", client);
        set_forwarding_headers(&mut h, &context, None);
        h["forwarded"].to_str().expect("text").to_owned()
    };
    assert_eq!(
        forwarded(
            "2001:db8::7",
            &[
                ("x-forwarded-for", "6.6.6.6, 2001:db8::7, 10.0.0.1"),
                ("x-forwarded-proto", "HTTPS"),
                ("x-forwarded-host", "shop.test"),
            ]
        ),
        "for=\"[2001:db8::7]\";proto=https;host=\"shop.test\", for=10.0.0.1, \
         for=10.0.0.2;proto=http"
    );
    assert_eq!(
        forwarded(
            "192.0.2.9",
            &[("x-forwarded-for", "evil;proto=https, 192.0.2.9:80")]
        ),
        "for=192.0.2.9, for=10.0.0.2;proto=http"
    );
    assert_eq!(
        forwarded("9.9.9.9", &[("x-forwarded-for", "::ffff:9.9.9.9")]),
        "for=9.9.9.9, for=10.0.0.2;proto=http"
    );
    // The client came from elsewhere (`client_ip_header`): no hop is told, the scheme is.
    assert_eq!(
        forwarded(
            "203.0.113.5",
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-proto", "https")
            ]
        ),
        "proto=https, for=10.0.0.2;proto=http"
    );
    for host in ["a;proto=https", "a;for=6.6.6.6", "a\"b", ",a.example", ""] {
        assert_eq!(
            forwarded(
                "5.5.5.5",
                &[("x-forwarded-for", "5.5.5.5"), ("x-forwarded-host", host)]
            ),
            "for=5.5.5.5, for=10.0.0.2;proto=http",
            "{host}"
        );
    }
    assert_eq!(
        forwarded("10.0.0.2", &[("x-forwarded-proto", "gopher")]),
        "for=10.0.0.2;proto=http"
    );
    assert_eq!(
        forwarded("10.0.0.2", &[("x-forwarded-host", "a.test")]),
        "host=\"a.test\", for=10.0.0.2;proto=http"
    );
    let many: &'static str = "x,".repeat(15_000).leak();
    assert_eq!(
        forwarded("10.0.0.2", &[("x-forwarded-for", many)]),
        "for=10.0.0.2;proto=http"
    );
    assert_eq!(
        forwarded(
            "192.0.2.9",
            &[
                ("x-forwarded-for", "192.0.2.9"),
                ("forwarded", "for=192.0.2.9")
            ]
        ),
        "for=192.0.2.9, for=10.0.0.2;proto=http"
    );
}

/// A host with a `;`, `,` or `=` is left out of palisade's own `Forwarded` element: inside
/// the quotes it would still read as more parameters to careless parsers.
#[test]
fn a_host_that_is_not_plain_is_left_out_of_forwarded() {
    for host in ["a.example;for=6.6.6.6;proto=https", "a=b", "a!b"] {
        let mut h = HeaderMap::new();
        let host = HeaderValue::from_str(host).expect("value");
        set_forwarding_headers(&mut h, &ctx("192.0.2.1:5000", false), Some(&host));
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http");
    }
}

/// A trusted proxy's empty forwarding fields add no empty items, and of repeated
/// `X-Forwarded-Proto`/`-Host` fields only the first, the one palisade reads, goes on
/// (red-team findings: `x-forwarded-for: , , 127.0.0.1`; `http` then `https`, which
/// palisade took for plain HTTP and an upstream reading the last for TLS).
#[test]
fn a_trusted_proxys_empty_or_repeated_fields_are_made_one() {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("x-forwarded-for", ""),
        ("x-forwarded-for", "  "),
        ("x-forwarded-for", "198.51.100.7, "),
        ("forwarded", ""),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "a.test"),
        ("x-forwarded-host", "b.test"),
    ] {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let context = trusted_ctx("127.0.0.1:5000", "198.51.100.7");
    set_forwarding_headers(&mut h, &context, None);
    assert_eq!(h["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(
        h["forwarded"],
        "for=198.51.100.7;proto=http;host=\"a.test\", for=127.0.0.1;proto=http"
    );
    let all = |name: &str| h.get_all(name).iter().cloned().collect::<Vec<_>>();
    assert_eq!(all("x-forwarded-proto"), ["http"]);
    assert_eq!(all("x-forwarded-host"), ["a.test"]);
}

/// A trusted proxy's `X-Forwarded-Host` holding a list goes on as its first item, the one
/// palisade tells in `Forwarded`: an application reading the whole value or its last item
/// would take the request for another host (leftover of an older red team: the list passed
/// whole).
#[test]
fn a_trusted_proxys_forwarded_host_list_is_made_its_first_item() {
    let mut h = headers(&[
        ("x-forwarded-for", "198.51.100.7"),
        ("x-forwarded-host", "shop.test, admin.internal"),
    ]);
    let context = trusted_ctx("127.0.0.1:5000", "198.51.100.7");
    set_forwarding_headers(&mut h, &context, None);
    assert_eq!(h["x-forwarded-host"], "shop.test");
    assert_eq!(
        h["forwarded"],
        "for=198.51.100.7;host=\"shop.test\", for=127.0.0.1;proto=http"
    );
    // No first item, or an empty first field: nothing goes on (red-team finding: the
    // empty field went upstream).
    for sent in [
        &[("x-forwarded-host", " , admin.internal")][..],
        &[("x-forwarded-host", ""), ("x-forwarded-host", "b.test")][..],
        &[("x-forwarded-host", "  ")][..],
    ] {
        let mut h = HeaderMap::new();
        for (name, value) in sent {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        set_forwarding_headers(&mut h, &context, None);
        assert!(h.get("x-forwarded-host").is_none(), "{sent:?}: {h:?}");
    }
}

/// A trusted proxy's scheme goes on in lower case, as palisade read it and as `Forwarded`
/// tells it (red-team finding: `HTTPS` went on as written); other values stay as sent.
#[test]
fn a_trusted_proxys_scheme_goes_on_in_lower_case() {
    let context = trusted_ctx("127.0.0.1:5000", "198.51.100.7");
    for (sent, upstream) in [
        ("HTTPS", "https"),
        ("Http", "http"),
        ("https", "https"),
        ("HTTPS, http", "https"),
        ("gopher", "gopher"),
    ] {
        let mut h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", sent),
        ]);
        set_forwarding_headers(&mut h, &context, None);
        assert_eq!(h["x-forwarded-proto"], upstream, "{sent}");
    }
}

/// Palisade's own HTTP/1.1 exchange writes the fields after the head instead of putting
/// them into its map: the upstream must read the same fields either way, and the
/// client's copies must be gone from the map, never sent beside palisade's.
#[test]
fn forwarding_fields_written_as_lines_match_those_put_into_the_map() {
    let host = HeaderValue::from_static("app.test");
    for trusted in [false, true] {
        let sent = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "*/*"),
        ];
        let context = ctx("192.0.2.1:5000", trusted);
        let mut inserted = headers(&sent);
        set_forwarding_headers(&mut inserted, &context, Some(&host));

        let mut left = headers(&sent);
        let present = Present::of(&left).forwarding;
        let fields = ForwardingFields::of(&mut left, present, &context, Some(&host));
        let mut lines = Vec::new();
        for (name, value) in &left {
            lines.extend_from_slice(format!("{name}: ").as_bytes());
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        fields.write(&mut lines);
        let mut read: Vec<(String, String)> = String::from_utf8(lines)
            .expect("text")
            .lines()
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("a field line");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let mut expected: Vec<(String, String)> = inserted
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("text").to_owned()))
            .collect();
        read.sort();
        expected.sort();
        assert_eq!(read, expected, "trusted: {trusted}");
    }
}

#[test]
fn clients_cannot_override_the_path_a_safe_method_or_speak_as_a_proxy() {
    let forged = [
        ("x-original-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-real-ip", "10.0.0.1"),
        ("x-forwarded-prefix", "/evil"),
        ("accept", "*/*"),
    ];
    let mut h = headers(&forged);
    let removed = strip_client_claims(&mut h, &http::Method::GET, false);
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert_eq!(h.len(), 1);

    let mut h = headers(&forged);
    strip_client_claims(&mut h, &http::Method::POST, true);
    assert!(!h.contains_key("x-original-url"));
    assert_eq!(h["x-http-method-override"], "DELETE");
    assert_eq!(h["x-real-ip"], "10.0.0.1");
}

/// Every proxy claim, in its own spelling, in capitals and with `_` for `-`, is removed from
/// an untrusted peer's request and kept from a trusted proxy's; no other field is touched
/// (red-team finding: `X-Original-URI`, `Client-IP`, `X-Forwarded-Uri` and a dozen more
/// reached the upstream from anyone).
#[test]
fn every_proxy_claim_is_removed_unless_a_trusted_proxy_sent_it() {
    for claim in PROXY_CLAIMS {
        let spellings = [
            claim.to_owned(),
            claim.to_ascii_uppercase(),
            claim.replace('-', "_"),
        ];
        for spelling in spellings {
            let name = HeaderName::from_bytes(spelling.as_bytes()).expect("name");
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("1"));
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            let removed = strip_client_claims(&mut h, &http::Method::POST, false);
            assert_eq!(removed, [claim], "{spelling}");
            assert_eq!(h.len(), 1, "{spelling}: {h:?}");
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("1"));
            assert!(strip_client_claims(&mut h, &http::Method::POST, true).is_empty());
            assert_eq!(h.len(), 1, "{spelling} from a trusted proxy");
        }
    }
}

#[test]
fn spellings_with_underscores_are_removed_too() {
    let forged = [
        ("x_original_url", "/admin"),
        ("x-original_url", "/admin"),
        ("x_real_ip", "10.0.0.1"),
        ("x_http_method_override", "DELETE"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x_forwarded_host", "evil.example"),
        ("x_forwarded_proto", "https"),
        ("x_custom", "kept"),
    ];
    let mut h = headers(&forged);
    let removed = strip_client_claims(&mut h, &http::Method::GET, false);
    assert_eq!(removed.len(), 6, "{removed:?}");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x_custom"], "kept");

    // A trusted proxy may send the claims, but never an underscore spelling of the
    // headers palisade writes itself, nor a path override.
    let mut h = headers(&forged);
    strip_client_claims(&mut h, &http::Method::POST, true);
    assert_eq!(h["x_real_ip"], "10.0.0.1");
    assert_eq!(h["x_http_method_override"], "DELETE");
    for gone in [
        "x_original_url",
        "x-original_url",
        "x_forwarded_for",
        "x_forwarded_host",
    ] {
        assert!(!h.contains_key(gone), "{gone} kept");
    }
}

#[test]
fn cookie_fields_are_joined_into_one() {
    let mut h = headers(&[("cookie", "a=1"), ("accept", "*/*"), ("cookie", " b=2 ")]);
    join_cookies(&mut h);
    let cookies: Vec<_> = h.get_all(header::COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1; b=2"]);

    let mut h = headers(&[("cookie", "a=1; b=2")]);
    join_cookies(&mut h);
    assert_eq!(h[header::COOKIE], "a=1; b=2");
}

#[test]
fn server_identifying_headers_are_removed() {
    let mut h = headers(&[("server", "nginx/1.2"), ("x-powered-by", "Express")]);
    strip_revealing_response_headers(&mut h);
    assert!(h.is_empty());
    let mut h = headers(&[
        ("x-aspnetmvc-version", "5.2"),
        ("server", "a"),
        ("server", "b"),
        ("content-type", "text/html"),
        ("x-aspnet-version", "4.0"),
    ]);
    strip_revealing_response_headers(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["content-type"], "text/html");
}
