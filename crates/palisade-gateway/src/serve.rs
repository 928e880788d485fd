//! Starting and stopping the whole gateway: services, proxy listener, admin listener,
//! signals. The CLI's `serve` and `demo` and the integration tests all start it here.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin::{self, AdminRoutes};
use crate::config::{Config, ConfigSource};
use crate::gateway::{Gateway, StartError};
use crate::server::ProxyServer;
use crate::services::Services;

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The proxy's address.
    pub proxy_addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    /// The gateway, for reloads.
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    proxy: JoinHandle<()>,
    admin: JoinHandle<()>,
}

impl Running {
    /// Stops accepting and drains in-flight requests (bounded by `shutdown_timeout`), then
    /// has the security log write what it still holds (bounded by [`LOG_CLOSE_TIMEOUT`]).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.proxy.await;
        let _ = self.admin.await;
        let events = self.gateway.events().clone();
        let _ = tokio::task::spawn_blocking(move || events.close(LOG_CLOSE_TIMEOUT)).await;
    }
}

/// How long shutdown waits for the security log to write its queue and folded counts.
pub const LOG_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads the configuration from `source` and starts everything.
pub async fn start(source: ConfigSource, routes: AdminRoutes) -> Result<Running, StartError> {
    let config = source.load()?;
    let admin_token = admin::admin_token(
        config.admin.listen,
        std::env::var(admin::ADMIN_TOKEN_ENV).ok(),
    )
    .map_err(|err| StartError::Io(err.to_string()))?;
    let services = Services::start(&config).await?;
    let tls = match &config.server.tls {
        Some(tls) => Some(
            crate::tls::acceptor(tls, services.events.clone())
                .map_err(|err| StartError::Io(err.to_string()))?,
        ),
        None => None,
    };
    let proxy_listener = crate::server::bind(config.server.listen)
        .await
        .map_err(|err| {
            StartError::Io(format!(
                "cannot listen on {} (the proxy listener, [server] listen or --listen): {err}",
                config.server.listen
            ))
        })?;
    let admin_listener = bind(config.admin.listen).await?;
    let server_config = config.server.clone();
    let summary = Summary::of(&config);
    let gateway = Gateway::new(config, source, services)?;

    let admin_addr = local_addr(&admin_listener)?;
    let (stop, stopped) = watch::channel(false);
    let server = ProxyServer::new(proxy_listener, Arc::clone(&gateway), &server_config, tls)
        .map_err(|err| StartError::Io(err.to_string()))?;
    let proxy_addr = server.local_addr();
    let proxy = tokio::spawn(server.run(stopped.clone()));
    let admin = tokio::spawn(admin::run(
        admin_listener,
        Arc::clone(&gateway),
        routes,
        admin_token,
        wait_for(stopped),
    ));
    summary.log(proxy_addr, admin_addr, &gateway);
    Ok(Running {
        proxy_addr,
        admin_addr,
        gateway,
        stop,
        proxy,
        admin,
    })
}

/// How a gateway run by [`run_until_signalled`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// In-flight requests finished (or `shutdown_timeout` ran out) and the log was written.
    Drained,
    /// A second SIGTERM or SIGINT cut the wait short: requests still in flight were cut off.
    Forced,
}

/// Runs until SIGTERM or SIGINT (then drains), reloading on SIGHUP.
pub async fn run_until_signalled(source: ConfigSource) -> Result<Stopped, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signal_error =
        |err: std::io::Error| StartError::Io(format!("cannot listen for signals: {err}"));
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let running = start(source, AdminRoutes::standard()).await?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                info!("SIGHUP: reloading the configuration");
                let _ = running.gateway.reload();
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("shutting down: draining in-flight requests (a second SIGTERM or SIGINT stops at once)");
    let events = running.gateway.events().clone();
    let shutdown = running.shutdown();
    tokio::pin!(shutdown);
    let second = tokio::select! {
        () = &mut shutdown => None,
        _ = terminate.recv() => Some("SIGTERM"),
        _ = interrupt.recv() => Some("SIGINT"),
    };
    match second {
        None => {
            info!("stopped");
            Ok(Stopped::Drained)
        }
        Some(signal) => {
            warn!(
                signal,
                "second signal: stopping now, without waiting for in-flight requests"
            );
            // What the log writer still holds, if it can write it at once (a stalled
            // output is why an operator may have sent the second signal).
            let close = tokio::task::spawn_blocking(move || events.close(FORCED_LOG_CLOSE_TIMEOUT));
            let _ = tokio::time::timeout(FORCED_LOG_CLOSE_TIMEOUT * 2, close).await;
            Ok(Stopped::Forced)
        }
    }
}

/// How long a forced stop (a second signal) lets the security log write what it holds.
const FORCED_LOG_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The admin listener's socket.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|err| {
        StartError::Io(format!(
            "cannot listen on {addr} (the admin listener, [admin] listen or --admin-listen): \
             {err}"
        ))
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|err| StartError::Io(err.to_string()))
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// What the start-up line reports.
struct Summary {
    upstream: String,
    /// `[upstream] protocol`: `http1` or `http2`.
    upstream_protocol: &'static str,
    backend: &'static str,
    /// Whether the shared state is reached over TLS (`rediss://`); never the URL itself.
    backend_tls: bool,
    tls: bool,
}

impl Summary {
    fn of(config: &Config) -> Self {
        Self {
            upstream: config
                .upstream
                .url
                .as_ref()
                .map_or_else(String::new, |u| u.to_string()),
            upstream_protocol: config.upstream.protocol.name(),
            backend: crate::services::backend_name(config.state.backend),
            backend_tls: config.state.backend == palisade_store::ratelimit::BackendKind::Redis
                && config
                    .state
                    .redis_url
                    .as_ref()
                    .is_some_and(|url| palisade_store::redis_conn::is_tls(&url.0)),
            tls: config.server.tls.is_some(),
        }
    }

    fn log(&self, proxy: SocketAddr, admin: SocketAddr, gateway: &Gateway) {
        let runtime = gateway.runtime();
        let protections = runtime.pipeline.stage_names().join(",");
        let tables = runtime.config.rate_limit_rules();
        let rules = tables.len();
        info!(
            listen = %proxy,
            upstream = %self.upstream,
            upstream.protocol = self.upstream_protocol,
            upstream.client_cert = runtime.upstream.client_cert().unwrap_or("none"),
            admin = %admin,
            tls = self.tls,
            state.backend = self.backend,
            state.tls = self.backend_tls,
            pid = std::process::id(),
            rate_limit.rules = rules,
            protections = %protections,
            "palisade started"
        );
        for warning in crate::advice::rate_limits(&runtime.config) {
            warn!("{warning}");
        }
    }
}
