//! Palisade's own refusals of gRPC calls, as gRPC answers.
//!
//! A gRPC client reads a call's outcome from `grpc-status`, not from the HTTP status: a 429
//! page from palisade reached it as a bare HTTP error (`UNAVAILABLE`, no message). When
//! palisade itself refuses a request whose `Content-Type` is gRPC's (`application/grpc`,
//! `+proto`, `-web`, ...) with a status of 400 or more, the answer becomes a gRPC
//! "Trailers-Only" response: HTTP 200, the request's content type, `grpc-status` with the
//! code that says what happened and `grpc-message` saying it was palisade, no body. Every
//! other header palisade set stays (`Retry-After`, `RateLimit-*`, `palisade-mitigated`), so
//! the client sees them as the call's trailing metadata. Upstream answers are never changed.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::body::{self, GatewayBody};

/// The request's content type when it is a gRPC (or gRPC-Web) call's.
pub fn request_type(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(CONTENT_TYPE)
        .filter(|v| is_grpc_type(v.as_bytes()))
        .cloned()
}

/// Whether a `Content-Type` value is gRPC's: `application/grpc`, alone or followed by
/// `+format`, `-web...` or parameters, in any letter case (`application/grpcx` is not).
pub fn is_grpc_type(value: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    let Some(head) = value.get(..PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &value[PREFIX.len()..];
    matches!(rest.first(), None | Some(b'+' | b';' | b' ' | b'\t'))
        || rest
            .get(..4)
            .is_some_and(|web| web.eq_ignore_ascii_case(b"-web"))
}

/// Makes palisade's own refusal `parts` / `body` of a gRPC call of `content_type` a
/// Trailers-Only gRPC answer. Answers below 400 are left as they are.
pub fn refusal(
    parts: &mut http::response::Parts,
    body: GatewayBody,
    content_type: HeaderValue,
) -> GatewayBody {
    let status = parts.status;
    if status.as_u16() < 400 {
        return body;
    }
    let (code, what) = code_for(status);
    let message = match parts.headers.get("palisade-mitigated") {
        Some(by) => format!(
            "palisade: {what} ({}, HTTP {})",
            String::from_utf8_lossy(by.as_bytes()),
            status.as_u16()
        ),
        None => format!("palisade: {what} (HTTP {})", status.as_u16()),
    };
    parts.status = StatusCode::OK;
    let headers = &mut parts.headers;
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(&message)) {
        headers.insert("grpc-message", message);
    }
    drop(body);
    body::full(Bytes::new())
}

/// The gRPC status code for palisade's HTTP status, and what to tell the client.
fn code_for(status: StatusCode) -> (u16, &'static str) {
    // Codes from grpc/doc/statuscodes.md.
    const INTERNAL: u16 = 13;
    const RESOURCE_EXHAUSTED: u16 = 8;
    const UNAVAILABLE: u16 = 14;
    match status.as_u16() {
        400 => (INTERNAL, "the request is not valid HTTP"),
        401 => (16, "unauthenticated"),
        403 => (7, "refused by the security policy"),
        404 => (12, "not found"),
        408 => (UNAVAILABLE, "the request did not arrive in time"),
        413 | 414 | 431 => (RESOURCE_EXHAUSTED, "the request is too large"),
        415 | 422 => (3, "the request's content was refused"),
        429 => (RESOURCE_EXHAUSTED, "rate limited"),
        500 => (INTERNAL, "internal error"),
        502 => (UNAVAILABLE, "the service could not be reached"),
        503 => (UNAVAILABLE, "temporarily unavailable"),
        504 => (UNAVAILABLE, "the service took too long to answer"),
        _ => (2, "refused"),
    }
}

/// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;
    use http_body_util::BodyExt;

    fn refused(
        status: StatusCode,
        extra: &[(&'static str, &'static str)],
    ) -> http::response::Parts {
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("120"));
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        response.into_parts().0
    }

    #[tokio::test]
    async fn a_rate_limited_call_is_resource_exhausted_with_its_headers_kept() {
        let mut parts = refused(
            StatusCode::TOO_MANY_REQUESTS,
            &[("retry-after", "7"), ("palisade-mitigated", "rate_limit")],
        );
        let page = body::full(Bytes::from_static(b"<html>429</html>"));
        let ct = HeaderValue::from_static("application/grpc+proto");
        let body = refusal(&mut parts, page, ct);
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["grpc-status"], "8");
        assert_eq!(
            parts.headers["grpc-message"],
            "palisade: rate limited (rate_limit, HTTP 429)"
        );
        assert_eq!(parts.headers[CONTENT_TYPE], "application/grpc+proto");
        assert_eq!(parts.headers["retry-after"], "7");
        assert!(parts.headers.get(CONTENT_LENGTH).is_none());
        assert!(body.is_end_stream());
        assert!(body.collect().await.expect("body").to_bytes().is_empty());
    }

    #[test]
    fn each_refusal_has_the_code_that_says_what_happened() {
        for (status, code) in [
            (400, "13"),
            (401, "16"),
            (403, "7"),
            (408, "14"),
            (413, "8"),
            (502, "14"),
            (503, "14"),
            (504, "14"),
            (500, "13"),
            (418, "2"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            let mut parts = refused(status, &[]);
            let ct = HeaderValue::from_static("application/grpc");
            let _ = refusal(&mut parts, body::full(Bytes::new()), ct);
            assert_eq!(parts.headers["grpc-status"], code, "{status}");
            assert_eq!(parts.status, StatusCode::OK);
        }
    }

    #[test]
    fn answers_below_400_are_left_alone() {
        let mut parts = refused(StatusCode::FOUND, &[]);
        let ct = HeaderValue::from_static("application/grpc");
        let _ = refusal(&mut parts, body::full(Bytes::from_static(b"x")), ct);
        assert_eq!(parts.status, StatusCode::FOUND);
        assert!(parts.headers.get("grpc-status").is_none());
        assert_eq!(parts.headers[CONTENT_TYPE], "text/html");
    }

    #[test]
    fn only_grpc_content_types_are_calls() {
        let mut headers = HeaderMap::new();
        assert!(request_type(&headers).is_none());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(request_type(&headers).is_none());
        for grpc in [
            "application/grpc",
            "application/grpc+json",
            "application/grpc-web-text",
            "Application/gRPC",
            "application/grpc; charset=utf-8",
        ] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(grpc));
            assert_eq!(request_type(&headers).expect("grpc"), grpc);
        }
        for other in ["application/grpcx", "application/grp", "text/grpc"] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(other));
            assert!(request_type(&headers).is_none(), "{other}");
        }
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("50% off: \u{e9}\n"), "50%25 off: %C3%A9%0A");
        assert_eq!(percent_encode("plain text"), "plain text");
    }
}
