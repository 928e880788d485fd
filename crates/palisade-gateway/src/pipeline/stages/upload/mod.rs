//! Stage 7: upload inspection while the body streams in (`[[upload]]`, `[scanner]`).
//!
//! For a request an upload rule covers (method, and prefix of the normalised path), the
//! stage reads the client's body frame by frame, each read bounded by the rule's
//! `body_read_timeout`, and hands every frame to the upload inspection, which spools it
//! (memory, then an unlinked temporary file) and checks it at once. A limit crossed or a
//! type refused answers on that frame, without reading the rest. At the end of the body
//! come the checks that need whole files (decoding, clamd). Only then, and only if every
//! file passed, is the spooled copy forwarded in place of the client's body, with an exact
//! `Content-Length`.
//!
//! This stage never forwards part of a body: until it returns `Continue`, the upstream has
//! seen nothing of the request. It never sends refusal details (signature names, limits)
//! to the client; they go to the `upload.refused` event.

mod path;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use http_body_util::BodyExt;
use palisade_policy::upload::{Reason, RequestHead};
use tracing::{debug, warn};

use crate::body::{self, BoxError, GatewayBody};
use crate::config::Config;
use crate::error::GatewayError;
use crate::events::Event;
use crate::metrics::Metrics;
use crate::pipeline::{GatewayRequest, Outcome, RequestContext, RequestStage, Verdict};
use crate::services::Services;
use crate::upload::{Passed, Refused, ScanOutcome, UploadError, UploadInspection, UploadService};

pub use path::normalise;

/// The upload stage.
#[derive(Debug)]
pub struct Upload {
    service: UploadService,
    metrics: Arc<Metrics>,
}

impl Upload {
    /// The stage for the configuration's `[[upload]]` rules; `None` when there are none.
    pub fn new(config: &Config, services: &Services) -> Option<Self> {
        if config.uploads.rules.is_empty() {
            return None;
        }
        // Paths are compared in lower case (see `path::normalise`).
        let mut uploads = config.uploads.clone();
        for rule in &mut uploads.rules {
            rule.path_prefix = rule.path_prefix.to_lowercase();
        }
        Some(Self {
            service: services.uploads.service(uploads),
            metrics: Arc::clone(&services.metrics),
        })
    }
}

/// Why an upload did not pass: a refusal (answered here, with its event) or a failure
/// (mapped by the gateway like any other error).
#[derive(Debug)]
enum Failure {
    Refused(Box<Refused>),
    Error(GatewayError),
}

impl From<UploadError> for Failure {
    fn from(err: UploadError) -> Self {
        match err {
            UploadError::Refused(refused) => Self::Refused(refused),
            UploadError::Spool(io) => Self::Error(GatewayError::UploadSpool(io.to_string())),
            UploadError::SpoolFull(full) => Self::Error(GatewayError::UploadSpoolFull(full)),
        }
    }
}

impl RequestStage for Upload {
    fn name(&self) -> &'static str {
        "upload"
    }

    /// Boxed: this future (spooling, scanning) is far larger than the other stages', and
    /// inline it would set the size of every request's future; it runs only where an
    /// `[[upload]]` rule is configured.
    fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Result<Verdict, GatewayError>> + Send {
        Box::pin(self.check(request, ctx))
    }
}

impl Upload {
    /// The stage's work: inspects a covered upload as it streams.
    async fn check(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        let path = normalise(request.head.uri.path());
        let started = {
            let head = request_head(&request.head.headers);
            self.service
                .begin(request.head.method.as_str(), &path, head)
        };
        let Some(started) = started else {
            return Ok(Verdict::Continue);
        };
        let outcome = match started {
            Ok(inspection) => inspect(&mut request.body, inspection).await,
            Err(err) => Err(err.into()),
        };
        match outcome {
            Ok((passed, received)) => {
                self.forward(request, ctx, passed, received);
                Ok(Verdict::Continue)
            }
            Err(Failure::Refused(refused)) => {
                Ok(Verdict::Respond(self.refuse(request, ctx, refused)))
            }
            Err(Failure::Error(err)) => {
                if matches!(err, GatewayError::UploadSpoolFull(_)) {
                    self.metrics.uploads.inc(&["refused", "spool_full"]);
                }
                Err(err)
            }
        }
    }

