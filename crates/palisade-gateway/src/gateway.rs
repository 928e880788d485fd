//! The running gateway: the configuration in force, its pipeline and upstream pool, swapped
//! atomically on reload, and the request handler that drives a request through them.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tracing::{debug, info, warn};

use crate::body::{BodyPace, BoxError, GatewayBody, RequestBody, UnreadBody};
use crate::config::{Config, ConfigError, ConfigSource};
use crate::conn::{ConnShared, InFlight};
use crate::error::{ErrorSource, GatewayError};
use crate::events::{Event, EventBus};
use crate::grpc;
use crate::pipeline::{GatewayRequest, Outcome, Pipeline, RequestContext, Who};
use crate::proxy::Upstream;
use crate::send_watch::SendWatch;
use crate::services::Services;

/// Everything derived from one configuration; replaced whole on reload.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Its upstream pool.
    pub upstream: Upstream,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid. Transparent, as is `Services`: a message that also named
    /// its cause as `source` would print the cause twice in `error: {err:#}`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No upstream was given, or its TLS client could not be made.
    #[error(transparent)]
    Upstream(#[from] crate::proxy::UpstreamError),
    /// A service failed to start.
    #[error(transparent)]
    Services(#[from] crate::services::ServicesError),
    /// A listener or TLS set-up failed.
    #[error("{0}")]
    Io(String),
}

/// The gateway shared by every connection.
#[derive(Debug)]
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    services: Services,
    source: ConfigSource,
    /// Worker threads running (read at start-up only): each reload's upstream pools are
    /// split between these, whatever the file now says.
    workers: usize,
    /// The configuration the process started with: what the start-up-only keys still run
    /// on, so a reload warns about a file that differs from them (and not about one that
    /// puts back the running value after an earlier reload changed it).
    started: Arc<Config>,
}

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: SocketAddr,
    /// The local address the connection arrived on, when the socket could say.
    pub local: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The worker thread serving it (selects that worker's upstream pool).
    pub worker: usize,
    /// Shared with the connection's I/O guard.
    pub shared: Arc<ConnShared>,
}

