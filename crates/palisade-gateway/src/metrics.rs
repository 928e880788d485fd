//! Prometheus metrics: counters, gauges and one latency histogram, rendered as text.
//!
//! Recording never blocks and never makes two cores fight over one cache line: every count
//! lives in [`SHARDS`] cache-line-sized cells, each thread adds to its own cell, and the
//! cells are summed only when `/metrics` is rendered. A labelled series is found without a
//! lock or a read-modify-write ([`LabeledCounter`]); only a label combination seen for the
//! first time takes a lock. With one shared atomic per series, the gateway's worker threads
//! spent measurable time waiting for each other's cache lines on every request.
//! Names start with `palisade_`. A capability that needs its own series registers a
//! [`LabeledCounter`] or a collector ([`Metrics::add_collector`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

/// How many cells each count is split into; threads beyond this share cells.
pub const SHARDS: usize = 8;

/// The cell this thread adds to: threads take cells in the order they first count.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// One atomic alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Cell(AtomicU64);

/// A count split over [`SHARDS`] cells.
#[derive(Debug, Default)]
pub struct ShardedCount {
    cells: [Cell; SHARDS],
}

impl ShardedCount {
    /// Adds `n` to this thread's cell.
    pub fn add(&self, n: u64) {
        self.cells[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum over every cell.
    pub fn value(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// The series of one family: label values and their count, in the order first seen.
type Series = Vec<(Box<[String]>, Arc<ShardedCount>)>;

/// One series: its label values and its count.
type Entry = (Box<[String]>, Arc<ShardedCount>);

/// How many series of a family are kept in slots written once and read with plain loads;
/// a family with more (none has yet) keeps the rest in a snapshot.
const SLOTS: usize = 32;

/// One series of a [`LabeledCounter`], kept where it is counted
/// ([`LabeledCounter::inc_cached`]).
#[derive(Debug, Default)]
pub struct SeriesCache(OnceLock<Arc<ShardedCount>>);

/// A counter family with fixed label names.
///
/// Its first [`SLOTS`] series sit in slots written once, under `adding`, and published by
/// `filled`: finding one costs a load per slot and a comparison of label values, no
/// read-modify-write (a snapshot behind [`ArcSwap`], read on every count, cost about 50 ns
/// a count here). Further series go to the snapshot.
#[derive(Debug)]
pub struct LabeledCounter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    slots: Box<[OnceLock<Entry>]>,
    /// How many of `slots` are written.
    filled: AtomicUsize,
    /// The series past the slots.
    more: ArcSwap<Series>,
    /// Serialises additions of new series, so none is lost or added twice.
    adding: Mutex<()>,
}

impl LabeledCounter {
    /// A family `name` with `labels`; values are given in the same order to [`Self::inc`].
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            filled: AtomicUsize::new(0),
            more: ArcSwap::from_pointee(Vec::new()),
            adding: Mutex::new(()),
        }
    }

    /// Adds one to the series with `values`.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// Adds `n` to the series with `values`.
    pub fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len());
        if let Some(count) = self.slotted(values) {
            count.add(n);
        } else if self.filled.load(Ordering::Acquire) == SLOTS
            && let Some(count) = find(&self.more.load(), values)
        {
            count.add(n);
        } else {
            self.insert(values).add(n);
        }
    }

    /// Adds one to the series with `values`, found through `cache`: the first call finds
    /// (or adds) the series, later ones count with one atomic addition, skipping the
    /// lookup [`Self::inc`] makes. For call sites whose label values never change; a cache
    /// belongs to one family and one set of values.
    pub fn inc_cached(&self, cache: &SeriesCache, values: &[&str]) {
        cache
            .0
            .get_or_init(|| match self.find(values) {
                Some(count) => count,
                None => self.insert(values),
            })
            .add(1);
    }

    /// The series for `values` if it sits in a slot (borrowed: no reference count touched).
    fn slotted(&self, values: &[&str]) -> Option<&Arc<ShardedCount>> {
        let filled = self.filled.load(Ordering::Acquire);
        self.slots[..filled]
            .iter()
            .filter_map(OnceLock::get)
            .find(|(key, _)| same(key, values))
            .map(|(_, count)| count)
    }

    /// The series for `values`, if it was counted before, wherever it sits.
    fn find(&self, values: &[&str]) -> Option<Arc<ShardedCount>> {
        if let Some(count) = self.slotted(values) {
            return Some(Arc::clone(count));
        }
        if self.filled.load(Ordering::Acquire) < SLOTS {
            return None;
        }
        find(&self.more.load(), values).cloned()
    }

    /// The series for `values`, added if no other thread added it meanwhile.
    fn insert(&self, values: &[&str]) -> Arc<ShardedCount> {
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = self.find(values) {
            return count;
        }
        let count = Arc::new(ShardedCount::default());
        let entry = (
            values.iter().map(|v| v.to_string()).collect(),
            Arc::clone(&count),
        );
        let filled = self.filled.load(Ordering::Acquire);
        if filled < SLOTS {
            // `adding` is held: no other thread writes a slot meanwhile.
            let _ = self.slots[filled].set(entry);
            self.filled.store(filled + 1, Ordering::Release);
        } else {
            let mut next = Series::clone(&self.more.load_full());
            next.push(entry);
            self.more.store(Arc::new(next));
        }
        count
    }

    /// The current value of one series (0 if never counted).
    pub fn value(&self, values: &[&str]) -> u64 {
        self.find(values).map_or(0, |count| count.value())
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        // The snapshot first: it is written only once every slot is, so with series in it
        // every slot counts. (`filled` read first, a scrape racing the 33rd addition could
        // miss the slots filled between the two reads.)
        let more = self.more.load();
        let filled = if more.is_empty() {
            self.filled.load(Ordering::Acquire)
        } else {
            SLOTS
        };
        // Sorted by label values, so the exposition reads the same whatever came first.
        let mut series: Vec<(Box<[String]>, u64)> = self.slots[..filled]
            .iter()
            .filter_map(OnceLock::get)
            .chain(more.iter())
            .map(|(values, count)| (values.clone(), count.value()))
            .collect();
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (values, count) in series {
            let labels = format_labels(self.labels, &values);
            let _ = writeln!(out, "{}{labels} {count}", self.name);
        }
    }
}

