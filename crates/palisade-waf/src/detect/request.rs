//! Checks on the request as a whole: the method, the framing headers that request smuggling
//! plays with (RFC 9112 §6.3: a message with both `Transfer-Encoding` and `Content-Length`
//! is an attack or a broken client), declared types and charsets, header abuse (`Proxy`,
//! `Request-Range`, overlapping ranges), and session identifiers planted from another site.

use super::Hit;
use crate::class::DetectorKind;
use crate::extract::{Location, Source};
use crate::request::Request;

/// A request-level finding.
#[derive(Debug, Clone)]
pub struct RequestHit {
    /// Which detector.
    pub detector: DetectorKind,
    /// What it found.
    pub hit: Hit,
    /// Where (`request.method`, `headers.content-type`, ...).
    pub location: Location,
    /// The evidence as text.
    pub evidence: String,
}

/// Charsets that real clients declare.
const CHARSETS: &[&str] = &[
    "utf-8",
    "utf8",
    "iso-8859-1",
    "iso-8859-15",
    "windows-1252",
    "us-ascii",
    "utf-16",
    "utf-16le",
    "utf-16be",
    "latin1",
    "shift_jis",
    "euc-jp",
    "euc-kr",
    "gb2312",
    "gbk",
    "big5",
    "koi8-r",
    "windows-1251",
    "iso-8859-2",
];

/// Runs every request-level check.
pub fn check(req: &Request<'_>) -> Vec<RequestHit> {
    let mut out = Vec::new();
    method(req, &mut out);
    framing(req, &mut out);
    content_type(req, &mut out);
    headers(req, &mut out);
    fixation(req, &mut out);
    method_override(req, &mut out);
    multipart_charsets(req, &mut out);
    out
}

fn push(
    out: &mut Vec<RequestHit>,
    detector: DetectorKind,
    score: u8,
    reason: &'static str,
    source: Source,
    name: &str,
    evidence: &[u8],
) {
    let evidence: String = String::from_utf8_lossy(evidence)
        .chars()
        .take(120)
        .collect();
    out.push(RequestHit {
        detector,
        hit: Hit::new(score, reason, 0, evidence.len()),
        location: Location {
            source,
            name: name.to_string(),
        },
        evidence,
    });
}

fn method(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    let m = req.method;
    let token = !m.is_empty() && m.len() <= 16 && m.iter().all(u8::is_ascii_uppercase);
    let score = match m {
        b"GET" | b"HEAD" | b"POST" | b"PUT" | b"PATCH" | b"DELETE" | b"OPTIONS" => return,
        b"TRACE" | b"TRACK" | b"CONNECT" | b"DEBUG" => 14,
        b"PROPFIND" | b"PROPPATCH" | b"MKCOL" | b"COPY" | b"MOVE" | b"LOCK" | b"UNLOCK"
        | b"SEARCH" | b"REPORT" => 36,
        _ if token => 16,
        _ => 6,
    };
    push(
        out,
        DetectorKind::Protocol,
        score,
        "unusual method",
        Source::Request,
        "method",
        m,
    );
}

fn framing(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    let te = req.header("transfer-encoding");
    let lengths: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(b"content-length"))
        .map(|h| h.value)
        .collect();
    if te.is_some() && !lengths.is_empty() {
        push(
            out,
            DetectorKind::Protocol,
            5,
            "both transfer-encoding and content-length",
            Source::Request,
            "framing",
            te.unwrap_or_default(),
        );
    }
    if lengths
        .windows(2)
        .any(|w| w[0].trim_ascii() != w[1].trim_ascii())
    {
        push(
            out,
            DetectorKind::Protocol,
            5,
            "conflicting content-length",
            Source::Request,
            "framing",
            lengths[0],
        );
    }
    if lengths
        .iter()
        .any(|l| !l.trim_ascii().iter().all(u8::is_ascii_digit))
    {
        push(
            out,
            DetectorKind::Protocol,
            6,
            "malformed content-length",
            Source::Request,
            "framing",
            lengths[0],
        );
    }
    if let Some(te) = te
        && !te.trim_ascii().eq_ignore_ascii_case(b"chunked")
    {
        push(
            out,
            DetectorKind::Protocol,
            8,
            "obfuscated transfer-encoding",
            Source::Header,
            "transfer-encoding",
            te,
        );
    }
    let has_body =
        !req.body.is_empty() || te.is_some() || lengths.iter().any(|l| l.trim_ascii() != b"0");
    if has_body && matches!(req.method, b"GET" | b"HEAD") {
        let score = if te.is_some() { 12 } else { 18 };
        push(
            out,
            DetectorKind::Protocol,
            score,
            "body on a get or head request",
            Source::Request,
            "framing",
            req.method,
        );
    }
}

