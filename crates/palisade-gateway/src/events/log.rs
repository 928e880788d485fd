//! The JSON-lines security log: one object per event, written by a thread of its own.
//!
//! Requests hand events over through a bounded queue with `try_send`; when the writer falls
//! behind (a blocked pipe, a slow disk) new events are dropped and counted in
//! `palisade_events_dropped_total{sink="log"}` rather than slowing requests down.
//!
//! The writer polls the queue instead of being woken by it: waking a parked thread costs
//! the request that does it a futex call (and, across cores, an interrupt), and a file
//! written through tokio's file type costs a hand-off to its blocking pool per write. A
//! plain thread that drains the queue every 10 ms while events flow (100 ms when idle)
//! costs a request nothing beyond the queue push.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::io::Write;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::{error, warn};

use super::repeats::{Disposition, Repeats};
use super::{Event, EventSink, key};
use crate::metrics::Metrics;

/// Queues events for the log writer thread.
#[derive(Debug)]
pub struct JsonLogSink {
    queue: mpsc::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
    /// Set at shutdown: the writer writes what is queued and what it counted, and ends.
    closing: Arc<AtomicBool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl EventSink for JsonLogSink {
    fn accept(&self, event: &Arc<Event>) {
        if self.queue.try_send(Arc::clone(event)).is_err() {
            self.metrics.events_dropped.inc(&["log"]);
        }
    }

    /// Has the writer write every queued event and every folded count, flush, and end;
    /// waits for it at most `timeout` (it notices within its pause, 100 ms at most).
    fn close(&self, timeout: Duration) {
        self.closing.store(true, Ordering::Release);
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(writer) = writer else {
            return;
        };
        let deadline = Instant::now() + timeout;
        while !writer.is_finished() {
            if Instant::now() >= deadline {
                // What the writer had not taken yet (it may be writing one batch more).
                let queued = (self.queue.max_capacity() - self.queue.capacity()) as u64;
                self.metrics.events_dropped.add(&["log"], queued);
                warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    events.queued = queued,
                    "the security log writer did not finish in time (its output is stalled): \
                     events still queued and repeat counts not yet written are lost"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = writer.join();
    }
}

/// Where the writer task writes.
#[derive(Debug, Clone)]
pub enum LogOutput {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl JsonLogSink {
    /// Opens `output` and starts the writer thread; returns its sink.
    /// Repeats of a client's flood events within `repeat_window` are folded into a count
    /// ([`super::repeats`]); a zero window writes every event.
    pub async fn start(
        output: LogOutput,
        capacity: usize,
        repeat_window: Duration,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let output: Box<dyn Write + Send> = match output {
            LogOutput::Stdout => Box::new(std::io::stdout()),
            LogOutput::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?,
            ),
        };
        let closing = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&closing);
        let counted = Arc::clone(&metrics);
        let writer = std::thread::Builder::new()
            .name("palisade-log".to_owned())
            .spawn(move || {
                let repeats = Repeats::new(repeat_window);
                write_events(output, receiver, repeats, &stop, &counted);
            })?;
        Ok(Self {
            queue,
            metrics,
            closing,
            writer: Mutex::new(Some(writer)),
        })
    }
}

/// Writes queued events as lines in batches until every sink is gone or `closing` is set:
/// drain the queue, flush, sleep. The sleep is 10 ms after a batch and doubles up to 100 ms
/// while the queue stays empty, so an event waits at most that long to be written. Repeats
/// are folded by `repeats`; a window that ended is summed up at the first pass after its
/// end. A failed write does not end the writer: it is reported, its lines counted as
/// dropped, and the next batch tried again ([`Output`]).
fn write_events(
    output: Box<dyn Write + Send>,
    mut events: mpsc::Receiver<Arc<Event>>,
    mut repeats: Repeats,
    closing: &AtomicBool,
    metrics: &Metrics,
) {
    const BUSY_PAUSE: Duration = Duration::from_millis(10);
    const IDLE_PAUSE: Duration = Duration::from_millis(100);
    let mut out = Output::new(output, metrics);
    let mut line = String::with_capacity(512);
    let mut clock = TimestampCache::default();
    let mut pause = BUSY_PAUSE;
    loop {
        // Read before draining: whatever was queued before the close is drained below.
        let mut last = closing.load(Ordering::Acquire);
        let now = Instant::now();
        let mut written = write_repeats(&mut out, &mut line, &mut clock, &mut repeats, Some(now));
        loop {
            let event = match events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    last = true;
                    break;
                }
            };
            // TODO: an event's time is when the writer takes it, not when it happened: 10-100
            // ms later, seconds when the output stalls (ts and repeat windows skew with it).
            let millis = clock.tick();
            if repeats.take(&event, now, millis) == Disposition::Folded {
                continue;
            }
            line.clear();
            write_line(&mut line, clock.text(), &event);
            line.push('\n');
            out.write(&line);
            written = true;
        }
        if last {
            write_repeats(&mut out, &mut line, &mut clock, &mut repeats, None);
            out.flush();
            return;
        }
        if written {
            out.flush();
            pause = BUSY_PAUSE;
        } else {
            pause = (pause * 2).min(IDLE_PAUSE);
        }
        std::thread::sleep(pause);
    }
}

