//! The public listener: accepts connections (up to `max_connections`), terminates TLS,
//! guards each connection ([`crate::conn`]) and serves it: plain HTTP/1.1 requests in
//! palisade's own loop ([`crate::http1`]), everything else (requests with bodies, upgrades,
//! h2 over TLS by ALPN, h2c with prior knowledge) through hyper.
//!
//! Each worker thread runs its own single-threaded runtime (see [`ProxyServer`]).
//! On shutdown it stops accepting, lets in-flight requests finish for up to
//! `shutdown_timeout`, then returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::conn::{ConnShared, ConnTimeouts, GuardedIo, Prefixed};
use crate::events::Event;
use crate::framing::{HTTP2_PREFACE, is_http2_preface};
use crate::gateway::{ConnInfo, Gateway};
use crate::http1::{self, HeadLimits};
use crate::send_watch::{self, StreamExecutor};

/// The proxy listener, ready to serve.
///
/// Connections are served by one single-threaded runtime per worker thread (by default one
/// per core), each with its own `SO_REUSEPORT` listener and its own upstream pool, like
/// nginx's worker processes: a request never wakes another thread on its way from client
/// to upstream and back, which on a small machine costs more than the proxying itself.
pub struct ProxyServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<StreamExecutor>>,
    limits: Limits,
    workers: usize,
}

#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    max_head: usize,
    max_headers: usize,
    timeouts: ConnTimeouts,
    shutdown: Duration,
}