fn content_type(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    let Some(ct) = req.header("content-type") else {
        return;
    };
    let lower = String::from_utf8_lossy(ct).to_ascii_lowercase();
    let mut params = lower.split(';');
    let mime = params.next().unwrap_or("").trim();
    let valid_mime = mime.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        token(t) && token(s)
    });
    if !valid_mime && (!req.body.is_empty() || !mime.is_empty()) {
        push(
            out,
            DetectorKind::Protocol,
            12,
            "malformed content-type",
            Source::Header,
            "content-type",
            ct,
        );
    }
    let charsets: Vec<&str> = lower
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"'))
        .collect();
    if charsets.len() > 1 || lower.matches("charset").count() > 1 {
        push(
            out,
            DetectorKind::Protocol,
            8,
            "several charsets",
            Source::Header,
            "content-type",
            ct,
        );
    } else if let Some(cs) = charsets.first()
        && !CHARSETS.contains(cs)
    {
        push(
            out,
            DetectorKind::Protocol,
            12,
            "unexpected charset",
            Source::Header,
            "content-type",
            ct,
        );
    }
    if lower.contains("boundary=") && !mime.starts_with("multipart/") {
        push(
            out,
            DetectorKind::Protocol,
            12,
            "boundary on a non-multipart type",
            Source::Header,
            "content-type",
            ct,
        );
    }
}

