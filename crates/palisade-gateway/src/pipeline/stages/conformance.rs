//! Stage 0: refuse requests HTTP itself forbids, before any other stage reads them.
//!
//! hyper has already refused malformed heads (obs-fold, differing duplicate
//! `Content-Length`, bad methods) with 400. This stage adds what hyper lets through:
//! framing violations seen on the raw connection ([`crate::framing`]), request targets over
//! `max_uri_length` (414), declared bodies over `max_body_size` (413), and, for chunked
//! bodies, a malformed first chunk: the first frame is read before anything is forwarded so
//! a bad chunk size is a 400 that never reaches the upstream.
//!
//! `CONNECT` is answered 405: a reverse proxy tunnels nothing. A request target in a form
//! its method may not use is a 400: authority-form (`GET host:80`) belongs to `CONNECT` and
//! asterisk-form (`*`) to `OPTIONS` (RFC 9112 §3.2.3, §3.2.4). Stages match an
//! authority-form target's empty path against no path rule while the upstream gets `/`, and
//! an application may route `GET *` to a catch-all that no path rule covers.
//!
//! It also refuses requests whose meaning depends on who reads them, since palisade's
//! stages and the upstream must agree on it: a `Transfer-Encoding` other than a single
//! `chunked` (`identity, chunked`, `gzip, chunked`, `chunked` twice), two `Content-Type` or
//! `Content-Disposition` fields (upload inspection and the upstream could read different
//! ones), and an ambiguous host
//! (none or several `Host` fields in HTTP/1.1, or a `Host` that names another authority
//! than the request target or HTTP/2 `:authority`). A WAF rule on `http.host` reads the
//! target's authority while the upstream routes on `Host`; if the two could differ, one
//! could be chosen to pass the rule and the other to reach a protected virtual host.

use http::header::{ALLOW, HeaderValue};
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};

use crate::byte_set::ByteSet;
use crate::config::ServerConfig;
use crate::error::{GatewayError, short_page};
use crate::framing::Finding;
use crate::pipeline::{GatewayRequest, Outcome, RequestContext, RequestStage, Verdict};

/// The conformance stage.
#[derive(Debug)]
pub struct Conformance {
    max_uri_length: u64,
    max_body_size: u64,
}

impl Conformance {
    /// The stage with the server's limits.
    pub fn new(server: &ServerConfig) -> Self {
        Self {
            max_uri_length: server.max_uri_length.0,
            max_body_size: server.max_body_size.0,
        }
    }
}

impl RequestStage for Conformance {
    fn name(&self) -> &'static str {
        "conformance"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        if let Some(finding) = ctx.framing {
            return Err(match finding {
                Finding::HeadTooLarge => GatewayError::HeadTooLarge,
                finding => GatewayError::BadFraming(finding.reason()),
            });
        }
        // A reverse proxy tunnels nothing: forwarded, CONNECT would ask the upstream to open
        // a connection of the client's choosing, out of every stage's sight.
        if request.head.method == Method::CONNECT {
            ctx.outcome = Outcome::Blocked;
            let mut answer = short_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This gateway does not tunnel connections.",
                &request.head.headers,
            );
            answer.headers_mut().insert(
                ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            return Ok(Verdict::Respond(answer));
        }
        if let Some(problem) = target_problem(&request.head) {
            return Err(GatewayError::BadFraming(problem));
        }
        let target_len = request
            .head
            .uri
            .path_and_query()
            .map_or(0, |pq| pq.as_str().len());
        if target_len as u64 > self.max_uri_length {
            return Err(GatewayError::UriTooLong {
                limit: self.max_uri_length,
            });
        }
        let headers = &request.head.headers;
        let fields = Fields::of(headers);
        let declared = fields
            .content_length
            .then(|| headers.get(CONTENT_LENGTH))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body_size) {
            return Err(GatewayError::BodyTooLarge {
                limit: self.max_body_size,
            });
        }
        if fields.transfer_encoding {
            if let Some(problem) = transfer_coding_problem(headers) {
                return Err(GatewayError::BadFraming(problem));
            }
        }
        if let Some(problem) = fields.repeated_singleton() {
            return Err(GatewayError::BadFraming(problem));
        }
        if let Some(problem) = host_problem(&request.head) {
            return Err(GatewayError::BadFraming(problem));
        }
        // RFC 9112 §7.1: a malformed chunk size makes the message unreadable. Reading the
        // first chunk here turns that into a 400 before the upstream sees the head.
        if fields.transfer_encoding {
            request.body.prefix(1).await?;
        }
        Ok(Verdict::Continue)
    }
}

