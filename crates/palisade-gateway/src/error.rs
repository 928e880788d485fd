//! Gateway errors, who caused them, and the one function that turns each into a response.
//!
//! Every error records its source ([`ErrorSource`]): the client (a malformed or oversized
//! request), the upstream (refused, timed out, broke the protocol) or palisade itself. The
//! pages say what happened in one sentence and never leak internal detail (addresses,
//! messages from the upstream, stack traces): the detail goes to the log, not the client.

use std::fmt;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::{self, GatewayBody};

/// Who caused an error; decides the log level and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something palisade refuses.
    Client,
    /// The upstream application failed to answer properly.
    Upstream,
    /// Palisade itself (or a store it depends on) failed.
    Internal,
}

impl ErrorSource {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Internal => "internal",
        }
    }
}

/// Everything that can stop a request inside the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request's framing is ambiguous (RFC 9112 §6.1, §6.3): smuggling shapes, codings
    /// other than one `chunked`, or an ambiguous host (RFC 9112 §3.2, RFC 9113 §8.3.1).
    #[error("request framing refused: {0}")]
    BadFraming(&'static str),
    /// The request body could not be read as HTTP (bad chunk size).
    #[error("request body unreadable: {0}")]
    BadBody(String),
    /// The client went away before its request was answered: it closed the connection or
    /// reset its HTTP/2 stream while sending the body. Counted as 499; the answer is written
    /// only if the connection still takes it, and nobody reads it.
    #[error("client went away before the answer")]
    ClientClosed,
    /// The request head is longer than `max_header_size` (seen by the framing watch; hyper
    /// answers longer heads than its own buffer with 431 before palisade sees them).
    #[error("request head longer than max_header_size")]
    HeadTooLarge,
    /// The request target is longer than `max_uri_length`.
    #[error("request target longer than {limit} bytes")]
    UriTooLong {
        /// The configured limit.
        limit: u64,
    },
    /// The request body is longer than `max_body_size`.
    #[error("request body longer than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The upstream could not be connected to.
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(String),
    /// The TLS handshake with an `https://` upstream failed (certificate not trusted, for
    /// another name, not TLS on that port); the text says why.
    #[error("upstream TLS failed: {0}")]
    UpstreamTls(String),
    /// The upstream did not answer within `response_timeout` (or connect within
    /// `connect_timeout`).
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The upstream answered something that is not HTTP, or closed mid-response.
    #[error("upstream broke the protocol: {0}")]
    UpstreamProtocol(String),
    /// A state store is down and the operator chose to fail closed.
    #[error("state backend unavailable")]
    StateUnavailable,
    /// A bug or resource failure inside palisade.
    #[error("internal error: {0}")]
    Internal(String),
    /// Upload inspection refused the request (size, type, image, malware, scanner down...).
    #[error("{}", .0.refusal)]
    UploadRefused(Box<crate::upload::Refused>),
    /// The client stopped sending its body for longer than `[server] body_read_timeout`
    /// (or an upload rule's `body_read_timeout`).
    #[error("request body stalled for more than {}s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// The client's body fell below `[server] min_body_rate` bytes per second on average.
    #[error("request body slower than {0} bytes per second")]
    BodyTooSlow(u64),
    /// An upload could not be spooled (disk full, I/O error); nothing was forwarded.
    #[error("upload spool failed: {0}")]
    UploadSpool(String),
    /// Uploads in progress already hold `[spool] max_total` on disk; nothing was forwarded.
    #[error("{0}")]
    UploadSpoolFull(crate::upload::SpoolFull),
}

impl GatewayError {
    /// Who caused this error.
    pub fn source(&self) -> ErrorSource {
        match self {
            Self::BadFraming(_)
            | Self::BadBody(_)
            | Self::ClientClosed
            | Self::HeadTooLarge
            | Self::UriTooLong { .. }
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout(_)
            | Self::BodyTooSlow(_) => ErrorSource::Client,
            Self::UploadRefused(refused) => upload::source(refused),
            Self::UpstreamConnect(_)
            | Self::UpstreamTls(_)
            | Self::UpstreamTimeout
            | Self::UpstreamProtocol(_) => ErrorSource::Upstream,
            Self::StateUnavailable
            | Self::Internal(_)
            | Self::UploadSpool(_)
            | Self::UploadSpoolFull(_) => ErrorSource::Internal,
        }
    }

