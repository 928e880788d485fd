//! One spelling for each request path and host, so that a rule (or a rate limit, or an upload
//! rule in the gateway) cannot be walked around by writing the same resource differently:
//! `/%61dmin`, `//admin`, `/x/../admin`, `/./admin`, `/..;/admin`, `ADMIN.internal:80`.
//!
//! Two normalisations share the segment resolution here:
//! - [`rule_path`] is what rule fields see. It follows RFC 3986 §6.2.2 (the same steps
//!   Cloudflare applies to incoming URLs before its rules run) plus two steps for servers
//!   that read paths more loosely than the RFC; it keeps case, because paths are
//!   case-sensitive.
//! - [`resolve_segments`] alone is the core the gateway's generous matching builds on (it
//!   decodes everything first and lower-cases after).
//!
//! Nothing here changes what is forwarded: the upstream receives the request as sent.

/// The path rule fields see: RFC 3986 §6.2.2 normalisation with two additions.
///
/// 1. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, once
///    (§6.2.2.2), and every other escape is written with upper-case hex (§6.2.2.1):
///    `/%61dmin` is `/admin`, `/a%2fb` is `/a%2Fb` (an encoded slash stays encoded, as the
///    upstream keeps it inside one segment). A `%` that starts no escape is written `%25`.
/// 2. Backslashes count as slashes, as they do for IIS and many Windows stacks.
/// 3. `;parameters` are dropped from every segment: servlet containers route
///    `/admin;jsessionid=1` as `/admin` and `/public/..;/admin` as `/admin`, so a rule must
///    see that too.
/// 4. Empty segments are merged (`//admin` is `/admin`) and `.` and `..` are resolved, never
///    above the root (§5.2.4).
///
/// Case is kept. A target that is not a path (`*` of `OPTIONS *`) is returned as it is.
pub fn rule_path(raw: &str) -> String {
    if !raw.starts_with(['/', '\\']) {
        return raw.to_owned();
    }
    resolve_segments(&normalise_escapes(raw))
}

/// Resolves a decoded path's segments: backslashes become slashes, `;parameters` are
/// dropped, empty and `.` segments removed, and `..` climbs one segment (never above the
/// root). The result always starts with `/`; it ends with `/` when the input did, or when
/// its last segment was `.` or `..` (RFC 3986 §5.2.4: `/a/b/..` is `/a/`).
pub fn resolve_segments(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut ended_in_dots = false;
    for segment in path.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        ended_in_dots = match segment {
            "" => ended_in_dots,
            "." => true,
            ".." => {
                segments.pop();
                true
            }
            s => {
                segments.push(s);
                false
            }
        };
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || path.ends_with('/') || ended_in_dots {
        out.push('/');
    }
    out
}

/// Decodes escapes of unreserved characters and upper-cases the hex of the others; a `%` not
/// followed by two hex digits becomes `%25`.
fn normalise_escapes(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut rest = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&raw[rest..i]);
        let Some(escape) = hex(bytes.get(i + 1)).zip(hex(bytes.get(i + 2))) else {
            // A stray `%` is written as the escape it stands for, so that decoding cannot
            // build a new escape out of it (`%%34%31` is not `%41`, which a second pass
            // would read as `A`).
            out.push_str("%25");
            i += 1;
            rest = i;
            continue;
        };
        let escape = escape.0 << 4 | escape.1;
        if is_unreserved(escape) {
            out.push(char::from(escape));
        } else {
            out.push('%');
            out.push_str(&format!("{escape:02X}"));
        }
        i += 3;
        rest = i;
    }
    out.push_str(&raw[rest..]);
    out
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hex digit.
pub fn hex(byte: Option<&u8>) -> Option<u8> {
    let digit = char::from(*byte?).to_digit(16)?;
    u8::try_from(digit).ok()
}

/// The host a request names, in one spelling: lower case, without the port, without
/// userinfo and without the trailing dot of a fully qualified name. `ADMIN.internal.:80`
/// and `admin.internal` both give `admin.internal`; `[::1]:8080` gives `[::1]`.
pub fn host(raw: &[u8]) -> Vec<u8> {
    let (name, _) = split_authority(raw);
    let mut name = name;
    while let [head @ .., b'.'] = name {
        name = head;
    }
    name.to_ascii_lowercase()
}

/// The authority as `http.request.full_uri` shows it: the [`host`], then `:port` only when a
/// port is given and is not `default_port` (`Admin.example:443` over TLS is `admin.example`,
/// `api.example:8443` stays as it is).
pub fn authority(raw: &[u8], default_port: u16) -> Vec<u8> {
    let mut out = host(raw);
    let (_, port) = split_authority(raw);
    let port = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<u16>().ok());
    if let Some(port) = port.filter(|port| *port != default_port) {
        out.extend_from_slice(format!(":{port}").as_bytes());
    }
    out
}