/// Multipart parts that declare a charset other than UTF-8 or Latin-1: their content is read
/// differently by the application than by inspection (UTF-7, UTF-16, Shift-JIS tricks).
fn multipart_charsets(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    const PLAIN: &[&str] = &[
        "utf-8",
        "utf8",
        "us-ascii",
        "iso-8859-1",
        "iso-8859-15",
        "windows-1252",
    ];
    let multipart = req
        .header("content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with(b"multipart/"));
    if !multipart {
        return;
    }
    for line in req.body.split(|&b| b == b'\n') {
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        if !lower.starts_with("content-type:") {
            continue;
        }
        let Some(cs) = lower.split("charset=").nth(1) else {
            continue;
        };
        let cs = cs.trim().trim_matches(['"', '\r', ';']);
        if !PLAIN.contains(&cs) {
            push(
                out,
                DetectorKind::Protocol,
                12,
                "unusual charset in multipart part",
                Source::Body,
                "",
                line,
            );
            return;
        }
    }
}

/// A `Host` that is a public IP address: scanners sweep address ranges and name the
/// address, browsers name the site. A loopback address or the address the connection came
/// in on is a local client or a health check reaching the gateway directly, so it is
/// ignored; any other address counts from paranoia 2, since internal tools and IoT clients
/// also connect by address.
fn host_is_address(req: &Request<'_>, host: &[u8], out: &mut Vec<RequestHit>) {
    // Not UTF-8 is no address (nor was it read as one with its bytes replaced). ASCII, as
    // nearly every `Host` is, is trimmed as bytes; other text by Unicode's white space.
    let trimmed = if host.is_ascii() {
        host.trim_ascii()
    } else {
        let Ok(text) = std::str::from_utf8(host) else {
            return;
        };
        text.trim().as_bytes()
    };
    let at = |byte: u8| trimmed.iter().position(|&b| b == byte);
    let name = match trimmed.strip_prefix(b"[") {
        // `[v6]` or `[v6]:port`.
        Some(bracketed) => at(b']').map_or(bracketed, |end| &trimmed[1..end]),
        // `v4:port`; a bare v6 address has more than one colon and no port.
        None => match at(b':') {
            Some(colon) if !trimmed[colon + 1..].contains(&b':') => &trimmed[..colon],
            _ => trimmed,
        },
    };
    // An address is hex digits, dots and colons (`::ffff:192.0.2.1` too): a name holding
    // anything else, a domain, is not parsed at all.
    let address_byte = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b'.' | b':');
    if !name.iter().all(address_byte) {
        return;
    }
    let parsed = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok());
    let Some(ip) = parsed else {
        return;
    };
    let ip = unmapped(ip);
    if ip.is_loopback() || Some(ip) == req.local_addr.map(unmapped) {
        return;
    }
    push(
        out,
        DetectorKind::Protocol,
        30,
        "host is an ip address",
        Source::Header,
        "host",
        host,
    );
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn unmapped(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn headers(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    version(req, out);
    if let Some(host) = req.header("host") {
        host_is_address(req, host, out);
    }
    for h in req.headers {
        let name = h.lower_case_name(usize::MAX);
        if memchr::memchr3(b'\r', b'\n', 0, h.value).is_some() {
            push(
                out,
                DetectorKind::Protocol,
                8,
                "control character in header",
                Source::Header,
                &name,
                h.value,
            );
        }
        match &*name {
            "proxy" => push(
                out,
                DetectorKind::Protocol,
                8,
                "proxy header (httpoxy)",
                Source::Header,
                &name,
                h.value,
            ),
            "lock-token" | "if" | "content-range"
                if !matches!(req.method, b"PUT" | b"PATCH") || name != "content-range" =>
            {
                push(
                    out,
                    DetectorKind::Protocol,
                    16,
                    "restricted header",
                    Source::Header,
                    &name,
                    h.value,
                );
            }
            "request-range" => push(
                out,
                DetectorKind::Protocol,
                16,
                "obsolete range header",
                Source::Header,
                &name,
                h.value,
            ),
            "range" => range(h.value, out),
            "host" if h.value.trim_ascii().is_empty() => {
                push(
                    out,
                    DetectorKind::Protocol,
                    16,
                    "empty host",
                    Source::Header,
                    &name,
                    h.value,
                );
            }
            "cookie" if h.value.starts_with(b"$Version") && h.value.contains(&b'"') => {
                push(
                    out,
                    DetectorKind::Protocol,
                    12,
                    "legacy cookie quoting",
                    Source::Header,
                    &name,
                    h.value,
                );
            }
            "user-agent" if h.value.trim_ascii().is_empty() => {
                push(
                    out,
                    DetectorKind::Scanner,
                    40,
                    "empty user agent",
                    Source::Header,
                    &name,
                    h.value,
                );
            }
            _ => {}
        }
    }
    if req.header("user-agent").is_none() {
        push(
            out,
            DetectorKind::Scanner,
            50,
            "no user agent",
            Source::Header,
            "user-agent",
            b"",
        );
    }
    if req.header("host").is_none() && req.version == b"HTTP/1.1" {
        push(
            out,
            DetectorKind::Protocol,
            16,
            "no host",
            Source::Header,
            "host",
            b"",
        );
    }
}

/// Versions other than HTTP/1.0, 1.1, 2 and 3.
fn version(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    let v = req.version;
    let known = matches!(
        v,
        b"" | b"HTTP/1.0" | b"HTTP/1.1" | b"HTTP/2" | b"HTTP/2.0" | b"HTTP/3" | b"HTTP/3.0"
    );
    if !known {
        push(
            out,
            DetectorKind::Protocol,
            10,
            "unknown http version",
            Source::Request,
            "version",
            v,
        );
    }
}

/// Many ranges (resource exhaustion) or ranges that run backwards.
fn range(value: &[u8], out: &mut Vec<RequestHit>) {
    let text = String::from_utf8_lossy(value);
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return;
    };
    let ranges: Vec<&str> = spec.split(',').map(str::trim).collect();
    let backwards = ranges.iter().any(|r| {
        let (a, b) = r.split_once('-').unwrap_or((r, ""));
        matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if b < a)
    });
    if backwards {
        push(
            out,
            DetectorKind::Protocol,
            12,
            "invalid range",
            Source::Header,
            "range",
            value,
        );
    } else if ranges.len() > 5 {
        let score = if ranges.len() > 32 { 12 } else { 30 };
        push(
            out,
            DetectorKind::Protocol,
            score,
            "many ranges",
            Source::Header,
            "range",
            value,
        );
    }
}

/// Names frameworks give their session cookies (`laravel_session`, `connect.sid`,
/// `next-auth.session-token`, `meteor_login_token`).
fn session_like(name: &str) -> bool {
    name.contains("sess")
        || name.ends_with("sid")
        || name == "cakephp"
        || name.ends_with("-token") && !name.contains("csrf") && !name.contains("xsrf")
        || name.ends_with("login_token")
        || name.ends_with("session-token")
}

