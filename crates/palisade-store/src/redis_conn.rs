//! One multiplexed Redis connection shared by every request of a process, made on first
//! use and made again after it breaks.
//!
//! Commands from all requests are pipelined on the one connection, so many concurrent
//! requests cost one socket. Connecting is bounded by `connect_timeout` and each command by
//! `command_timeout`. After an I/O error the broken connection is dropped and the next
//! caller connects again (one caller at a time, so an outage does not cause a stampede).
//!
//! Never logs or prints the URL, which may carry a password.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};

// TODO: the connection is driven by a task on the runtime that connected first, so each
// decision of every other gateway worker crosses threads twice; one connection per worker
// thread measured no faster on 2 cores (half the pipelining), see docs/gateway-benchmark.md.
/// A lazily made, self-repairing multiplexed connection.
pub struct SharedConnection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    current: Mutex<Option<MultiplexedConnection>>,
    /// Held while connecting, so only one caller connects at a time.
    connecting: tokio::sync::Mutex<()>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The URL could not be read. The URL itself is not repeated, as it may hold a password.
    #[error("invalid redis_url: expected redis://[:password@]host:port[/db]")]
    InvalidUrl,
    /// Connecting took longer than `connect_timeout`.
    #[error("redis did not accept a connection within {0:?}")]
    ConnectTimeout(Duration),
    /// Redis refused or broke the connection.
    #[error("redis connection failed: {0}")]
    Redis(#[from] RedisError),
}

impl SharedConnection {
    /// Prepares a connection to `url`; nothing is connected until the first [`Self::get`].
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, ConnectionError> {
        let client = redis::Client::open(url).map_err(|_| ConnectionError::InvalidUrl)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout));
        Ok(Self {
            client,
            config,
            connect_timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection, made now if there is none.
    pub async fn get(&self) -> Result<MultiplexedConnection, ConnectionError> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _only_one = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config);
        let connection = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ConnectionError::ConnectTimeout(self.connect_timeout))??;
        *self.slot() = Some(connection.clone());
        Ok(connection)
    }

    /// A new connection in place of one Redis closed while it sat idle (its `timeout`
    /// setting, a restart), which shows only when the connection is next used.
    pub async fn replace_dropped(
        &self,
        dropped: &RedisError,
    ) -> Result<MultiplexedConnection, ConnectionError> {
        self.report(dropped);
        self.get().await
    }

    /// Tells the connection a command failed; a broken connection is dropped so the next
    /// [`Self::get`] connects again.
    pub fn report(&self, error: &RedisError) {
        let broken = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.is_timeout();
        if broken {
            *self.slot() = None;
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConnection")
            .field("url", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("connected", &self.current().is_some())
            .finish()
    }
}
