//! Keep-alive HTTP/1.1 connections to the upstream, one pool per worker thread.
//!
//! hyper-util's general-purpose client costs a proxy more per request than the forwarding
//! itself: it keys its pool by scheme and host through a SipHash map behind a lock, races a
//! lazy connect against every checkout, and spawns one task per request to put the
//! connection back once the response body is read. Palisade talks to exactly one upstream,
//! and each worker thread serves its own connections, so its pool is a stack of idle
//! connections: a checkout pops one, and the response body pushes it back when it ends.
//!
//! An `https://` upstream's connections are TLS ([`crate::upstream_tls`]) under the same
//! HTTP/1.1 handshake; the pool holds only the `SendRequest` handles, whatever the socket.
//!
//! With `[upstream] protocol = "http2"`, requests sent as HTTP/2 are streams on shared,
//! multiplexed connections instead (module `h2_conns`). Upgrade requests still take HTTP/1.1
//! connections from the stack: an HTTP/1.1 `Upgrade` has no HTTP/2 form this pool speaks.
//!
//! HTTP/1.1 requests but WebSocket handshakes skip hyper's client: palisade writes and
//! reads them itself, inside the request's task (module `native`), over TCP or TLS, on
//! connections of a stack of their own.
//!
//! A request sent on a reused connection that turned out to be closed (the upstream hung up
//! while it sat idle) and that was not yet written (or, without a body, is idempotent and
//! got no answer at all) is retried on another connection, so keep-alive races never reach
//! the client as a 502.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::either::Either;

use crate::body::{BoxError, RequestBody};
use crate::config::UpstreamProtocol;
use crate::forwarding::ForwardingFields;
use crate::upstream_tls::UpstreamTls;

mod h2_conns;
mod native;

pub use native::ExchangeError;
use native::{NativeBody, NativeConn};

/// What sending a request gives: the answer (its body gives the connection back) or why not.
pub type Answered = Result<Response<PooledBody>, PoolError>;
/// A boxed sending of a request.
type BoxedSend<'a> = Pin<Box<dyn Future<Output = Answered> + Send + 'a>>;

mod stall;
pub(crate) use stall::StallTimer;

pub use h2_conns::H2_STREAMS_PER_CONNECTION;
use h2_conns::{H2Set, StreamSlot};

