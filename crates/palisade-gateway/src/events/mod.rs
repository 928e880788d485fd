//! Typed events on one internal bus.
//!
//! Every decision the gateway takes (a request rate limited, refused, an upstream failure)
//! and every operational change (config reloaded or refused, state store degraded) is an
//! [`Event`]. The [`EventBus`] hands each event to every sink. A sink must accept without
//! waiting: the JSON log sink queues into a bounded channel and counts what it had to drop,
//! so a slow disk or pipe never slows a request.
//!
//! Events carry no secrets: no query strings, cookies, authorization headers or bodies.

pub mod log;

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::metrics::Metrics;

/// What identifies the request an event is about.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The gateway's id for the request (also sent upstream as `x-request-id`).
    pub id: String,
    /// The resolved client address.
    pub client_ip: IpAddr,
    /// The request method.
    pub method: String,
    /// The path, without the query string (which may hold tokens).
    pub path: String,
}

/// One event.
#[derive(Debug, Clone)]
pub enum Event {
    /// A rate-limit rule found a request over its limit.
    RateLimited {
        /// The request.
        request: RequestInfo,
        /// The rule's name.
        rule: String,
        /// `true` when the request was refused, `false` in `log` mode.
        enforced: bool,
        /// The rule's limit.
        limit: u64,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// A pipeline stage answered the request itself (blocked it).
    RequestBlocked {
        /// The request.
        request: RequestInfo,
        /// The stage that answered.
        stage: &'static str,
        /// A short stable reason.
        reason: String,
        /// The status sent.
        status: u16,
    },
    /// A request failed inside the gateway or upstream.
    RequestFailed {
        /// The request.
        request: RequestInfo,
        /// Who caused it: client, upstream, internal.
        source: &'static str,
        /// The error kind (`upstream_timeout`, ...).
        kind: &'static str,
        /// The status sent.
        status: u16,
    },
    /// The shared state store stopped answering; the `on_error` policy applies.
    StateDegraded {
        /// The backend name.
        backend: &'static str,
        /// The policy now in force.
        policy: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The shared state store answers again.
    StateRecovered {
        /// The backend name.
        backend: &'static str,
    },
    /// A new configuration is in force.
    ConfigReloaded {
        /// The file it came from.
        file: String,
    },
    /// A reload was refused; the previous configuration stays.
    ConfigRejected {
        /// The file.
        file: String,
        /// The same messages `palisade check` prints.
        errors: Vec<String>,
    },
    /// The TLS certificate was reloaded, or failed to.
    TlsReloaded {
        /// Whether the new certificate is in use.
        ok: bool,
        /// What failed, if anything.
        detail: String,
    },
}

impl Event {
    /// The stable dotted event name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limit.exceeded",
            Self::RequestBlocked { .. } => "request.blocked",
            Self::RequestFailed { .. } => "request.failed",
            Self::StateDegraded { .. } => "state.degraded",
            Self::StateRecovered { .. } => "state.recovered",
            Self::ConfigReloaded { .. } => "config.reloaded",
            Self::ConfigRejected { .. } => "config.rejected",
            Self::TlsReloaded { .. } => "tls.reloaded",
        }
    }

    /// The event as one flat JSON object with stable dotted field names.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("event".into(), json!(self.name()));
        let mut put = |key: &str, value: Value| {
            out.insert(key.into(), value);
        };
        match self {
            Self::RateLimited {
                request,
                rule,
                enforced,
                limit,
                retry_after_secs,
            } => {
                request_fields(request, &mut put);
                put("rule.name", json!(rule));
                put("rate_limit.enforced", json!(enforced));
                put("rate_limit.limit", json!(limit));
                put("rate_limit.retry_after", json!(retry_after_secs));
            }
            Self::RequestBlocked {
                request,
                stage,
                reason,
                status,
            } => {
                request_fields(request, &mut put);
                put("stage", json!(stage));
                put("reason", json!(reason));
                put("http.status", json!(status));
            }
            Self::RequestFailed {
                request,
                source,
                kind,
                status,
            } => {
                request_fields(request, &mut put);
                put("error.source", json!(source));
                put("error.kind", json!(kind));
                put("http.status", json!(status));
            }
            Self::StateDegraded {
                backend,
                policy,
                detail,
            } => {
                put("state.backend", json!(backend));
                put("state.on_error", json!(policy));
                put("error.detail", json!(detail));
            }
            Self::StateRecovered { backend } => put("state.backend", json!(backend)),
            Self::ConfigReloaded { file } => put("config.file", json!(file)),
            Self::ConfigRejected { file, errors } => {
                put("config.file", json!(file));
                put("config.errors", json!(errors));
            }
            Self::TlsReloaded { ok, detail } => {
                put("tls.ok", json!(ok));
                put("error.detail", json!(detail));
            }
        }
        out
    }
}

fn request_fields(request: &RequestInfo, put: &mut impl FnMut(&str, Value)) {
    put("request.id", json!(request.id));
    put("client.ip", json!(request.client_ip.to_string()));
    put("http.method", json!(request.method));
    put("url.path", json!(request.path));
}

/// Something that consumes events. `accept` must return at once.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Takes one event; never waits.
    fn accept(&self, event: &Arc<Event>);
}

/// The one bus every event goes through.
#[derive(Debug, Clone)]
pub struct EventBus {
    sinks: Arc<Vec<Arc<dyn EventSink>>>,
}

impl EventBus {
    /// A bus delivering to `sinks`.
    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Self {
            sinks: Arc::new(sinks),
        }
    }

    /// Delivers `event` to every sink.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        for sink in self.sinks.iter() {
            sink.accept(&event);
        }
    }
}

/// Counts every event by name in `palisade_events_total`.
#[derive(Debug)]
pub struct MetricsSink(pub Arc<Metrics>);

impl EventSink for MetricsSink {
    fn accept(&self, event: &Arc<Event>) {
        self.0.events.inc(&[event.name()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestInfo {
        RequestInfo {
            id: "r1".into(),
            client_ip: "192.0.2.1".parse().expect("ip"),
            method: "POST".into(),
            path: "/login".into(),
        }
    }

    #[test]
    fn rate_limit_events_have_stable_dotted_fields() {
        let event = Event::RateLimited {
            request: request(),
            rule: "default".into(),
            enforced: true,
            limit: 10,
            retry_after_secs: 4,
        };
        let json = Value::Object(event.to_json());
        assert_eq!(json["event"], "rate_limit.exceeded");
        assert_eq!(json["client.ip"], "192.0.2.1");
        assert_eq!(json["url.path"], "/login");
        assert_eq!(json["rule.name"], "default");
        assert_eq!(json["rate_limit.enforced"], true);
    }

    #[test]
    fn the_metrics_sink_counts_events_by_name() {
        let metrics = Arc::new(Metrics::default());
        let bus = EventBus::new(vec![Arc::new(MetricsSink(Arc::clone(&metrics)))]);
        bus.publish(Event::StateRecovered { backend: "redis" });
        assert_eq!(metrics.events.value(&["state.recovered"]), 1);
    }
}
