//! HTTP/1.1 exchanges palisade writes and reads itself, inside the request's own task, for
//! every request to an HTTP/1.1 upstream (`http://`, or `https://` over TLS) but WebSocket
//! handshakes.
//!
//! hyper's client drives each connection from a task of its own and hands the request and
//! the answer across channels: per request, a few task wake-ups, channel sends and large
//! future moves, which on this path cost more than the bytes. Here the request's head is
//! written with one `write` (its body after it, a piece at a time, with the answer watched
//! meanwhile: an upstream may answer before the body's end), the answer's head is read and
//! parsed (httparse) where it lies, its header values share the read buffer, and a body
//! that came with the head is handed on at once, the connection back in the pool before the
//! answer leaves for the client.
//!
//! Answers are framed as RFC 9112 §6.3 says: no body for a `HEAD` request or a 1xx, 204 or
//! 304 status; `Transfer-Encoding` (a single `chunked` only) wins over `Content-Length`
//! (which is then removed, and the connection not reused); differing `Content-Length`
//! values are refused; otherwise the body runs until the upstream closes. Interim 1xx
//! answers are skipped. A connection is reused only when its answer was framed by its own
//! bytes, complete, and followed by nothing; after a `HEAD` answer, or a bodiless one that
//! announces a body (which a careless upstream may still send, into the next request's
//! answer), only once [`BODILESS_GRACE`] has passed with nothing arriving.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::UpstreamPool;
use crate::body::{BoxError, RequestBody, UnreadBody};
use crate::forwarding::ForwardingFields;

/// Largest answer head read (status line and fields, interim answers included).
const MAX_HEAD: usize = 64 * 1024;

/// How long a connection waits, after an answer that has no body by rule (to `HEAD`, 204,
/// 304), before another request may use it, and is then used only if nothing arrived: a
/// careless upstream may still send the body its answer announced, which would otherwise
/// be read as the next request's answer.
pub(super) const BODILESS_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest palisade goes on sending a request body whose answer, a success, has already
/// ended (the client's pace is bounded by the body's own timeouts; this bounds an upstream
/// that stops reading).
const EARLY_ANSWER_UPLOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether, and when, a connection may carry another request after its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Closed after this answer.
    No,
    /// Back in the pool as soon as the answer ends.
    Now,
    /// Back in the pool, usable after [`BODILESS_GRACE`].
    AfterGrace,
}

