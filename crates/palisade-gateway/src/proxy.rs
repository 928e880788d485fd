//! Step 8: forward the request to the upstream and bring its response back.
//!
//! One keep-alive pool of HTTP/1.1 connections per worker thread and configuration
//! ([`crate::upstream_pool`]), or with `[upstream] protocol = "http2"` multiplexed HTTP/2
//! connections of up to 32 streams each, per worker. Bodies stream both ways.
//! A WebSocket (or any `Upgrade`) handshake that the upstream accepts with 101 becomes a
//! byte tunnel between the two upgraded connections.

use std::sync::Arc;
use std::time::Duration;

use http::header::{EXPECT, HOST, HeaderValue, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::body::{self, BodyFault, BoxError, GatewayBody};
use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamUrl};
use crate::error::GatewayError;
use crate::events::{Event, EventBus};
use crate::forwarding::{self, ForwardingFields, Present};
use crate::pipeline::{GatewayRequest, RequestContext, Who};
use crate::upstream_pool::{ExchangeError, PoolError, UpstreamPool};
use crate::upstream_tls::{ClientCert, UpstreamTls};
use http_body::Body;
use palisade_store::ca::CaCertificates;

/// The protected application and the connection pools to it, one per worker thread so a
/// pooled connection is always driven by the thread that uses it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pools: Vec<Arc<UpstreamPool>>,
    /// `host:port` to connect to.
    address: String,
    /// `authority` as a `Host` value, made once.
    authority_value: HeaderValue,
    response_timeout: Duration,
    preserve_host: bool,
    /// `Some(scheme)` when requests go out as HTTP/2 (absolute URIs need the scheme).
    h2_scheme: Option<Scheme>,
    /// TLS for an `https://` upstream, for readiness probes.
    tls: Option<UpstreamTls>,
    /// The last TLS probe's outcome and when it was made ([`Upstream::probe`]).
    /// Held while a probe runs, so probes that arrive together share one handshake.
    probed: Arc<tokio::sync::Mutex<Option<Probed>>>,
}

/// A readiness probe's outcome and when it was made.
type Probed = (tokio::time::Instant, Result<(), String>);

/// How long a TLS readiness probe's outcome is reused: probes every few seconds from a
/// load balancer then cost the upstream one handshake per this long.
const TLS_PROBE_REUSE: Duration = Duration::from_secs(10);

/// How long a readiness probe waits for the upstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A probe's `step` that ran out of [`PROBE_TIMEOUT`].
fn probe_timed_out(step: &str) -> String {
    format!(
        "{step} did not finish within {} s (the readiness probe's limit)",
        PROBE_TIMEOUT.as_secs()
    )
}

impl Upstream {
    /// Pools for `config`, one per worker, sharing one TLS client configuration for an
    /// `https://` URL (its `ca_file` read now).
    pub fn new(config: &UpstreamConfig, workers: usize) -> Result<Self, UpstreamError> {
        let url = config.url.as_ref().ok_or(UpstreamError::NoUrl)?;
        let tls = if url.tls {
            Some(upstream_tls(url, config)?)
        } else {
            None
        };
        let per_worker = (config.pool_max_idle / workers.max(1)).max(1);
        let pool = || {
            Arc::new(UpstreamPool::new(
                url.connect_address(),
                tls.clone(),
                config.protocol,
                config.connect_timeout.0,
                config.pool_idle_timeout.0,
                per_worker,
            ))
        };
        let authority_value = HeaderValue::from_str(url.authority.as_str())
            .expect("a parsed URL authority is visible ASCII");
        Ok(Self {
            pools: (0..workers.max(1)).map(|_| pool()).collect(),
            tls: tls.clone(),
            probed: Arc::default(),
            address: url.connect_address(),
            authority_value,
            response_timeout: config.response_timeout.0,
            preserve_host: config.preserve_host,
            h2_scheme: (config.protocol == UpstreamProtocol::Http2).then_some(if url.tls {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            }),
        })
    }

    /// The client certificate presented to an `https://` upstream (subject and validity),
    /// for the start-up line.
    pub fn client_cert(&self) -> Option<&str> {
        self.tls.as_ref().and_then(UpstreamTls::client_cert)
    }

