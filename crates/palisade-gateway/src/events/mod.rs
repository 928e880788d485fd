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
mod repeats;

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::metrics::Metrics;
use crate::pipeline::RequestId;

/// What identifies the request an event is about.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The gateway's id for the request.
    pub id: RequestId,
    /// The resolved client address.
    pub client_ip: IpAddr,
    /// The request method (shared, not copied: a standard method is a tag).
    pub method: http::Method,
    /// The path, without the query string (which may hold tokens).
    pub path: String,
    /// The authenticated user, once the identity stage has run.
    pub user_id: Option<String>,
}

/// What a session event is about. Never a secret: public ids and user ids only.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    /// The session's public id.
    pub session_id: Option<String>,
    /// The session's user.
    pub user_id: Option<String>,
    /// A short stable reason (`idle_expired`, `scheduled`, `invalid_user_id`).
    pub reason: Option<&'static str>,
}

/// One event.
#[derive(Debug, Clone)]
pub enum Event {
    /// A rate-limit rule found a request over its limit.
    RateLimited {
        /// The request.
        request: RequestInfo,
        /// The rule's name (shared with the rule: a flood in `log` mode is a flood of
        /// these events).
        rule: Arc<str>,
        /// `true` when the request was refused, `false` in `log` mode.
        enforced: bool,
        /// The rule's limit.
        limit: u64,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// A WAF rule matched: its name, action, what was done and the deciding fields.
    WafRule(Box<crate::waf::report::RuleEvent>),
    /// Managed detection blocked a request (or would have, in log mode).
    WafManaged(Box<crate::waf::report::ManagedEvent>),
    /// An answer to the proof-of-work challenge was checked.
    Challenge(crate::waf::report::ChallengeEvent),
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
    /// A request head that could not be read, refused (by palisade's own HTTP/1.1 loop or by
    /// hyper) before any stage saw it: obs-fold, a byte no field may hold, differing
    /// `Content-Length`s, a head or URI too large, an HTTP/2 preface in an HTTP/1.1
    /// connection. Only the socket's address is known.
    RequestMalformed {
        /// The peer's address (no header could be read to name another client).
        client_ip: std::net::IpAddr,
        /// `malformed_head`, `head_too_large`, `uri_too_long`, `http2_preface`, or
        /// `http2_protocol` (an HTTP/2 connection ended with GOAWAY for a protocol error).
        kind: &'static str,
        /// What was wrong (in hyper's or its HTTP/2 library's words when they refused it).
        detail: String,
        /// The status sent (400, 431, 414), or `None` when the connection was closed
        /// without an answer.
        status: Option<u16>,
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
    /// Something happened to a session: `session.created`, `session.rotated`,
    /// `session.logged_out`, `session.expired`, `session.refused`, `session.bad_cookie`,
    /// `session.directive_refused`, `session.store_failed`.
    Session {
        /// The dotted event name.
        name: &'static str,
        /// The request it happened on.
        request: Option<RequestInfo>,
        /// The session.
        session: SessionInfo,
    },
    /// Sessions were revoked through the admin API.
    SessionsRevoked {
        /// The one session revoked, for `DELETE /v1/sessions/{id}`.
        session_id: Option<String>,
        /// The user whose sessions were all revoked, for `DELETE /v1/users/{id}/sessions`.
        user_id: Option<String>,
        /// How many sessions ended.
        count: u64,
    },
    /// A request was refused by the CSRF check.
    CsrfRefused {
        /// The request.
        request: RequestInfo,
        /// `missing`, `expired`, `mismatch`, `invalid` or `cross_site`.
        reason: &'static str,
    },
    /// Something about the identity a request claimed: `identity.invalid_jwt` (with the
    /// reason), `identity.headers_stripped` (the client sent palisade's identity headers).
    Identity {
        /// The dotted event name.
        name: &'static str,
        /// The request.
        request: RequestInfo,
        /// A short stable reason.
        reason: &'static str,
    },
    /// Upload inspection refused a request (details never sent to the client).
    UploadRefused {
        /// The request.
        request: RequestInfo,
        /// Why, which file, and the details (signature, quarantine path).
        refusal: crate::upload::UploadEvent,
    },
    /// Every file of an upload passed and the request was forwarded.
    UploadPassed {
        /// The request.
        request: RequestInfo,
        /// Each file's type (`image/png`), in body order.
        types: Vec<String>,
        /// Each file's scan outcome (`clean`, `not_scanned`, `unavailable`), in body order.
        scans: Vec<String>,
        /// Bytes received from the client.
        received: u64,
        /// Bytes forwarded (fewer when metadata was stripped).
        forwarded: u64,
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
            Self::WafRule(_) => "waf.rule",
            Self::WafManaged(_) => "waf.managed",
            Self::Challenge(event) => event.name(),
            Self::RequestBlocked { .. } => "request.blocked",
            Self::RequestFailed { .. } => "request.failed",
            Self::RequestMalformed { .. } => "request.malformed",
            Self::StateDegraded { .. } => "state.degraded",
            Self::StateRecovered { .. } => "state.recovered",
            Self::ConfigReloaded { .. } => "config.reloaded",
            Self::ConfigRejected { .. } => "config.rejected",
            Self::TlsReloaded { ok: true, .. } => "tls.reloaded",
            // A failed reload is counted apart, as `config.rejected` is from `config.reloaded`.
            Self::TlsReloaded { ok: false, .. } => "tls.rejected",
            Self::Session { name, .. } | Self::Identity { name, .. } => name,
            Self::SessionsRevoked { .. } => "session.revoked",
            Self::CsrfRefused { .. } => "csrf.refused",
            Self::UploadRefused { .. } => "upload.refused",
            Self::UploadPassed { .. } => "upload.passed",
        }
    }

    /// Appends the event's fields to a JSON object being written (`"event": ...` first).
    /// Written by hand rather than through a map: in `log` mode a flood of requests is a
    /// flood of events, and this runs once per event.
    pub fn write_fields(&self, out: &mut JsonObject<'_>) {
        out.plain(key!("event"), self.name());
        match self {
            Self::RateLimited {
                request,
                rule,
                enforced,
                limit,
                retry_after_secs,
            } => {
                request.write_fields(out);
                out.str(key!("rule.name"), rule);
                out.bool(key!("rate_limit.enforced"), *enforced);
                out.num(key!("rate_limit.limit"), *limit);
                out.num(key!("rate_limit.retry_after"), *retry_after_secs);
            }
            Self::WafRule(event) => event.write_fields(out),
            Self::WafManaged(event) => event.write_fields(out),
            Self::Challenge(event) => event.write_fields(out),
            Self::RequestBlocked {
                request,
                stage,
                reason,
                status,
            } => {
                request.write_fields(out);
                out.str(key!("stage"), stage);
                out.str(key!("reason"), reason);
                out.num(key!("http.status"), u64::from(*status));
            }
            Self::RequestFailed {
                request,
                source,
                kind,
                status,
            } => {
                request.write_fields(out);
                out.str(key!("error.source"), source);
                out.str(key!("error.kind"), kind);
                out.num(key!("http.status"), u64::from(*status));
            }
            Self::RequestMalformed {
                client_ip,
                kind,
                detail,
                status,
            } => {
                out.ip(key!("client.ip"), *client_ip);
                out.str(key!("error.source"), "client");
                out.str(key!("error.kind"), kind);
                out.str(key!("error.detail"), detail);
                if let Some(status) = status {
                    out.num(key!("http.status"), u64::from(*status));
                }
            }
            Self::StateDegraded {
                backend,
                policy,
                detail,
            } => {
                out.str(key!("state.backend"), backend);
                out.str(key!("state.on_error"), policy);
                out.str(key!("error.detail"), detail);
            }
            Self::StateRecovered { backend } => out.str(key!("state.backend"), backend),
            Self::ConfigReloaded { file } => out.str(key!("config.file"), file),
            Self::ConfigRejected { file, errors } => {
                out.str(key!("config.file"), file);
                out.strs(key!("config.errors"), errors);
            }
            Self::TlsReloaded { ok, detail } => {
                out.bool(key!("tls.ok"), *ok);
                out.str(key!("error.detail"), detail);
            }
            Self::Session {
                request, session, ..
            } => {
                let request_user = request.as_ref().and_then(|r| r.user_id.as_deref());
                if let Some(request) = request {
                    request.write_place(out);
                }
                // A login's new user, else the user of the request.
                out.opt_str(key!("user.id"), session.user_id.as_deref().or(request_user));
                out.opt_str(key!("session.id"), session.session_id.as_deref());
                if let Some(reason) = session.reason {
                    out.str(key!("reason"), reason);
                }
            }
            Self::SessionsRevoked {
                session_id,
                user_id,
                count,
            } => {
                out.opt_str(key!("session.id"), session_id.as_deref());
                out.opt_str(key!("user.id"), user_id.as_deref());
                out.num(key!("session.count"), *count);
            }
            Self::CsrfRefused { request, reason }
            | Self::Identity {
                request, reason, ..
            } => {
                request.write_fields(out);
                out.str(key!("reason"), reason);
            }
            Self::UploadRefused { request, refusal } => {
                request.write_fields(out);
                write_refusal(out, refusal);
            }
            Self::UploadPassed {
                request,
                types,
                scans,
                received,
                forwarded,
            } => {
                request.write_fields(out);
                out.num(key!("upload.files"), types.len() as u64);
                out.strs(key!("upload.types"), types);
                out.strs(key!("upload.scans"), scans);
                out.num(key!("upload.received"), *received);
                out.num(key!("upload.forwarded"), *forwarded);
            }
        }
    }

    /// The event as one flat JSON object with stable dotted field names.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut text = String::new();
        let mut object = JsonObject::new(&mut text);
        self.write_fields(&mut object);
        object.finish();
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

fn write_refusal(out: &mut JsonObject<'_>, refusal: &crate::upload::UploadEvent) {
    out.str(key!("upload.reason"), refusal.reason);
    out.num(key!("http.status"), u64::from(refusal.status));
    if let Some(field) = &refusal.field {
        out.str(key!("upload.field"), field);
    }
    if let Some(name) = &refusal.filename {
        out.str(key!("upload.filename"), name);
    }
    out.str(key!("upload.detail"), &refusal.detail);
    if let Some(signature) = &refusal.signature {
        out.str(key!("upload.signature"), signature);
    }
    if let Some(path) = &refusal.quarantined {
        out.display(key!("upload.quarantined"), &path.display());
    }
}

impl RequestInfo {
    pub(crate) fn write_fields(&self, out: &mut JsonObject<'_>) {
        self.write_place(out);
        out.opt_str(key!("user.id"), self.user_id.as_deref());
    }

    /// Everything but the user.
    fn write_place(&self, out: &mut JsonObject<'_>) {
        out.request_id(key!("request.id"), self.id);
        out.ip(key!("client.ip"), self.client_ip);
        out.plain(key!("http.method"), self.method.as_str());
        let path = self.path.as_str();
        if path.len() <= MAX_LOGGED_PATH {
            out.str(key!("url.path"), path);
        } else {
            let cut = (0..=MAX_LOGGED_PATH)
                .rev()
                .find(|&at| path.is_char_boundary(at))
                .unwrap_or(0);
            out.str(key!("url.path"), &path[..cut]);
            out.num(key!("url.path_length"), path.len() as u64);
        }
    }
}

/// The most bytes of a request's path an event's line holds (the rest is left out, and
/// `url.path_length` gives the whole length): a client must not be able to make every line
/// it causes as long as the longest path palisade accepts.
const MAX_LOGGED_PATH: usize = 1024;

/// A field name as [`JsonObject`] writes it, quoted, with the comma before it and the
/// colon after it (`,"request.id":`): one copy per field. Made by [`key!`], which checks
/// at compile time that the name needs no escaping.
#[derive(Debug, Clone, Copy)]
pub struct Key(&'static str);

impl Key {
    /// `quoted` as [`key!`] builds it; a name holding a quote, a backslash or a control
    /// character is refused (at compile time in [`key!`]).
    pub const fn new(quoted: &'static str) -> Self {
        let bytes = quoted.as_bytes();
        assert!(bytes.len() >= 4 && bytes[0] == b',' && bytes[1] == b'"');
        let mut at = 2;
        while at < bytes.len() - 2 {
            let byte = bytes[at];
            assert!(
                byte >= 0x20 && byte != b'"' && byte != b'\\',
                "field name needs escaping"
            );
            at += 1;
        }
        Self(quoted)
    }
}

/// The [`Key`] of a field name known at compile time: `key!("request.id")`.
macro_rules! key {
    ($name:literal) => {{
        const KEY: $crate::events::Key = $crate::events::Key::new(concat!(",\"", $name, "\":"));
        KEY
    }};
}
pub(crate) use key;

/// A flat JSON object written straight into a string.
#[derive(Debug)]
pub struct JsonObject<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Writes `"key":`, after a comma unless it is the first field. The keys are the stable
    /// field names written in this crate ([`key!`]); keys from elsewhere (a rule's field
    /// names) go through [`JsonObject::str_key`].
    fn key(&mut self, key: Key) {
        let text = if self.empty { &key.0[1..] } else { key.0 };
        self.empty = false;
        self.out.push_str(text);
    }

    /// Writes `"key":` for a key that may need escaping.
    fn str_key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        escape_into(self.out, key);
        self.out.push(':');
    }

    /// A string field.
    pub fn str(&mut self, key: Key, value: &str) {
        self.key(key);
        escape_into(self.out, value);
    }

    /// A string field whose value never needs escaping: palisade's own words (event
    /// names), timestamps, and method tokens (RFC 9110 §5.6.2: no quote, backslash or
    /// control character); checked in debug builds. Spares the escape scan of [`Self::str`].
    pub fn plain(&mut self, key: Key, value: &str) {
        debug_assert!(!needs_escape(value), "{value:?} needs escaping");
        self.key(key);
        self.out.reserve(value.len() + 2);
        self.out.push('"');
        self.out.push_str(value);
        self.out.push('"');
    }

    /// A string field, written only when present.
    pub fn opt_str(&mut self, key: Key, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    /// A string field from anything printable.
    pub fn display(&mut self, key: Key, value: &impl std::fmt::Display) {
        self.str(key, &value.to_string());
    }

    /// A request id field.
    pub fn request_id(&mut self, key: Key, id: RequestId) {
        self.key(key);
        self.out.push('"');
        id.push_to(self.out);
        self.out.push('"');
    }

    /// An address field (its text never needs escaping).
    pub fn ip(&mut self, key: Key, ip: IpAddr) {
        self.key(key);
        self.out.push('"');
        crate::client_ip::push_ip(self.out, ip);
        self.out.push('"');
    }

    /// A number field.
    pub fn num(&mut self, key: Key, value: u64) {
        self.key(key);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    /// A number field whose name is made at run time (escaped like a value).
    pub fn num_named(&mut self, name: &str, value: u64) {
        self.str_key(name);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    /// A boolean field.
    pub fn bool(&mut self, key: Key, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// An array of strings.
    pub fn strs(&mut self, key: Key, values: &[String]) {
        self.key(key);
        self.out.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            escape_into(self.out, value);
        }
        self.out.push(']');
    }

    /// A nested object of string fields (`"rule.fields": {"ip.src": "192.0.2.1"}`).
    pub fn pairs(&mut self, key: Key, pairs: &[(String, String)]) {
        let mut inner = String::new();
        let mut object = JsonObject::new(&mut inner);
        for (name, value) in pairs {
            // Names come from the operator's rules: escaped like values.
            object.str_key(name);
            escape_into(object.out, value);
        }
        object.finish();
        self.key(key);
        self.out.push_str(&inner);
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push('}');
    }
}

/// Writes `text` as a JSON string literal (RFC 8259 §7). Runs of characters that need no
/// escape (almost every field) are copied whole rather than character by character.
fn escape_into(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.reserve(text.len() + 2);
    out.push('"');
    if !needs_escape(text) {
        out.push_str(text);
        out.push('"');
        return;
    }
    let mut plain_from = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            byte if byte < 0x20 => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `at` is on a character boundary.
        out.push_str(&text[plain_from..at]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escaped);
        }
        plain_from = at + 1;
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

/// Whether any byte of `text` needs an escape in a JSON string. Blocks of 16 bytes are
/// looked at whole (without stopping early, which lets the compiler check them with a few
/// vector instructions), the rest one by one: most fields are short (`GET`, a rule name, an
/// address), and the answer is almost always no.
fn needs_escape(text: &str) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = text.as_bytes().chunks_exact(16);
    let in_blocks = blocks
        .by_ref()
        .any(|block| block.iter().fold(false, |found, &b| found | special(b)));
    in_blocks || blocks.remainder().iter().any(|&b| special(b))
}

/// Something that consumes events. `accept` must return at once.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Takes one event; never waits.
    fn accept(&self, event: &Arc<Event>);

    /// At shutdown: writes out what the sink still holds, waiting at most `timeout`.
    /// Blocks; events accepted afterwards may be lost.
    fn close(&self, _timeout: std::time::Duration) {}
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

    /// At shutdown, once no request is left: has every sink write out what it holds, each
    /// within `timeout`. Blocks (run it off the runtime's threads).
    pub fn close(&self, timeout: std::time::Duration) {
        for sink in self.sinks.iter() {
            sink.close(timeout);
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
mod tests;