/// What every worker shares.
#[derive(Clone)]
struct Shared {
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<StreamExecutor>>,
    limits: Limits,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("addr", &self.addr)
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Binds `addr` with `SO_REUSEPORT`, so each worker can bind it again.
///
/// `SO_REUSEPORT` would also let a second palisade (same user) bind the port of a running
/// one and silently take half of its connections, so the port is first bound without it:
/// that fails with "address in use" while anything listens there.
pub async fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let listener = reuseport_listener(addr)?;
    listener.into_std()
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl ProxyServer {
    /// A server on `listener` (from [`bind`]) for `gateway`, with the limits in `server`.
    pub fn new(
        listener: std::net::TcpListener,
        gateway: Arc<Gateway>,
        server: &ServerConfig,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let max_head = server.max_header_size.0 as usize;
        let mut builder = auto::Builder::new(StreamExecutor::new(server.send_timeout.0));
        builder
            .http1()
            // Header and idle timeouts are enforced by `GuardedIo`, which knows when a
            // request is in flight; hyper's own timer would also cut idle keep-alives.
            .header_read_timeout(None)
            .max_buf_size(max_head.max(8192))
            .max_headers(server.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(max_head as u32)
            // As nginx: what one client connection can hold open at once (each stream up to
            // an upstream answer's 256 KiB window that the client may never read).
            .max_concurrent_streams(128)
            .keep_alive_interval(server.idle_timeout.0 / 2)
            .keep_alive_timeout(Duration::from_secs(20));
        Ok(Self {
            listener,
            addr,
            gateway,
            tls,
            builder: Arc::new(builder),
            limits: Limits {
                max_connections: server.max_connections.max(1),
                max_head,
                max_headers: server.max_headers,
                timeouts: ConnTimeouts {
                    header_read: server.header_read_timeout.0,
                    idle: server.idle_timeout.0,
                    send: server.send_timeout.0,
                },
                shutdown: server.shutdown_timeout.0,
            },
            workers: worker_count(server.workers),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on every worker until `stop` turns true, then drains and returns.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let shared = Shared {
            gateway: self.gateway,
            tls: self.tls,
            builder: self.builder,
            limits: self.limits,
            permits: Arc::new(Semaphore::new(self.limits.max_connections)),
        };
        let mut first = Some(self.listener);
        let mut finished = Vec::new();
        for worker in 0..self.workers {
            let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
            let (shared, stop, listener) = (shared.clone(), stop.clone(), first.take());
            let addr = self.addr;
            let spawned = std::thread::Builder::new()
                .name(format!("palisade-worker-{worker}"))
                .spawn(move || {
                    run_worker(worker, addr, listener, shared, stop);
                    let _ = done.send(());
                });
            match spawned {
                Ok(_) => finished.push(finished_rx),
                Err(err) => warn!(worker, error = %err, "cannot start a worker thread"),
            }
        }
        for finished_rx in finished {
            let _ = finished_rx.await;
        }
    }
}

/// The number of worker threads: the configured count, or one per core.
pub fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One worker thread: its own runtime, listener and connections.
fn run_worker(
    worker: usize,
    addr: SocketAddr,
    listener: Option<std::net::TcpListener>,
    shared: Shared,
    stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            warn!(worker, error = %err, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match listener {
            Some(listener) => TcpListener::from_std(listener),
            None => reuseport_listener(addr),
        };
        match listener {
            Ok(listener) => accept_loop(worker, listener, shared, stop).await,
            Err(err) => warn!(worker, error = %err, "worker cannot listen"),
        }
    });
}

/// Accepts and serves connections until `stop`, then drains this worker's connections.
async fn accept_loop(
    worker: usize,
    listener: TcpListener,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let stopping = stop.clone();
    let shutdown = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&shared.permits).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = connection(worker, &shared, stream, peer, &graceful, &stopping);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if graceful.count() > 0 {
        info!(
            worker,
            connections = graceful.count(),
            "draining connections"
        );
    }
    if tokio::time::timeout(shared.limits.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            worker,
            "shutdown timeout reached with requests still in flight"
        );
    }
}

/// The future serving one connection, watched for graceful shutdown.
fn connection(
    worker: usize,
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    graceful: &GracefulShutdown,
    stop: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let Shared {
        gateway,
        tls,
        builder,
        limits,
        ..
    } = shared.clone();
    let watcher = graceful.watcher();
    let mut stop = stop.clone();
    let head_limits = HeadLimits {
        max_head: limits.max_head,
        max_headers: limits.max_headers,
    };
    async move {
        let metrics = &gateway.services().metrics;
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        let conn = ConnShared::new();
        let local = stream.local_addr().ok();
        let info = |tls| ConnInfo {
            peer,
            local,
            tls,
            worker,
            shared: Arc::clone(&conn),
        };
        match tls {
            None => {
                let io =
                    GuardedIo::own_http1(Prefixed::new(stream), Arc::clone(&conn), limits.timeouts);
                let served = Http1 {
                    builder: &builder,
                    gateway: &gateway,
                    limits: head_limits,
                    stop: &mut stop,
                };
                served.serve(io, info(false), true, watcher).await;
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(limits.timeouts.header_read, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => {
                        let alpn = stream.get_ref().1.alpn_protocol();
                        let (h2, h1) = (alpn == Some(b"h2"), alpn == Some(b"http/1.1"));
                        let stream = Prefixed::new(stream);
                        let shared = Arc::clone(&conn);
                        let info = info(true);
                        if h2 {
                            let io = GuardedIo::new(stream, None, shared, limits.timeouts);
                            if let Some(io) = http2_preface(io, peer).await {
                                serve(&builder, io, &gateway, info, watcher).await;
                            }
                        } else {
                            let io = GuardedIo::own_http1(stream, shared, limits.timeouts);
                            let served = Http1 {
                                builder: &builder,
                                gateway: &gateway,
                                limits: head_limits,
                                stop: &mut stop,
                            };
                            // ALPN agreed on HTTP/1.1: no HTTP/2 preface is taken.
                            served.serve(io, info, !h1, watcher).await;
                        }
                    }
                    Ok(Err(err)) => {
                        debug!(client.peer = %peer, error = %err, "TLS handshake failed")
                    }
                    Err(_) => debug!(client.peer = %peer, "TLS handshake timed out"),
                }
            }
        }
        metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What serving an HTTP/1.1 connection needs besides the connection.
struct Http1<'a> {
    builder: &'a auto::Builder<StreamExecutor>,
    gateway: &'a Arc<Gateway>,
    limits: HeadLimits,
    stop: &'a mut watch::Receiver<bool>,
}

impl Http1<'_> {
    /// Serves `io` in palisade's own loop, then through hyper if the loop hands it over
    /// (`http2`: whether an HTTP/2 preface may still start the connection).
    async fn serve<T>(
        self,
        io: GuardedIo<Prefixed<T>>,
        info: ConnInfo,
        http2: bool,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handed = http1::serve(io, self.gateway, &info, self.limits, http2, self.stop).await;
        if let Some(io) = handed {
            serve(self.builder, io, self.gateway, info, watcher).await;
        }
    }
}

/// Reads a TLS connection that agreed on `h2` by ALPN up to the end of the HTTP/2 preface
/// it must start with (RFC 9113 §3.3), within `header_read_timeout`, and puts the bytes back
/// for hyper; `None`, the connection closed, when the client speaks anything else. hyper
/// would otherwise serve HTTP/1.1 on it, out of the framing watch's sight.
async fn http2_preface<T>(
    mut io: GuardedIo<Prefixed<T>>,
    peer: SocketAddr,
) -> Option<GuardedIo<Prefixed<T>>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut read = bytes::BytesMut::with_capacity(1024);
    while read.len() < HTTP2_PREFACE.len() {
        match io.read_buf(&mut read).await {
            Ok(0) | Err(_) => return None,
            Ok(_) if is_http2_preface(&read) => {}
            Ok(_) => {
                debug!(client.peer = %peer, "not HTTP/2 after ALPN agreed on h2; closed");
                return None;
            }
        }
    }
    io.put_back(read.freeze());
    Some(io)
}

