//! `send_timeout` for HTTP/2 streams.
//!
//! [`crate::conn::GuardedIo`] closes a connection whose socket stops taking bytes. An HTTP/2
//! client can stop reading one answer without stalling the socket: it sends no
//! `WINDOW_UPDATE` for that stream and goes on answering PINGs. hyper then waits for
//! flow-control window that never comes, holding the stream, the upstream connection behind
//! it and the buffered answer for as long as the client likes.
//!
//! hyper asks an answer's body for its next piece only once the piece before it has
//! window to go out in. So a body that handed over data and has not been asked for more is
//! waiting on the client: [`SendWatch`] records since when. Each HTTP/2 stream is spawned
//! by [`StreamExecutor`], which races the stream against that wait and drops the stream
//! once the wait reaches `send_timeout`; h2 then resets it (`RST_STREAM` `CANCEL`), the
//! upstream exchange is dropped, and the connection's other streams go on.
//!
//! hyper spawns a stream right after calling the service for its request, on the same
//! thread: the service leaves the request's watch in a thread-local slot
//! ([`watch_next_stream`]) and the executor takes it from there. The test
//! `an_http2_client_that_stops_reading_one_answer_has_that_stream_reset` in
//! `crates/palisade/tests/slow_clients.rs` fails if a hyper release changes that order.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Whether an HTTP/2 answer waits for its client to take more, and since when.
#[derive(Debug)]
pub struct SendWatch {
    epoch: Instant,
    /// Milliseconds after `epoch`, plus one, since the body handed over data that has not
    /// gone out; 0 while nothing waits on the client.
    waiting_since: AtomicU64,
    timed_out: AtomicBool,
}

impl SendWatch {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            waiting_since: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        }
    }

    /// The body is asked for more: what it handed over went out.
    pub fn asked(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
    }

    /// The body handed over data, which now waits for the client's window.
    pub fn handed(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.waiting_since.store(ms + 1, Ordering::Relaxed);
    }

    /// Whether the stream was dropped for waiting longer than `send_timeout`.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn waiting_since(&self) -> Option<Instant> {
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms - 1)),
        }
    }
}

thread_local! {
    /// The watch of the HTTP/2 request the service was just called for, until hyper spawns
    /// its stream.
    static NEXT_STREAM: RefCell<Option<Arc<SendWatch>>> = const { RefCell::new(None) };
}

/// A watch for the HTTP/2 request the service is being called for, also left for
/// [`StreamExecutor`] to find when hyper spawns the request's stream.
pub fn watch_next_stream() -> Arc<SendWatch> {
    let watch = Arc::new(SendWatch::new());
    NEXT_STREAM.with(|next| *next.borrow_mut() = Some(Arc::clone(&watch)));
    watch
}

/// Spawns hyper's HTTP/2 streams (on the current worker's runtime), each bounded by
/// `send_timeout` while its answer waits for the client; other futures as they are.
#[derive(Debug, Clone, Copy)]
pub struct StreamExecutor {
    send_timeout: Duration,
}

impl StreamExecutor {
    /// An executor dropping streams that wait `send_timeout` for their client (zero: never).
    pub fn new(send_timeout: Duration) -> Self {
        Self { send_timeout }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let watch = NEXT_STREAM.with(|next| next.borrow_mut().take());
        match watch {
            Some(watch) if !self.send_timeout.is_zero() => {
                tokio::spawn(Bounded {
                    inner: Box::pin(future),
                    watch,
                    limit: self.send_timeout,
                    timer: None,
                });
            }
            _ => {
                tokio::spawn(future);
            }
        }
    }
}

/// A stream that ends (dropping what it was sending) once its answer has waited `limit`
/// for the client.
struct Bounded<F> {
    inner: Pin<Box<F>>,
    watch: Arc<SendWatch>,
    limit: Duration,
    /// The timer and the deadline it is set for.
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl<F: Future> Future for Bounded<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.inner.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let Some(since) = this.watch.waiting_since() else {
            return Poll::Pending;
        };
        let deadline = since + this.limit;
        let timer = match &mut this.timer {
            Some((set, timer)) => {
                if *set != deadline {
                    timer.as_mut().reset(deadline);
                    *set = deadline;
                }
                timer
            }
            empty => {
                let timer = Box::pin(tokio::time::sleep_until(deadline));
                &mut empty.insert((deadline, timer)).1
            }
        };
        if timer.as_mut().poll(cx).is_ready() {
            this.watch.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::Mutex;
    use std::task::Waker;

    /// Stands in for hyper's stream: never finishes on its own, can be woken (as the body
    /// is polled when window opens) and reports when it is dropped.
    struct Stream {
        waker: Arc<Mutex<Option<Waker>>>,
        dropped: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Future for Stream {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *self.waker.lock().expect("waker") = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            if let Some(dropped) = self.dropped.take() {
                let _ = dropped.send(());
            }
        }
    }

    struct Spawned {
        watch: Arc<SendWatch>,
        waker: Arc<Mutex<Option<Waker>>>,
        on_drop: tokio::sync::oneshot::Receiver<()>,
    }

    impl Spawned {
        /// What the body does inside the stream's poll: `step` on the watch, then the stream
        /// waits again.
        async fn step(&self, step: fn(&SendWatch)) {
            step(&self.watch);
            if let Some(waker) = self.waker.lock().expect("waker").take() {
                waker.wake();
            }
            tokio::task::yield_now().await;
        }

        fn dropped(&mut self) -> bool {
            self.on_drop.try_recv().is_ok()
        }
    }

    async fn spawn(executor: StreamExecutor, watched: bool) -> Spawned {
        let (dropped, on_drop) = tokio::sync::oneshot::channel();
        let watch = if watched {
            watch_next_stream()
        } else {
            Arc::new(SendWatch::new())
        };
        let waker = Arc::new(Mutex::new(None));
        executor.execute(Stream {
            waker: Arc::clone(&waker),
            dropped: Some(dropped),
        });
        tokio::task::yield_now().await;
        Spawned {
            watch,
            waker,
            on_drop,
        }
    }

    fn minute() -> StreamExecutor {
        StreamExecutor::new(Duration::from_secs(60))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_answer_waits_past_the_limit_is_dropped() {
        let mut stream = spawn(minute(), true).await;
        stream.step(SendWatch::handed).await;
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!stream.dropped());
        // The client took it and the next piece waits: the wait starts again.
        stream.step(SendWatch::asked).await;
        stream.step(SendWatch::handed).await;
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!stream.dropped(), "dropped 50 s after progress");
        assert!(!stream.watch.timed_out());
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(stream.dropped(), "kept after waiting 61 s");
        assert!(stream.watch.timed_out());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_waiting_on_its_upstream_is_not_dropped() {
        let mut stream = spawn(minute(), true).await;
        stream.step(SendWatch::handed).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        // Asked for more and not handed anything yet: the upstream is slow, not the client.
        stream.step(SendWatch::asked).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!stream.dropped());
        assert!(!stream.watch.timed_out());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_and_futures_without_a_watch_are_left_alone() {
        let mut unlimited = spawn(StreamExecutor::new(Duration::ZERO), true).await;
        unlimited.step(SendWatch::handed).await;
        let mut unwatched = spawn(minute(), false).await;
        unwatched.step(SendWatch::handed).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!unlimited.dropped());
        assert!(!unwatched.dropped());
        assert!(
            NEXT_STREAM.with(|next| next.borrow().is_none()),
            "the executor took the watch"
        );
    }
}