    /// A short stable name for logs and metrics (`upstream_timeout`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadFraming(_) => "bad_framing",
            Self::BadBody(_) => "bad_body",
            Self::ClientClosed => "client_closed",
            Self::HeadTooLarge => "head_too_large",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UpstreamConnect(_) => "upstream_connect",
            Self::UpstreamTls(_) => "upstream_tls",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamProtocol(_) => "upstream_protocol",
            Self::StateUnavailable => "state_unavailable",
            Self::Internal(_) => "internal",
            Self::UploadRefused(_) => "upload_refused",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyTooSlow(_) => "body_too_slow",
            Self::UploadSpool(_) => "upload_spool",
            Self::UploadSpoolFull(_) => "upload_spool_full",
        }
    }

    /// The response status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadFraming(_) | Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::ClientClosed => CLIENT_CLOSED,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamConnect(_) | Self::UpstreamTls(_) | Self::UpstreamProtocol(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::StateUnavailable | Self::UploadSpoolFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::UploadSpool(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UploadRefused(refused) => upload::status(refused),
            Self::BodyTimeout(_) | Self::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The one mapping from errors to responses: status, a one-sentence page in the format
    /// the client accepts, and `Connection: close` when the connection cannot be trusted to
    /// stay in sync (a client framing error).
    pub fn to_response(&self, request_headers: &HeaderMap) -> Response<GatewayBody> {
        if let Self::UploadRefused(refused) = self {
            return upload::refusal_page(refused, request_headers);
        }
        let sentence = match self {
            Self::BadFraming(_) | Self::BadBody(_) => "The request is not valid HTTP.",
            Self::ClientClosed => "The request was cancelled.",
            Self::HeadTooLarge => "The request headers are too large.",
            Self::UriTooLong { .. } => "The request URL is too long.",
            Self::BodyTooLarge { .. } => "The request body is too large.",
            // Worded for the visitor: which of the two (no connection, TLS refused) is for
            // the log alone.
            Self::UpstreamConnect(_) | Self::UpstreamTls(_) => {
                "The application behind this gateway could not be reached."
            }
            Self::UpstreamProtocol(_) => {
                "The application behind this gateway did not send a valid answer."
            }
            Self::UpstreamTimeout => "The application behind this gateway took too long to answer.",
            Self::StateUnavailable => "The service is temporarily unavailable.",
            Self::Internal(_) | Self::UploadSpool(_) | Self::UploadRefused(_) => {
                "Something went wrong on our side."
            }
            Self::BodyTimeout(_) | Self::BodyTooSlow(_) => {
                "The request body did not arrive in time."
            }
            Self::UploadSpoolFull(_) => "Uploads are temporarily unavailable; try again later.",
        };
        let mut response = short_page(self.status(), sentence, request_headers);
        let retry_after = match self {
            Self::UploadSpoolFull(_) => Some(SPOOL_FULL_RETRY_AFTER),
            Self::StateUnavailable => Some(STATE_UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        // A stalled body leaves the connection mid-message (RFC 9110 §15.5.9: close it).
        if matches!(
            self,
            Self::BadFraming(_)
                | Self::BadBody(_)
                | Self::HeadTooLarge
                | Self::BodyTimeout(_)
                | Self::BodyTooSlow(_)
                | Self::ClientClosed
        ) {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The status recorded for a request whose client went away before palisade answered it
/// (nginx's "client closed request"); nobody is left to read it.
pub const CLIENT_CLOSED: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a valid status code"),
};

/// Seconds a client is asked to wait when the upload spool is full: uploads in progress
/// end within their body timeouts, giving their space back.
const SPOOL_FULL_RETRY_AFTER: &str = "30";

/// Seconds a client is asked to wait when a state store is down and the operator chose to
/// fail closed: the store is tried again every `[state] retry_interval` (default 1 s).
const STATE_UNAVAILABLE_RETRY_AFTER: &str = "1";

/// Whether the client prefers JSON: its `Accept` names `application/json` (or a `+json`
/// type) and not `text/html`. Browsers get HTML.
pub fn wants_json(request_headers: &HeaderMap) -> bool {
    let accept = request_headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let json = accept.contains("application/json") || accept.contains("+json");
    json && !accept.contains("text/html")
}

/// A short page palisade answers with itself (errors, 429): JSON `{"error": ..,
/// "status": ..}` or a minimal HTML page, never cached.
pub fn short_page(
    status: StatusCode,
    sentence: &str,
    request_headers: &HeaderMap,
) -> Response<GatewayBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let (content_type, text) = if wants_json(request_headers) {
        let json = serde_json::json!({
            "error": reason,
            "status": status.as_u16(),
            "message": sentence,
        });
        ("application/json", json.to_string())
    } else {
        let code = status.as_u16();
        let html = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title>\
             </head>\n<body><h1>{code} {reason}</h1><p>{sentence}</p></body></html>\n"
        );
        ("text/html; charset=utf-8", html)
    };
    let mut response = Response::new(body::full(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod upload;

#[cfg(test)]
mod tests;