/// RFC 9112 §3.2: only `CONNECT` (refused before this) uses the authority-form and only
/// `OPTIONS` the asterisk-form; any other method's target is origin-form or absolute-form.
fn target_problem(head: &http::request::Parts) -> Option<&'static str> {
    let uri = &head.uri;
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Some("an authority-form request target is for CONNECT only");
    }
    if uri.path() == "*" && head.method != Method::OPTIONS {
        return Some("an asterisk-form request target is for OPTIONS only");
    }
    None
}

/// RFC 9112 §6.1 and §7: palisade decodes only `chunked`, applied once. Any other coding
/// would reach the stages (WAF, CSRF, uploads) still encoded while the upstream, told
/// nothing (the field is hop-by-hop), reads the bytes as they are.
fn transfer_coding_problem(headers: &HeaderMap) -> Option<&'static str> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    let first = codings.next()?;
    let single_chunked = first.eq_ignore_ascii_case(b"chunked") && codings.next().is_none();
    (!single_chunked).then_some("transfer-encoding other than a single chunked")
}

/// The framing fields a request has, found in one pass over its fields (names compare as
/// numbers), so the checks look up only fields that are there: most requests have none.
#[derive(Debug, Default)]
struct Fields {
    content_length: bool,
    transfer_encoding: bool,
    content_types: usize,
    content_dispositions: usize,
}

impl Fields {
    fn of(headers: &HeaderMap) -> Self {
        let mut fields = Self::default();
        for (name, _) in headers {
            if *name == CONTENT_LENGTH {
                fields.content_length = true;
            } else if *name == TRANSFER_ENCODING {
                fields.transfer_encoding = true;
            } else if *name == CONTENT_TYPE {
                fields.content_types += 1;
            } else if *name == CONTENT_DISPOSITION {
                fields.content_dispositions += 1;
            }
        }
        fields
    }