    /// `host:port` the upstream is connected to (the port always written).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the upstream can be reached, for `/readyz`: a TCP connection, and for an
    /// `https://` upstream a TLS handshake as requests make them (the certificate verified,
    /// the protocol agreed), whose outcome is reused for [`TLS_PROBE_REUSE`]. The error says
    /// why, in the words of the `upstream failed` log line.
    pub async fn probe(&self) -> Result<(), String> {
        let Some(tls) = &self.tls else {
            return self.probe_tcp().await.map(drop);
        };
        let mut probed = self.probed.lock().await;
        if let Some((at, outcome)) = probed.as_ref() {
            if at.elapsed() < TLS_PROBE_REUSE {
                return outcome.clone();
            }
        }
        let outcome = async {
            let tcp = self.probe_tcp().await?;
            let handshake = tls.probe(tcp, self.h2_scheme.is_some());
            tokio::time::timeout(PROBE_TIMEOUT, handshake)
                .await
                .unwrap_or_else(|_| Err(probe_timed_out("TLS handshake with the upstream")))
        }
        .await;
        *probed = Some((tokio::time::Instant::now(), outcome.clone()));
        outcome
    }

    async fn probe_tcp(&self) -> Result<tokio::net::TcpStream, String> {
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&self.address))
            .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(format!("connect to the upstream: {err}")),
            Err(_) => Err(probe_timed_out("connect to the upstream")),
        }
    }

    /// Sends `request` upstream and returns the response with hop-by-hop and revealing
    /// headers removed.
    pub async fn forward(
        &self,
        request: GatewayRequest,
        ctx: &RequestContext,
        worker: usize,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let GatewayRequest { mut head, mut body } = request;
        let present = Present::of(&head.headers);
        let upgrade = present.upgrade && forwarding::wants_upgrade(&head.headers);
        let client_upgrade = upgrade
            .then(|| head.extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        // A body still to stream may fail on the client's side while it is forwarded: the
        // failure is then the client's, whatever the upstream exchange reports.
        let fault = (!body.is_end_stream()).then(|| body.watch_faults());
        let who = ctx.who(&head);
        let (outgoing, fields) = self.outgoing(head, present, upgrade, ctx)?;

        let pool = &self.pools[worker % self.pools.len()];
        let sent = pool.send_parts(outgoing, fields, body, Some(self.response_timeout));
        let client_fault = || fault.as_ref().and_then(BodyFault::take);
        let mut response = match sent.await {
            Err(err) => {
                return Err(client_fault().unwrap_or_else(|| classify(err, self.tls.as_ref())));
            }
            Ok(exchanged) => exchanged,
        };

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // A switch nobody asked palisade to pass on would leave the client talking a
            // protocol no stage reads.
            let Some(client_upgrade) = client_upgrade else {
                return Err(GatewayError::UpstreamProtocol(
                    "101 Switching Protocols to a request that asked for no websocket".into(),
                ));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(client_upgrade, upstream_upgrade));
        }
        let (mut parts, mut pooled) = response.into_parts();
        // A proxy answers in its own HTTP version (RFC 9112 §2.3): an HTTP/1.0 upstream must
        // not turn the client's connection into a 1.0 one without keep-alive.
        parts.version = http::Version::HTTP_11;
        forwarding::strip_hop_by_hop(&mut parts.headers, switching);
        forwarding::strip_revealing_response_headers(&mut parts.headers);
        let body = if switching {
            // The connection now belongs to the tunnel (or is spent): never pooled again.
            pooled.forget_connection();
            pooled.boxed_unsync()
        } else {
            // Trailers skip the response stages: only a gRPC answer's pass, filtered.
            let grpc = forwarding::is_grpc(&parts.headers);
            let empty = pooled.is_end_stream();
            let pooled = pooled.map_frame(move |frame| response_trailers(frame, grpc));
            if empty && fault.is_none() {
                // Nothing left that could fail (a 204, 304, or HEAD answer).
                pooled.boxed_unsync()
            } else {
                Watched {
                    inner: pooled,
                    fault,
                    report: Some((ctx.events().clone(), who, parts.status.as_u16())),
                }
                .boxed_unsync()
            }
        };
        Ok(Response::from_parts(parts, body))
    }

    /// The request's head as the upstream sees it (changed in place, not copied into a new
    /// request), and the forwarding fields to send with it: origin-form target, HTTP/1.1,
    /// hop-by-hop fields removed, `Cookie` fields joined into one, `Expect` removed,
    /// `Host` kept (or the upstream's). To an HTTP/2 upstream (not for upgrades): HTTP/2
    /// with the host as the URI's authority instead of `Host`, and `TE: trailers` kept when
    /// the client sent it (gRPC needs it).
    /// `upgrade`: whether the request asks for a WebSocket ([`forwarding::wants_upgrade`]).
    fn outgoing(
        &self,
        mut head: http::request::Parts,
        present: Present,
        upgrade: bool,
        ctx: &RequestContext,
    ) -> Result<(http::request::Parts, ForwardingFields), GatewayError> {
        let client_host = client_host(&head.headers, head.uri.authority());
        // Origin form (RFC 9112 §3.2.1), the client's path and query shared, not copied.
        let path = head.uri.path_and_query().cloned();
        let uri = Uri::from(path.unwrap_or_else(|| PathAndQuery::from_static("/")));

        let headers = &mut head.headers;
        let h2_scheme = self.h2_scheme.as_ref().filter(|_| !upgrade);
        let te_trailers = h2_scheme.is_some() && forwarding::accepts_trailers(headers);
        forwarding::strip_hop_by_hop(headers, upgrade);
        let fields = ForwardingFields::of(headers, present.forwarding, ctx, client_host.as_ref());
        if present.cookie {
            forwarding::join_cookies(headers);
        }
        // The client's `Expect: 100-continue` is answered here (hyper sends the 100 when a
        // stage or the forwarder first reads the body), and the body is forwarded without
        // waiting for the upstream's 100. Passed on, the expectation lets the upstream answer
        // before the body and, keeping the connection, read that body as a request of its
        // own that no stage judged.
        if present.expect {
            headers.remove(EXPECT);
        }
        let host = match client_host {
            Some(host) if self.preserve_host => host,
            _ => self.authority_value.clone(),
        };
        // Nothing the client's request carried beside its fields goes along.
        head.extensions.clear();
        if let Some(scheme) = h2_scheme {
            // RFC 9113 §8.3.1: the host travels as `:authority`, and a `Host` beside it
            // could only disagree.
            headers.remove(HOST);
            // Credentials are never put in the connection's HPACK table: the connection is
            // shared by clients, and a table entry lets one confirm a guess of another's
            // token from the encoded sizes.
            for (name, value) in headers.iter_mut() {
                if forwarding::is_credential(name) {
                    value.set_sensitive(true);
                }
            }
            if te_trailers {
                headers.insert(TE, HeaderValue::from_static("trailers"));
            }
            head.uri = absolute(scheme, &host, uri)?;
            head.version = Version::HTTP_2;
        } else {
            headers.insert(HOST, host);
            head.uri = uri;
            head.version = Version::HTTP_11;
        }
        Ok((head, fields))
    }
}

