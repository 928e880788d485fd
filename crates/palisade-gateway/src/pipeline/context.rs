//! What a pipeline stage sees: the request (head and a body it may read a prefix of) and
//! the per-request context that stages annotate for the stages after them.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::body::RequestBody;
use crate::events::{Event, EventBus, RequestInfo};
use crate::framing::Finding;
use crate::sessions::RequestSession;

/// The request travelling through the pipeline.
#[derive(Debug)]
pub struct GatewayRequest {
    /// Method, URI, version, headers and extensions.
    pub head: http::request::Parts,
    /// The body; stages read a bounded prefix with [`RequestBody::prefix`].
    pub body: RequestBody,
}

/// Who the client is, once the identity stage has resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// A stable user id (never a token).
    pub user: String,
    /// Where it came from: `session`, `jwt`.
    pub source: &'static str,
}

/// How the request was decided, for the `decision` label of `palisade_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the upstream.
    Allowed,
    /// Forwarded, but a `log`-mode rule would have refused it.
    Logged,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused by another stage.
    Blocked,
    /// Failed with an error.
    Error,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Logged => "logged",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::Error => "error",
        }
    }
}

/// Per-request state shared by the stages, from the first to the response phase.
#[derive(Debug)]
pub struct RequestContext {
    /// The gateway's id for this request.
    pub id: RequestId,
    /// The socket peer.
    pub peer: SocketAddr,
    /// The address the connection arrived on, when known.
    pub local_addr: Option<IpAddr>,
    /// The managed-detection verdict, once computed (by a rule reading `waf.score*`):
    /// the managed stage uses it rather than inspecting the request again.
    pub managed_verdict: Option<Box<palisade_waf::Verdict>>,
    /// The client address (the peer until the client-IP stage resolves it).
    pub client_ip: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub peer_trusted: bool,
    /// Whether this hop is TLS.
    pub tls: bool,
    /// Whether the client's own connection is TLS (this hop, or a trusted proxy said so).
    pub secure: bool,
    /// The authenticated user, once resolved.
    pub identity: Option<Identity>,
    /// What the identity stage learned (session lookup, identity), for the CSRF stage and
    /// the session-cookie response stage.
    pub session: Option<Box<RequestSession>>,
    /// Free-form notes for later stages and the log (`("waf.score", "7")`).
    pub annotations: Vec<(&'static str, String)>,
    /// Whether palisade's own HTTP/1.1 loop writes this request's answer (it appends
    /// [`Self::head_lines`] to the head; hyper's server needs every field in the map).
    pub own_loop: bool,
    /// Fields a response stage left for the own loop to write after the answer's other
    /// fields (the security headers, rendered once per configuration) rather than put into
    /// its map.
    pub head_lines: Option<std::sync::Arc<[u8]>>,
    /// The quota of the tightest rate-limit rule that counted the request: the final
    /// response, whoever produced it, gets its `RateLimit-*` headers.
    pub quota: Option<palisade_policy::ratelimit::Decision>,
    /// The decision so far.
    pub outcome: Outcome,
    /// A framing violation seen on the connection before this request was handed over.
    pub framing: Option<Finding>,
    /// When the request head was received.
    pub started: Instant,
    events: EventBus,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many sequence numbers a thread takes from [`NEXT_ID`] at once.
const ID_BLOCK: u64 = 1024;

/// The next sequence number: from this thread's block of [`ID_BLOCK`], taken from the
/// shared counter when the last one ran out. Unique in the process; in order within a
/// thread, not across threads. A shared counter bumped per request made the worker threads
/// pass its cache line back and forth on every request.
fn next_seq() -> u64 {
    use std::cell::Cell;
    thread_local! {
        /// The next number of this thread's block, and the end of the block.
        static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    BLOCK.with(|block| {
        let (mut next, mut end) = block.get();
        if next == end {
            next = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        block.set((next + 1, end));
        next
    })
}

/// The process id, read once: request ids are unique across restarts of one host.
fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// The gateway's id for a request: the process id and a sequence number, written as at
/// least sixteen hex digits (`0000a1b20000002a`). Kept as numbers and written only when a
/// log line or an event needs the text: most requests never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    process: u32,
    seq: u64,
}

impl RequestId {
    /// The next id of this process.
    pub fn next() -> Self {
        Self {
            process: process_id(),
            seq: next_seq(),
        }
    }

    /// The id with sequence number `seq` in process `process`.
    pub fn new(process: u32, seq: u64) -> Self {
        Self { process, seq }
    }

    /// Appends the id's text to `out`: what `Display` writes, without a formatter.
    pub fn push_to(&self, out: &mut String) {
        let mut text = [0u8; 32];
        let len = put_hex(&mut text, 0, u64::from(self.process));
        let len = put_hex(&mut text, len, self.seq);
        // Hex digits are ASCII: written with one copy rather than a push per digit.
        out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
    }
}

/// Writes `value` at `text[from..]` in lower-case hex, padded with zeros to eight digits
/// (`{value:08x}`); returns where it ends.
fn put_hex(text: &mut [u8; 32], from: usize, value: u64) -> usize {
    let digits = (16 - value.leading_zeros() as usize / 4).max(8);
    for (slot, at) in text[from..from + digits].iter_mut().zip((0..digits).rev()) {
        let nibble = (value >> (at * 4)) as u8 & 0xf;
        *slot = b"0123456789abcdef"[usize::from(nibble)];
    }
    from + digits
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::with_capacity(16);
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

impl RequestContext {
    /// A context for a request from `peer`, received now.
    pub fn new(peer: SocketAddr, tls: bool, events: EventBus) -> Self {
        Self::received(peer, tls, events, Instant::now())
    }

    /// A context for a request from `peer` whose head was received at `started`.
    pub fn received(peer: SocketAddr, tls: bool, events: EventBus, started: Instant) -> Self {
        Self {
            id: RequestId::next(),
            peer,
            local_addr: None,
            managed_verdict: None,
            client_ip: crate::client_ip::canonical(peer.ip()),
            peer_trusted: false,
            tls,
            secure: tls,
            identity: None,
            session: None,
            annotations: Vec::new(),
            own_loop: false,
            head_lines: None,
            quota: None,
            outcome: Outcome::Allowed,
            framing: None,
            started,
            events,
        }
    }

    /// Adds a note for later stages and the log.
    pub fn annotate(&mut self, key: &'static str, value: impl Into<String>) {
        self.annotations.push((key, value.into()));
    }

    /// The first note under `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Publishes an event on the bus.
    pub fn publish(&self, event: Event) {
        self.events.publish(event);
    }

    /// What identifies this request in events.
    pub fn request_info(&self, head: &http::request::Parts) -> RequestInfo {
        RequestInfo {
            id: self.id,
            client_ip: self.client_ip,
            method: head.method.clone(),
            path: head.uri.path().to_string(),
            user_id: self.identity.as_ref().map(|i| i.user.clone()),
        }
    }

    /// Who this request is, for an event that may or may not be published later (an answer
    /// failing after it began): [`RequestContext::request_info`] made only when needed.
    pub fn who(&self, head: &http::request::Parts) -> Who {
        Who {
            id: self.id,
            client_ip: self.client_ip,
            method: head.method.clone(),
            uri: head.uri.clone(),
            user_id: self.identity.as_ref().map(|i| i.user.clone()),
        }
    }

    /// The bus, for code that publishes outside a stage.
    pub fn events(&self) -> &EventBus {
        &self.events
    }
}

/// Who a request was, kept in case an event about it comes after the handler let go of its
/// context: method and URI shared with the request, not copied; the user id, when there is
/// one, copied. Its [`RequestInfo`] is made when the event is.
#[derive(Debug)]
pub struct Who {
    /// The request's id, for log lines.
    pub id: RequestId,
    client_ip: IpAddr,
    method: http::Method,
    uri: http::Uri,
    user_id: Option<String>,
}

impl Who {
    /// What identifies the request in an event.
    pub fn info(self) -> RequestInfo {
        RequestInfo {
            id: self.id,
            client_ip: self.client_ip,
            method: self.method,
            path: self.uri.path().to_owned(),
            user_id: self.user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_read_as_process_then_sequence_in_hex() {
        for (process, seq) in [(0, 0), (0xa1b2, 42), (u32::MAX, u64::from(u32::MAX) + 1)] {
            let id = RequestId::new(process, seq);
            assert_eq!(id.to_string(), format!("{process:08x}{seq:08x}"));
        }
        assert_eq!(RequestId::new(1, 0x2a).to_string(), "000000010000002a");
        assert_ne!(RequestId::next(), RequestId::next());
    }

    /// Ids come from per-thread blocks: threads taking many at once (more than a block
    /// each) never hand out the same one.
    #[test]
    fn request_ids_are_unique_across_threads() {
        let taken: Vec<Vec<RequestId>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..3000).map(|_| RequestId::next()).collect()))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        let mut all: Vec<String> = taken.iter().flatten().map(|id| id.to_string()).collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "an id was handed out twice");
        for ids in &taken {
            let seqs: Vec<u64> = ids.iter().map(|id| id.seq).collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "in order within a thread"
            );
        }
    }
}
