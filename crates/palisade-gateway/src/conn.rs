//! One client connection's guard: framing watch, header-read and idle timeouts.
//!
//! [`GuardedIo`] sits between the socket (or TLS stream) and hyper. It passes bytes through
//! unchanged while it
//! - feeds them to the [`FramingTracker`] so smuggling shapes are known before hyper hands
//!   the request to the pipeline;
//! - closes a connection whose request head has not fully arrived within
//!   `header_read_timeout` of its first byte (slowloris), or that has sat with no request in
//!   flight for `idle_timeout` (the first request gets `header_read_timeout`).
//!
//! It never closes a connection while a request is in flight: a slow upstream is bounded by
//! the upstream timeouts instead.
//!
//! A plain HTTP/1.1 connection starts in palisade's own loop ([`crate::http1`]), which
//! parses its heads itself and tells the guard when one is in progress; the framing watch
//! starts only if the loop hands the connection to hyper, with the bytes it read put back in
//! front ([`Prefixed`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::framing::{Finding, FramingTracker};

/// State shared between a connection's I/O guard and the requests served on it.
#[derive(Debug)]
pub struct ConnShared {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
    finding: AtomicU8,
    /// The request the finding is about (requests counted from 0 on the connection); it and
    /// every later one are refused, the ones before it served.
    finding_at: AtomicU64,
    /// Requests started on the connection.
    started: AtomicU64,
    /// The request from which the framing watch no longer follows the connection (a
    /// `CONNECT`, an `Upgrade`): it must end after that answer unless it switched protocols.
    unwatched_from: AtomicU64,
}

impl ConnShared {
    /// Fresh state for a connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            finding: AtomicU8::new(0),
            finding_at: AtomicU64::new(0),
            started: AtomicU64::new(0),
            unwatched_from: AtomicU64::new(u64::MAX),
        })
    }

    /// The framing violation that concerns `request`: one seen in its own message or an
    /// earlier one on this connection (a later one is not its doing, and what follows it
    /// cannot be trusted).
    pub fn finding_for(&self, request: &InFlight) -> Option<Finding> {
        let finding = self.finding()?;
        (request.index >= self.finding_at.load(Ordering::Acquire)).then_some(finding)
    }

    /// Whether the framing watch stopped following the connection at `request` or before:
    /// unless its answer switches protocols, the connection must end after it, or what a
    /// client sends next would reach hyper unwatched.
    pub fn unwatched(&self, request: &InFlight) -> bool {
        request.index >= self.unwatched_from.load(Ordering::Acquire)
    }

    /// The framing violation seen on this connection, if any.
    pub fn finding(&self) -> Option<Finding> {
        match self.finding.load(Ordering::Acquire) {
            1 => Some(Finding::ConflictingLengths),
            2 => Some(Finding::InvalidChunkSize),
            3 => Some(Finding::HeadTooLarge),
            _ => None,
        }
    }

    fn record(&self, finding: Finding, at: u64) {
        self.finding_at.store(at, Ordering::Release);
        let code = match finding {
            Finding::ConflictingLengths => 1,
            Finding::InvalidChunkSize => 2,
            Finding::HeadTooLarge => 3,
        };
        self.finding.store(code, Ordering::Release);
    }

    /// Marks a request in flight until the returned guard drops (its response ended).
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            shared: Arc::clone(self),
            index: self.started.fetch_add(1, Ordering::AcqRel),
        }
    }

    fn last_done(&self) -> Option<Instant> {
        match self.last_done_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }
}

/// A request in flight on a connection; dropped when its response body is finished.
#[derive(Debug)]
pub struct InFlight {
    shared: Arc<ConnShared>,
    /// The request's place on its connection, from 0.
    index: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let shared = &self.shared;
        let ms = shared.epoch.elapsed().as_millis().max(1) as u64;
        shared.last_done_ms.store(ms, Ordering::Release);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Time limits applied by [`GuardedIo`].
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    /// From a head's first byte to its last; also the wait for the first request.
    pub header_read: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    /// Longest a write may wait for a client that does not read; zero for no limit.
    pub send: Duration,
}