/// Serves HTTP on one guarded connection until it closes.
async fn serve<T>(
    builder: &auto::Builder<StreamExecutor>,
    io: GuardedIo<Prefixed<T>>,
    gateway: &Arc<Gateway>,
    info: ConnInfo,
    watcher: hyper_util::server::graceful::Watcher,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let events = gateway.events().clone();
    let gateway = Arc::clone(gateway);
    let peer = info.peer;
    let service = service_fn(move |request: Request<Incoming>| {
        let (mut head, body) = request.into_parts();
        if head.version == Version::HTTP_2 {
            // hyper spawns the request's stream right after this call, through
            // `StreamExecutor`, which bounds it by `send_timeout`.
            let watch = send_watch::watch_next_stream();
            head.extensions.insert(watch);
        }
        let gateway = Arc::clone(&gateway);
        let info = info.clone();
        async move {
            let received = tokio::time::Instant::now();
            let answer = gateway.handle(head, Some(body), &info, received).await;
            Ok::<_, std::convert::Infallible>(answer)
        }
    });
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(err) = watcher.watch(connection).await {
        // TODO: a head hyper refuses itself (on a connection it took over, after a request
        // with a body) still gets hyper's bare 400/431, without palisade's page or security
        // headers; the own loop's refusals have them (`http1::refuse`).
        // A client breaking HTTP on connection after connection makes one event each: the
        // log folds its repeats into a count (`events::repeats`).
        match err.downcast_ref::<hyper::Error>().and_then(refusal) {
            Some((kind, detail, status)) => events.publish(Event::RequestMalformed {
                client_ip: crate::client_ip::canonical(peer.ip()),
                kind,
                detail,
                status,
            }),
            None => debug!(client.peer = %peer, error = %err, "connection ended with an error"),
        }
    }
}

/// What a connection's end says the client sent wrong, as a `request.malformed` event's
/// kind, detail and status, when it says so. hyper refused a head it could not read, with a
/// bare answer of its own (or none, [`malformed`]): no stage saw the request, so the event
/// is published by the connection. Or an HTTP/2 client broke the protocol (a frame of the
/// wrong size, a bad header block, a flood of resets) and hyper ended its connection with
/// GOAWAY: as much a malformed request as a bad HTTP/1.1 head.
fn refusal(ended: &hyper::Error) -> Option<(&'static str, String, Option<u16>)> {
    if ended.is_parse() {
        let detail = ended.to_string();
        let (kind, status) = malformed(ended, &detail);
        return Some((kind, detail, status));
    }
    let broken = http2_violation(ended)?;
    let detail = match broken.reason() {
        Some(reason) => format!("GOAWAY {reason:?}: {broken}"),
        None => broken.to_string(),
    };
    Some(("http2_protocol", detail, None))
}

/// The HTTP/2 error palisade's side found in what the client sent, when it ended the
/// connection with a GOAWAY of its own for it (not the client's GOAWAY, not a clean
/// `NO_ERROR` close, not a network error).
// TODO: a single stream h2 refuses with RST_STREAM (a malformed header block on one stream)
// while the connection goes on is not published: h2 reports it to no one, so such probes
// leave no event.
fn http2_violation(ended: &hyper::Error) -> Option<&h2::Error> {
    let h2 = std::error::Error::source(ended)?.downcast_ref::<h2::Error>()?;
    let violation = h2.is_go_away()
        && h2.is_library()
        && h2
            .reason()
            .is_some_and(|reason| reason != h2::Reason::NO_ERROR);
    violation.then_some(h2)
}

/// What kind of head hyper refused (`detail` is its message) and the status it answered
/// with, as hyper maps its parse errors: 431 for a head too large, 414 for a URI too long
/// (told apart by hyper's message alone), nothing for an HTTP/2 preface or an error of its
/// own, 400 for the rest.
fn malformed(refused: &hyper::Error, detail: &str) -> (&'static str, Option<u16>) {
    if refused.is_parse_version_h2() {
        ("http2_preface", None)
    } else if refused.is_parse_too_large() && detail.starts_with("URI too long") {
        ("uri_too_long", Some(414))
    } else if refused.is_parse_too_large() {
        ("head_too_large", Some(431))
    } else if detail.starts_with("internal error") {
        ("malformed_head", None)
    } else {
        ("malformed_head", Some(400))
    }
}
