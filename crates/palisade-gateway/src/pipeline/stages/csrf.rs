//! Stage 6: CSRF protection, and the token endpoint `GET /.palisade/csrf`.
//!
//! Unsafe requests (anything but GET, HEAD, OPTIONS, TRACE) that ride on a cookie
//! credential (a palisade session, or a JWT read from a cookie) need a token bound to that
//! credential, in the `[csrf] header` or, for classic HTML forms, the `_csrf` field of an
//! urlencoded body. The policy (`palisade_policy::csrf`) decides; this stage gathers what it
//! needs from the request, reads a bounded form body only when the header is absent, and
//! turns a refusal into a 403 and a `csrf.refused` event.
//!
//! The session itself was validated (and rotated when due) by the identity stage, which
//! needs a valid session to name the user; this stage only reads its result.

use std::sync::Arc;

use http::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue, ORIGIN};
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use palisade_policy::clock::Clock;
use palisade_policy::csrf::form::is_urlencoded;
use palisade_policy::csrf::{
    Csrf, CsrfPass, CsrfRefusal, CsrfRequest, CsrfVerdict, TOKEN_PATH, TokenEndpoint,
};

use crate::body::{self, GatewayBody};
use crate::error::GatewayError;
use crate::events::Event;
use crate::metrics::{Metrics, SeriesCache};
use crate::pipeline::{GatewayRequest, Outcome, RequestContext, RequestStage, Verdict};
use crate::services::Services;

/// The most body read to find the `_csrf` form field. Forms put it first in practice, and
/// a token is under 2 KiB; a bigger body is searched only in its first 64 KiB.
const FORM_PREFIX: usize = 64 * 1024;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The CSRF stage.
#[derive(Debug)]
pub struct CsrfStage {
    csrf: Csrf,
    header: HeaderName,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// The `safe_method` series, counted on most requests.
    safe_method: SeriesCache,
}

impl CsrfStage {
    /// The stage over the shared CSRF service; `None` when `[csrf] enabled = false`.
    pub fn new(services: &Services) -> Option<Self> {
        let csrf = services.sessions.csrf.clone();
        if !csrf.settings().enabled {
            return None;
        }
        let header = HeaderName::from_bytes(csrf.settings().header.as_bytes())
            .expect("[csrf] header is validated as a header name when the configuration loads");
        Some(Self {
            csrf,
            header,
            clock: Arc::clone(&services.clock),
            metrics: Arc::clone(&services.metrics),
            safe_method: SeriesCache::default(),
        })
    }
}

impl RequestStage for CsrfStage {
    fn name(&self) -> &'static str {
        "csrf"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        let binding = ctx.session.as_ref().and_then(|s| s.csrf_binding());
        if request.head.uri.path() == TOKEN_PATH {
            let answer = self.token_endpoint(&request.head, binding, ctx);
            return Ok(Verdict::Respond(answer));
        }
        // A WAF `skip` rule naming `csrf` turned the check off for this request.
        if crate::waf::phase_skipped(ctx, palisade_expr::Phase::Csrf) {
            self.metrics.csrf_checks.inc(&["skipped"]);
            return Ok(Verdict::Continue);
        }
        match self.decide(request, binding.as_deref()).await? {
            CsrfVerdict::Pass(CsrfPass::SafeMethod) => {
                let label = pass_label(CsrfPass::SafeMethod);
                let checks = &self.metrics.csrf_checks;
                checks.inc_cached(&self.safe_method, &[label]);
                Ok(Verdict::Continue)
            }
            CsrfVerdict::Pass(pass) => {
                self.metrics.csrf_checks.inc(&[pass_label(pass)]);
                Ok(Verdict::Continue)
            }
            CsrfVerdict::Refuse(reason) => {
                self.metrics.csrf_checks.inc(&[reason.as_str()]);
                ctx.publish(Event::CsrfRefused {
                    request: ctx.request_info(&request.head),
                    reason: reason.as_str(),
                });
                ctx.outcome = Outcome::Blocked;
                Ok(Verdict::Respond(refusal(reason, &request.head.headers)))
            }
        }
    }
}