impl Gateway {
    /// A gateway for `config` (already loaded from `source`) with `services`.
    pub fn new(
        config: Config,
        source: ConfigSource,
        services: Services,
    ) -> Result<Arc<Self>, StartError> {
        let workers = crate::server::worker_count(config.server.workers);
        let runtime = build_runtime(config, &services, workers)?;
        let started = Arc::clone(&runtime.config);
        Ok(Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            services,
            source,
            workers,
            started,
        }))
    }

    /// The runtime in force now.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The configuration file reloads read, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.source.file.as_deref()
    }

    /// The shared services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Re-reads the configuration. A bad one is refused with the messages `palisade check`
    /// prints, and the configuration in force stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let file = self
            .source
            .file
            .as_ref()
            .map_or_else(|| "<defaults>".to_string(), |f| f.display().to_string());
        let outcome = self.source.load().and_then(|config| {
            self.warn_restart_needed(&config);
            build_runtime(config, &self.services, self.workers).map_err(|err| {
                ConfigError::single(crate::config::Diagnostic::whole_file(
                    std::path::Path::new(&file),
                    err.to_string(),
                ))
            })
        });
        match outcome {
            Ok(runtime) => {
                self.runtime.store(Arc::new(runtime));
                self.services.metrics.config_reloads.inc(&["applied"]);
                info!(config.file = %file, "configuration reloaded");
                self.services.events.publish(Event::ConfigReloaded { file });
                Ok(())
            }
            Err(err) => {
                self.services.metrics.config_reloads.inc(&["refused"]);
                let errors: Vec<String> = err.diagnostics.iter().map(|d| d.to_string()).collect();
                warn!(
                    config.file = %file,
                    errors = ?errors,
                    "configuration refused; the previous one stays"
                );
                self.services
                    .events
                    .publish(Event::ConfigRejected { file, errors });
                Err(err)
            }
        }
    }

    /// Settings read only at start-up: name each one the new file sets differently from the
    /// value running since start-up (never the value itself).
    fn warn_restart_needed(&self, new: &Config) {
        for key in crate::config::restart::changed_keys(&self.started, new) {
            warn!(
                config.key = %key,
                "{key} changed: it takes effect only after a restart; the running value stays"
            );
        }
    }

    /// The event bus every request publishes on.
    pub(crate) fn events(&self) -> &EventBus {
        &self.services.events
    }

    /// Serves one request: pipeline, upstream, response phase, metrics. `incoming` is the
    /// client's body as hyper reads it; `None` for a request without one read by palisade's
    /// own HTTP/1.1 loop ([`crate::http1`]). `received`: when the head arrived, the start of
    /// the request's latency.
    pub async fn handle(
        &self,
        mut head: http::request::Parts,
        incoming: Option<hyper::body::Incoming>,
        conn: &ConnInfo,
        received: tokio::time::Instant,
    ) -> Response<TrackedBody> {
        let in_flight = conn.shared.start_request();
        let runtime = self.runtime();
        let events = self.services.events.clone();
        let mut ctx = RequestContext::received(conn.peer, conn.tls, events, received);
        // Requests come without hyper's body only from palisade's own HTTP/1.1 loop.
        ctx.own_loop = incoming.is_none();
        ctx.framing = conn.shared.finding_for(&in_flight);
        ctx.local_addr = conn
            .local
            .map(|addr| crate::client_ip::canonical(addr.ip()));

        // Only HTTP/2 requests carry one (`server::serve`).
        let send_watch = (head.version == Version::HTTP_2)
            .then(|| head.extensions.remove::<Arc<SendWatch>>())
            .flatten();
        let max_body = runtime.config.server.max_body_size.0;
        let pace = BodyPace {
            stall: runtime.config.server.body_read_timeout.0,
            min_rate: runtime.config.server.min_body_rate.0,
        };
        let mut handling = Handling {
            gateway: self,
            head: response_phase_head(&head),
            ctx,
            answered: false,
        };
        let Handling {
            head: request_head,
            ctx,
            ..
        } = &mut handling;
        let request_head = &*request_head;
        let mut request = GatewayRequest {
            head,
            body: RequestBody::new(incoming, max_body, pace),
        };
        let (response, unread, own) = match runtime.pipeline.run_request(&mut request, ctx).await {
            Ok(Some(answer)) => (Ok(answer), request.body.take_unread(), true),
            Ok(None) => {
                let mut forwarded = runtime.upstream.forward(request, ctx, conn.worker).await;
                let own = forwarded.is_err();
                // The rest of a body the upstream refused by answering early.
                let unread = forwarded
                    .as_mut()
                    .ok()
                    .and_then(|answer| answer.extensions_mut().remove::<UnreadBody>())
                    .and_then(|unread| unread.take());
                (forwarded, unread, own)
            }
            Err(err) => (Err(err), request.body.take_unread(), true),
        };
        let response = response.unwrap_or_else(|err| self.error_response(&err, request_head, ctx));

        let (mut parts, mut body) = response.into_parts();
        if let Some(quota) = &ctx.quota {
            crate::pipeline::stages::rate_limit::quota_headers(quota, &mut parts.headers);
        }
        runtime
            .pipeline
            .run_response(request_head, &mut parts, ctx)
            .await;
        if let Some(unread) = unread {
            linger(unread, &mut parts, request_head.version);
        }
        // The framing watch stopped at this request (a `CONNECT`, an `Upgrade`): unless the
        // connection becomes a tunnel now, it ends here, so nothing sent after it is served
        // unwatched.
        if parts.status != http::StatusCode::SWITCHING_PROTOCOLS
            && conn.shared.unwatched(&in_flight)
        {
            end_connection(&mut parts, request_head.version);
        }
        self.services.metrics.record_request(
            parts.status.as_u16(),
            ctx.outcome.as_str(),
            ctx.started.elapsed(),
        );
        // An answer to HEAD has no body. hyper's HTTP/1.1 server and palisade's own loop
        // leave it out themselves; over HTTP/2, the page palisade wrote (an error, a 429, a
        // block) went out as DATA, which clients refuse as a protocol error.
        if request_head.method == http::Method::HEAD && request_head.version == Version::HTTP_2 {
            body = crate::body::empty();
        }
        // The response phase's copy of the head keeps `Content-Type` for this.
        let grpc = own
            .then(|| grpc::request_type(&request_head.headers))
            .flatten();
        if let Some(content_type) = grpc {
            // Counted above with palisade's HTTP status; sent as the call's gRPC status.
            body = grpc::refusal(&mut parts, body, content_type);
        }
        let send = send_watch.map(|watch| {
            Box::new(SendReport {
                watch,
                events: ctx.events().clone(),
                who: ctx.who(request_head),
                status: parts.status.as_u16(),
                rest: Bytes::new(),
            })
        });
        let head_lines = ctx.head_lines.take();
        handling.answered = true;
        let mut body = TrackedBody::new(body, in_flight, send);
        body.head_lines = head_lines;
        Response::from_parts(parts, body)
    }

    /// palisade's answer to a request head refused before any stage could read it (by its
    /// own HTTP/1.1 loop, [`crate::http1`]): the error's short page with the response
    /// phase's headers, as every answer gets them, `Connection: close`, and the refusal's
    /// `request.malformed` event. No head could be read, so the response phase sees a bare
    /// `GET /`: the page gets the security headers of the site's root, in HTML.
    pub(crate) async fn refuse_head(
        &self,
        conn: &ConnInfo,
        refusal: HeadRefusal,
    ) -> Response<TrackedBody> {
        // Client faults at debug: an attacker must not be able to flood the log.
        let (kind, detail) = (refusal.kind, &refusal.detail);
        debug!(client.peer = %conn.peer, kind, detail = %detail, "head refused");
        let in_flight = conn.shared.start_request();
        let runtime = self.runtime();
        let events = self.services.events.clone();
        let now = tokio::time::Instant::now();
        let mut ctx = RequestContext::received(conn.peer, conn.tls, events, now);
        let head = Request::new(()).into_parts().0;
        let (mut parts, body) = refusal.error.to_response(&head.headers).into_parts();
        parts
            .headers
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        runtime
            .pipeline
            .run_response(&head, &mut parts, &mut ctx)
            .await;
        ctx.publish(Event::RequestMalformed {
            client_ip: ctx.client_ip,
            kind: refusal.kind,
            detail: refusal.detail,
            status: Some(parts.status.as_u16()),
        });
        Response::from_parts(parts, TrackedBody::new(body, in_flight, None))
    }

    /// The response for an error, with its event, metric and log line.
    fn error_response(
        &self,
        err: &GatewayError,
        head: &http::request::Parts,
        ctx: &mut RequestContext,
    ) -> Response<GatewayBody> {
        let source = err.source();
        ctx.outcome = match (source, err) {
            // A client that left was refused nothing: the decision so far stands.
            (_, GatewayError::ClientClosed) => ctx.outcome,
            (ErrorSource::Client, _) => Outcome::Blocked,
            _ => Outcome::Error,
        };
        match source {
            // Client faults at debug: an attacker must not be able to flood the log.
            ErrorSource::Client => debug!(request.id = %ctx.id, error = %err, "request refused"),
            ErrorSource::Upstream => {
                self.services.metrics.upstream_errors.inc(&[err.kind()]);
                warn!(request.id = %ctx.id, error = %err, "upstream failed");
            }
            // A state backend that fails closed refuses every request while it is down: the
            // store says so once, loudly; a line per refusal would let clients flood the log.
            ErrorSource::Internal if matches!(err, GatewayError::StateUnavailable) => {
                debug!(request.id = %ctx.id, error = %err, "refused: state backend unavailable");
            }
            ErrorSource::Internal => warn!(request.id = %ctx.id, error = %err, "internal error"),
        }
        let response = err.to_response(&head.headers);
        ctx.publish(Event::RequestFailed {
            request: ctx.request_info(head),
            source: source.as_str(),
            kind: err.kind(),
            status: response.status().as_u16(),
        });
        response
    }
}

