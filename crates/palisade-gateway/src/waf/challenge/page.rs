//! The interstitial page: self-contained HTML (inline style and script, no external
//! resources) and the Content-Security-Policy it is served with.
//!
//! The page cannot live under palisade's usual policy (`default-src 'self'` refuses inline
//! scripts), and loading its script from a second URL would cost a round trip and a route. So
//! it carries its own, narrower policy: nothing may load (`default-src 'none'`) except the one
//! inline script and style whose SHA-256 hashes the policy names, and the form may post only
//! to this origin. The security-headers stage keeps this policy instead of replacing it.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::body::{self, GatewayBody};
use crate::pipeline::stages::security_headers::OwnContentSecurityPolicy;

const TEMPLATE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("solve.js");
const STYLE: &str = include_str!("page.css");

/// What one rendering of the page shows.
#[derive(Debug)]
pub struct PageContent<'a> {
    /// The signed puzzle.
    pub token: &'a str,
    /// Its difficulty in leading zero bits.
    pub difficulty: u8,
    /// Where the answer is posted.
    pub action: &'a str,
    /// The same-origin path to return to once solved.
    pub return_to: &'a str,
    /// A sentence shown above the status line (a failed attempt), if any.
    pub notice: Option<&'a str>,
    /// The request id, for support.
    pub request_id: &'a str,
}

/// The page's policy: only its own inline script and style, posting only to this origin.
pub fn content_security_policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let policy = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
            hash_source(SCRIPT),
            hash_source(STYLE)
        );
        HeaderValue::from_str(&policy).expect("a CSP of ASCII hashes is a valid header value")
    })
}

/// `sha256-<base64>` of an inline element's exact text (CSP Level 3, §8.4).
fn hash_source(text: &str) -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page as a `status` response with its own policy.
pub fn render(status: StatusCode, content: &PageContent<'_>) -> Response<GatewayBody> {
    let notice = content
        .notice
        .map(|text| format!("<p class=\"warning\">{}</p>", escape(text)))
        .unwrap_or_default();
    let html = TEMPLATE
        .replace("{{STYLE}}", STYLE)
        .replace("{{NOTICE}}", &notice)
        .replace("{{ACTION}}", &escape(content.action))
        .replace("{{DIFFICULTY}}", &content.difficulty.to_string())
        .replace("{{TOKEN}}", &escape(content.token))
        .replace("{{RETURN}}", &escape(content.return_to))
        .replace("{{REQUEST_ID}}", &escape(content.request_id))
        .replace("{{SCRIPT}}", SCRIPT);
    let mut response = Response::new(body::full(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_SECURITY_POLICY, content_security_policy().clone());
    response.extensions_mut().insert(OwnContentSecurityPolicy);
    response
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(return_to: &'a str, notice: Option<&'a str>) -> PageContent<'a> {
        PageContent {
            token: "p1.1.16.AAAA.BBBB",
            difficulty: 16,
            action: "/.palisade/challenge",
            return_to,
            notice,
            request_id: "r1",
        }
    }

    fn text(response: Response<GatewayBody>) -> String {
        use http_body_util::BodyExt as _;
        let body = block_on(response.into_body().collect()).expect("body");
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let csp = content_security_policy().to_str().expect("ascii");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert!(csp.contains(&hash_source(SCRIPT)));
        assert!(csp.contains(&hash_source(STYLE)));
        assert!(!csp.contains("unsafe-inline"));
        let page = text(render(StatusCode::FORBIDDEN, &content("/", None)));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = text(render(StatusCode::FORBIDDEN, &content("/", None)));
        for needle in ["src=", "href=", "http://", "https://", "@import", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    #[test]
    fn values_are_escaped_into_the_page() {
        let page = text(render(
            StatusCode::FORBIDDEN,
            &content("/a\"><script>x</script>", Some("<b>")),
        ));
        assert!(page.contains("value=\"/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(page.contains("&lt;b&gt;"));
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn the_page_is_marked_as_carrying_its_own_policy_and_never_cached() {
        let response = render(StatusCode::FORBIDDEN, &content("/", None));
        assert!(
            response
                .extensions()
                .get::<OwnContentSecurityPolicy>()
                .is_some()
        );
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }
}
