//! Request and response bodies as they stream through the gateway.
//!
//! Nothing here buffers a whole body. [`RequestBody`] lets pipeline stages read a bounded
//! prefix (WAF inspection, upload sniffing) and then forwards that prefix followed by the
//! rest of the stream, counting bytes against `max_body_size` as they pass, waiting at
//! most `body_read_timeout` for each next piece, and, once that long has passed, requiring
//! an average of `min_body_rate` bytes per second: a client that stops sending its body, or
//! sends it a byte now and then (slow-body attacks), cannot hold its connection, and an
//! upstream connection, for long.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// The error type bodies carry through hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any response body palisade sends: the upstream's stream or a page of its own.
pub type GatewayBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> GatewayBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The client's body ended badly (bad chunk, early close): the client's fault, shown to the
/// forwarder so it answers 400 rather than blaming the upstream.
#[derive(Debug, thiserror::Error)]
#[error("client body: {0}")]
pub struct ClientBodyError(pub String);

/// The client went away before its body ended (closed the connection, reset its HTTP/2
/// stream): a cancelled request, not a malformed one.
#[derive(Debug, thiserror::Error)]
#[error("client went away mid-body: {0}")]
pub struct ClientGone(pub String);

/// A client body error, classified: the client leaving (the connection closed or reset, the
/// stream reset by the client) or a body that is not valid HTTP (a bad chunk).
fn client_body_error(err: &hyper::Error) -> BoxError {
    if went_away(err) {
        Box::new(ClientGone(err.to_string()))
    } else {
        Box::new(ClientBodyError(err.to_string()))
    }
}

/// Whether reading the client's body failed because the client left: its connection was
/// reset, or it reset its HTTP/2 stream. A body cut short by the end of the connection's
/// input is not counted here: the client may have only half-closed and still read the 400
/// a truncated body gets.
fn went_away(err: &hyper::Error) -> bool {
    if err.is_canceled() {
        return true;
    }
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            );
        }
        if let Some(h2) = inner.downcast_ref::<h2::Error>() {
            return h2.is_io() || (h2.is_remote() && (h2.is_reset() || h2.is_go_away()));
        }
        cause = inner.source();
    }
    false
}

/// The client sent more than `max_body_size`.
#[derive(Debug, thiserror::Error)]
#[error("request body longer than {0} bytes")]
pub struct BodyLimitExceeded(pub u64);

/// The client sent nothing of its body for `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled for more than {}s", .0.as_secs())]
pub struct BodyStalled(pub Duration);

/// The client's body fell below `min_body_rate` bytes per second on average.
#[derive(Debug, thiserror::Error)]
#[error("request body slower than {0} bytes per second")]
pub struct BodyTooSlow(pub u64);

/// How fast a client must send its body.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// The longest wait for the next frame.
    pub stall: Duration,
    /// Bytes per second the body must average once palisade has waited `stall` for it in
    /// all; 0 checks nothing. Only time spent waiting for the client counts, not time the
    /// upstream took to accept what was already read (backpressure).
    pub min_rate: u64,
}

/// Why counting a frame ended the body.
enum CountError {
    TooLarge(BodyLimitExceeded),
    TooSlow(BodyTooSlow),
}

impl CountError {
    fn into_gateway(self) -> GatewayError {
        match self {
            Self::TooLarge(e) => GatewayError::BodyTooLarge { limit: e.0 },
            Self::TooSlow(e) => GatewayError::BodyTooSlow(e.0),
        }
    }

    fn into_boxed(self) -> BoxError {
        match self {
            Self::TooLarge(e) => Box::new(e),
            Self::TooSlow(e) => Box::new(e),
        }
    }
}

