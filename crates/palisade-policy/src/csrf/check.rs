//! The CSRF decision for one request.
//!
//! Order, each step a reason to stop:
//! 1. disabled, a safe method (RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE), an exempt path,
//!    or no cookie credential (a bearer token is not sent by the browser on its own, so a
//!    forged request cannot carry one) → pass;
//! 2. a cross-site `Sec-Fetch-Site`, or an `Origin` that is neither the request's host nor
//!    trusted → refuse, even with a valid token (defence in depth);
//! 3. no token in the header or the form field → refuse as missing;
//! 4. the token must verify, be unexpired and name this request's session.

use crate::clock::UnixMillis;

use super::token::CsrfKey;
use super::{CsrfRefusal, CsrfSettings};

/// What the gateway knows about a request, for the CSRF decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsrfRequest<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The normalised path (dot-segments resolved, no query).
    pub path: &'a str,
    /// The CSRF binding of the request's cookie credential: the public id of a valid
    /// palisade session, or the binding of a JWT read from a cookie. `None` when the
    /// request carries no cookie credential (anonymous, or bearer token only).
    pub binding: Option<&'a str>,
    /// The token header's value.
    pub header_token: Option<&'a [u8]>,
    /// The form field's value, when the gateway read an urlencoded body.
    pub form_token: Option<&'a str>,
    /// The `Sec-Fetch-Site` header.
    pub sec_fetch_site: Option<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The request's authority (`Host` header or HTTP/2 `:authority`).
    pub host: Option<&'a [u8]>,
}

/// Why a request passed the CSRF check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfPass {
    /// `[csrf] enabled = false`.
    Disabled,
    /// GET, HEAD, OPTIONS or TRACE.
    SafeMethod,
    /// The path is under an exempt prefix.
    ExemptPath,
    /// No cookie credential: nothing ambient for a forged request to use.
    NoCookieCredential,
    /// A valid token for this session.
    ValidToken,
}

/// The CSRF decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfVerdict {
    /// Let the request on.
    Pass(CsrfPass),
    /// Answer 403.
    Refuse(CsrfRefusal),
}

/// Decides one request.
pub fn decide(
    settings: &CsrfSettings,
    key: &CsrfKey,
    req: &CsrfRequest<'_>,
    now: UnixMillis,
) -> CsrfVerdict {
    if let Some(pass) = exemption(settings, req) {
        return CsrfVerdict::Pass(pass);
    }
    let Some(binding) = req.binding else {
        return CsrfVerdict::Pass(CsrfPass::NoCookieCredential);
    };
    if is_cross_site(settings, req) {
        return CsrfVerdict::Refuse(CsrfRefusal::CrossSite);
    }
    let token = match (req.header_token, req.form_token) {
        (Some(header), _) => header.trim_ascii(),
        (None, Some(form)) => form.as_bytes(),
        (None, None) => return CsrfVerdict::Refuse(CsrfRefusal::Missing),
    };
    if token.is_empty() {
        return CsrfVerdict::Refuse(CsrfRefusal::Missing);
    }
    match key.verify(token, binding, now) {
        Ok(_) => CsrfVerdict::Pass(CsrfPass::ValidToken),
        Err(refusal) => CsrfVerdict::Refuse(refusal),
    }
}

fn exemption(settings: &CsrfSettings, req: &CsrfRequest<'_>) -> Option<CsrfPass> {
    if !settings.enabled {
        return Some(CsrfPass::Disabled);
    }
    if is_safe_method(req.method) {
        return Some(CsrfPass::SafeMethod);
    }
    let exempt = settings
        .exempt
        .iter()
        .any(|prefix| req.path.starts_with(prefix.as_str()));
    (exempt && is_plain_path(req.path)).then_some(CsrfPass::ExemptPath)
}

/// Methods that must not change state (RFC 9110 §9.2.1). Every other method, including
/// unknown ones, is treated as unsafe. [`decide`] passes them before anything else is read
/// (when the check is on), so a caller may skip gathering the rest of the request for them.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// An exemption is a hole, so it applies only to paths that cannot mean something else
/// further down the line: no dot-segments, no encoded dots, slashes, backslashes or percent
/// signs (an upstream that decodes twice reads `%252e` as `.`), no backslashes
/// (`/api/webhooks/../admin` must not ride the webhook exemption). A segment is read
/// without its `;parameters`, as servlet containers do: `/api/webhooks/..;/admin` is
/// `/api/admin` to Tomcat.
fn is_plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let dot_segment = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or_default())
        .any(|seg| seg == "." || seg == "..");
    let encoded = ["%2e", "%2f", "%5c", "%25"]
        .iter()
        .any(|e| lower.contains(e));
    path.starts_with('/') && !dot_segment && !encoded && !path.contains('\\')
}

/// Whether the request comes from another site: `Sec-Fetch-Site: cross-site`, an opaque
/// `Origin: null`, or an `Origin` that is neither the host nor trusted. A trusted origin
/// overrides `Sec-Fetch-Site`, which says `cross-site` for it too.
pub fn is_cross_site(settings: &CsrfSettings, req: &CsrfRequest<'_>) -> bool {
    if let Some(origin) = req.origin {
        let Some(origin) = normalize_origin(origin) else {
            return true;
        };
        if settings.trusted_origins.contains(&origin) {
            return false;
        }
        let host = req.host.and_then(normalize_authority);
        if host.is_none_or(|host| authority_of(&origin) != host) {
            return true;
        }
    }
    req.sec_fetch_site
        .is_some_and(|site| site.trim_ascii().eq_ignore_ascii_case(b"cross-site"))
}

/// `scheme://host[:port]` lower-cased, default ports dropped; `None` for `null` or
/// anything else that is not an origin (RFC 6454 §7).
pub(crate) fn normalize_origin(origin: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(origin)
        .ok()?
        .trim()
        .to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme, "http" | "https") || !is_authority(rest) {
        return None;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{authority}"))
}

/// A `Host` value lower-cased, with `:80`/`:443` dropped (the scheme is not known here,
/// and either default port names the same host in practice).
fn normalize_authority(host: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(host).ok()?.trim().to_ascii_lowercase();
    if !is_authority(&text) {
        return None;
    }
    let text = text
        .strip_suffix(":443")
        .or_else(|| text.strip_suffix(":80"))
        .unwrap_or(&text);
    Some(text.to_owned())
}

/// host[:port] with the characters of registered names, IPv4 and bracketed IPv6.
fn is_authority(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

fn authority_of(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, a)| a)
}