/// A request head palisade refuses before any stage reads it: what its `request.malformed`
/// event says, and the error whose page answers it (the status hyper would send: 400, 431
/// or 414).
#[derive(Debug)]
pub(crate) struct HeadRefusal {
    /// The event's `error.kind`: `malformed_head`, `head_too_large`, `uri_too_long` or
    /// `http2_preface`.
    kind: &'static str,
    /// What was wrong, for the event.
    detail: String,
    error: GatewayError,
}

/// The longest request target the `http` crate (and so hyper) takes: hyper answers a longer
/// one with 414.
const MAX_TARGET: usize = u16::MAX as usize - 1;

impl HeadRefusal {
    /// The event's kind.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// What the event says was wrong.
    #[cfg(test)]
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    /// The status of its answer.
    #[cfg(test)]
    pub(crate) fn status(&self) -> u16 {
        self.error.status().as_u16()
    }

    /// A head that does not parse as HTTP/1.1 (`detail`: the parser's words).
    pub(crate) fn malformed(detail: String) -> Self {
        Self {
            kind: "malformed_head",
            detail,
            error: GatewayError::BadFraming("the request head is not HTTP"),
        }
    }

    /// A head longer than `max_header_size`, or still unfinished at that length.
    pub(crate) fn too_large() -> Self {
        Self {
            kind: "head_too_large",
            detail: "request head longer than max_header_size".into(),
            error: GatewayError::HeadTooLarge,
        }
    }