/// The request body: a prefix already read by stages, then the unread stream; or a body a
/// stage put in its place ([`RequestBody::replace`]).
// TODO(speed): streaming state inline, so 200 bytes are copied ~8 times a request (~80 ns).
#[derive(Debug)]
pub struct RequestBody {
    prefix: BytesMut,
    rest: Option<hyper::body::Incoming>,
    limit: u64,
    seen: u64,
    /// How fast the client must send.
    pace: BodyPace,
    /// Time spent waiting for the client's frames that have arrived: the pace's clock.
    waited: Duration,
    /// When the wait for the next frame began, while it lasts.
    waiting_since: Option<Instant>,
    /// Notes when the client's next frame arrived, while the pace is checked.
    arrival: Option<Arc<Arrival>>,
    /// Running while the forwarder waits for a frame; reset by each frame.
    stall_timer: Option<Pin<Box<Sleep>>>,
    /// Stages hold `&GatewayRequest` across awaits, so the body must be `Sync`; the mutex
    /// makes a `Send`-only body so, and costs nothing where it is polled (`get_mut`).
    replaced: Option<Mutex<GatewayBody>>,
    /// Where a failure while forwarding is noted, once [`RequestBody::watch_faults`] asked.
    fault: Option<BodyFault>,
}

/// The rest of a client's body that an upstream refused by answering early with an error
/// (RFC 9112 §9.5), carried on the upstream's answer to the gateway, which drains it as it
/// drains a body palisade itself refused (`gateway::linger`): the client learns the
/// connection ends (`Connection: close`) and reads the answer instead of a reset.
#[derive(Debug, Clone)]
pub struct UnreadBody(Arc<Mutex<Option<hyper::body::Incoming>>>);

impl UnreadBody {
    /// Carries `unread`.
    pub fn new(unread: hyper::body::Incoming) -> Self {
        Self(Arc::new(Mutex::new(Some(unread))))
    }