/// `frame` as the client may see it: a trailers frame loses every field unless the answer
/// is gRPC's, and then the fields [`forwarding::strip_trailer_fields`] refuses.
fn response_trailers(
    frame: http_body::Frame<bytes::Bytes>,
    grpc: bool,
) -> http_body::Frame<bytes::Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            if grpc {
                forwarding::strip_trailer_fields(&mut trailers);
            } else {
                trailers.clear();
            }
            http_body::Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

/// An upstream answer on its way to the client. Once its head has gone out, a failure has
/// no error page to become, and used to go unreported: the answer breaking off (the
/// upstream closed or reset it) is the upstream's fault, logged at `warn`; the request body
/// failing meanwhile (too large, stalled, too slow: the upstream answered before the whole
/// body had arrived, as streaming APIs and bidirectional gRPC calls do) is the client's.
/// Either publishes a `request.failed` event with the status already sent.
struct Watched<B> {
    inner: B,
    /// Where the request body notes its failure, when it was still streaming.
    fault: Option<BodyFault>,
    /// What to report with, until reported.
    report: Option<(EventBus, Who, u16)>,
}

impl<B> Watched<B> {
    /// Publishes the failure: the client's when its body noted one, else `upstream`'s (an
    /// upstream that stopped sending for `response_timeout` is a timeout).
    fn failed(&mut self, upstream: Option<&BoxError>) {
        let client = self.fault.as_ref().and_then(BodyFault::take);
        let err = match (client, upstream) {
            (Some(err), _) => err,
            (None, Some(why))
                if matches!(
                    why.downcast_ref::<ExchangeError>(),
                    Some(ExchangeError::BodyTimedOut)
                ) =>
            {
                GatewayError::UpstreamTimeout
            }
            (None, Some(why)) => GatewayError::UpstreamProtocol(format!(
                "the answer broke off after its head was sent: {why}"
            )),
            (None, None) => return,
        };
        let Some((events, who, status)) = self.report.take() else {
            return;
        };
        match err.source() {
            crate::error::ErrorSource::Client => {
                debug!(request.id = %who.id, error = %err, "request failed mid-answer");
            }
            _ => tracing::warn!(request.id = %who.id, error = %err, "upstream failed mid-answer"),
        }
        events.publish(Event::RequestFailed {
            request: who.info(),
            source: err.source().as_str(),
            kind: err.kind(),
            status,
        });
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Error = BoxError> + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(err))) = &polled {
            self.failed(Some(err));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        // A request body that failed while the answer was still streaming, unreported.
        if self.fault.is_some() && self.report.is_some() {
            self.failed(None);
        }
    }
}