impl CsrfStage {
    /// The decision. The body is read (up to [`FORM_PREFIX`]) only when the token is
    /// missing from the header and the body is an urlencoded form that may hold it.
    async fn decide(
        &self,
        request: &mut GatewayRequest,
        binding: Option<&str>,
    ) -> Result<CsrfVerdict, GatewayError> {
        let GatewayRequest { head, body } = request;
        // Most requests: decided by the method alone, without looking up four headers or
        // reading the clock (the stage exists only while the check is on).
        if palisade_policy::csrf::check::is_safe_method(head.method.as_str()) {
            return Ok(CsrfVerdict::Pass(CsrfPass::SafeMethod));
        }
        let now = self.clock.now_ms();
        let mut input = self.csrf_request(head, binding);
        let verdict = self.csrf.check(&input, now);
        let content_type = head.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
        let missing = verdict == CsrfVerdict::Refuse(CsrfRefusal::Missing);
        if !missing || input.header_token.is_some() || !content_type.is_some_and(is_urlencoded) {
            return Ok(verdict);
        }
        body.prefix(FORM_PREFIX).await?;
        let whole = body.is_fully_buffered();
        // Already buffered: this second call reads nothing more.
        let fields = complete_fields(body.prefix(FORM_PREFIX).await?, whole);
        let token = self.csrf.form_token(content_type, fields);
        input.form_token = token.as_deref();
        Ok(self.csrf.check(&input, now))
    }

    /// What the policy needs to know about the request.
    fn csrf_request<'a>(
        &self,
        head: &'a http::request::Parts,
        binding: Option<&'a str>,
    ) -> CsrfRequest<'a> {
        let headers = &head.headers;
        let bytes = |name: &HeaderName| headers.get(name).map(HeaderValue::as_bytes);
        let host = bytes(&HOST).or_else(|| head.uri.authority().map(|a| a.as_str().as_bytes()));
        CsrfRequest {
            method: head.method.as_str(),
            path: head.uri.path(),
            binding,
            header_token: bytes(&self.header),
            form_token: None,
            sec_fetch_site: bytes(&SEC_FETCH_SITE),
            origin: bytes(&ORIGIN),
            host,
        }
    }

    /// `GET /.palisade/csrf`: a fresh token for this request's session, same-origin only.
    fn token_endpoint(
        &self,
        head: &http::request::Parts,
        binding: Option<String>,
        ctx: &mut RequestContext,
    ) -> Response<GatewayBody> {
        if head.method != Method::GET {
            let mut response = json(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let input = self.csrf_request(head, binding.as_deref());
        match self.csrf.token_endpoint(&input, self.clock.now_ms()) {
            TokenEndpoint::Token(body) => {
                let mut response = Response::new(body::full(body));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            TokenEndpoint::CrossSite => {
                ctx.outcome = Outcome::Blocked;
                ctx.publish(Event::CsrfRefused {
                    request: ctx.request_info(head),
                    reason: CsrfRefusal::CrossSite.as_str(),
                });
                json(StatusCode::FORBIDDEN, "cross_site")
            }
            TokenEndpoint::NoSession => json(StatusCode::UNAUTHORIZED, "no_session"),
        }
    }
}

/// The fields of an urlencoded body that arrived whole: when only a prefix was read, the
/// last field may be cut short, so it is left out rather than read as a truncated token.
fn complete_fields(prefix: &[u8], whole: bool) -> &[u8] {
    if whole {
        return prefix;
    }
    match prefix.iter().rposition(|&b| b == b'&') {
        Some(end) => &prefix[..end],
        None => &[],
    }
}

fn pass_label(pass: CsrfPass) -> &'static str {
    match pass {
        CsrfPass::Disabled => "disabled",
        CsrfPass::SafeMethod => "safe_method",
        CsrfPass::ExemptPath => "exempt_path",
        CsrfPass::NoCookieCredential => "no_cookie_credential",
        CsrfPass::ValidToken => "valid_token",
    }
}

/// The 403: a short JSON or HTML body by `Accept`, never cached.
fn refusal(reason: CsrfRefusal, request_headers: &HeaderMap) -> Response<GatewayBody> {
    let accept = request_headers.get(ACCEPT).map(HeaderValue::as_bytes);
    let (content_type, text) = reason.body(accept);
    let mut response = Response::new(body::full(text));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("palisade-mitigated"),
        HeaderValue::from_static("csrf"),
    );
    response
}

/// A JSON answer of the token endpoint: `{"error": "csrf", "reason": ...}`.
fn json(status: StatusCode, reason: &str) -> Response<GatewayBody> {
    let text = serde_json::json!({ "error": "csrf", "reason": reason }).to_string();
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_read_in_part_loses_its_possibly_cut_last_field() {
        assert_eq!(
            complete_fields(b"_csrf=abc&name=x", true),
            b"_csrf=abc&name=x"
        );
        assert_eq!(complete_fields(b"_csrf=abc&name=x", false), b"_csrf=abc");
        assert_eq!(complete_fields(b"_csrf=ab", false), b"");
    }
}