    /// A head with more fields than `max_headers`.
    pub(crate) fn too_many_fields() -> Self {
        Self {
            kind: "head_too_large",
            detail: "more header fields than max_headers".into(),
            error: GatewayError::HeadTooLarge,
        }
    }

    /// A target of `length` bytes that is not a URI: too long for one, or with bytes a URI
    /// may not hold.
    pub(crate) fn bad_target(length: usize) -> Self {
        if length > MAX_TARGET {
            return Self {
                kind: "uri_too_long",
                detail: format!("request target of {length} bytes, longer than a URI may be"),
                error: GatewayError::UriTooLong {
                    limit: MAX_TARGET as u64,
                },
            };
        }
        Self {
            kind: "malformed_head",
            detail: "the request target is not a valid URI".into(),
            error: GatewayError::BadFraming("the request target is not a valid URI"),
        }
    }

    /// The HTTP/2 preface where HTTP/2 may not start: after HTTP/1.1 requests (RFC 9113
    /// §3.4), or on a TLS connection that agreed on `http/1.1`.
    pub(crate) fn preface() -> Self {
        Self {
            kind: "http2_preface",
            detail: "HTTP/2 preface on an HTTP/1.1 connection".into(),
            error: GatewayError::BadFraming("HTTP/2 preface on an HTTP/1.1 connection"),
        }
    }
}

/// A request being handled. hyper drops the handler when the client closes the connection
/// (or resets its HTTP/2 stream) before the answer; dropped unanswered, the request is still
/// counted in the request metrics (status 499, with the decision made so far) and reported as
/// a `request.failed` event of the client's making, so cancelled requests do not vanish.
struct Handling<'g> {
    gateway: &'g Gateway,
    /// The head the response phase and the events read.
    head: http::request::Parts,
    ctx: RequestContext,
    answered: bool,
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let ctx = &self.ctx;
        if std::thread::panicking() {
            // A bug of palisade's unwound through the handler: not the client's doing.
            self.gateway.services.metrics.record_request(
                http::StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                Outcome::Error.as_str(),
                ctx.started.elapsed(),
            );
            return;
        }
        self.gateway.services.metrics.record_request(
            crate::error::CLIENT_CLOSED.as_u16(),
            ctx.outcome.as_str(),
            ctx.started.elapsed(),
        );
        // At debug, like other client faults: clients must not be able to flood the log.
        debug!(request.id = %ctx.id, "client went away before the request was answered");
        ctx.publish(Event::RequestFailed {
            request: ctx.request_info(&self.head),
            source: ErrorSource::Client.as_str(),
            kind: GatewayError::ClientClosed.kind(),
            status: crate::error::CLIENT_CLOSED.as_u16(),
        });
    }
}

fn build_runtime(
    config: Config,
    services: &Services,
    workers: usize,
) -> Result<Runtime, StartError> {
    let upstream = Upstream::new(&config.upstream, workers)?;
    let pipeline = Pipeline::build(&config, services);
    Ok(Runtime {
        config: Arc::new(config),
        pipeline,
        upstream,
    })
}