/// Whether a series' label values are `values`.
fn same(key: &[String], values: &[&str]) -> bool {
    key.iter().map(String::as_str).eq(values.iter().copied())
}

fn find<'s>(series: &'s Series, values: &[&str]) -> Option<&'s Arc<ShardedCount>> {
    series
        .iter()
        .find(|(key, _)| same(key, values))
        .map(|(_, count)| count)
}

/// Latency buckets in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One thread's share of a histogram, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(64))]
struct HistogramCell {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram of request latencies.
#[derive(Debug, Default)]
pub struct Histogram {
    cells: [HistogramCell; SHARDS],
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let cell = &self.cells[shard()];
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            cell.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        cell.count.fetch_add(1, Ordering::Relaxed);
        cell.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn sum_of(&self, field: impl Fn(&HistogramCell) -> &AtomicU64) -> u64 {
        self.cells
            .iter()
            .map(|cell| field(cell).load(Ordering::Relaxed))
            .sum()
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.sum_of(|cell| &cell.buckets[i]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.sum_of(|cell| &cell.count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_of(|cell| &cell.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// A collector adds series owned elsewhere (store counters) at render time.
pub type Collector = Box<dyn Fn(&mut String) + Send + Sync>;

/// Every metric the gateway exports.
pub struct Metrics {
    /// `palisade_requests_total{class, decision}`.
    pub requests: LabeledCounter,
    /// Its series for `decision="allowed"` and `"logged"`, by status class.
    requests_allowed: [SeriesCache; 5],
    requests_logged: [SeriesCache; 5],
    /// `palisade_request_duration_seconds`.
    pub request_duration: Histogram,
    /// `palisade_upstream_errors_total{cause}`.
    pub upstream_errors: LabeledCounter,
    /// `palisade_rate_limit_decisions_total{rule, outcome}`.
    pub rate_limit_decisions: LabeledCounter,
    /// `palisade_waf_rule_matches_total{rule, action, outcome}`.
    pub waf_rule_matches: LabeledCounter,
    /// `palisade_waf_managed_total{class, action}`: managed-detection decisions.
    pub waf_managed: LabeledCounter,
    /// `palisade_waf_managed_incomplete_total{reason}`: requests inspected only in part.
    pub waf_managed_incomplete: LabeledCounter,
    /// `palisade_events_total{event}`: every event published on the bus.
    pub events: LabeledCounter,
    /// `palisade_events_dropped_total{sink}`: events a slow sink could not take.
    pub events_dropped: LabeledCounter,
    /// `palisade_config_reloads_total{result}`.
    pub config_reloads: LabeledCounter,
    /// `palisade_identity_resolutions_total{source}`: who requests came from.
    pub identity_resolutions: LabeledCounter,
    /// `palisade_csrf_checks_total{result}`: CSRF decisions, passes and refusals.
    pub csrf_checks: LabeledCounter,
    /// `palisade_sessions_swept_total{store}`: expired sessions deleted by the sweeper.
    pub sessions_swept: LabeledCounter,
    /// `palisade_uploads_total{outcome, reason}`: inspected uploads, passed or refused.
    pub uploads: LabeledCounter,
    /// `palisade_open_connections`.
    pub open_connections: AtomicI64,
    collectors: Mutex<Vec<Collector>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: LabeledCounter::new(
                "palisade_requests_total",
                "Requests answered, by status class and gateway decision.",
                &["class", "decision"],
            ),
            requests_allowed: Default::default(),
            requests_logged: Default::default(),
            request_duration: Histogram::default(),
            upstream_errors: LabeledCounter::new(
                "palisade_upstream_errors_total",
                "Requests the upstream failed, by cause.",
                &["cause"],
            ),
            rate_limit_decisions: LabeledCounter::new(
                "palisade_rate_limit_decisions_total",
                "Rate-limit checks, by rule and outcome (allowed, limited, logged, skipped).",
                &["rule", "outcome"],
            ),
            waf_rule_matches: LabeledCounter::new(
                "palisade_waf_rule_matches_total",
                "WAF rule matches, by rule, action and outcome (blocked, challenged, cleared, \
                 rate_limited, counted, logged, allowed, skipped).",
                &["rule", "action", "outcome"],
            ),
            waf_managed: LabeledCounter::new(
                "palisade_waf_managed_total",
                "Managed attack detection decisions, by deciding class and action (blocked, \
                 logged, skipped).",
                &["class", "action"],
            ),
            waf_managed_incomplete: LabeledCounter::new(
                "palisade_waf_managed_incomplete_total",
                "Requests managed detection inspected only in part, by reason (body_truncated, \
                 too_many_inputs, value_too_long, total_budget, too_deep, malformed_body, \
                 too_many_parts).",
                &["reason"],
            ),
            events: LabeledCounter::new(
                "palisade_events_total",
                "Security and operational events published, by event name.",
                &["event"],
            ),
            events_dropped: LabeledCounter::new(
                "palisade_events_dropped_total",
                "Events a slow sink could not accept, by sink.",
                &["sink"],
            ),
            config_reloads: LabeledCounter::new(
                "palisade_config_reloads_total",
                "Configuration reloads, by result (applied or refused).",
                &["result"],
            ),
            identity_resolutions: LabeledCounter::new(
                "palisade_identity_resolutions_total",
                "Requests by identity source (session, jwt_bearer, jwt_cookie, anonymous, \
                 invalid_jwt).",
                &["source"],
            ),
            csrf_checks: LabeledCounter::new(
                "palisade_csrf_checks_total",
                "CSRF decisions, by result (a pass reason or a refusal reason).",
                &["result"],
            ),
            sessions_swept: LabeledCounter::new(
                "palisade_sessions_swept_total",
                "Expired sessions deleted by the sweeper, by store.",
                &["store"],
            ),
            uploads: LabeledCounter::new(
                "palisade_uploads_total",
                "Inspected uploads, by outcome (passed, refused) and refusal reason.",
                &["outcome", "reason"],
            ),
            open_connections: AtomicI64::new(0),
            collectors: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Adds series rendered by someone else (for example the state store's error counters).
    pub fn add_collector(&self, collector: Collector) {
        if let Ok(mut collectors) = self.collectors.lock() {
            collectors.push(collector);
        }
    }

    /// Records one answered request.
    pub fn record_request(&self, status: u16, decision: &str, elapsed: Duration) {
        let (index, class) = match status {
            100..=199 => (0, "1xx"),
            200..=299 => (1, "2xx"),
            300..=399 => (2, "3xx"),
            400..=499 => (3, "4xx"),
            _ => (4, "5xx"),
        };
        // The common pairs (a forwarded 2xx) counted through a cache, the rest looked up.
        match decision {
            "allowed" => self
                .requests
                .inc_cached(&self.requests_allowed[index], &[class, decision]),
            "logged" => self
                .requests
                .inc_cached(&self.requests_logged[index], &[class, decision]),
            _ => self.requests.inc(&[class, decision]),
        }
        self.request_duration.observe(elapsed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.requests.render(&mut out);
        self.request_duration.render(
            "palisade_request_duration_seconds",
            "Time from request head to response head, in seconds.",
            &mut out,
        );
        self.upstream_errors.render(&mut out);
        self.rate_limit_decisions.render(&mut out);
        self.waf_rule_matches.render(&mut out);
        self.waf_managed.render(&mut out);
        self.waf_managed_incomplete.render(&mut out);
        self.events.render(&mut out);
        self.events_dropped.render(&mut out);
        self.config_reloads.render(&mut out);
        self.identity_resolutions.render(&mut out);
        self.csrf_checks.render(&mut out);
        self.sessions_swept.render(&mut out);
        self.uploads.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP palisade_open_connections Client connections open now."
        );
        let _ = writeln!(out, "# TYPE palisade_open_connections gauge");
        let open = self.open_connections.load(Ordering::Relaxed);
        let _ = writeln!(out, "palisade_open_connections {open}");
        if let Ok(collectors) = self.collectors.lock() {
            for collector in collectors.iter() {
                collector(&mut out);
            }
        }
        out
    }
}

/// `{a="x",b="y"}` with values escaped per the exposition format.
pub fn format_labels(names: &[&str], values: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.record_request(429, "rate_limited", Duration::from_millis(3));
        metrics.record_request(200, "allowed", Duration::from_millis(1));
        metrics.record_request(200, "allowed", Duration::from_millis(1));
        let text = metrics.render();
        assert!(text.contains("palisade_requests_total{class=\"2xx\",decision=\"allowed\"} 2"));
        assert!(
            text.contains("palisade_requests_total{class=\"4xx\",decision=\"rate_limited\"} 1")
        );
        assert!(text.contains("palisade_request_duration_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("palisade_request_duration_seconds_count 3"));
    }

    /// A cached series is the family's series for its values: counts through the cache and
    /// through a lookup add up in one line, whichever came first, and a cache keeps to the
    /// values it was first used with.
    #[test]
    fn cached_series_count_into_the_same_line_as_lookups() {
        let counter = LabeledCounter::new("x_total", "x", &["outcome"]);
        counter.inc(&["allowed"]);
        let allowed = SeriesCache::default();
        counter.inc_cached(&allowed, &["allowed"]);
        counter.inc_cached(&allowed, &["allowed"]);
        let logged = SeriesCache::default();
        counter.inc_cached(&logged, &["logged"]);
        counter.inc(&["logged"]);
        assert_eq!(counter.value(&["allowed"]), 3);
        assert_eq!(counter.value(&["logged"]), 2);
        let mut out = String::new();
        counter.render(&mut out);
        assert_eq!(
            out.matches("x_total{outcome=\"allowed\"}").count(),
            1,
            "{out}"
        );

        // Request counts by decision: cached for the common ones, looked up for the rest.
        let metrics = Metrics::default();
        for (status, decision) in [(200, "allowed"), (204, "allowed"), (200, "logged")] {
            metrics.record_request(status, decision, Duration::from_millis(1));
        }
        metrics.record_request(503, "allowed", Duration::from_millis(1));
        metrics.record_request(403, "blocked", Duration::from_millis(1));
        let requests = &metrics.requests;
        assert_eq!(requests.value(&["2xx", "allowed"]), 2);
        assert_eq!(requests.value(&["2xx", "logged"]), 1);
        assert_eq!(requests.value(&["5xx", "allowed"]), 1);
        assert_eq!(requests.value(&["4xx", "blocked"]), 1);
    }

    /// Series past the slots live in the snapshot: counted, found and rendered like the
    /// first ones, each once, also when threads add them at the same time.
    #[test]
    fn series_past_the_slots_count_and_render_like_the_first() {
        let counter = LabeledCounter::new("x_total", "x", &["rule"]);
        let names: Vec<String> = (0..SLOTS * 2).map(|i| format!("r{i:03}")).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for name in &names {
                        counter.inc(&[name]);
                    }
                });
            }
        });
        for name in &names {
            assert_eq!(counter.value(&[name]), 4, "{name}");
        }
        let mut out = String::new();
        counter.render(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("x_total{")).collect();
        assert_eq!(lines.len(), names.len(), "{out}");
        assert_eq!(lines[0], "x_total{rule=\"r000\"} 4");
        assert_eq!(
            lines[names.len() - 1],
            format!("x_total{{rule=\"r{:03}\"}} 4", SLOTS * 2 - 1)
        );
        let cache = SeriesCache::default();
        let last = [names[names.len() - 1].as_str()];
        counter.inc_cached(&cache, &last);
        assert_eq!(counter.value(&last), 5);
    }

    #[test]
    fn label_values_are_escaped() {
        let counter = LabeledCounter::new("x_total", "x", &["rule"]);
        counter.inc(&["a\"b"]);
        let mut out = String::new();
        counter.render(&mut out);
        assert!(out.contains("x_total{rule=\"a\\\"b\"} 1"), "{out}");
    }

    #[test]
    fn collectors_add_their_series() {
        let metrics = Metrics::default();
        metrics.add_collector(Box::new(|out| out.push_str("palisade_custom 7\n")));
        assert!(metrics.render().contains("palisade_custom 7"));
    }
}