    /// The body, once.
    pub fn take(&self) -> Option<hyper::body::Incoming> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Why a request body failed while it was being forwarded (too large, stalled, too slow,
/// unreadable), noted by the body itself. The HTTP/2 client hides a body's error behind a
/// stream reset ("stream error sent by user"), and an error after the upstream's answer
/// began reaches nobody; this note lets the gateway tell the client's fault from the
/// upstream's either way.
#[derive(Debug, Clone, Default)]
pub struct BodyFault(Arc<Mutex<Option<GatewayError>>>);

impl BodyFault {
    fn note(&self, err: &BoxError) {
        if let Some(fault) = client_fault(err.as_ref()) {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            slot.get_or_insert(fault);
        }
    }

    /// The failure noted, if any (taken: it is reported once).
    pub fn take(&self) -> Option<GatewayError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl RequestBody {
    /// Wraps the client's body (`None`: the request has none), refusing more than `limit`
    /// bytes and a body slower than `pace`.
    pub fn new(incoming: Option<hyper::body::Incoming>, limit: u64, pace: BodyPace) -> Self {
        let rest = incoming.filter(|incoming| !incoming.is_end_stream());
        Self {
            prefix: BytesMut::new(),
            rest,
            limit,
            seen: 0,
            pace,
            waited: Duration::ZERO,
            waiting_since: None,
            arrival: None,
            stall_timer: None,
            replaced: None,
            fault: None,
        }
    }

    /// An empty body (a request palisade makes itself, tests).
    pub fn empty() -> Self {
        Self {
            prefix: BytesMut::new(),
            rest: None,
            limit: 0,
            seen: 0,
            pace: BodyPace {
                stall: Duration::MAX,
                min_rate: 0,
            },
            waited: Duration::ZERO,
            waiting_since: None,
            arrival: None,
            stall_timer: None,
            replaced: None,
            fault: None,
        }
    }

    /// From now on, a failure of this body is also noted where the returned handle reads it.
    pub fn watch_faults(&mut self) -> BodyFault {
        self.fault.get_or_insert_with(BodyFault::default).clone()
    }

    /// Forwards `body` instead of the client's (whose unread rest is dropped). Upload
    /// inspection reads the whole client body, then forwards the spooled, checked copy; the
    /// stage sets `Content-Length` to match.
    pub fn replace<B>(&mut self, body: B)
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.prefix.clear();
        self.rest = None;
        self.replaced = Some(Mutex::new(body.map_err(Into::into).boxed_unsync()));
    }

    /// Reads until at least `cap` bytes are buffered or the body ends, and returns the
    /// buffered prefix (which may be longer than `cap` by up to one frame). Those bytes are
    /// still forwarded upstream afterwards. A stage that must see the whole body before the
    /// upstream does (upload checks) calls this with its maximum size.
    pub async fn prefix(&mut self, cap: usize) -> Result<&[u8], GatewayError> {
        while self.prefix.len() < cap {
            let Some(incoming) = self.rest.as_mut() else {
                break;
            };
            let asked = Instant::now();
            let Ok(frame) = tokio::time::timeout(self.pace.stall, incoming.frame()).await else {
                return Err(GatewayError::BodyTimeout(self.pace.stall));
            };
            self.waited += asked.elapsed();
            match frame {
                None => self.rest = None,
                Some(Err(err)) => {
                    return Err(client_fault(client_body_error(&err).as_ref())
                        .unwrap_or_else(|| GatewayError::BadBody(err.to_string())));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.count(data.len()).map_err(CountError::into_gateway)?;
                        self.prefix.extend_from_slice(&data);
                    }
                    // Request trailers are never forwarded (see `poll_next`).
                    Err(_trailers) => self.rest = None,
                },
            }
        }
        Ok(&self.prefix)
    }

    /// Takes the client's stream that no stage read and nothing will forward, so the
    /// connection can drain it after a local answer or an upstream's early refusal (see
    /// `gateway::linger`, [`UnreadBody`]).
    pub fn take_unread(&mut self) -> Option<hyper::body::Incoming> {
        self.rest.take()
    }

    /// The bytes stages have read so far (what [`Self::prefix`] last returned).
    pub fn buffered(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether the whole body has been read into the prefix.
    pub fn is_fully_buffered(&self) -> bool {
        self.rest.is_none()
    }

    fn count(&mut self, len: usize) -> Result<(), CountError> {
        self.seen = self.seen.saturating_add(len as u64);
        if self.seen > self.limit {
            return Err(CountError::TooLarge(BodyLimitExceeded(self.limit)));
        }
        if self.pace.min_rate > 0 && behind_pace(self.seen, self.waited, self.pace) {
            return Err(CountError::TooSlow(BodyTooSlow(self.pace.min_rate)));
        }
        Ok(())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = this.poll_next(cx);
        if let (Poll::Ready(Some(Err(err))), Some(fault)) = (&polled, &this.fault) {
            fault.note(err);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if let Some(replaced) = &self.replaced {
            return replaced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_end_stream();
        }
        self.prefix.is_empty() && self.rest.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint()
    }
}

impl RequestBody {
    /// The next frame: what [`Body::poll_frame`] returns before a failure is noted.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self;
        if let Some(replaced) = this.replaced.as_mut() {
            let replaced = replaced.get_mut().unwrap_or_else(PoisonError::into_inner);
            return Pin::new(replaced).poll_frame(cx);
        }
        if !this.prefix.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(this.prefix.split().freeze()))));
        }
        let Some(incoming) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = if this.pace.min_rate > 0 {
            let arrival = this.arrival.get_or_insert_with(Default::default);
            if this.waiting_since.is_none() {
                arrival.clear();
            }
            let waker = arrival.watch(cx.waker());
            Pin::new(incoming).poll_frame(&mut Context::from_waker(&waker))
        } else {
            Pin::new(incoming).poll_frame(cx)
        };
        if polled.is_pending() {
            // The clock is read only when the client keeps palisade waiting.
            this.waiting_since.get_or_insert_with(Instant::now);
            let stall = this.pace.stall;
            let timer = this
                .stall_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
            ready!(timer.as_mut().poll(cx));
            this.rest = None;
            this.stall_timer = None;
            return Poll::Ready(Some(Err(Box::new(BodyStalled(stall)))));
        }
        this.stall_timer = None;
        if let Some(since) = this.waiting_since.take() {
            // Up to the frame's arrival: palisade may read it later (the upstream slow to
            // take what came before), and that delay is not the client's.
            let arrived = this.arrival.as_ref().and_then(|a| a.take());
            let arrived = arrived.unwrap_or_else(Instant::now);
            this.waited += arrived.saturating_duration_since(since);
        }
        let frame = match ready!(polled) {
            None => {
                this.rest = None;
                return Poll::Ready(None);
            }
            Some(Err(err)) => {
                this.rest = None;
                return Poll::Ready(Some(Err(client_body_error(&err))));
            }
            // Request trailers end the body here: no stage reads them (they could carry
            // the identity, forwarding or override headers palisade strips from heads), and
            // an HTTP/1.1 upstream never got them anyway.
            Some(Ok(frame)) if frame.is_trailers() => {
                this.rest = None;
                return Poll::Ready(None);
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(err) = this.count(data.len()) {
                this.rest = None;
                return Poll::Ready(Some(Err(err.into_boxed())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn hint(&self) -> SizeHint {
        if let Some(replaced) = &self.replaced {
            return replaced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .size_hint();
        }
        let buffered = self.prefix.len() as u64;
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(incoming) => {
                let inner = incoming.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + buffered);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + buffered);
                }
                hint
            }
        }
    }
}