/// The log's output behind a buffer of whole lines, with what a failed write lost counted:
/// the lines buffered since the last write that went through are dropped (they may have
/// been written in part; a retry would write their start twice), counted in
/// `palisade_events_dropped_total{sink="log"}`, and the first failure of a run of them is
/// logged on stderr, as is the first success after.
struct Output<'m> {
    inner: Box<dyn Write + Send>,
    buf: Vec<u8>,
    /// Lines in `buf`.
    buffered: u64,
    failing: bool,
    metrics: &'m Metrics,
}

impl<'m> Output<'m> {
    /// Room for a few hundred events: one write per batch rather than one per 8 KiB.
    const BUFFER: usize = 64 << 10;

    fn new(inner: Box<dyn Write + Send>, metrics: &'m Metrics) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(Self::BUFFER),
            buffered: 0,
            failing: false,
            metrics,
        }
    }

    fn write(&mut self, line: &str) {
        if self.buf.len() + line.len() > Self::BUFFER {
            self.flush();
        }
        self.buf.extend_from_slice(line.as_bytes());
        self.buffered += 1;
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let written = self
            .inner
            .write_all(&self.buf)
            .and_then(|()| self.inner.flush());
        self.buf.clear();
        let lines = std::mem::take(&mut self.buffered);
        match written {
            Ok(()) if self.failing => {
                self.failing = false;
                warn!("the security log is written again");
            }
            Ok(()) => {}
            Err(err) => {
                self.metrics.events_dropped.add(&["log"], lines);
                if !self.failing {
                    self.failing = true;
                    error!(
                        error = %err,
                        events.lost = lines,
                        "cannot write the security log: events are dropped and counted in \
                         palisade_events_dropped_total{{sink=\"log\"}} until writes succeed again"
                    );
                }
            }
        }
    }
}

/// Writes a `log.repeated` line for each fold whose window ended by `now` (every fold when
/// `None`); whether it wrote any.
fn write_repeats(
    out: &mut Output<'_>,
    line: &mut String,
    clock: &mut TimestampCache,
    repeats: &mut Repeats,
    now: Option<Instant>,
) -> bool {
    let ended = repeats.flush_ended(now);
    for summary in &ended {
        line.clear();
        let mut object = super::JsonObject::new(line);
        object.plain(key!("ts"), clock.now());
        summary.write_fields(&mut object);
        object.finish();
        line.push('\n');
        out.write(line);
    }
    !ended.is_empty()
}

/// The RFC 3339 text of the current millisecond, formatted again only when the millisecond
/// changes: a batch of a thousand events formats the time once or twice, not a thousand times.
#[derive(Debug, Default)]
struct TimestampCache {
    /// The millisecond read last.
    millis: u64,
    /// The millisecond `text` shows (`None` before the first).
    shown: Option<u64>,
    text: String,
}

impl TimestampCache {
    fn now(&mut self) -> &str {
        self.tick();
        self.text()
    }

    /// Reads the clock; the millisecond since the epoch.
    fn tick(&mut self) -> u64 {
        self.millis = unix_millis();
        self.millis
    }

