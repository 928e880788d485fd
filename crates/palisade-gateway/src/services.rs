//! Long-lived services the pipeline stages share: the event bus, metrics, the clock and the
//! state stores. They are built once at start-up and survive configuration reloads, so
//! counters are not reset when the operator edits a limit.
//!
//! A later capability adds its store or engine here as one field (a ban list, the session
//! service), built in [`Services::start`], and its stage reads it in `Pipeline::build`.

use std::sync::Arc;

use palisade_policy::challenge::ChallengeKey;
use palisade_policy::clock::{Clock, SystemClock};
use palisade_policy::ratelimit::RateLimitStore;
use palisade_store::ratelimit::memory::MemoryRateLimiter;
use palisade_store::ratelimit::{BackendKind, StateBackend};

use crate::config::Config;
use crate::config::server::LogTarget;
use crate::events::log::{JsonLogSink, LogOutput};
use crate::events::{Event, EventBus, EventSink, MetricsSink};
use crate::metrics::Metrics;
use crate::sessions::SessionService;
use crate::upload::{SpoolSettings, UploadShared};

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
    /// The same store with its health and error counters, when it is the `[state]` backend.
    pub state: Option<Arc<StateBackend>>,
    /// Sessions, CSRF key and JWT verifier (`[session]`, `[csrf]`, `[identity]`).
    pub sessions: Arc<SessionService>,
    /// The challenge key used when none is configured: random, made once per process so
    /// that reloads keep clearances valid.
    pub challenge_key: ChallengeKey,
    /// The upload spool directory and image-decode gate (`[spool]`, read at start-up).
    pub uploads: UploadShared,
}

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The security log file could not be opened.
    #[error("cannot open the security log {path}: {error}")]
    LogFile {
        /// The file.
        path: String,
        /// The I/O error, in the message rather than a `source` so it is printed once.
        error: std::io::Error,
    },
    /// The system's random number generator failed.
    #[error("cannot draw a random challenge key: {0}")]
    Randomness(String),
    /// The upload spool directory could not be prepared.
    #[error("{0}")]
    Spool(std::io::Error),
    /// The state backend could not be set up.
    #[error("cannot set up the {backend} state backend: {detail}")]
    State {
        /// The backend.
        backend: &'static str,
        /// What failed.
        detail: String,
    },
    /// The session store could not be opened.
    #[error("cannot open the {store} session store: {detail}")]
    SessionStore {
        /// The store.
        store: &'static str,
        /// What failed.
        detail: String,
    },
    /// Key material could not be read. The detail never holds the key itself.
    #[error("{what}: {detail}")]
    Secret {
        /// Which secret.
        what: &'static str,
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
            let sink = JsonLogSink::start(
                output,
                config.log.queue,
                config.log.repeat_window.0,
                Arc::clone(&metrics),
            )
            .await
            .map_err(|error| ServicesError::LogFile {
                path: log_target_name(&config.log.security),
                error,
            })?;
            sinks.push(Arc::new(sink));
        }
        let events = EventBus::new(sinks);
        let uploads = UploadShared::start(config.spool.settings()).map_err(ServicesError::Spool)?;
        let state = StateBackend::from_config(&config.state, Arc::clone(&clock))
            .await
            .map_err(|err| ServicesError::State {
                backend: backend_name(config.state.backend),
                detail: err.to_string(),
            })?;
        let state = Arc::new(state);
        register_state_metrics(&metrics, &state);
        tokio::spawn(watch_state(
            Arc::downgrade(&state),
            config.state.on_error.as_str(),
            events.clone(),
        ));
        let sessions =
            SessionService::start(config, Arc::clone(&clock), Arc::clone(&metrics)).await?;
        let challenge_key =
            ChallengeKey::generate().map_err(|err| ServicesError::Randomness(err.to_string()))?;
        Ok(Self {
            events,
            metrics,
            clock,
            rate_limits: state.clone(),
            state: Some(state),
            sessions,
            challenge_key,
            uploads,
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
            state: None,
            sessions: SessionService::in_memory(),
            challenge_key: ChallengeKey::generate()
                .expect("the operating system's random number generator works"),
            uploads: UploadShared::unprepared(SpoolSettings::default()),
        }
    }
}

/// Exports the state backend's counters: errors, fallbacks, degraded.
fn register_state_metrics(metrics: &Metrics, state: &Arc<StateBackend>) {
    let state = Arc::downgrade(state);
    metrics.add_collector(Box::new(move |out| {
        let Some(state) = state.upgrade() else { return };
        let stats = state.stats();
        let backend = state.backend();
        out.push_str(&format!(
            "# HELP palisade_state_backend_errors_total Calls to the shared state backend that failed.\n\
             # TYPE palisade_state_backend_errors_total counter\n\
             palisade_state_backend_errors_total{{backend=\"{backend}\"}} {}\n\
             # HELP palisade_state_fallbacks_total Decisions taken by [state] on_error instead of the backend.\n\
             # TYPE palisade_state_fallbacks_total counter\n\
             palisade_state_fallbacks_total{{backend=\"{backend}\"}} {}\n\
             # HELP palisade_state_degraded Whether the shared state backend is unreachable now.\n\
             # TYPE palisade_state_degraded gauge\n\
             palisade_state_degraded{{backend=\"{backend}\"}} {}\n",
            stats.errors,
            stats.fallbacks,
            u8::from(stats.degraded),
        ));
    }));
}

/// Publishes `state.degraded` and `state.recovered` when the backend's health changes.
async fn watch_state(state: std::sync::Weak<StateBackend>, policy: &'static str, events: EventBus) {
    let mut degraded = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let now = state.stats().degraded;
        if now == degraded {
            continue;
        }
        degraded = now;
        let backend = state.backend();
        events.publish(if now {
            Event::StateDegraded {
                backend,
                policy,
                // The error itself says whether Redis is down or, say, its TLS certificate
                // was refused; it never holds the URL.
                detail: state
                    .degraded_by()
                    .unwrap_or_else(|| "the shared state backend does not answer".into()),
            }
        } else {
            Event::StateRecovered { backend }
        });
    }
}

/// The backend's name for logs and metrics.
pub fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Memory => "memory",
        BackendKind::Redis => "redis",
    }
}

/// The security log target as an operator wrote it, for start-up errors.
fn log_target_name(target: &LogTarget) -> String {
    match target {
        LogTarget::Stdout => "stdout".into(),
        LogTarget::Off => "off".into(),
        LogTarget::File(path) => path.display().to_string(),
    }
}
