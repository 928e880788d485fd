//! Multiplexed Redis connections, one per thread that uses them, each made on first use and
//! made again after it breaks.
//!
//! Commands from all requests on a thread are pipelined on that thread's connection, so many
//! concurrent requests cost one socket per thread. One per thread rather than one per
//! process because a multiplexed connection is driven by a task on the runtime that made it,
//! and the gateway serves requests on one single-threaded runtime per worker thread: with a
//! single connection, every decision of every other worker would wake the connecting
//! worker's thread and be woken back, and would wait while that worker is busy. Connecting
//! is bounded by `connect_timeout` and each command by `command_timeout`. After an I/O
//! error the thread's broken connection is dropped and its next caller connects again (one
//! caller at a time across all threads, so an outage does not cause a stampede).
//!
//! Never logs or prints the URL, which may carry a password.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};

/// Most threads that keep a connection at once. A thread past it takes the place of the one
/// that connected first; in the gateway only its worker threads and the main runtime's
/// threads decide, far fewer than this.
const MAX_THREADS: usize = 64;

/// Lazily made, self-repairing multiplexed connections, one per thread.
pub struct SharedConnection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// Each thread's connection, oldest first.
    per_thread: Mutex<Vec<(ThreadId, MultiplexedConnection)>>,
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
            per_thread: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// This thread's connection, made now if it has none.
    pub async fn get(&self) -> Result<MultiplexedConnection, ConnectionError> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _only_one = self.connecting.lock().await;
        // Asked again after the wait: on a multi-threaded runtime the task may have moved.
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config);
        let connection = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ConnectionError::ConnectTimeout(self.connect_timeout))??;
        self.keep(connection.clone());
        Ok(connection)
    }

    /// Tells the connection a command failed; a broken connection is dropped so this
    /// thread's next [`Self::get`] connects again. Other threads find out from their own
    /// commands.
    pub fn report(&self, error: &RedisError) {
        let broken = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.is_timeout();
        if broken {
            let thread = std::thread::current().id();
            self.slots().retain(|(owner, _)| *owner != thread);
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        let thread = std::thread::current().id();
        let slots = self.slots();
        let (_, connection) = slots.iter().find(|(owner, _)| *owner == thread)?;
        Some(connection.clone())
    }

    fn keep(&self, connection: MultiplexedConnection) {
        let thread = std::thread::current().id();
        let mut slots = self.slots();
        slots.retain(|(owner, _)| *owner != thread);
        if slots.len() >= MAX_THREADS {
            slots.remove(0);
        }
        slots.push((thread, connection));
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<(ThreadId, MultiplexedConnection)>> {
        self.per_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConnection")
            .field("url", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("connections", &self.slots().len())
            .finish()
    }
}
