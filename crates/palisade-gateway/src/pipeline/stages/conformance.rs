//! Stage 0: refuse requests HTTP itself forbids, before any other stage reads them.
//!
//! hyper has already refused malformed heads (obs-fold, differing duplicate
//! `Content-Length`, bad methods) with 400. This stage adds what hyper lets through:
//! framing violations seen on the raw connection ([`crate::framing`]), request targets over
//! `max_uri_length` (414), declared bodies over `max_body_size` (413), and, for chunked
//! bodies, a malformed first chunk: the first frame is read before anything is forwarded so
//! a bad chunk size is a 400 that never reaches the upstream.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};

use crate::config::ServerConfig;
use crate::error::GatewayError;
use crate::pipeline::{GatewayRequest, RequestContext, RequestStage, Verdict};

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

#[async_trait::async_trait]
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
            return Err(GatewayError::BadFraming(finding.reason()));
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
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body_size) {
            return Err(GatewayError::BodyTooLarge {
                limit: self.max_body_size,
            });
        }
        // RFC 9112 §7.1: a malformed chunk size makes the message unreadable. Reading the
        // first chunk here turns that into a 400 before the upstream sees the head.
        if headers.contains_key(TRANSFER_ENCODING) {
            request.body.prefix(1).await?;
        }
        Ok(Verdict::Continue)
    }
}
