//! Repeats folded in the security log: one client's flood of the same event becomes its
//! first line and a count.
//!
//! A client over a rate limit, in `log` mode or refused, makes one `rate_limit.exceeded`
//! event per request, and a client sending broken heads one `request.malformed` per
//! connection: a single address could otherwise write hundreds of bytes of log per request,
//! as fast as it can send. The log writer writes the first such event of a client in full;
//! the same event again (same rule and mode, or same kind of refusal) from the same address
//! within the repeat window is only counted, and when the window ends one `log.repeated`
//! line says how many there were, between which times, and of what. Every event still
//! reaches the other sinks (metrics count each decision).
//!
//! The table of clients being folded is bounded ([`MAX_FOLDED`]): an event of a client that
//! finds it full is written in full, as without folding. Its keys are client addresses, so
//! its hash is seeded at random per process (foldhash's quality variant, as the memory rate
//! limiter's table): a client cannot pick addresses that collide.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, JsonObject, key};

/// Folds (client and rule and mode, or client and kind) kept at once; past this, events are
/// written in full.
// TODO: folds are per address while limits are per IPv6 /64: one /64 can fill the table and
// turn folding off for every client until its windows end.
pub const MAX_FOLDED: usize = 4096;

/// What makes two events repeats of each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FoldKey {
    RateLimited {
        rule: Arc<str>,
        client: IpAddr,
        enforced: bool,
    },
    Malformed {
        client: IpAddr,
        kind: &'static str,
    },
}

impl FoldKey {
    /// The key of an event that floods can repeat; `None` for every other event.
    fn of(event: &Event) -> Option<Self> {
        match event {
            Event::RateLimited {
                request,
                rule,
                enforced,
                ..
            } => Some(Self::RateLimited {
                rule: Arc::clone(rule),
                client: request.client_ip,
                enforced: *enforced,
            }),
            Event::RequestMalformed {
                client_ip, kind, ..
            } => Some(Self::Malformed {
                client: *client_ip,
                kind,
            }),
            _ => None,
        }
    }

    fn write_fields(&self, out: &mut JsonObject<'_>) {
        match self {
            Self::RateLimited {
                rule,
                client,
                enforced,
            } => {
                out.plain(key!("repeated.event"), "rate_limit.exceeded");
                out.ip(key!("client.ip"), *client);
                out.str(key!("rule.name"), rule);
                out.bool(key!("rate_limit.enforced"), *enforced);
            }
            Self::Malformed { client, kind } => {
                out.plain(key!("repeated.event"), "request.malformed");
                out.ip(key!("client.ip"), *client);
                out.str(key!("error.kind"), kind);
            }
        }
    }
}

/// One client's window: when it ends, and the repeats counted in it so far.
#[derive(Debug, Clone, Copy)]
struct Fold {
    ends: Instant,
    count: u64,
    /// Milliseconds since the epoch of the first and the last repeat counted.
    first_ms: u64,
    last_ms: u64,
}

/// A window that ended with repeats counted: a `log.repeated` line.
#[derive(Debug)]
pub struct Summary {
    key: FoldKey,
    fold: Fold,
}

impl Summary {
    /// The line's fields after `ts`.
    pub fn write_fields(&self, out: &mut JsonObject<'_>) {
        out.plain(key!("event"), "log.repeated");
        self.key.write_fields(out);
        out.num(key!("repeated.count"), self.fold.count);
        let ts = super::log::format_rfc3339;
        out.plain(key!("repeated.first_ts"), &ts(self.fold.first_ms));
        out.plain(key!("repeated.last_ts"), &ts(self.fold.last_ms));
    }
}

/// What the writer does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Written in full.
    Write,
    /// A repeat within its client's window: counted, not written.
    Folded,
}

/// The repeats being folded, by client and event.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    folds: HashMap<FoldKey, Fold, foldhash::quality::RandomState>,
    /// The earliest end among `folds`: nothing to look at before it.
    next_end: Option<Instant>,
}