    /// RFC 9110 §5.3: `Content-Type` and `Content-Disposition` are singletons. Two of them
    /// let palisade and the upstream read different ones: upload inspection would check the
    /// body as one image while the upstream parses a form whose files nobody inspected.
    fn repeated_singleton(&self) -> Option<&'static str> {
        if self.content_types > 1 {
            return Some("more than one content-type");
        }
        (self.content_dispositions > 1).then_some("more than one content-disposition")
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`. RFC 9113 §8.3.1 (and RFC 9112
/// §3.2.2 for absolute-form targets): a `Host` naming another authority than the target's
/// is malformed.
fn host_problem(head: &http::request::Parts) -> Option<&'static str> {
    let mut hosts = head.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one host header");
    }
    if host.is_some_and(|h| !is_authority(h.as_bytes())) {
        return Some("host header is not a host and port");
    }
    // `http::Uri` accepts userinfo (`good.example@evil.example`), which no request may carry.
    if head
        .uri
        .authority()
        .is_some_and(|a| !is_authority(a.as_str().as_bytes()))
    {
        return Some("the request target's authority is not a host and port");
    }
    match (host, head.uri.authority()) {
        (None, None) if head.version == Version::HTTP_11 => Some("http/1.1 request without host"),
        (Some(host), Some(authority))
            if !host
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Some("host header differs from the request target's authority")
        }
        _ => None,
    }
}

/// RFC 9110 §7.2: `Host` is `uri-host [ ":" port ]`: a registered name (letters, digits,
/// `-._~`, sub-delims and percent-escapes), an IPv4 address or a bracketed IPv6 literal. An
/// `@`, `/`, `\`, quote or space would let the application, a cache or a URL builder read a
/// different host than palisade did (`good.example@evil.example`). So would a comma, the one
/// sub-delim refused: palisade passes the host on in `X-Forwarded-Host`, which applications
/// read as a list (`good.example,evil.example` names two hosts there), and no DNS name or
/// address holds one.
fn is_authority(host: &[u8]) -> bool {
    const AUTHORITY: ByteSet = ByteSet::alphanumeric_and(b"-._~%!$&'()*+;=:[]");
    let host = host.trim_ascii();
    !host.is_empty() && AUTHORITY.holds_all(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, target: &str, hosts: &[&str]) -> http::request::Parts {
        let mut builder = http::Request::get(target).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn hosts_must_be_single_present_and_agree_with_the_target() {
        let v11 = Version::HTTP_11;
        assert_eq!(host_problem(&head(v11, "/", &["a"])), None);
        assert_eq!(host_problem(&head(Version::HTTP_10, "/", &[])), None);
        assert_eq!(
            host_problem(&head(Version::HTTP_2, "http://a:1/", &[])),
            None
        );
        assert_eq!(host_problem(&head(v11, "http://A:1/x", &["a:1"])), None);
        assert!(host_problem(&head(v11, "/", &[])).is_some());
        assert!(host_problem(&head(v11, "/", &["a", "a"])).is_some());
        assert!(host_problem(&head(v11, "http://evil/x", &["a"])).is_some());
        assert!(host_problem(&head(Version::HTTP_2, "http://a/", &["admin"])).is_some());
        for odd in [
            "good@evil",
            "good/..",
            "good\\evil",
            "\"good\"",
            "a<b",
            "good,evil",
        ] {
            assert!(host_problem(&head(v11, "/", &[odd])).is_some(), "{odd}");
        }
        assert_eq!(host_problem(&head(v11, "/", &["[::1]:8080"])), None);
        let userinfo = head(Version::HTTP_2, "http://good.example@evil.example/", &[]);
        assert!(host_problem(&userinfo).is_some());
    }

    #[test]
    fn targets_take_the_form_their_method_allows() {
        let target = |method: Method, target: &str| {
            let head = http::Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .expect("request")
                .into_parts()
                .0;
            target_problem(&head)
        };
        assert_eq!(target(Method::GET, "/x?y"), None);
        assert_eq!(target(Method::GET, "http://a:80/x"), None);
        assert_eq!(target(Method::OPTIONS, "*"), None);
        assert!(target(Method::GET, "a:80").is_some());
        assert!(target(Method::POST, "a:80").is_some());
        assert!(target(Method::GET, "*").is_some());
        assert!(target(Method::POST, "*").is_some());
    }

    /// The one pass finds the framing fields and counts the singletons' copies, whatever
    /// else the request carries and in whatever order.
    #[test]
    fn repeated_singletons_are_refused_and_framing_fields_found() {
        let fields = |pairs: &[(http::HeaderName, &'static str)]| {
            let mut headers = HeaderMap::new();
            headers.append("x-other", http::HeaderValue::from_static("1"));
            for (name, value) in pairs {
                headers.append(name.clone(), http::HeaderValue::from_static(value));
            }
            Fields::of(&headers)
        };
        let plain = fields(&[
            (CONTENT_TYPE, "text/plain"),
            (CONTENT_DISPOSITION, "inline"),
        ]);
        assert_eq!(plain.repeated_singleton(), None);
        assert!(!plain.content_length && !plain.transfer_encoding);
        let two_types = fields(&[(CONTENT_TYPE, "text/plain"), (CONTENT_TYPE, "image/png")]);
        assert_eq!(
            two_types.repeated_singleton(),
            Some("more than one content-type")
        );
        let two_dispositions = fields(&[
            (CONTENT_DISPOSITION, "inline"),
            (CONTENT_LENGTH, "3"),
            (CONTENT_DISPOSITION, "attachment"),
            (TRANSFER_ENCODING, "chunked"),
        ]);
        assert_eq!(
            two_dispositions.repeated_singleton(),
            Some("more than one content-disposition")
        );
        assert!(two_dispositions.content_length && two_dispositions.transfer_encoding);
    }

    #[test]
    fn only_a_single_chunked_coding_is_accepted() {
        let codings = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(TRANSFER_ENCODING, http::HeaderValue::from_static(value));
            }
            transfer_coding_problem(&headers)
        };
        assert_eq!(codings(&[]), None);
        assert_eq!(codings(&["chunked"]), None);
        assert_eq!(codings(&["CHUNKED"]), None);
        assert_eq!(codings(&["\tchunked "]), None);
        for bad in [
            &["identity, chunked"][..],
            &["gzip, chunked"],
            &["chunked, chunked"],
            &["chunked", "chunked"],
            &["chunked, identity"],
            &["identity"],
        ] {
            assert!(codings(bad).is_some(), "{bad:?}");
        }
    }
}
