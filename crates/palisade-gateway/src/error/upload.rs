//! The answer to a refused upload: `{"error": "upload refused", "reason": ..., "file": ...}`
//! for clients that ask for JSON, a short HTML page otherwise. Neither carries the
//! refusal's detail (the signature clamd found, the limit crossed): that goes to the
//! `upload.refused` event only.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use palisade_policy::upload::Reason;

use super::{ErrorSource, wants_json};
use crate::body::{self, GatewayBody};
use crate::upload::Refused;

/// Seconds a client is asked to wait when the virus scanner is unavailable.
const SCANNER_RETRY_AFTER: &str = "30";

/// Who caused a refusal: the client, except when the scanner could not give a verdict.
pub(super) fn source(refused: &Refused) -> ErrorSource {
    match refused.refusal.reason {
        Reason::ScannerUnavailable => ErrorSource::Internal,
        _ => ErrorSource::Client,
    }
}

/// The status of a refusal (413, 415, 422, 503 or 400).
pub(super) fn status(refused: &Refused) -> StatusCode {
    StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The response for a refused upload, in the format the client accepts.
pub(super) fn refusal_page(
    refused: &Refused,
    request_headers: &HeaderMap,
) -> Response<GatewayBody> {
    let status = status(refused);
    let (content_type, text) = if wants_json(request_headers) {
        let json = serde_json::to_string(&refused.client_body()).unwrap_or_default();
        ("application/json", json)
    } else {
        ("text/html; charset=utf-8", html(status, refused))
    };
    let mut response = Response::new(body::full(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if refused.refusal.reason == Reason::ScannerUnavailable {
        headers.insert(RETRY_AFTER, HeaderValue::from_static(SCANNER_RETRY_AFTER));
    }
    response
}

fn html(status: StatusCode, refused: &Refused) -> String {
    let code = status.as_u16();
    let title = status.canonical_reason().unwrap_or("Error");
    let sentence = sentence(refused.refusal.reason);
    // The field name is the client's own text: escaped, it cannot become markup.
    let field = refused
        .client_body()
        .file
        .map(|f| format!(" (field <code>{}</code>)", escape(&f)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
         </head>\n<body><h1>Upload refused</h1><p>{sentence}{field}</p></body></html>\n"
    )
}

fn sentence(reason: Reason) -> &'static str {
    match reason {
        Reason::Size => "The upload is too large.",
        Reason::Type => "This type of file is not accepted.",
        Reason::Mismatch => "The file's name or declared type does not match its contents.",
        Reason::Image => "The image is damaged or larger than allowed.",
        Reason::Polyglot => "The image carries content that is not part of an image.",
        Reason::Malware => "The file was refused by the virus scanner.",
        Reason::ScannerUnavailable => "Uploads are temporarily unavailable; try again later.",
        Reason::Malformed => "The upload is not well-formed form data.",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
