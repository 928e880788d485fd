//! Managed attack detection in the gateway: the request as `palisade_waf` sees it, the
//! verdict computed at most once per request (by the first rule reading a `waf.score*`
//! field, or by the managed stage), and the event a block or a log-mode match publishes.
//!
//! The engine gets the head as received (raw path and query, every header), the address
//! the connection arrived on, and the body prefix up to `[waf] body_limit` when the body is
//! declared as text (forms, multipart, JSON, XML, text, or undeclared), or is declared as
//! media, archives or opaque bytes on a path no `[[upload]]` rule inspects. The engine
//! reads such a body only when its bytes are text (a form sent as `image/png`): real media
//! are the upload checks' business, and reading them as text only produces noise.

use std::cell::OnceCell;
use std::net::IpAddr;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use palisade_policy::upload::UploadConfig;
use palisade_waf::{Engine, Header, Request, Scores, Verdict};

use crate::error::GatewayError;
use crate::pipeline::GatewayRequest;
use crate::pipeline::stages::upload::normalise as upload_path;

/// What the engine inspects of one request, borrowed from the pipeline's request.
#[derive(Debug, Clone, Copy)]
pub struct Inspection<'a> {
    /// The engine of the configuration in force.
    pub engine: &'a Engine,
    /// The request head.
    pub head: &'a http::request::Parts,
    /// The body prefix to inspect (empty when the body is not read).
    pub body: &'a [u8],
    /// Whether the body goes on past `body`.
    pub body_truncated: bool,
    /// The address the connection arrived on.
    pub local_addr: Option<IpAddr>,
}

impl Inspection<'_> {
    /// Runs every detector once.
    pub fn run(&self) -> Verdict {
        let mut headers: Vec<Header<'_>> = self
            .head
            .headers
            .iter()
            .map(|(name, value)| Header::lower_case(name.as_str(), value.as_bytes()))
            .collect();
        // HTTP/2 names the host in `:authority`, which is no field: the detectors that read
        // `Host` (an address as host, ...) see it there as they see an HTTP/1.1 `Host`.
        if self.head.version >= http::Version::HTTP_2
            && !self.head.headers.contains_key(http::header::HOST)
            && let Some(authority) = self.head.uri.authority()
        {
            headers.push(Header::lower_case("host", authority.as_str().as_bytes()));
        }
        // An HTTP/1 request-target in absolute form (`GET http://host/ HTTP/1.1`) is what
        // proxies receive, not origin servers: the engine sees it whole. HTTP/2 always
        // carries scheme and authority, so only its path and query are the target.
        let absolute;
        let target = match (self.head.uri.scheme(), version_token(self.head.version)) {
            (Some(_), version) if !version.is_empty() => {
                absolute = self.head.uri.to_string();
                absolute.as_bytes()
            }
            _ => self
                .head
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        };
        self.engine.inspect(&Request {
            method: self.head.method.as_str().as_bytes(),
            target,
            version: version_token(self.head.version),
            headers: &headers,
            body: self.body,
            body_truncated: self.body_truncated,
            local_addr: self.local_addr,
        })
    }
}

/// The version as the engine expects it: the HTTP/1 token, empty for HTTP/2 and later
/// (their framing has no version line to abuse).
fn version_token(version: http::Version) -> &'static [u8] {
    match version {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_11 => b"HTTP/1.1",
        _ => b"",
    }
}

/// A verdict computed on first use: rules that read `waf.score*` fields ask for it during
/// evaluation; the managed stage takes it afterwards instead of inspecting again.
#[derive(Debug)]
pub struct LazyVerdict<'a> {
    inspection: Inspection<'a>,
    verdict: OnceCell<Verdict>,
}

impl<'a> LazyVerdict<'a> {
    /// A verdict that `inspection` computes when first asked for.
    pub fn new(inspection: Inspection<'a>) -> Self {
        Self {
            inspection,
            verdict: OnceCell::new(),
        }
    }

    /// The scores, inspecting the request now if no one asked before.
    pub fn scores(&self) -> &Scores {
        &self.verdict.get_or_init(|| self.inspection.run()).scores
    }

    /// The verdict, if it was computed.
    pub fn into_verdict(self) -> Option<Verdict> {
        self.verdict.into_inner()
    }
}