/// `_method=DELETE`: a method override in the query or form, which lets a request past
/// method restrictions enforced in front of the application.
fn method_override(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    const METHODS: &[&[u8]] = &[
        b"delete",
        b"put",
        b"patch",
        b"options",
        b"trace",
        b"connect",
        b"head",
        b"post",
        b"get",
        b"propfind",
        b"proppatch",
        b"mkcol",
        b"lock",
        b"unlock",
        b"move",
        b"copy",
    ];
    let body_form = req.header("content-type").is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    let sources: [&[u8]; 2] = [req.raw_query(), if body_form { req.body } else { b"" }];
    for source in sources {
        for pair in source.split(|&b| b == b'&') {
            let Some(rest) = pair.strip_prefix(b"_method=") else {
                continue;
            };
            if METHODS.iter().any(|m| rest.eq_ignore_ascii_case(m)) {
                push(
                    out,
                    DetectorKind::Protocol,
                    16,
                    "method override",
                    Source::Request,
                    "method",
                    pair,
                );
                return;
            }
        }
    }
}

/// Session ids in the query string from a page on another site: session fixation.
fn fixation(req: &Request<'_>, out: &mut Vec<RequestHit>) {
    const NAMES: &[&str] = &[
        "jsessionid",
        "phpsessid",
        "aspsessionid",
        "asp.net_sessionid",
        "cfid",
        "cftoken",
        "sessid",
        "sid",
    ];
    let query = req.raw_query().to_ascii_lowercase();
    // Only a path with a `;` can hold `;jsessionid=`: lower-case a copy of no other.
    let path = match memchr::memchr(b';', req.raw_path()) {
        Some(_) => req.raw_path().to_ascii_lowercase(),
        None => Vec::new(),
    };
    // The first pair of the query naming a session id: its name, as the client wrote it.
    let in_query = req
        .raw_query()
        .split(|&b| b == b'&')
        .zip(query.split(|&b| b == b'&'))
        .find_map(|(raw, p)| {
            let name = p.split(|&b| b == b'=').next().unwrap_or_default();
            let session = NAMES.iter().any(|n| {
                name == n.as_bytes() || (n.starts_with("asp") && name.starts_with(n.as_bytes()))
            }) || session_like(&String::from_utf8_lossy(name));
            session.then(|| &raw[..name.len()])
        });
    let in_path = memchr::memmem::find(&path, b";jsessionid=");
    if in_query.is_none() && in_path.is_none() {
        return;
    }
    let host = req.header("host").unwrap_or_default().to_ascii_lowercase();
    let host = host
        .split(|&b| b == b':')
        .next()
        .unwrap_or_default()
        .to_vec();
    // A link with a session id and no `Referer` (typed, bookmarked, from a mail or a chat,
    // where planted links travel) scores higher than one followed from another site.
    let (score, reason) = match req.header("referer") {
        None => (18, "session id in url, no referer"),
        Some(referer) => {
            let r = referer.to_ascii_lowercase();
            let after = memchr::memmem::find(&r, b"://").map_or(&r[..], |p| &r[p + 3..]);
            let ref_host = after
                .split(|&b| b == b'/' || b == b':' || b == b'?')
                .next()
                .unwrap_or_default();
            if ref_host == host.as_slice() {
                return;
            }
            (10, "session id in url from another site")
        }
    };
    // Where it is, and its name alone: the id may be a real session's, a secret the log must
    // not hold, and the rest of the query may hold others (red-team finding: the whole query
    // was the evidence).
    let (source, name, evidence) = match (in_query, in_path) {
        (Some(name), _) => (Source::Request, "query", [name, b"=[redacted]"].concat()),
        // At the same place in the lower-cased copy: `;jsessionid` as the client wrote it.
        (None, Some(at)) => {
            let written = &req.raw_path()[at..at + b";jsessionid".len()];
            (Source::Path, "", [written, b"=[redacted]"].concat())
        }
        (None, None) => return,
    };
    push(
        out,
        DetectorKind::Fixation,
        score,
        reason,
        source,
        name,
        &evidence,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Header;

    /// A session id in the URL: where it is and whether a `Referer` came with it are in the
    /// finding (new-user finding: `;jsessionid=` was reported in `request.query` with no
    /// evidence, and the reason did not say why the score was 18 or 10).
    #[test]
    fn a_session_id_in_the_url_is_reported_where_it_is_and_why() {
        let fixation = |target: &str, referer: Option<&str>| {
            let mut headers = vec![Header::new(b"Host", b"shop.example")];
            if let Some(referer) = referer {
                headers.push(Header::new(b"Referer", referer.as_bytes()));
            }
            let req = Request {
                method: b"GET",
                target: target.as_bytes(),
                version: b"HTTP/1.1",
                headers: &headers,
                ..Request::default()
            };
            check(&req)
                .into_iter()
                .find(|hit| hit.detector == DetectorKind::Fixation)
                .map(|hit| {
                    (
                        hit.hit.score,
                        hit.hit.reason,
                        hit.location.to_string(),
                        hit.evidence,
                    )
                })
        };
        let (score, reason, location, evidence) =
            fixation("/shop;JSESSIONID=A1B2C3", None).expect("a finding");
        assert_eq!((score, reason), (18, "session id in url, no referer"));
        assert_eq!(location, "path");
        assert_eq!(evidence, ";JSESSIONID=[redacted]");
        // The id's name alone: no session id, no other argument of the query.
        let (score, reason, location, evidence) = fixation(
            "/shop?token=s3cr3t&SID=a1b2c3&x=1",
            Some("https://evil.example/x"),
        )
        .expect("a finding");
        assert_eq!((score, reason), (10, "session id in url from another site"));
        assert_eq!(location, "request.query");
        assert_eq!(evidence, "SID=[redacted]");
        assert!(fixation("/shop?sid=a1b2c3", Some("https://shop.example/cart")).is_none());
    }

    /// The score of the `Host` finding for `host`, arriving on `local`.
    fn host_score(host: &str, local: Option<&str>) -> Option<u8> {
        let headers = [Header::new(b"Host", host.as_bytes())];
        let req = Request {
            method: b"GET",
            target: b"/",
            version: b"HTTP/1.1",
            headers: &headers,
            local_addr: local.map(|a| a.parse().expect("address")),
            ..Request::default()
        };
        check(&req)
            .iter()
            .find(|hit| hit.hit.reason == "host is an ip address")
            .map(|hit| hit.hit.score)
    }

    #[test]
    fn a_loopback_host_is_not_suspicious() {
        assert_eq!(host_score("127.0.0.1:8080", None), None);
        assert_eq!(host_score("[::1]:8080", None), None);
        assert_eq!(host_score("localhost", None), None);
    }

    #[test]
    fn the_address_the_connection_came_in_on_is_not_suspicious() {
        assert_eq!(host_score("10.1.2.3:8080", Some("10.1.2.3")), None);
        assert_eq!(host_score("10.1.2.3", Some("::ffff:10.1.2.3")), None);
    }

    #[test]
    fn another_address_as_host_counts_only_from_paranoia_two() {
        let score = host_score("203.0.113.9", Some("10.1.2.3")).expect("a finding");
        assert!(score > 20 && score <= 35, "{score}");
        assert!(host_score("[2001:db8::1]:443", None).is_some());
        assert_eq!(host_score("shop.example", None), None);
        // Written only in hex digits and dots, and still a name.
        assert_eq!(host_score("cafe.bad", None), None);
        assert!(host_score("203.0.113.9:8443", None).is_some());
        assert!(host_score("[::ffff:203.0.113.9]", None).is_some());
        // Unicode white space around an address is trimmed as before.
        assert!(host_score("\u{a0}203.0.113.9\u{3000}", None).is_some());
        assert_eq!(host_score("\u{a0}shop.example", None), None);
    }

    #[test]
    fn every_spelling_of_an_address_is_read_as_one() {
        for host in [
            "203.0.113.9:8080",
            " 203.0.113.9\t",
            "\u{a0}203.0.113.9",
            "[2001:db8::1]",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "2001:db8::1",
            "::ffff:203.0.113.9",
        ] {
            assert!(host_score(host, None).is_some(), "{host:?}");
        }
        for host in [
            "shop.example:443",
            "203.0.113.9:80:80",
            "203.0.113.9\u{fffd}",
        ] {
            assert_eq!(host_score(host, None), None, "{host:?}");
        }
    }
}