/// Most fields in one answer head.
const MAX_FIELDS: usize = 128;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Longest chunk-size line (size and extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Most bytes of trailer fields after a chunked body (read and dropped: only an HTTP/2
/// upstream's gRPC trailers are passed on).
const MAX_TRAILERS: usize = 16 * 1024;

/// What went wrong in an exchange.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Writing the request failed.
    #[error("writing the request: {0}")]
    Write(#[source] io::Error),
    /// Reading the answer failed.
    #[error("reading the answer: {0}")]
    Read(#[source] io::Error),
    /// Reading the answer failed after some of the request's body was sent (an upstream
    /// that closes with part of a body unread resets the connection).
    #[error("reading the answer, after part of the request body: {0}")]
    ReadAfterBody(#[source] io::Error),
    /// The upstream closed the connection before any byte of an answer.
    #[error("the upstream closed the connection before answering")]
    ClosedBeforeAnswer,
    /// The answer does not begin as HTTP/1.x does.
    #[error("the answer is not HTTP/1.x")]
    NotHttp,
    /// The answer's head is not valid HTTP/1.x, or too large.
    #[error("invalid answer head: {0}")]
    Head(String),
    /// The answer's body ended before its framing said it would.
    #[error("the upstream closed the connection before the end of the answer's body")]
    Truncated,
    /// The chunked framing of the answer's body is invalid.
    #[error("invalid chunked body from the upstream: {0}")]
    Chunked(&'static str),
    /// No answer's head within `response_timeout` of the request's end, or the upstream
    /// took none of the body for that long.
    #[error("no answer from the upstream within response_timeout")]
    TimedOut,
    /// The upstream sent nothing more of the answer's body for `response_timeout` while
    /// palisade waited for it.
    #[error("the upstream sent none of the answer's body for response_timeout")]
    BodyTimedOut,
    /// The request's body failed while it was forwarded (the client's fault, or a stage's).
    #[error("the request body failed: {0}")]
    RequestBody(#[source] BoxError),
}

impl ExchangeError {
    /// Whether the upstream reset the connection (what a TLS server does with plain text).
    pub fn is_reset(&self) -> bool {
        let (Self::Write(err) | Self::Read(err)) = self else {
            return false;
        };
        err.kind() == io::ErrorKind::ConnectionReset
    }
}

/// An exchange that failed, and whether the request can be sent again elsewhere.
#[derive(Debug)]
pub struct Failed {
    pub error: ExchangeError,
    /// Nothing of an answer arrived: the upstream may have closed the connection while it
    /// sat idle, just as the request went out.
    pub unanswered: bool,
    /// The request was not completely written, so the upstream cannot have acted on it.
    pub unsent: bool,
    /// The request's body, when none of it was read yet (it can then be sent again).
    pub body: Option<RequestBody>,
}

impl Failed {
    /// Whether the request may be sent again on another connection: its body untouched, and
    /// never acted on, or unanswered and idempotent (as nginx's `proxy_next_upstream` does).
    pub fn retryable(&self, method: &Method) -> bool {
        self.body.is_some() && (self.unsent || (self.unanswered && method.is_idempotent()))
    }
}

/// The socket under an upstream connection: plain TCP, or TLS for an `https://` upstream.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// An HTTP/1.1 connection to the upstream, with its read buffer.
#[derive(Debug)]
pub struct NativeConn {
    stream: Stream,
    buf: BytesMut,
    out: Vec<u8>,
    /// What the connection keeps from one exchange to the next (boxed: the connection is
    /// moved in and out of the pool and into each answer's body).
    kept: Box<Kept>,
}

/// What a connection keeps from one exchange to the next.
#[derive(Debug, Default)]
struct Kept {
    /// The response timer, made at the connection's first exchange and set again at each
    /// later one. Moving a still-waiting timer's deadline later costs the runtime one
    /// atomic update, where a new timer per exchange went into the runtime's timer wheel
    /// and out again (about 470 of a request's 33 000 instructions saved); one that ended
    /// while the connection sat idle goes back into the wheel. Left waiting between
    /// exchanges, it may end once and wake the last exchange's task for nothing.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The field names of the last answers.
    names: FieldNames,
}

impl NativeConn {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(1024),
            kept: Box::default(),
        }
    }

    /// Whether an idle connection can take a request: open, with nothing unasked for on it.
    /// Over plain TCP this costs no system call unless the runtime saw the socket become
    /// readable.
    pub fn reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match &mut self.stream {
            Stream::Plain(tcp) => {
                let mut probe = [0u8; 1];
                let read = tcp.try_read(&mut probe);
                matches!(read, Err(err) if err.kind() == io::ErrorKind::WouldBlock)
            }
            // Nothing to read (no record, no close_notify) is the only good answer.
            Stream::Tls(tls) => {
                let mut probe = [0u8; 1];
                let mut probe = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                Pin::new(&mut **tls)
                    .poll_read(&mut cx, &mut probe)
                    .is_pending()
            }
        }
    }
}

/// A connection's response timer (its `timer`), set to end `limit` after `from`.
fn response_timer(
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    from: tokio::time::Instant,
    limit: std::time::Duration,
) -> Pin<&mut tokio::time::Sleep> {
    let deadline = from + limit;
    match timer {
        Some(timer) => timer.as_mut().reset(deadline),
        None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
    }
    timer
        .as_mut()
        .map(Pin::as_mut)
        .expect("the timer was just set")
}

/// Sends a request on `conn` and reads the answer's head, forwarding the request's body
/// meanwhile; the answer's body is read (and the rest of the request's body sent) as the
/// returned response's body is polled, and gives the connection back to `pool` at its end
/// when it can be reused.
///
/// `timeout`, the response timeout and the moment the connection was taken for the request
/// (just before its head is written), bounds the wait for the answer's head from then, and
/// while the body is sent, how long the upstream may take none of it; time spent waiting
/// for the client's body does not count.
pub async fn exchange(
    mut conn: NativeConn,
    head: &http::request::Parts,
    fields: &ForwardingFields,
    body: RequestBody,
    timeout: Option<(tokio::time::Instant, std::time::Duration)>,
    pool: &Arc<UpstreamPool>,
) -> Result<Response<NativeBody>, Failed> {
    let response_timeout = timeout.map(|(_, limit)| limit);
    // The body's own size, else the length a stage wrote for a body it put in place of the
    // client's (upload inspection's spooled copy), else chunked.
    let declared = || {
        let value = head.headers.get(CONTENT_LENGTH)?.to_str().ok()?;
        value.parse::<u64>().ok()
    };
    let outgoing = if body.is_end_stream() {
        Outgoing::None
    } else if let Some(length) = body.size_hint().exact().or_else(declared) {
        Outgoing::Length(length)
    } else {
        Outgoing::Chunked
    };
    write_head(&mut conn.out, head, fields, outgoing);
    let written = async {
        conn.stream.write_all(&conn.out).await?;
        conn.stream.flush().await
    };
    if let Err(err) = written.await {
        return Err(Failed {
            error: ExchangeError::Write(err),
            unanswered: true,
            unsent: true,
            body: Some(body),
        });
    }
    // A request without a body can be sent again as it is; one with a body cannot once any
    // of it was read.
    let (mut spare, mut sender) = match outgoing {
        Outgoing::None => (Some(body), None),
        _ => (None, Some(Box::new(Sender::new(body, outgoing)))),
    };
    let mut answered = false;
    let mut broken = false;
    let method = &head.method;
    let mut deadline =
        timeout.map(|(from, limit)| response_timer(&mut conn.kept.timer, from, limit));
    let outcome = std::future::poll_fn(|cx| {
        let mut restart = false;
        if let Some(sending) = sender.as_mut() {
            let polled = sending.poll_send(cx, &mut conn.stream);
            // The clock runs only while the upstream is what the exchange waits for.
            restart = sending.wrote || sending.waiting_for_client;
            match polled {
                Poll::Ready(Ok(())) => sender = None,
                Poll::Ready(Err(SendError::Body(err))) => {
                    return Poll::Ready(Err((ExchangeError::RequestBody(err), answered)));
                }
                // The upstream stopped reading: it may have answered already; read on.
                Poll::Ready(Err(SendError::Write(err))) => {
                    stopped_reading(&err);
                    sender = None;
                    broken = true;
                }
                Poll::Pending => {}
            }
        }
        if restart && let (Some(sleep), Some(limit)) = (deadline.as_mut(), response_timeout) {
            sleep.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        loop {
            if !conn.buf.is_empty() {
                answered = true;
                match parse_head(&mut conn.buf, &mut conn.kept.names, method) {
                    Ok(Some(Parsed::Interim)) => continue,
                    Ok(Some(Parsed::Final(response, framing, reuse))) => {
                        return Poll::Ready(Ok((response, framing, reuse)));
                    }
                    Ok(None) => {}
                    Err(error) => return Poll::Ready(Err((error, true))),
                }
                if conn.buf.len() >= MAX_HEAD {
                    let error = ExchangeError::Head(format!("larger than {} KiB", MAX_HEAD / 1024));
                    return Poll::Ready(Err((error, true)));
                }
            }
            let Poll::Ready(filled) = poll_fill(&mut conn.stream, &mut conn.buf, cx) else {
                // Still waiting: the timer is asked only now, so an answer that is already
                // there costs no look at it.
                if let Some(sleep) = deadline.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err((ExchangeError::TimedOut, answered)));
                }
                return Poll::Pending;
            };
            match filled {
                Ok(0) if answered => {
                    let error = ExchangeError::Head("the connection closed in its middle".into());
                    return Poll::Ready(Err((error, true)));
                }
                Ok(0) => return Poll::Ready(Err((ExchangeError::ClosedBeforeAnswer, false))),
                Ok(_) => {}
                Err(err) if outgoing != Outgoing::None => {
                    return Poll::Ready(Err((ExchangeError::ReadAfterBody(err), answered)));
                }
                Err(err) => return Poll::Ready(Err((ExchangeError::Read(err), answered))),
            }
        }
    })
    .await;
    match outcome {
        Ok((mut response, framing, mut reuse)) => {
            // An error answer before the whole body refuses the rest of it (RFC 9112 §9.5):
            // it is not sent, and the connection, left in the middle of the request, is not
            // reused. The client's rest goes with the answer, for its connection to drain.
            if response.status().as_u16() >= 400
                && let Some(refused) = sender.take()
            {
                reuse = Reuse::No;
                if let Some(unread) = refused.into_unread() {
                    response.extensions_mut().insert(UnreadBody::new(unread));
                }
            }
            if broken {
                reuse = Reuse::No;
            }
            let body = NativeBody::new(
                conn,
                framing,
                reuse,
                sender,
                response_timeout,
                Arc::clone(pool),
            );
            Ok(response.map(|()| body))
        }
        Err((error, answered)) => Err(Failed {
            error,
            unanswered: !answered,
            unsent: false,
            body: spare.take(),
        }),
    }
}

/// Puts a connection whose exchange is over back in the pool, as its answer allows.
fn give_back(conn: NativeConn, reuse: Reuse, pool: &UpstreamPool) {
    match reuse {
        Reuse::No => {}
        Reuse::Now => pool.check_in_native(conn, None),
        Reuse::AfterGrace => pool.check_in_native(conn, Some(BODILESS_GRACE)),
    }
}

/// Sends the rest of a request body whose answer (a success, which did not refuse it) has
/// already ended, within [`EARLY_ANSWER_UPLOAD_LIMIT`]; the connection is reused after if
/// nothing came on it meanwhile.
async fn finish_upload(
    mut conn: NativeConn,
    mut sender: Box<Sender>,
    reuse: Reuse,
    pool: Arc<UpstreamPool>,
) {
    let upload = std::future::poll_fn(|cx| sender.poll_send(cx, &mut conn.stream));
    match tokio::time::timeout(EARLY_ANSWER_UPLOAD_LIMIT, upload).await {
        Ok(Ok(())) => {
            if conn.reusable() {
                give_back(conn, reuse, &pool);
            }
        }
        Ok(Err(SendError::Write(err))) => stopped_reading(&err),
        Ok(Err(SendError::Body(err))) => tracing::debug!(
            error = %err,
            "the request body failed after the upstream's answer had ended"
        ),
        Err(_) => tracing::debug!(
            limit = ?EARLY_ANSWER_UPLOAD_LIMIT,
            "gave up sending a request body whose answer had ended"
        ),
    }
}

/// Notes an upstream that stopped taking the request's body (it answered early, or closed).
fn stopped_reading(err: &io::Error) {
    tracing::debug!(
        error = %err,
        "the upstream stopped reading the request body; its answer is still read"
    );
}

/// Reads more from `stream` into `buf`; `Ok(0)` at its end.
fn poll_fill(
    stream: &mut Stream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    // Through `poll_read`, which notes a read that did not fill the buffer as the socket
    // drained: the idle connection's probe before its next use (`NativeConn::reusable`)
    // then costs no system call (with `try_read` it cost a `recvfrom` per request).
    match stream {
        Stream::Plain(tcp) => tokio_util::io::poll_read_buf(Pin::new(tcp), cx, buf),
        Stream::Tls(tls) => tokio_util::io::poll_read_buf(Pin::new(&mut **tls), cx, buf),
    }
}

mod answer;
mod body;
mod send;
#[cfg(test)]
mod stall_tests;
#[cfg(test)]
mod tests;

pub(super) use answer::content_length;
use answer::{FieldNames, Framing, Parsed, parse_head};
pub use body::NativeBody;
use send::{Outgoing, SendError, Sender, write_head};