/// How long, and for how many bytes, a connection keeps reading a request body that palisade
/// answered without reading (a refused upload). Closing a socket with unread input resets it,
/// and a client still sending would see the reset instead of the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Drains `unread` in the background, bounded by [`LINGER_TIME`] and [`LINGER_BYTES`], and
/// ends an HTTP/1 connection after this answer: its body cannot be reused.
fn linger(mut unread: hyper::body::Incoming, parts: &mut http::response::Parts, v: Version) {
    end_connection(parts, v);
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = unread.frame().await {
                left = left.saturating_sub(frame.data_ref().map_or(0, Bytes::len));
                if left == 0 {
                    break;
                }
            }
        };
        // Running out of time only ends the draining; the answer has already been sent.
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// Ends an HTTP/1 connection after this answer (`Connection: close`); HTTP/2 has no such
/// field.
fn end_connection(parts: &mut http::response::Parts, version: Version) {
    if version < Version::HTTP_2 {
        parts
            .headers
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The request head the response phase and error pages see: method, URI, version, and only
/// the headers they read ([`RESPONSE_PHASE_HEADERS`]). Copying every header of every request
/// cost an allocation per header map and a reference count per header, for nothing.
fn response_phase_head(head: &http::request::Parts) -> http::request::Parts {
    let mut copy = Request::new(());
    *copy.method_mut() = head.method.clone();
    *copy.uri_mut() = head.uri.clone();
    *copy.version_mut() = head.version;
    let headers = copy.headers_mut();
    // One pass comparing names (standard ones compare as numbers) instead of a hashed
    // lookup per kept name; each name's values keep their order.
    for (name, value) in &head.headers {
        if RESPONSE_PHASE_HEADERS.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    copy.into_parts().0
}

/// The request headers kept for the response phase: `Accept` chooses between the HTML and
/// JSON error pages, `Cookie` tells the session-cookie stage which CSRF cookie the browser
/// holds, `Content-Type` says whether palisade's own refusal must be a gRPC answer. A
/// response stage that reads another request header adds it here.
static RESPONSE_PHASE_HEADERS: [http::HeaderName; 3] = [
    http::header::ACCEPT,
    http::header::COOKIE,
    http::header::CONTENT_TYPE,
];

/// A response body that keeps its request counted as in flight until it is finished.
#[derive(Debug)]
pub struct TrackedBody {
    inner: GatewayBody,
    _in_flight: InFlight,
    /// An HTTP/2 answer's `send_timeout` watch, and what to report if it fires.
    send: Option<Box<SendReport>>,
    /// Field lines palisade's own HTTP/1.1 loop writes after the head's other fields
    /// ([`RequestContext::head_lines`]).
    pub(crate) head_lines: Option<Arc<[u8]>>,
}

/// What an HTTP/2 answer reports when its stream is reset because the client took nothing
/// of it for `send_timeout` ([`crate::send_watch`]).
#[derive(Debug)]
struct SendReport {
    watch: Arc<SendWatch>,
    events: EventBus,
    who: Who,
    status: u16,
    /// The rest of a piece of data handed over in parts.
    rest: Bytes,
}

/// The most an HTTP/2 answer hands hyper at once, so that taking one piece is progress a
/// slow but steady reader makes within `send_timeout` (hyper asks for the next piece once
/// the last has gone out; a whole upstream read, up to hundreds of KiB, could take a slow
/// reader longer than that to drain).
const SEND_PIECE: usize = 16 * 1024;

impl TrackedBody {
    fn new(inner: GatewayBody, in_flight: InFlight, send: Option<Box<SendReport>>) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
            send,
            head_lines: None,
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let Some(send) = self.send.take() else {
            return;
        };
        if !send.watch.timed_out() {
            return;
        }
        let SendReport {
            events,
            who,
            status,
            ..
        } = *send;
        // A client's doing: at debug, as every client fault.
        debug!(
            request.id = %who.id,
            "the client took nothing of the answer for send_timeout: HTTP/2 stream reset"
        );
        events.publish(Event::RequestFailed {
            request: who.info(),
            source: ErrorSource::Client.as_str(),
            kind: "send_timeout",
            status,
        });
    }
}

impl Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(send) = &mut this.send else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        // hyper asks for more only once what it was handed has window to go out in.
        send.watch.asked();
        let mut data = if send.rest.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return other,
            }
        } else {
            std::mem::take(&mut send.rest)
        };
        if data.len() > SEND_PIECE {
            send.rest = data.split_off(SEND_PIECE);
        }
        if !data.is_empty() {
            send.watch.handed();
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.send.as_ref().is_none_or(|send| send.rest.is_empty()) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = match &self.send {
            Some(send) if !send.rest.is_empty() => send.rest.len() as u64,
            _ => return self.inner.size_hint(),
        };
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/2 answer goes to hyper in pieces of at most 16 KiB, each noted as handed over,
    /// so a slow reader's progress is seen piece by piece rather than once per upstream read.
    #[tokio::test]
    async fn an_http2_answer_is_handed_over_in_pieces_each_watched() {
        let big = Bytes::from(vec![b'x'; 40 * 1024]);
        let inner = crate::body::full(big.clone());
        let watch = crate::send_watch::watch_next_stream();
        let send = Box::new(SendReport {
            watch: Arc::clone(&watch),
            events: EventBus::new(Vec::new()),
            who: RequestContext::new(
                "127.0.0.1:40000".parse().expect("peer"),
                false,
                EventBus::new(Vec::new()),
            )
            .who(
                &http::Request::get("/big")
                    .body(())
                    .expect("request")
                    .into_parts()
                    .0,
            ),
            status: 200,
            rest: Bytes::new(),
        });
        let in_flight = ConnShared::new().start_request();
        let mut body = TrackedBody::new(inner, in_flight, Some(send));
        assert_eq!(body.size_hint().exact(), Some(big.len() as u64));
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.expect("data").into_data().expect("data");
            pieces.push(data.len());
            assert!(!body.is_end_stream() || pieces.iter().sum::<usize>() == big.len());
        }
        assert_eq!(pieces, [16 * 1024, 16 * 1024, 8 * 1024]);
        assert!(body.is_end_stream());
    }
}