/// A client stream watched for framing violations and timeouts.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    tracker: Option<FramingTracker>,
    shared: Arc<ConnShared>,
    timeouts: ConnTimeouts,
    last_read: Instant,
    head_started: Option<Instant>,
    /// HTTP/2 (by ALPN or prior knowledge): frames that are not requests (PING, SETTINGS,
    /// WINDOW_UPDATE) do not keep the connection alive.
    http2: bool,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Instant,
    /// Requests served before the framing watch began (by the own HTTP/1.1 loop): its
    /// message count starts there.
    watched_from: u64,
    /// Running while a write waits for the client to read, from when it began waiting.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> GuardedIo<T> {
    /// When bytes last arrived from the client: for a head just parsed, when it was
    /// received (or, pipelined behind another, when it was already waiting).
    pub fn last_read(&self) -> Instant {
        self.last_read
    }

    /// Guards `inner`. `tracker` is `None` for connections known to speak HTTP/2.
    pub fn new(
        inner: T,
        tracker: Option<FramingTracker>,
        shared: Arc<ConnShared>,
        timeouts: ConnTimeouts,
    ) -> Self {
        let now = Instant::now();
        let deadline = now + timeouts.header_read;
        let http2 = tracker.is_none();
        Self {
            inner,
            tracker,
            shared,
            timeouts,
            last_read: now,
            head_started: None,
            http2,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            timer_deadline: deadline,
            watched_from: 0,
            write_stall: None,
        }
    }

    /// Guards a plain HTTP/1.1 connection served by palisade's own loop, which reports
    /// heads in progress itself ([`Self::head_in_progress`]) instead of a framing watch.
    pub fn own_http1(inner: T, shared: Arc<ConnShared>, timeouts: ConnTimeouts) -> Self {
        let mut io = Self::new(inner, None, shared, timeouts);
        io.http2 = false;
        io
    }

    /// Whether part of a request head has arrived but not all of it, as the connection's own
    /// loop sees it: the header read timeout runs from the moment this turns true.
    pub fn head_in_progress(&mut self, in_progress: bool) {
        self.head_started = match (in_progress, self.head_started) {
            (true, None) => Some(Instant::now()),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// Handles a write's outcome: a write that waits starts (or goes on with) the send
    /// timer, and fails once the client has read nothing for `send_timeout`; progress
    /// stops the timer.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if !polled.is_pending() {
            self.write_stall = None;
            return polled;
        }
        if self.timeouts.send.is_zero() {
            return polled;
        }
        let send = self.timeouts.send;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading: send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Records bytes just read from the client.
    fn observe(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.last_read = now;
        let Some(tracker) = self.tracker.as_mut() else {
            return;
        };
        if let Some(finding) = tracker.feed(bytes) {
            let at = self.watched_from + tracker.finding_at();
            self.shared.record(finding, at);
        }
        if let Some(stopped) = tracker.stopped_at() {
            let at = self.watched_from + stopped;
            self.shared.unwatched_from.fetch_min(at, Ordering::AcqRel);
        }
        self.http2 |= tracker.is_http2();
        self.head_started = match (tracker.head_in_progress(), self.head_started) {
            (true, None) => Some(now),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// When the connection should be closed if nothing more arrives, or `None` while a
    /// request is in flight (its body's pace is bounded by `body_read_timeout` and
    /// `min_body_rate` in [`crate::body::RequestBody`], which sees HTTP/2 streams too).
    fn deadline(&self) -> Option<Instant> {
        if let Some(started) = self.head_started {
            return Some(started + self.timeouts.header_read);
        }
        if self.shared.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.http2 {
            // Only finished requests count as activity: a client sending a PING every few
            // seconds must not hold an idle HTTP/2 connection for ever.
            return Some(match self.shared.last_done() {
                Some(done) => done + self.timeouts.idle,
                None => self.shared.epoch + self.timeouts.header_read,
            });
        }
        Some(match self.shared.last_done() {
            Some(done) => done.max(self.last_read) + self.timeouts.idle,
            None => self.last_read + self.timeouts.header_read,
        })
    }

    /// Polls the timer for `deadline`; ready means the connection timed out.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.deadline() else {
            return Poll::Pending;
        };
        if deadline != self.timer_deadline {
            self.timer.as_mut().reset(deadline);
            self.timer_deadline = deadline;
        }
        self.timer.as_mut().poll(cx)
    }
}

impl<T> GuardedIo<Prefixed<T>> {
    /// Hands the connection to hyper: `read` (the bytes the own loop read and did not use,
    /// from a head's first byte) is read again first, and the framing watch follows the
    /// connection from there. A head already in progress keeps the time of its first byte.
    pub fn hand_over(&mut self, read: Bytes, tracker: FramingTracker) {
        self.put_back(read);
        self.tracker = Some(tracker);
        self.watched_from = self.shared.started.load(Ordering::Acquire);
    }