/// `(host, port)` of an authority, userinfo dropped; the port is empty when none is given.
fn split_authority(raw: &[u8]) -> (&[u8], &[u8]) {
    let raw = raw.trim_ascii();
    let hostport = match raw.iter().rposition(|b| *b == b'@') {
        Some(at) => &raw[at + 1..],
        None => raw,
    };
    // An IPv6 literal: the port, if any, follows the closing bracket.
    let host_end = match hostport.starts_with(b"[") {
        true => hostport
            .iter()
            .position(|b| *b == b']')
            .map(|close| close + 1),
        false => hostport.iter().position(|b| *b == b':'),
    };
    let Some(host_end) = host_end else {
        return (hostport, &[]);
    };
    let (host, rest) = hostport.split_at(host_end);
    (host, rest.strip_prefix(b":").unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn spellings_of_admin_all_read_as_admin() {
        for spelling in [
            "/admin",
            "//admin",
            "/%61dmin",
            "/%61%64%6D%69%6E",
            "/x/../admin",
            "/./admin",
            "/admin;x",
            "/public/..;/admin",
            "/%2e%2e/admin",
            "/x/%2E%2E/admin",
            "\\admin",
            "/x\\..\\admin",
            "/../../admin",
        ] {
            assert_eq!(rule_path(spelling), "/admin", "{spelling}");
        }
    }

    #[test]
    fn case_is_kept_because_paths_are_case_sensitive() {
        assert_eq!(rule_path("/ADMIN/Panel"), "/ADMIN/Panel");
    }

    #[test]
    fn reserved_escapes_stay_encoded_with_upper_case_hex() {
        assert_eq!(rule_path("/a%2fb"), "/a%2Fb");
        assert_eq!(rule_path("/a%3bb"), "/a%3Bb");
        assert_eq!(rule_path("/%c3%a9t%C3%A9"), "/%C3%A9t%C3%A9");
        assert_eq!(rule_path("/%2561dmin"), "/%2561dmin");
    }

    #[test]
    fn stray_percent_signs_are_escaped_so_decoding_cannot_build_an_escape() {
        assert_eq!(rule_path("/a%zz%4"), "/a%25zz%254");
        assert_eq!(rule_path("/100%"), "/100%25");
        assert_eq!(rule_path("/%%34%31"), "/%2541");
    }

    #[test]
    fn trailing_slashes_follow_rfc_3986_dot_segment_removal() {
        assert_eq!(rule_path("/admin/"), "/admin/");
        assert_eq!(rule_path("/admin/."), "/admin/");
        assert_eq!(rule_path("/admin/x/.."), "/admin/");
        assert_eq!(rule_path("/admin//"), "/admin/");
        assert_eq!(rule_path("/"), "/");
        assert_eq!(rule_path("/.."), "/");
    }

    #[test]
    fn a_target_that_is_not_a_path_is_left_alone() {
        assert_eq!(rule_path("*"), "*");
        assert_eq!(rule_path(""), "");
    }

    #[test]
    fn hosts_lose_case_port_userinfo_and_the_trailing_dot() {
        for spelling in [
            "admin.internal",
            "ADMIN.internal",
            "admin.internal.",
            "admin.internal:80",
            "Admin.Internal.:8080",
            " admin.internal ",
            "user:pw@admin.internal:80",
        ] {
            assert_eq!(host(spelling.as_bytes()), b"admin.internal", "{spelling}");
        }
        assert_eq!(host(b"[::1]:8080"), b"[::1]");
        assert_eq!(host(b"[::1]"), b"[::1]");
        assert_eq!(host(b""), b"");
    }

    #[test]
    fn full_uri_authorities_keep_only_a_port_other_than_the_default() {
        assert_eq!(authority(b"Shop.example.:443", 443), b"shop.example");
        assert_eq!(authority(b"shop.example:80", 443), b"shop.example:80");
        assert_eq!(authority(b"api.example:8443", 443), b"api.example:8443");
        assert_eq!(authority(b"[::1]:8080", 80), b"[::1]:8080");
        assert_eq!(authority(b"shop.example:x", 80), b"shop.example");
    }

    proptest! {
        /// No normalised path holds a segment the upstream would resolve away, so a prefix
        /// rule on it cannot be dodged by one.
        #[test]
        fn normalised_paths_have_no_segments_to_resolve(path in "/[/a-zA-Z.%25;\\\\0-9]{0,40}") {
            let normal = rule_path(&path);
            prop_assert!(normal.starts_with('/'));
            prop_assert!(!normal.contains(['\\', ';']), "{path:?} -> {normal:?}");
            for segment in normal.trim_end_matches('/').split('/').skip(1) {
                prop_assert!(!matches!(segment, "" | "." | ".."), "{path:?} -> {normal:?}");
            }
        }

        /// Normalising twice changes nothing: rules see a fixed point.
        #[test]
        fn normalising_twice_changes_nothing(path in "/[/a-zA-Z.%25;\\\\0-9]{0,40}") {
            let once = rule_path(&path);
            prop_assert_eq!(rule_path(&once), once);
        }
    }
}