    /// Puts the checked copy in place of the client's body, with its exact length.
    fn forward(
        &self,
        request: &mut GatewayRequest,
        ctx: &RequestContext,
        passed: Passed,
        received: u64,
    ) {
        let length = passed.body.content_length();
        let headers = &mut request.head.headers;
        // The body is already in hand: it goes upstream with a fixed length, and the
        // upstream must not be asked for a `100 Continue` the client was already given.
        headers.remove(TRANSFER_ENCODING);
        headers.remove(EXPECT);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));

        self.metrics.uploads.inc(&["passed", "none"]);
        ctx.publish(Event::UploadPassed {
            request: ctx.request_info(&request.head),
            types: passed
                .files
                .iter()
                .map(|f| f.file.file_type.mime().to_owned())
                .collect(),
            scans: passed
                .files
                .iter()
                .map(|f| scan_name(&f.scan).to_owned())
                .collect(),
            received,
            forwarded: length,
        });
        request.body.replace(passed.body.into_http_body());
    }

    /// Answers a refusal through the gateway's error mapping, with its event and metric.
    fn refuse(
        &self,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
        refused: Box<Refused>,
    ) -> Response<GatewayBody> {
        let event = refused.event();
        self.metrics.uploads.inc(&["refused", event.reason]);
        if refused.refusal.reason == Reason::ScannerUnavailable {
            warn!(request.id = %ctx.id, upload.detail = %event.detail,
                  "virus scanner unavailable; upload refused");
            ctx.outcome = Outcome::Error;
        } else {
            // A client's fault: debug, so that refused uploads cannot flood the log; the
            // `upload.refused` event records it.
            debug!(request.id = %ctx.id, upload.reason = event.reason, "upload refused");
            ctx.outcome = Outcome::Blocked;
        }
        ctx.publish(Event::UploadRefused {
            request: ctx.request_info(&request.head),
            refusal: event,
        });
        GatewayError::UploadRefused(refused).to_response(&request.head.headers)
    }
}

/// The headers inspection depends on. Values that are not visible ASCII are treated as
/// absent: a declared type palisade cannot read cannot vouch for anything.
fn request_head(headers: &HeaderMap) -> RequestHead<'_> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    RequestHead {
        content_type: text(CONTENT_TYPE),
        content_length: text(CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
        content_disposition: text(CONTENT_DISPOSITION),
        file_name: None,
    }
}

/// Reads the whole body into the inspection, then runs the whole-file checks. Returns the
/// passed body and the number of bytes received.
async fn inspect<B>(
    body: &mut B,
    mut inspection: UploadInspection,
) -> Result<(Passed, u64), Failure>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let wait = inspection.rule().body_read_timeout;
    let peak = read_body(body, &mut inspection, wait).await?;
    let received = inspection.received();
    debug!(
        upload.received = received,
        upload.buffered_peak = peak,
        "upload body read"
    );
    let passed = inspection.finish().await?;
    Ok((passed, received))
}

/// Feeds every frame of `body` to `inspection` as it arrives, waiting at most `wait` for
/// each. Returns the most bytes the inspection held in memory at once.
async fn read_body<B>(
    body: &mut B,
    inspection: &mut UploadInspection,
    wait: Duration,
) -> Result<usize, Failure>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut peak = 0;
    loop {
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            // Dropping the inspection on the way out removes the spooled part.
            Err(_) => return Err(Failure::Error(GatewayError::BodyTimeout(wait))),
            Ok(None) => return Ok(peak),
            Ok(Some(Err(err))) => return Err(Failure::Error(client_error(&err))),
            Ok(Some(Ok(frame))) => frame,
        };
        // `body` is the request's `RequestBody`, which also holds it to `min_body_rate`.
        // Trailers are dropped: the forwarded body has a fixed length and no chunking.
        if let Some(data) = frame.data_ref() {
            inspection.feed(data).await?;
            peak = peak.max(inspection.buffered_len());
        }
    }
}

/// A body read error as the client's fault: over `max_body_size`, or unreadable.
fn client_error(err: &BoxError) -> GatewayError {
    let err: &(dyn std::error::Error + 'static) = &**err;
    body::client_fault(err).unwrap_or_else(|| GatewayError::BadBody(err.to_string()))
}

fn scan_name(scan: &ScanOutcome) -> &'static str {
    match scan {
        ScanOutcome::Clean => "clean",
        ScanOutcome::NotScanned => "not_scanned",
        ScanOutcome::Unavailable(_) => "unavailable",
    }
}
