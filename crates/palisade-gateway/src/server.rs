//! The public listener: accepts connections (up to `max_connections`), terminates TLS,
//! guards each connection ([`crate::conn`]) and serves HTTP/1.1, h2 over TLS (ALPN) and h2c
//! with prior knowledge through hyper.
//!
//! On shutdown it stops accepting, lets in-flight requests finish for up to
//! `shutdown_timeout`, then returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::conn::{ConnShared, ConnTimeouts, GuardedIo};
use crate::framing::FramingTracker;
use crate::gateway::{ConnInfo, Gateway};

/// The proxy listener, ready to serve.
pub struct ProxyServer {
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
}

#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    max_head: usize,
    max_headers: usize,
    timeouts: ConnTimeouts,
    shutdown: Duration,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ProxyServer {
    /// A server on `listener` for `gateway`, with the limits in `server`.
    pub fn new(
        listener: TcpListener,
        gateway: Arc<Gateway>,
        server: &ServerConfig,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let max_head = server.max_header_size.0 as usize;
        let mut builder = auto::Builder::new(TokioExecutor::new());
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
            .max_concurrent_streams(256)
            .keep_alive_interval(server.idle_timeout.0 / 2)
            .keep_alive_timeout(Duration::from_secs(20));
        Self {
            listener,
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
                },
                shutdown: server.shutdown_timeout.0,
            },
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves connections until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                () = &mut shutdown => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
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
            let connection = self.connection(stream, peer, &graceful);
            tokio::spawn(async move {
                connection.await;
                drop(permit);
            });
        }
        drop(self.listener);
        info!(connections = graceful.count(), "draining connections");
        if tokio::time::timeout(self.limits.shutdown, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("shutdown timeout reached with requests still in flight");
        }
    }

    /// The future serving one connection, watched for graceful shutdown.
    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        graceful: &GracefulShutdown,
    ) -> impl Future<Output = ()> + Send + 'static {
        let gateway = Arc::clone(&self.gateway);
        let builder = Arc::clone(&self.builder);
        let tls = self.tls.clone();
        let limits = self.limits;
        let watcher = graceful.watcher();
        async move {
            let metrics = &gateway.services().metrics;
            metrics.open_connections.fetch_add(1, Ordering::Relaxed);
            let shared = ConnShared::new();
            match tls {
                None => {
                    let tracker = FramingTracker::new(limits.max_head, limits.max_headers);
                    let io =
                        GuardedIo::new(stream, Some(tracker), Arc::clone(&shared), limits.timeouts);
                    serve(
                        &builder,
                        io,
                        &gateway,
                        ConnInfo {
                            peer,
                            tls: false,
                            shared,
                        },
                        watcher,
                    )
                    .await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.timeouts.header_read, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let tracker = (!h2)
                                .then(|| FramingTracker::new(limits.max_head, limits.max_headers));
                            let io = GuardedIo::new(
                                stream,
                                tracker,
                                Arc::clone(&shared),
                                limits.timeouts,
                            );
                            let info = ConnInfo {
                                peer,
                                tls: true,
                                shared,
                            };
                            serve(&builder, io, &gateway, info, watcher).await;
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
}

/// Serves HTTP on one guarded connection until it closes.
async fn serve<T>(
    builder: &auto::Builder<TokioExecutor>,
    io: GuardedIo<T>,
    gateway: &Arc<Gateway>,
    info: ConnInfo,
    watcher: hyper_util::server::graceful::Watcher,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let gateway = Arc::clone(gateway);
    let peer = info.peer;
    let service = service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(gateway.handle(request, &info).await) }
    });
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(err) = watcher.watch(connection).await {
        debug!(client.peer = %peer, error = %err, "connection ended with an error");
    }
}
