//! Long-lived services the pipeline stages share: the event bus, metrics, the clock and the
//! state stores. They are built once at start-up and survive configuration reloads, so
//! counters are not reset when the operator edits a limit.
//!
//! A later capability adds its store or engine here as one field (a ban list, the session
//! store), built in [`Services::start`], and its stage reads it in `Pipeline::build`.

use std::sync::Arc;

use palisade_policy::clock::{Clock, SystemClock};
use palisade_policy::ratelimit::RateLimitStore;
use palisade_store::ratelimit::memory::MemoryRateLimiter;

use crate::config::Config;
use crate::config::server::LogTarget;
use crate::config::state::Backend;
use crate::events::log::{JsonLogSink, LogOutput};
use crate::events::{EventBus, EventSink, MetricsSink};
use crate::metrics::Metrics;

/// What the stages share for the life of the process.
#[derive(Debug, Clone)]
pub struct Services {
    /// The event bus every decision is published on.
    pub events: EventBus,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The time source for stores and policies.
    pub clock: Arc<dyn Clock>,
    /// Where rate-limit counters live.
    pub rate_limits: Arc<dyn RateLimitStore>,
}

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The security log file could not be opened.
    #[error("cannot open the security log {path}: {source}")]
    LogFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state backend could not be set up.
    #[error("cannot set up the {backend} state backend: {detail}")]
    State {
        /// The backend.
        backend: &'static str,
        /// What failed.
        detail: String,
    },
}

impl Services {
    /// Starts the sinks and stores named in `config`.
    pub async fn start(config: &Config) -> Result<Self, ServicesError> {
        let metrics = Arc::new(Metrics::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(MetricsSink(Arc::clone(&metrics)))];
        let output = match &config.log.security {
            LogTarget::Off => None,
            LogTarget::Stdout => Some(LogOutput::Stdout),
            LogTarget::File(path) => Some(LogOutput::File(path.clone())),
        };
        if let Some(output) = output {
            let sink = JsonLogSink::start(output, config.log.queue, Arc::clone(&metrics))
                .await
                .map_err(|source| ServicesError::LogFile {
                    path: format!("{:?}", config.log.security),
                    source,
                })?;
            sinks.push(Arc::new(sink));
        }
        let events = EventBus::new(sinks);
        let rate_limits = rate_limit_store(config, &clock)?;
        Ok(Self {
            events,
            metrics,
            clock,
            rate_limits,
        })
    }

    /// Services for tests and tools: no log sink, memory state.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Self {
        let metrics = Arc::new(Metrics::default());
        let events = EventBus::new(vec![Arc::new(MetricsSink(Arc::clone(&metrics)))]);
        Self {
            events,
            metrics,
            rate_limits: Arc::new(MemoryRateLimiter::new(Arc::clone(&clock), 100_000)),
            clock,
        }
    }
}

/// The rate-limit store for `[state]`.
fn rate_limit_store(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<dyn RateLimitStore>, ServicesError> {
    let state = &config.state;
    match state.backend {
        Backend::Memory => Ok(Arc::new(MemoryRateLimiter::new(
            Arc::clone(clock),
            state.memory_max_keys,
        ))),
        Backend::Redis => Err(ServicesError::State {
            backend: "redis",
            detail: "the Redis limiter is not built into this version yet".into(),
        }),
    }
}