/// Whether the request has a body the engine should read: one is on its way (whatever the
/// framing: `Content-Length`, chunked, HTTP/2 DATA frames), and it is declared as text or
/// no `[[upload]]` rule inspects it. A body declared as media on an upload path is left
/// to the upload checks, which judge its bytes while it streams (reading it here first
/// would hold it in memory and answer `Expect: 100-continue` before they could refuse
/// it); anywhere else the engine reads it, and inspects it when its bytes are text (a form
/// sent as `image/png` to an application that parses bodies whatever their type).
pub fn reads_body(request: &GatewayRequest, uploads: &UploadConfig) -> bool {
    let pending = !request.body.is_fully_buffered() || !request.body.buffered().is_empty();
    pending && (text_like(&request.head) || !is_upload(&request.head, uploads))
}

/// Whether an `[[upload]]` rule inspects this request.
fn is_upload(head: &http::request::Parts, uploads: &UploadConfig) -> bool {
    !uploads.rules.is_empty()
        && uploads
            .rule_for(head.method.as_str(), &upload_path(head.uri.path()))
            .is_some()
}

/// Whether the declared type is one the engine reads as text (or none is declared).
fn text_like(head: &http::request::Parts) -> bool {
    !head
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| palisade_waf::extract::opaque_type(v.as_bytes()))
}

/// Reads up to `cap` bytes of the body into the request's prefix (the rest keeps streaming
/// to the upstream later) and says whether the body goes on past them. Afterwards the
/// inspected bytes are `&request.body.buffered()[..len]`, `len` being the first value.
pub async fn read_body(
    request: &mut GatewayRequest,
    cap: usize,
) -> Result<(usize, bool), GatewayError> {
    let declared: Option<u64> = request
        .head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let seen = request.body.prefix(cap).await?.len();
    let truncated = match declared {
        Some(declared) => declared > cap as u64,
        None => seen > cap || !request.body.is_fully_buffered(),
    };
    Ok((seen.min(cap), truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method("POST").uri("/upload");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn text_bodies_are_read_and_media_bodies_only_off_upload_paths() {
        for text in [
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
        ] {
            assert!(text_like(&head(&[("content-type", text)])), "{text}");
        }
        assert!(text_like(&head(&[])));
        for media in ["image/png", "Application/Octet-Stream; x=1", "video/mp4"] {
            assert!(!text_like(&head(&[("content-type", media)])), "{media}");
        }
        let section = palisade_policy::upload::UploadSection::with_path("/upload");
        let uploads = UploadConfig::from_sections(&[section], None).expect("valid");
        assert!(is_upload(&head(&[]), &uploads));
        assert!(!is_upload(&head(&[]), &UploadConfig::default()));
        let empty = GatewayRequest {
            head: head(&[("content-type", "application/json")]),
            body: crate::body::RequestBody::empty(),
        };
        assert!(!reads_body(&empty, &UploadConfig::default()));
    }

    #[test]
    fn the_verdict_is_computed_once_and_handed_on() {
        let engine = Engine::new(palisade_waf::WafSettings::default());
        let head = http::Request::get("/s?q=1%27%20or%20%271%27%3D%271")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let lazy = LazyVerdict::new(Inspection {
            engine: &engine,
            head: &head,
            body: b"",
            body_truncated: false,
            local_addr: None,
        });
        assert!(lazy.scores().overall() <= 20);
        let verdict = lazy.into_verdict().expect("computed on first use");
        assert_eq!(verdict.action, palisade_waf::Action::Block);
    }

    /// HTTP/2's `:authority` is read as HTTP/1.1's `Host` is.
    #[test]
    fn an_http2_authority_is_inspected_as_the_host() {
        let engine = Engine::new(palisade_waf::WafSettings::default());
        let finds_address_host = |head: &http::request::Parts| {
            let verdict = Inspection {
                engine: &engine,
                head,
                body: b"",
                body_truncated: false,
                local_addr: None,
            }
            .run();
            verdict
                .findings
                .iter()
                .any(|finding| finding.reason == "host is an ip address")
        };
        let h2 = |uri: &str| {
            let request = http::Request::get(uri).version(http::Version::HTTP_2);
            request.body(()).expect("request").into_parts().0
        };
        assert!(finds_address_host(&h2("https://203.0.113.9/")));
        assert!(!finds_address_host(&h2("https://shop.example/")));
        let h1 = http::Request::get("/").header("host", "203.0.113.9");
        let h1 = h1.body(()).expect("request").into_parts().0;
        assert!(finds_address_host(&h1));
    }
}