    /// The text of the millisecond [`Self::tick`] read last.
    fn text(&mut self) -> &str {
        if self.shown != Some(self.millis) {
            self.shown = Some(self.millis);
            self.text = format_rfc3339(self.millis);
        }
        &self.text
    }
}

/// One event as a JSON line, the timestamp first so lines sort and read by time.
pub fn event_line(event: &Event) -> String {
    let mut line = String::with_capacity(256);
    write_line(&mut line, &rfc3339_now(), event);
    line
}

fn write_line(line: &mut String, ts: &str, event: &Event) {
    let mut object = super::JsonObject::new(line);
    object.plain(key!("ts"), ts);
    event.write_fields(&mut object);
    object.finish();
}

fn unix_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_millis() as u64
}

/// The current UTC time as `2026-01-31T12:34:56.789Z`.
pub fn rfc3339_now() -> String {
    format_rfc3339(unix_millis())
}

/// Formats milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn format_rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_rfc3339(1_767_225_599_000),
            "2025-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn event_lines_are_json_with_the_timestamp_first() {
        let line = event_line(&Event::StateRecovered { backend: "redis" });
        assert!(line.starts_with("{\"ts\":\""), "{line}");
        let json: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(json["event"], "state.recovered");
    }

    #[tokio::test]
    async fn the_writer_thread_writes_queued_events_to_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("security.log");
        let metrics = Arc::new(Metrics::default());
        let sink = JsonLogSink::start(LogOutput::File(path.clone()), 16, Duration::ZERO, metrics)
            .await
            .expect("starts");
        sink.accept(&Arc::new(Event::StateRecovered { backend: "redis" }));
        // Bounded wait for the writer's next batch (it polls every 10 to 100 ms).
        let mut text = String::new();
        for _ in 0..500 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let json: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one line");
        assert_eq!(json["event"], "state.recovered");
    }

    /// A sink that refuses writes while `refusing` is set and keeps what it took.
    #[derive(Clone, Default)]
    struct Flaky {
        refusing: Arc<AtomicBool>,
        taken: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.refusing.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.taken.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_writes_are_counted_as_dropped_and_writing_resumes() {
        let metrics = Metrics::default();
        let flaky = Flaky::default();
        let mut out = Output::new(Box::new(flaky.clone()), &metrics);
        out.write("{\"n\":1}\n");
        out.flush();
        flaky.refusing.store(true, Ordering::Relaxed);
        out.write("{\"n\":2}\n");
        out.write("{\"n\":3}\n");
        out.flush();
        assert_eq!(metrics.events_dropped.value(&["log"]), 2);
        // Nothing of the failed batch is written later, even in part.
        flaky.refusing.store(false, Ordering::Relaxed);
        out.write("{\"n\":4}\n");
        out.flush();
        let taken = String::from_utf8(flaky.taken.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(taken, "{\"n\":1}\n{\"n\":4}\n");
        assert_eq!(metrics.events_dropped.value(&["log"]), 2);
    }

    /// A writer stuck on its output past the close's timeout: the close returns, and the
    /// events still queued are counted as dropped.
    #[tokio::test]
    async fn a_close_that_times_out_counts_the_events_still_queued() {
        let metrics = Arc::new(Metrics::default());
        let (queue, _receiver) = mpsc::channel(8);
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            let _ = stuck.recv();
        });
        let sink = JsonLogSink {
            queue,
            metrics: Arc::clone(&metrics),
            closing: Arc::new(AtomicBool::new(false)),
            writer: Mutex::new(Some(writer)),
        };
        for _ in 0..3 {
            sink.accept(&Arc::new(Event::StateRecovered { backend: "redis" }));
        }
        sink.close(Duration::from_millis(30));
        assert!(sink.closing.load(Ordering::Acquire));
        assert_eq!(metrics.events_dropped.value(&["log"]), 3);
        let _ = release.send(());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::default());
        let (queue, _receiver) = mpsc::channel(1);
        let sink = JsonLogSink {
            queue,
            metrics: Arc::clone(&metrics),
            closing: Arc::new(AtomicBool::new(false)),
            writer: Mutex::new(None),
        };
        let event = Arc::new(Event::StateRecovered { backend: "redis" });
        sink.accept(&event);
        sink.accept(&event);
        assert_eq!(metrics.events_dropped.value(&["log"]), 1);
    }
}