/// `scheme://host` + the origin-form `uri`: what an HTTP/2 request carries as its
/// `:scheme`, `:authority` and `:path`. A `Host` that is no valid authority (spaces, a user
/// name) is the client's error.
fn absolute(scheme: &Scheme, host: &HeaderValue, uri: Uri) -> Result<Uri, GatewayError> {
    let authority = Authority::try_from(host.as_bytes())
        .ok()
        .filter(|a| !a.as_str().contains('@'))
        .ok_or(GatewayError::BadFraming(
            "Host is not a valid host[:port] for an HTTP/2 upstream",
        ))?;
    let mut parts = uri.into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority);
    Uri::from_parts(parts)
        .map_err(|err| GatewayError::Internal(format!("upstream HTTP/2 request target: {err}")))
}

/// Why the upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream URL was given.
    #[error("no upstream: pass --upstream http://host:port or set [upstream] url")]
    NoUrl,
    /// The TLS client for an `https://` upstream could not be made.
    #[error("{0}")]
    Tls(String),
}

/// The TLS client for `url`, trusting `ca_file` when given and presenting `client_cert`
/// when given (paths resolved).
fn upstream_tls(url: &UpstreamUrl, config: &UpstreamConfig) -> Result<UpstreamTls, UpstreamError> {
    let ca = config
        .ca_file
        .as_deref()
        .map(|file| {
            CaCertificates::from_file(file)
                .map_err(|why| format!("upstream.ca_file: {}: {why}", file.display()))
        })
        .transpose()
        .map_err(UpstreamError::Tls)?;
    let client = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => Some(
            ClientCert::load("upstream", ("client_cert", "client_key"), cert, key)
                .map_err(UpstreamError::Tls)?,
        ),
        _ => None,
    };
    UpstreamTls::new(url, ca.as_ref(), client.as_ref()).map_err(UpstreamError::Tls)
}