/// The waker the client's body is polled with while its pace is checked: it notes when the
/// body woke its reader (the next frame arrived) and passes the wake-up on.
#[derive(Default)]
struct Arrival {
    at: Mutex<Option<Instant>>,
    reader: Mutex<Option<Waker>>,
}

impl Arrival {
    fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the last arrival: a new wait begins.
    fn clear(&self) {
        *Self::lock(&self.at) = None;
    }

    /// When the awaited frame arrived, if it has.
    fn take(&self) -> Option<Instant> {
        Self::lock(&self.at).take()
    }

    /// A waker for the body that wakes `reader` after noting the time.
    fn watch(self: &Arc<Self>, reader: &Waker) -> Waker {
        let mut slot = Self::lock(&self.reader);
        if !slot.as_ref().is_some_and(|w| w.will_wake(reader)) {
            *slot = Some(reader.clone());
        }
        drop(slot);
        Waker::from(Arc::clone(self))
    }
}

impl Wake for Arrival {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Self::lock(&self.at).get_or_insert_with(Instant::now);
        if let Some(reader) = Self::lock(&self.reader).as_ref() {
            reader.wake_by_ref();
        }
    }
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrival").finish_non_exhaustive()
    }
}

/// Whether `seen` bytes, after palisade `waited` for the body in all, fall behind `pace`: the
/// first `pace.stall` of waiting is free (a client may think before it sends), then every
/// second of it asks for `pace.min_rate` more bytes. Time palisade spent not reading (the
/// upstream slow to take what it had, a stage at work) is not the client's.
fn behind_pace(seen: u64, waited: Duration, pace: BodyPace) -> bool {
    let Some(paced) = waited.checked_sub(pace.stall) else {
        return false;
    };
    let owed = u128::from(pace.min_rate) * paced.as_millis() / 1_000;
    u128::from(seen) < owed
}

/// Finds why a forwarded request failed on the client's side, if it did: a body error of
/// ours somewhere in the error's source chain.
pub fn client_fault(error: &(dyn std::error::Error + 'static)) -> Option<GatewayError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = cause {
        if let Some(limit) = err.downcast_ref::<BodyLimitExceeded>() {
            return Some(GatewayError::BodyTooLarge { limit: limit.0 });
        }
        if let Some(stalled) = err.downcast_ref::<BodyStalled>() {
            return Some(GatewayError::BodyTimeout(stalled.0));
        }
        if let Some(slow) = err.downcast_ref::<BodyTooSlow>() {
            return Some(GatewayError::BodyTooSlow(slow.0));
        }
        if err.downcast_ref::<ClientGone>().is_some() {
            return Some(GatewayError::ClientClosed);
        }
        if let Some(bad) = err.downcast_ref::<ClientBodyError>() {
            return Some(GatewayError::BadBody(bad.0.clone()));
        }
        cause = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: BodyPace = BodyPace {
        stall: Duration::from_secs(10),
        min_rate: 500,
    };

    #[test]
    fn the_first_stall_is_free_then_every_second_owes_min_rate_bytes() {
        assert!(!behind_pace(0, Duration::from_secs(10), PACE));
        assert!(!behind_pace(500, Duration::from_secs(11), PACE));
        assert!(behind_pace(499, Duration::from_secs(11), PACE));
        assert!(behind_pace(4_999, Duration::from_secs(20), PACE));
        assert!(!behind_pace(5_000, Duration::from_millis(20_000), PACE));
        // The sum cannot overflow, however large the rate or long the wait.
        let fast = BodyPace {
            min_rate: u64::MAX,
            ..PACE
        };
        assert!(behind_pace(u64::MAX, Duration::from_secs(1 << 40), fast));
    }
}