    /// Puts `read` back in front of what is read next.
    pub fn put_back(&mut self, read: Bytes) {
        self.inner.prefix = read;
    }
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    /// `inner` with nothing put back yet.
    pub fn new(inner: T) -> Self {
        Self {
            prefix: Bytes::new(),
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() {
                    self.observe(fresh);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client too slow: header read or idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn timeouts() -> ConnTimeouts {
        ConnTimeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            send: Duration::from_secs(60),
        }
    }

    fn guarded(server: tokio::io::DuplexStream) -> GuardedIo<tokio::io::DuplexStream> {
        let tracker = Some(FramingTracker::new(8192, 100));
        GuardedIo::new(server, tracker, ConnShared::new(), timeouts())
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_too_slowly_times_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = guarded(server);
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.expect("first bytes");
        assert!(n > 0);
        let err = io.read(&mut buf).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    /// Regression: on HTTP/2, any frame (a PING) used to refresh the idle timer, so a client
    /// pinging every few seconds held a connection with no request for ever.
    #[tokio::test(start_paused = true)]
    async fn http2_frames_that_are_not_requests_do_not_keep_a_connection_alive() {
        let (client, server) = tokio::io::duplex(1024);
        let io = GuardedIo::new(server, None, ConnShared::new(), timeouts());
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let outcome = read_while_trickling(io, client, &ping).await;
        assert_eq!(outcome, Some(io::ErrorKind::TimedOut));
    }

    /// Regression: empty lines before a request line used to refresh the wait for the
    /// first request, so `\r\n` every few seconds held a connection for ever.
    #[tokio::test(start_paused = true)]
    async fn empty_lines_sent_forever_time_out_like_a_slow_head() {
        let (client, server) = tokio::io::duplex(1024);
        let outcome = read_while_trickling(guarded(server), client, b"\r\n").await;
        assert_eq!(outcome, Some(io::ErrorKind::TimedOut));
    }

    /// Regression: a head past `max_header_size` but under hyper's own buffer, trickled a
    /// byte at a time, held its connection for as long as the bytes came.
    #[tokio::test(start_paused = true)]
    async fn a_head_over_the_limit_trickled_in_times_out() {
        let (mut client, server) = tokio::io::duplex(4096);
        let tracker = Some(FramingTracker::new(64, 100));
        let io = GuardedIo::new(server, tracker, ConnShared::new(), timeouts());
        let start = format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(100));
        client.write_all(start.as_bytes()).await.expect("write");
        let outcome = read_while_trickling(io, client, b"a").await;
        assert_eq!(outcome, Some(io::ErrorKind::TimedOut));
    }

    /// Regression (red team): a partial head handed from the own HTTP/1.1 loop to hyper had
    /// its header timer started again when hyper read it back, so a slow head got up to
    /// twice `header_read_timeout`.
    #[tokio::test(start_paused = true)]
    async fn a_head_handed_over_keeps_the_time_of_its_first_byte() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut io = GuardedIo::own_http1(Prefixed::new(server), ConnShared::new(), timeouts());
        let start = Instant::now();
        client
            .write_all(b"GET / HTTP/1.1\r\nX-A: b")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.expect("read");
        io.head_in_progress(true);
        tokio::time::sleep(Duration::from_secs(6)).await;
        let read = Bytes::copy_from_slice(&buf[..n]);
        io.hand_over(read, FramingTracker::new(8192, 100));
        let outcome = read_while_trickling(io, client, b"c").await;
        assert_eq!(outcome, Some(io::ErrorKind::TimedOut));
        let elapsed = start.elapsed();
        assert!(
            elapsed < Duration::from_secs(12),
            "timed out after {elapsed:?}"
        );
    }

    /// Reads `io` while the client sends `bytes` every 5 s (100 times); the error that ends
    /// the reading, or `None` when the connection outlived the trickle or closed.
    async fn read_while_trickling<T: AsyncRead + Unpin>(
        mut io: GuardedIo<T>,
        mut client: tokio::io::DuplexStream,
        bytes: &[u8],
    ) -> Option<io::ErrorKind> {
        let mut buf = [0u8; 64];
        let reading = async {
            loop {
                match io.read(&mut buf).await {
                    Ok(0) => return None,
                    Ok(_) => continue,
                    Err(err) => return Some(err.kind()),
                }
            }
        };
        let trickling = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if client.write_all(bytes).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            kind = reading => kind,
            () = trickling => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_are_never_timed_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = guarded(server);
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.expect("head");
        assert!(n > 0);
        let in_flight = io.shared.start_request();
        let read = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buf)).await;
        assert!(read.is_err(), "the read is still waiting after 600 s");
        drop(in_flight);
        let err = io
            .read(&mut buf)
            .await
            .expect_err("idle timeout after the response");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn framing_findings_are_shared_with_the_requests() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = guarded(server);
        client
            .write_all(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = io.read(&mut buf).await.expect("head");
        assert!(n > 0);
        assert_eq!(io.shared.finding(), Some(Finding::ConflictingLengths));
        let request = io.shared.start_request();
        assert_eq!(
            io.shared.finding_for(&request),
            Some(Finding::ConflictingLengths)
        );
    }
}