impl Repeats {
    /// Folds repeats within `window` of a client's first event; a zero window folds nothing.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            folds: HashMap::default(),
            next_end: None,
        }
    }

    /// Whether `event`, arriving at `now` (`now_ms` since the epoch), is written or folded.
    /// Call [`Self::flush_ended`] for `now` first, so that no window it sees has ended.
    pub fn take(&mut self, event: &Event, now: Instant, now_ms: u64) -> Disposition {
        if self.window.is_zero() {
            return Disposition::Write;
        }
        let Some(key) = FoldKey::of(event) else {
            return Disposition::Write;
        };
        if let Some(fold) = self.folds.get_mut(&key) {
            if now < fold.ends {
                if fold.count == 0 {
                    fold.first_ms = now_ms;
                }
                fold.count += 1;
                fold.last_ms = now_ms;
                return Disposition::Folded;
            }
            // Ended but not flushed (the caller skipped flush_ended): start again.
            self.folds.remove(&key);
        }
        if self.folds.len() < MAX_FOLDED {
            let ends = now + self.window;
            self.folds.insert(
                key,
                Fold {
                    ends,
                    count: 0,
                    first_ms: 0,
                    last_ms: 0,
                },
            );
            self.next_end = Some(self.next_end.map_or(ends, |next| next.min(ends)));
        }
        Disposition::Write
    }

    /// Ends every window that ended by `now` (all of them when `now` is `None`, at shut
    /// down); the `log.repeated` summaries of those that counted repeats.
    pub fn flush_ended(&mut self, now: Option<Instant>) -> Vec<Summary> {
        let mut ended = Vec::new();
        match (now, self.next_end) {
            (_, None) => return ended,
            (Some(now), Some(next)) if now < next => return ended,
            _ => {}
        }
        let mut next_end: Option<Instant> = None;
        self.folds.retain(|key, fold| {
            if now.is_some_and(|now| now < fold.ends) {
                next_end = Some(next_end.map_or(fold.ends, |next| next.min(fold.ends)));
                return true;
            }
            if fold.count > 0 {
                ended.push(Summary {
                    key: key.clone(),
                    fold: *fold,
                });
            }
            false
        });
        self.next_end = next_end;
        ended
    }

    /// Clients being folded now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.folds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RequestInfo;
    use crate::pipeline::RequestId;

    fn limited(ip: &str, rule: &Arc<str>, enforced: bool) -> Event {
        Event::RateLimited {
            request: RequestInfo {
                id: RequestId::new(1, 1),
                client_ip: ip.parse().expect("ip"),
                method: http::Method::GET,
                path: "/".into(),
                user_id: None,
            },
            rule: Arc::clone(rule),
            enforced,
            limit: 10,
            retry_after_secs: 3,
        }
    }

    fn malformed(ip: &str, kind: &'static str) -> Event {
        Event::RequestMalformed {
            client_ip: ip.parse().expect("ip"),
            kind,
            detail: "x".into(),
            status: Some(400),
        }
    }

    /// The `log.repeated` lines `flush_ended` writes for `now`, parsed.
    fn flushed(repeats: &mut Repeats, now: Option<Instant>) -> Vec<serde_json::Value> {
        let summaries = repeats.flush_ended(now);
        summaries
            .iter()
            .map(|summary| {
                let mut line = String::new();
                let mut object = JsonObject::new(&mut line);
                summary.write_fields(&mut object);
                object.finish();
                serde_json::from_str(&line).expect("json")
            })
            .collect()
    }

    #[test]
    fn a_clients_repeats_are_counted_until_its_window_ends() {
        let rule: Arc<str> = Arc::from("default");
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut repeats = Repeats::new(Duration::from_secs(10));
        let event = limited("192.0.2.7", &rule, false);
        assert_eq!(repeats.take(&event, at(0), 1_000), Disposition::Write);
        for ms in 1..=5 {
            assert_eq!(
                repeats.take(&event, at(ms), 1_000 + ms),
                Disposition::Folded
            );
        }
        // The same rule enforced, another rule, another client: each a first event.
        let enforced = limited("192.0.2.7", &rule, true);
        assert_eq!(repeats.take(&enforced, at(6), 1_006), Disposition::Write);
        let other_rule: Arc<str> = Arc::from("login");
        let other = limited("192.0.2.7", &other_rule, false);
        assert_eq!(repeats.take(&other, at(6), 1_006), Disposition::Write);
        let neighbour = limited("192.0.2.8", &rule, false);
        assert_eq!(repeats.take(&neighbour, at(6), 1_006), Disposition::Write);
        // Other events are never folded.
        let recovered = Event::StateRecovered { backend: "redis" };
        assert_eq!(repeats.take(&recovered, at(7), 1_007), Disposition::Write);
        assert_eq!(repeats.take(&recovered, at(7), 1_007), Disposition::Write);

        assert!(flushed(&mut repeats, Some(at(9_999))).is_empty());
        let lines = flushed(&mut repeats, Some(at(10_000)));
        // Only the window that counted repeats says so; the others just end.
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["event"], "log.repeated");
        assert_eq!(line["repeated.event"], "rate_limit.exceeded");
        assert_eq!(line["repeated.count"], 5);
        assert_eq!(line["client.ip"], "192.0.2.7");
        assert_eq!(line["rule.name"], "default");
        assert_eq!(line["rate_limit.enforced"], false);
        assert_eq!(line["repeated.first_ts"], "1970-01-01T00:00:01.001Z");
        assert_eq!(line["repeated.last_ts"], "1970-01-01T00:00:01.005Z");
        // The windows started at 6 ms end later.
        assert_eq!(repeats.len(), 3);
        assert!(flushed(&mut repeats, Some(at(10_006))).is_empty());
        assert_eq!(repeats.len(), 0);
        // After its window, the client's next event is written in full again.
        assert_eq!(repeats.take(&event, at(10_007), 11_007), Disposition::Write);
    }

    #[test]
    fn malformed_requests_fold_by_client_and_kind() {
        let start = Instant::now();
        let mut repeats = Repeats::new(Duration::from_secs(10));
        let head = malformed("2001:db8::1", "malformed_head");
        assert_eq!(repeats.take(&head, start, 0), Disposition::Write);
        assert_eq!(repeats.take(&head, start, 0), Disposition::Folded);
        let preface = malformed("2001:db8::1", "http2_preface");
        assert_eq!(repeats.take(&preface, start, 0), Disposition::Write);
        // Shutting down writes what was counted, whatever the time.
        let lines = flushed(&mut repeats, None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["repeated.event"], "request.malformed");
        assert_eq!(lines[0]["error.kind"], "malformed_head");
        assert_eq!(lines[0]["client.ip"], "2001:db8::1");
        assert_eq!(lines[0]["repeated.count"], 1);
        assert_eq!(repeats.len(), 0);
    }

    #[test]
    fn a_zero_window_writes_every_event() {
        let rule: Arc<str> = Arc::from("default");
        let mut repeats = Repeats::new(Duration::ZERO);
        let event = limited("192.0.2.7", &rule, true);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(repeats.take(&event, now, 0), Disposition::Write);
        }
        assert!(flushed(&mut repeats, None).is_empty());
    }

    #[test]
    fn past_the_bound_clients_are_written_in_full() {
        let rule: Arc<str> = Arc::from("default");
        let mut repeats = Repeats::new(Duration::from_secs(10));
        let now = Instant::now();
        for n in 0..MAX_FOLDED as u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
            assert_eq!(
                repeats.take(&limited(&ip, &rule, false), now, 0),
                Disposition::Write
            );
        }
        let late = limited("192.0.2.7", &rule, false);
        assert_eq!(repeats.take(&late, now, 0), Disposition::Write);
        assert_eq!(repeats.take(&late, now, 0), Disposition::Write);
        assert_eq!(repeats.len(), MAX_FOLDED);
        // A client already in the table still folds.
        let first = limited("10.0.0.0", &rule, false);
        assert_eq!(repeats.take(&first, now, 0), Disposition::Folded);
    }
}