/// The host the client asked for: `Host` (HTTP/1.1) or the URI authority (HTTP/2), as a
/// header value (shared with the request, not copied) when it is visible ASCII.
fn client_host(
    headers: &http::HeaderMap,
    authority: Option<&http::uri::Authority>,
) -> Option<HeaderValue> {
    // A field value holds no control character but tab (http's `HeaderValue` refuses them):
    // ASCII is visible ASCII here, as `to_str` would check byte by byte.
    if let Some(host) = headers.get(HOST).filter(|h| h.as_bytes().is_ascii()) {
        return Some(host.clone());
    }
    authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// Turns a failed exchange into who caused it: our body errors are the client's, connect
/// (and TLS handshake) timeouts are 504, connect and TLS failures 502, anything else a
/// broken upstream.
fn classify(err: PoolError, tls: Option<&UpstreamTls>) -> GatewayError {
    match err {
        PoolError::Shared(ref shared) => classify_ref(shared, tls),
        err => classify_ref(&err, tls),
    }
}

fn classify_ref(err: &PoolError, tls: Option<&UpstreamTls>) -> GatewayError {
    let exchange = matches!(
        err,
        PoolError::Handshake(_)
            | PoolError::Send(_)
            | PoolError::NotHttp2(_)
            | PoolError::Exchange(_)
    );
    if let Some(tls) = tls.filter(|_| exchange) {
        // A TLS 1.3 upstream refuses a client certificate after the handshake: the alert
        // comes with the HTTP exchange.
        if let Some(why) = tls.client_cert_refusal(err) {
            return GatewayError::UpstreamTls(why);
        }
    }
    let mut classified = classify_kind(err, tls);
    let hint = match tls {
        Some(tls) => tls.closed_hint(),
        None => tls_spoken_hint(err),
    };
    if let (Some(hint), true) = (hint, exchange) {
        if let GatewayError::UpstreamProtocol(text) | GatewayError::UpstreamConnect(text) =
            &mut classified
        {
            text.push_str(hint);
        }
    }
    classified
}

/// What to add when an `http://` upstream answered with bytes that are not HTTP, or reset
/// the connection at the request: what a TLS server does with plain text.
fn tls_spoken_hint(err: &PoolError) -> Option<&'static str> {
    const HINT: &str =
        " (if the upstream speaks TLS on that port, its URL is https://, not http://)";
    if let PoolError::Exchange(exchange) = err {
        let not_http = matches!(exchange, ExchangeError::NotHttp) || exchange.is_reset();
        return not_http.then_some(HINT);
    }
    let PoolError::Send(hyper_err) = err else {
        return None;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(hyper_err);
    let mut reset = false;
    while let Some(err) = cause {
        reset |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
        cause = err.source();
    }
    (hyper_err.is_parse() || reset).then_some(HINT)
}

fn classify_kind(err: &PoolError, tls: Option<&UpstreamTls>) -> GatewayError {
    match err {
        PoolError::ConnectTimeout | PoolError::ResponseTimeout => GatewayError::UpstreamTimeout,
        PoolError::Connect(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            GatewayError::UpstreamTimeout
        }
        PoolError::TlsTimeout => GatewayError::UpstreamTimeout,
        PoolError::Tls(why) => GatewayError::UpstreamTls(why.clone()),
        PoolError::Connect(_) | PoolError::Handshake(_) => {
            GatewayError::UpstreamConnect(error_chain(err))
        }
        PoolError::NotHttp2(_) => GatewayError::UpstreamProtocol(error_chain(err)),
        PoolError::Exchange(exchange) => body::client_fault(exchange)
            .unwrap_or_else(|| GatewayError::UpstreamProtocol(error_chain(err))),
        PoolError::Send(hyper_err) => body::client_fault(hyper_err)
            .unwrap_or_else(|| GatewayError::UpstreamProtocol(error_chain(err))),
        PoolError::Shared(shared) => classify_ref(shared, tls),
    }
}

/// The error and its causes on one line, for the log only; a cause whose words an error
/// already shows (`connect to the upstream: Connection refused` and its `io::Error`) is not
/// repeated.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let words = err.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        cause = err.source();
    }
    text
}

