//! The request as the detectors see it: borrowed bytes, exactly as they arrived, independent
//! of any HTTP library. The gateway fills it; nothing here parses sockets, and nothing
//! allocates but the lower-case copy of a header name sent in upper case.

/// One header line as received: the name in any case, the value untrimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header name as sent (compared case-insensitively).
    pub name: &'a [u8],
    /// Header value as sent.
    pub value: &'a [u8],
    /// The name as lower-case text, when the caller has it so ([`Header::lower_case`]).
    pub lower_name: Option<&'a str>,
}

impl<'a> Header<'a> {
    /// A header from its name and value.
    pub fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            name,
            value,
            lower_name: None,
        }
    }

    /// A header whose name is lower-case text already (a gateway's header map stores
    /// names so): spares the check and the conversion per header of every request.
    pub fn lower_case(name: &'a str, value: &'a [u8]) -> Self {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name}");
        Self {
            name: name.as_bytes(),
            value,
            lower_name: Some(name),
        }
    }

    /// The name as lower-case text, at most its first `max` bytes.
    pub(crate) fn lower_case_name(&self, max: usize) -> std::borrow::Cow<'a, str> {
        match self.lower_name {
            // Header names are ASCII tokens: any length is a character boundary.
            Some(text) => text.get(..max).unwrap_or(text).into(),
            None => lower_case_name(&self.name[..self.name.len().min(max)]),
        }
    }
}

/// `name` as lower-case text (invalid UTF-8 replaced), borrowed when it already is: header
/// names almost always arrive lower case (HTTP/2 requires it, and the gateway's header map
/// stores them so), and a copy per header of every request bought nothing.
pub(crate) fn lower_case_name(name: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(name) {
        Ok(text) if !text.bytes().any(|b| b.is_ascii_uppercase()) => text.into(),
        _ => String::from_utf8_lossy(name).to_ascii_lowercase().into(),
    }
}

/// A request to inspect.
///
/// `target` is the raw request-target (`/a/b?x=1`, or an absolute URI, or `*`), before any
/// decoding: the normaliser decodes it once and keeps both forms. `body` holds at most the
/// inspection cap of the body; `body_truncated` says the rest was not seen, so the verdict can
/// report that inspection stopped early.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Method token as sent (`GET`, `POST`, ...).
    pub method: &'a [u8],
    /// Raw request-target: path and query, undecoded.
    pub target: &'a [u8],
    /// Protocol version as sent (`HTTP/1.1`); empty when unknown (HTTP/2 framing).
    pub version: &'a [u8],
    /// Every header in arrival order, repeated names included.
    pub headers: &'a [Header<'a>],
    /// The first bytes of the body, up to the inspection cap.
    pub body: &'a [u8],
    /// True when the body was longer than `body` and the rest passed uninspected.
    pub body_truncated: bool,
    /// The address the connection arrived on, when known. A `Host` naming it (or a loopback
    /// address) is a client that connected by address, not a sign of a scan.
    pub local_addr: Option<std::net::IpAddr>,
}

impl<'a> Request<'a> {
    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value)
    }

    /// How many headers carry this name.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .count()
    }

    /// The path part of the target (before `?`), undecoded.
    pub fn raw_path(&self) -> &'a [u8] {
        match memchr::memchr(b'?', self.target) {
            Some(at) => &self.target[..at],
            None => self.target,
        }
    }

    /// The query part of the target (after the first `?`), undecoded; empty if none.
    pub fn raw_query(&self) -> &'a [u8] {
        match memchr::memchr(b'?', self.target) {
            Some(at) => &self.target[at + 1..],
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case() {
        let headers = [Header::new(b"User-Agent", b"curl/8")];
        let req = Request {
            headers: &headers,
            ..Request::default()
        };
        assert_eq!(req.header("user-agent"), Some(&b"curl/8"[..]));
        assert_eq!(req.header("referer"), None);
    }

    #[test]
    fn target_splits_into_path_and_query_at_first_question_mark() {
        let req = Request {
            target: b"/a/b?x=1?y",
            ..Request::default()
        };
        assert_eq!(req.raw_path(), b"/a/b");
        assert_eq!(req.raw_query(), b"x=1?y");
    }

    #[test]
    fn a_name_given_as_lower_case_text_reads_as_one_given_as_bytes() {
        let long = "x-".repeat(40);
        for name in ["host", "x-api-key", long.as_str()] {
            let text = Header::lower_case(name, b"v");
            let bytes = Header::new(name.as_bytes(), b"v");
            for max in [3, 64, usize::MAX] {
                assert_eq!(
                    text.lower_case_name(max),
                    bytes.lower_case_name(max),
                    "{name} {max}"
                );
            }
        }
        assert_eq!(
            Header::new(b"X-API-Key", b"v").lower_case_name(64),
            "x-api-key"
        );
    }
}