/// Why a request could not be exchanged with the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No TCP connection within `connect_timeout`.
    #[error("connect to the upstream timed out")]
    ConnectTimeout,
    /// The TCP connection was refused or failed.
    #[error("connect to the upstream: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake did not finish within what was left of `connect_timeout`.
    #[error("TLS handshake with the upstream timed out (does it speak TLS on that port?)")]
    TlsTimeout,
    /// The TLS handshake failed; the text says why (certificate not trusted, wrong name).
    #[error("{0}")]
    Tls(String),
    /// The HTTP/1 or HTTP/2 connection could not be set up.
    #[error("upstream connection set-up: {0}")]
    Handshake(#[source] hyper::Error),
    /// Sending the request or reading the response head failed.
    #[error("upstream exchange: {0}")]
    Send(#[source] hyper::Error),
    /// A new HTTP/2 connection got an answer that is not HTTP/2 (an HTTP/1.1 server reading
    /// the connection preface as a bad request).
    #[error(
        "the upstream does not speak HTTP/2 on that port ({0}): with protocol = \"http2\" an \
         http:// upstream must take HTTP/2 without TLS (h2c, prior knowledge); set [upstream] \
         protocol = \"http1\" for an HTTP/1.1 application"
    )]
    NotHttp2(#[source] hyper::Error),
    /// No answer's head within `response_timeout` (on palisade's own connections: of the
    /// request's end, or with the upstream taking none of the body for that long).
    #[error("no answer from the upstream within response_timeout")]
    ResponseTimeout,
    /// Sending the request or reading the answer on a connection palisade drives itself
    /// failed.
    #[error("upstream exchange: {0}")]
    Exchange(#[source] ExchangeError),
    /// The HTTP/2 connection this request waited for (another request was opening it)
    /// could not be opened: that attempt's error.
    #[error("{0}")]
    Shared(Arc<PoolError>),
}

/// An idle connection palisade drives itself, when it was last used, and from when it may
/// be used again (later than that after an answer with no body by rule).
struct NativeIdle {
    conn: NativeConn,
    since: Instant,
    usable_from: Instant,
}

/// An idle connection and when it was last used.
struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

/// The idle connections of one worker to the upstream.
pub struct UpstreamPool {
    address: String,
    /// TLS for an `https://` upstream; plain TCP when `None`.
    tls: Option<UpstreamTls>,
    /// Whether requests sent as HTTP/2 may be sent at all (`[upstream] protocol`).
    protocol: UpstreamProtocol,
    /// The HTTP/2 connections requests share, with `protocol = "http2"`: the first set for
    /// most requests, the second for requests with large header blocks, which an upstream
    /// may refuse by ending the connection they are on (so only other such requests share
    /// their fate, and they still share connections rather than each opening one).
    h2: [H2Set; 2],
    /// Numbers the HTTP/2 connections, so a failed one can be told from its successor.
    next_id: AtomicU64,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    /// Idle connections for the exchanges palisade drives itself, oldest first.
    native_idle: Mutex<Vec<NativeIdle>>,
    /// Whether the task closing expired idle connections has been started.
    sweeping: AtomicBool,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("protocol", &self.protocol)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// A connection lent to one exchange; back in the pool with [`Lease::release`]. An HTTP/2
/// exchange holds its stream's place on its connection instead, until its body ends.
pub struct Lease {
    sender: Option<SendRequest<RequestBody>>,
    _slot: Option<StreamSlot>,
    pool: Arc<UpstreamPool>,
}

impl Lease {
    /// Returns the connection to its pool for the next request.
    pub fn release(self) {
        if let Some(sender) = self.sender {
            self.pool.check_in(sender);
        }
    }
}

impl UpstreamPool {
    /// A pool connecting to `address` (`host:port`), over `tls` when given, speaking
    /// `protocol` to it.
    pub fn new(
        address: String,
        tls: Option<UpstreamTls>,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        Self {
            address,
            tls,
            protocol,
            h2: Default::default(),
            next_id: AtomicU64::new(0),
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            native_idle: Mutex::new(Vec::new()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// [`Self::send_timed`] without a response timeout.
    pub async fn send(
        self: &Arc<Self>,
        request: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, PoolError> {
        self.send_timed(request, None).await
    }

    /// Sends `request` on an idle connection (or a new one) and returns the answer, whose
    /// body gives its connection back to the pool when it ends. A request whose version is
    /// HTTP/2 goes over a shared HTTP/2 connection (only with `protocol = "http2"`; its URI
    /// must then be absolute). `response_timeout` bounds the wait for the answer's head (on
    /// palisade's own HTTP/1.1 connections from the request's end: an upload's time is not
    /// counted, only time when the upstream takes none of it).
    pub async fn send_timed(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        response_timeout: Option<Duration>,
    ) -> Result<Response<PooledBody>, PoolError> {
        // The HTTP/2 and hyper paths' futures are boxed: inline, the largest (HTTP/2, about
        // 14 KiB) set the size of this future and of every future holding it, so every busy
        // connection held that much whichever path its request took.
        // The answer's stall clock over hyper's connections: only for requests whose body
        // had ended when they were sent. hyper sends a streaming body on its own, unseen
        // from here, and a two-way stream (a gRPC call) may rightly wait on the client.
        let stall_limit = response_timeout.filter(|_| request.body().is_end_stream());
        if request.version() == http::Version::HTTP_2 {
            debug_assert_eq!(self.protocol, UpstreamProtocol::Http2);
            let sent = within(response_timeout, Box::pin(self.send_h2(request)));
            let (response, lease) = sent.await?;
            return Ok(response.map(|incoming| PooledBody::new(incoming, lease, stall_limit)));
        }
        if !request.headers().contains_key(http::header::UPGRADE) {
            let (head, body) = request.into_parts();
            let fields = ForwardingFields::default();
            return self.send_native(head, fields, body, response_timeout).await;
        }
        let sent = within(response_timeout, Box::pin(self.send_hyper(request)));
        let (mut response, lease) = sent.await?;
        if response
            .headers()
            .contains_key(http::header::CONTENT_LENGTH)
        {
            native::content_length(response.headers_mut()).map_err(PoolError::Exchange)?;
        }
        Ok(response.map(|incoming| PooledBody::new(incoming, lease, stall_limit)))
    }

    /// [`Self::send_timed`] for a request in parts, which go to palisade's own HTTP/1.1
    /// exchange as they are (no `Request` rebuilt, no `async fn` layer to move them into).
    pub fn send_parts(
        self: &Arc<Self>,
        mut head: http::request::Parts,
        fields: ForwardingFields,
        body: RequestBody,
        response_timeout: Option<Duration>,
    ) -> Either<impl Future<Output = Answered> + Send + '_, BoxedSend<'_>> {
        if head.version != http::Version::HTTP_2
            && !head.headers.contains_key(http::header::UPGRADE)
        {
            return Either::Left(self.send_native(head, fields, body, response_timeout));
        }
        fields.insert_into(&mut head.headers);
        // Boxed: inline, `send_timed`'s future would double this one's size.
        let request = Request::from_parts(head, body);
        Either::Right(Box::pin(self.send_timed(request, response_timeout)))
    }

    /// Sends a request on a connection palisade drives itself.
    async fn send_native(
        self: &Arc<Self>,
        head: http::request::Parts,
        fields: ForwardingFields,
        mut body: RequestBody,
        response_timeout: Option<Duration>,
    ) -> Result<Response<PooledBody>, PoolError> {
        // One more try at most, and on a new connection: a request that makes the upstream
        // close connections must not be sent once per idle connection.
        let mut retried = false;
        loop {
            // One reading of the clock for the pool's idle times and the response timer.
            let now = Instant::now();
            let idle = if retried {
                None
            } else {
                self.check_out_native(now)
            };
            let (conn, reused, sending) = match idle {
                Some(conn) => (conn, true, now),
                // Boxed: a new connection (its TLS handshake's state inline) is rare next
                // to the pooled one every other request takes, and would triple this
                // future's size. Connecting is `connect_timeout`'s: the response timer
                // starts after it.
                None => (Box::pin(self.open_native()).await?, false, Instant::now()),
            };
            let timeout = response_timeout.map(|limit| (sending, limit));
            match native::exchange(conn, &head, &fields, body, timeout, self).await {
                Ok(response) => return Ok(response.map(PooledBody::native)),
                Err(failed) if matches!(failed.error, ExchangeError::TimedOut) => {
                    return Err(PoolError::ResponseTimeout);
                }
                Err(mut failed) if reused && failed.retryable(&head.method) => {
                    body = failed
                        .body
                        .take()
                        .expect("a retryable failure returns the body");
                    retried = true;
                }
                Err(failed) => return Err(PoolError::Exchange(failed.error)),
            }
        }
    }

    /// Sends `request` through hyper's client and returns the response head with the
    /// connection, which the caller releases once the response body has ended.
    async fn send_hyper(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        loop {
            let (mut sender, reused) = match self.check_out() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if let Err(err) = sender.ready().await {
                if reused {
                    continue; // closed while idle: try the next one
                }
                return Err(PoolError::Send(err));
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        sender: Some(sender),
                        _slot: None,
                        pool: Arc::clone(self),
                    };
                    return Ok((response, lease));
                }
                Err(mut err) => match err.take_message() {
                    // Never written: safe to send again, on another connection.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(PoolError::Send(err.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection palisade drives itself that is still open,
    /// with nothing unasked for on it, and not waiting out a grace period (those stay).
    fn check_out_native(&self, now: Instant) -> Option<NativeConn> {
        let mut idle = self
            .native_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut at = idle.len();
        while at > 0 {
            at -= 1;
            let entry = &idle[at];
            let expired = now.duration_since(entry.since) >= self.idle_timeout;
            if !expired && entry.usable_from > now {
                continue;
            }
            let mut entry = idle.remove(at);
            if !expired && entry.conn.reusable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended cleanly for the next request, usable after
    /// `grace` when given, within `pool_max_idle` (the oldest closed first) and
    /// `pool_idle_timeout`.
    fn check_in_native(&self, conn: NativeConn, grace: Option<Duration>) {
        let now = Instant::now();
        let mut idle = self
            .native_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let usable_from = grace.map_or(now, |grace| now + grace);
        let entry = NativeIdle {
            conn,
            since: now,
            usable_from,
        };
        self.push_idle(&mut idle, entry, |entry| entry.since, now);
    }

    /// Pushes `entry` on an idle stack, whose oldest connections sit at the bottom: the
    /// expired ones are closed first, and the oldest when the stack is full.
    fn push_idle<T>(&self, idle: &mut Vec<T>, entry: T, since: fn(&T) -> Instant, now: Instant) {
        let expired = idle
            .iter()
            .take_while(|entry| now.duration_since(since(entry)) >= self.idle_timeout)
            .count();
        idle.drain(..expired);
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push(entry);
    }

    /// The most recently used open connection, dropping closed and expired ones on the way.
    fn check_out(&self) -> Option<SendRequest<RequestBody>> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(entry) = idle.pop() {
            if self.usable(&entry, now) {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Whether an idle connection is still open and not past `pool_idle_timeout`.
    fn usable(&self, entry: &Idle, now: Instant) -> bool {
        !entry.sender.is_closed() && now.duration_since(entry.since) < self.idle_timeout
    }

    fn check_in(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.push_idle(
            &mut idle,
            Idle { sender, since: now },
            |entry| entry.since,
            now,
        );
    }

    /// Closes the idle connections that expired. A pool left alone (traffic stopped, or a
    /// reload replaced it) would otherwise keep up to `pool_max_idle` upstream sockets open
    /// until the upstream closed them.
    fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|entry| self.usable(entry, now));
        drop(idle);
        let mut native = self
            .native_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        native.retain_mut(|entry| {
            now.duration_since(entry.since) < self.idle_timeout && entry.conn.reusable()
        });
        drop(native);
        self.sweep_h2(now);
    }

    /// Starts, once per pool, a task on this worker's runtime that sweeps every
    /// `pool_idle_timeout`; it ends with the pool.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        let period = self.idle_timeout;
        if period.is_zero() {
            return; // nothing is kept idle at all
        }
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                pool.sweep();
            }
        });
    }

    /// A TCP connection to the upstream within `connect_timeout`, and the deadline the TLS
    /// handshake (if any) must also meet.
    async fn open_tcp(self: &Arc<Self>) -> Result<(TcpStream, Instant), PoolError> {
        self.start_sweeping();
        let deadline = Instant::now() + self.connect_timeout;
        let connect = TcpStream::connect(self.address.as_str());
        let stream = match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => return Err(PoolError::ConnectTimeout),
            Ok(Err(err)) => return Err(PoolError::Connect(err)),
            Ok(Ok(stream)) => stream,
        };
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        Ok((stream, deadline))
    }

    /// A new HTTP/1.1 connection, driven by its own task on this worker's runtime. TCP
    /// connect and TLS handshake share one `connect_timeout`.
    async fn connect(self: &Arc<Self>) -> Result<SendRequest<RequestBody>, PoolError> {
        let (stream, deadline) = self.open_tcp().await?;
        let Some(tls) = &self.tls else {
            return http1_handshake(TokioIo::new(stream)).await;
        };
        http1_handshake(TokioIo::new(tls_handshake(tls, stream, deadline).await?)).await
    }

    /// A new connection for the exchanges palisade drives itself, over TLS for an
    /// `https://` upstream (TCP connect and handshake within one `connect_timeout`).
    async fn open_native(self: &Arc<Self>) -> Result<NativeConn, PoolError> {
        let (stream, deadline) = self.open_tcp().await?;
        let stream = match &self.tls {
            None => native::Stream::Plain(stream),
            Some(tls) => native::Stream::Tls(Box::new(tls_handshake(tls, stream, deadline).await?)),
        };
        Ok(NativeConn::new(stream))
    }
}

/// `exchange`, given up with [`PoolError::ResponseTimeout`] after `limit` when there is one.
async fn within<T>(
    limit: Option<Duration>,
    exchange: impl std::future::Future<Output = Result<T, PoolError>>,
) -> Result<T, PoolError> {
    match limit {
        None => exchange.await,
        Some(limit) => tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(PoolError::ResponseTimeout)),
    }
}

/// `stream` under TLS for `tls`, the handshake done by `deadline`.
async fn tls_handshake(
    tls: &UpstreamTls,
    stream: TcpStream,
    deadline: Instant,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, PoolError> {
    match tokio::time::timeout_at(deadline, tls.handshake(stream)).await {
        Err(_) => Err(PoolError::TlsTimeout),
        Ok(Err(why)) => Err(PoolError::Tls(why)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// The HTTP/1.1 connection over `io`, driven by its own task.
async fn http1_handshake<T>(io: T) -> Result<SendRequest<RequestBody>, PoolError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(PoolError::Handshake)?;
    // Upgrades stay possible: a 101 answer turns the connection into a tunnel.
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// A response body from the upstream that gives its connection back to the pool when it
/// ends. A body dropped before its end takes an HTTP/1.1 connection with it (the rest of
/// that response would still be in the way of the next one); an HTTP/2 stream is reset
/// instead, and its connection stays.
pub struct PooledBody {
    inner: Inner,
    lease: Option<Lease>,
    /// Bounds each wait for more of a body hyper reads (palisade's own reads keep theirs).
    stall: StallTimer,
}

enum Inner {
    /// Read by hyper's client; `lease` gives the connection back.
    Hyper(Incoming),
    /// Read by palisade, which gives the connection back itself.
    Native(NativeBody),
}

impl PooledBody {
    /// Wraps `inner`, releasing `lease` at its end (at once when it is already empty); the
    /// upstream may send nothing for `stall_limit` while more is awaited.
    pub fn new(inner: Incoming, lease: Lease, stall_limit: Option<Duration>) -> Self {
        let mut body = Self {
            inner: Inner::Hyper(inner),
            lease: Some(lease),
            stall: StallTimer::new(stall_limit),
        };
        if body.is_end_stream() {
            body.release();
        }
        body
    }

    fn native(inner: NativeBody) -> Self {
        Self {
            inner: Inner::Native(inner),
            lease: None,
            stall: StallTimer::new(None),
        }
    }

    /// Keeps the connection from ever going back to the pool (it was upgraded).
    pub fn forget_connection(&mut self) {
        self.lease = None;
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let inner = match &mut this.inner {
            Inner::Native(inner) => {
                return Pin::new(inner).poll_frame(cx).map_err(BoxError::from);
            }
            Inner::Hyper(inner) => inner,
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if polled.is_pending() {
            if this.stall.expired(cx) {
                // Never pooled again; an HTTP/2 stream is reset as the body is dropped.
                this.lease = None;
                return Poll::Ready(Some(Err(ExchangeError::BodyTimedOut.into())));
            }
            return Poll::Pending;
        }
        this.stall.progressed();
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(inner) => inner.is_end_stream(),
            Inner::Native(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(inner) => inner.size_hint(),
            Inner::Native(inner) => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests;