/// Copies bytes both ways between the upgraded client and upstream connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            debug!(error = %err, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        debug!(error = %err, "upgraded connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::RequestBody;
    use http::Request;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let words = refused.to_string();
        let text = error_chain(&PoolError::Connect(refused));
        assert_eq!(text, format!("connect to the upstream: {words}"));
        assert_eq!(text.matches(&words).count(), 1, "{text}");
    }

    #[test]
    fn a_failed_tls_handshake_is_a_502_that_says_tls_and_a_stalled_one_a_504() {
        let why = "TLS: the upstream's certificate is not trusted: invalid peer certificate";
        let err = classify(PoolError::Tls(why.into()), None);
        assert!(matches!(err, GatewayError::UpstreamTls(_)), "{err:?}");
        assert_eq!(err.kind(), "upstream_tls");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(err.to_string().contains(why), "{err}");
        let err = classify(PoolError::TlsTimeout, None);
        assert!(matches!(err, GatewayError::UpstreamTimeout), "{err:?}");
    }

    /// On a shared HTTP/2 connection credentials are never HPACK-indexed (one client must
    /// not be able to probe another's token by compressed sizes); other fields may be.
    #[test]
    fn credentials_go_to_an_http2_upstream_never_indexed() {
        let config = UpstreamConfig {
            url: Some("http://127.0.0.1:50051".parse().expect("url")),
            protocol: UpstreamProtocol::Http2,
            ..UpstreamConfig::default()
        };
        let upstream = Upstream::new(&config, 1).expect("upstream");
        let mut head = Request::get("/api")
            .header(HOST, "app.test")
            .header("authorization", "Bearer secret")
            .header("cookie", "sid=1")
            .header("x-api-key", "k")
            .header("accept", "*/*")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        head.version = Version::HTTP_11;
        let ctx = RequestContext::new(
            "127.0.0.1:40000".parse().expect("peer"),
            false,
            crate::events::EventBus::new(Vec::new()),
        );
        let present = Present::of(&head.headers);
        let (outgoing, _) = upstream
            .outgoing(head, present, false, &ctx)
            .expect("outgoing");
        assert_eq!(outgoing.version, Version::HTTP_2);
        let headers = &outgoing.headers;
        for name in ["authorization", "cookie", "x-api-key"] {
            assert!(headers[name].is_sensitive(), "{name}");
        }
        assert!(!headers["accept"].is_sensitive());
        assert!(headers.get(HOST).is_none());
        assert_eq!(outgoing.uri.to_string(), "http://app.test/api");
    }

    /// A TLS server given plain text answers with a TLS alert (or resets): the log line for
    /// an `http://` upstream says the URL may want `https://`.
    #[tokio::test]
    async fn an_http_url_for_a_tls_port_says_https_may_be_meant() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            // A fatal `protocol_version` alert, as TLS servers send to plain text.
            let _ = stream
                .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])
                .await;
        });
        let config = UpstreamConfig {
            url: Some(format!("http://{addr}").parse().expect("url")),
            ..UpstreamConfig::default()
        };
        let upstream = Upstream::new(&config, 1).expect("upstream");
        let head = Request::get("/")
            .header(HOST, "app.test")
            .body(())
            .expect("request");
        let request = GatewayRequest {
            head: head.into_parts().0,
            body: RequestBody::empty(),
        };
        let ctx = RequestContext::new(
            "127.0.0.1:40000".parse().expect("peer"),
            false,
            crate::events::EventBus::new(Vec::new()),
        );
        let err = upstream
            .forward(request, &ctx, 0)
            .await
            .expect_err("not HTTP");
        assert!(matches!(err, GatewayError::UpstreamProtocol(_)), "{err:?}");
        assert!(err.to_string().contains("its URL is https://"), "{err}");
    }

    #[test]
    fn an_https_upstream_without_its_ca_file_does_not_start() {
        let config = UpstreamConfig {
            url: Some("https://127.0.0.1:8443".parse().expect("url")),
            ca_file: Some("/nonexistent/palisade-ca.pem".into()),
            ..UpstreamConfig::default()
        };
        let err = Upstream::new(&config, 2).expect_err("no CA file");
        assert!(
            err.to_string()
                .starts_with("upstream.ca_file: /nonexistent/"),
            "{err}"
        );
        let config = UpstreamConfig {
            ca_file: None,
            ..config
        };
        let upstream = Upstream::new(&config, 2).expect("public roots");
        assert_eq!(upstream.address(), "127.0.0.1:8443");
    }
}
