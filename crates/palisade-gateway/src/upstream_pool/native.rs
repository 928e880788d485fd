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
use crate::body::{BoxError, RequestBody};

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
    /// The request's body failed while it was forwarded (the client's fault, or a stage's).
    #[error("the request body failed: {0}")]
    RequestBody(#[source] BoxError),
}

impl ExchangeError {
    /// Whether the upstream reset the connection (what a TLS server does with plain text).
    pub fn is_reset(&self) -> bool {
        matches!(self, Self::Write(err) | Self::Read(err) if err.kind() == io::ErrorKind::ConnectionReset)
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
}

impl NativeConn {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(1024),
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
                matches!(tcp.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
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

/// Sends a request on `conn` and reads the answer's head, forwarding the request's body
/// meanwhile; the answer's body is read (and the rest of the request's body sent) as the
/// returned response's body is polled, and gives the connection back to `pool` at its end
/// when it can be reused.
///
/// `response_timeout` bounds the wait for the answer's head from the request's last byte,
/// and while the body is sent, how long the upstream may take none of it; time spent
/// waiting for the client's body does not count.
pub async fn exchange(
    mut conn: NativeConn,
    head: &http::request::Parts,
    body: RequestBody,
    response_timeout: Option<std::time::Duration>,
    pool: &Arc<UpstreamPool>,
) -> Result<Response<NativeBody>, Failed> {
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
    write_head(&mut conn.out, head, outgoing);
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
    let mut deadline = std::pin::pin!(response_timeout.map(tokio::time::sleep));
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
        if let (Some(mut sleep), Some(limit)) = (deadline.as_mut().as_pin_mut(), response_timeout) {
            if restart {
                sleep.as_mut().reset(tokio::time::Instant::now() + limit);
            }
            if sleep.poll(cx).is_ready() {
                return Poll::Ready(Err((ExchangeError::TimedOut, answered)));
            }
        }
        loop {
            if !conn.buf.is_empty() {
                answered = true;
                match parse_head(&mut conn.buf, method) {
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
            match ready!(poll_fill(&mut conn.stream, &mut conn.buf, cx)) {
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
        Ok((response, framing, mut reuse)) => {
            // An error answer before the whole body refuses the rest of it (RFC 9112 §9.5):
            // it is not sent, and the connection, left in the middle of the request, is not
            // reused.
            if sender.is_some() && response.status().as_u16() >= 400 {
                sender = None;
                reuse = Reuse::No;
            }
            if broken {
                reuse = Reuse::No;
            }
            let body = NativeBody::new(conn, framing, reuse, sender, Arc::clone(pool));
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
    tracing::debug!(error = %err, "the upstream stopped reading the request body; its answer is still read");
}

/// Reads more from `stream` into `buf`; `Ok(0)` at its end.
fn poll_fill(
    stream: &mut Stream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    match stream {
        Stream::Plain(tcp) => loop {
            ready!(tcp.poll_read_ready(cx))?;
            buf.reserve(READ_CHUNK);
            match tcp.try_read_buf(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        },
        Stream::Tls(tls) => {
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut **tls).poll_read(cx, &mut read))?;
            buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        }
    }
}

/// How the request's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// No body.
    None,
    /// `Content-Length`, from the body's exact size.
    Length(u64),
    /// `Transfer-Encoding: chunked`, for a body of unknown size.
    Chunked,
}

/// Why sending the request's body stopped.
enum SendError {
    /// The body itself failed.
    Body(BoxError),
    /// Writing to the upstream failed.
    Write(io::Error),
}

/// The request's body on its way to the upstream, one frame at a time (nothing more is
/// held, whatever its size).
struct Sender {
    body: RequestBody,
    framing: Outgoing,
    /// What is still to be written of the current frame: chunk size line, data, CRLF.
    pending: std::collections::VecDeque<Bytes>,
    sent: u64,
    finished: bool,
    /// Whether the last [`Self::poll_send`] wrote anything.
    // TODO: bytes the kernel took count as taken: an upstream reading slower than
    // response_timeout allows can still be handed up to its socket buffers' size (MBs) at
    // once and time out while it reads them (a send-queue check needs an ioctl).
    wrote: bool,
    /// Whether the last [`Self::poll_send`] waits for the client's next piece of body.
    waiting_for_client: bool,
}

impl Sender {
    fn new(body: RequestBody, framing: Outgoing) -> Self {
        Self {
            body,
            framing,
            pending: std::collections::VecDeque::with_capacity(3),
            sent: 0,
            finished: false,
            wrote: false,
            waiting_for_client: false,
        }
    }

    /// Writes what it can; ready once the whole body (and its last chunk) is written.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
    ) -> Poll<Result<(), SendError>> {
        self.wrote = false;
        self.waiting_for_client = false;
        loop {
            while !self.pending.is_empty() {
                let mut slices = [io::IoSlice::new(&[]); 3];
                for (slice, part) in slices.iter_mut().zip(&self.pending) {
                    *slice = io::IoSlice::new(part);
                }
                let slices = &slices[..self.pending.len().min(3)];
                let written = match ready!(Pin::new(&mut *stream).poll_write_vectored(cx, slices)) {
                    Ok(0) => {
                        return Poll::Ready(Err(SendError::Write(io::ErrorKind::WriteZero.into())));
                    }
                    Ok(n) => n,
                    Err(err) => return Poll::Ready(Err(SendError::Write(err))),
                };
                self.advance(written);
                self.wrote = true;
            }
            // TLS may hold written bytes back until flushed; they must not wait there while
            // the body waits for its client.
            if let Err(err) = ready!(Pin::new(&mut *stream).poll_flush(cx)) {
                return Poll::Ready(Err(SendError::Write(err)));
            }
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) else {
                self.waiting_for_client = true;
                return Poll::Pending;
            };
            match frame {
                Some(Ok(frame)) => {
                    // Trailers are never forwarded.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    self.sent += data.len() as u64;
                    match self.framing {
                        Outgoing::Length(length) if self.sent > length => {
                            let why = "the request body is longer than its Content-Length";
                            return Poll::Ready(Err(SendError::Body(why.into())));
                        }
                        // Its last byte: the request is complete on the connection, whenever
                        // the client's body reports its end (hyper's server may only do so
                        // when the client next sends something).
                        Outgoing::Length(length) if self.sent == length => {
                            self.pending.push_back(data);
                            self.finished = true;
                        }
                        Outgoing::Chunked => {
                            self.pending
                                .push_back(Bytes::from(format!("{:x}\r\n", data.len())));
                            self.pending.push_back(data);
                            self.pending.push_back(Bytes::from_static(b"\r\n"));
                        }
                        _ => self.pending.push_back(data),
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(SendError::Body(err))),
                None => {
                    match self.framing {
                        Outgoing::Length(length) if self.sent != length => {
                            let why = "the request body ended before its Content-Length";
                            return Poll::Ready(Err(SendError::Body(why.into())));
                        }
                        Outgoing::Chunked => {
                            self.pending.push_back(Bytes::from_static(b"0\r\n\r\n"))
                        }
                        _ => {}
                    }
                    self.finished = true;
                }
            }
        }
    }

    /// Drops `written` bytes from the front of what is pending.
    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.pending.pop_front();
        }
    }
}

/// The request head as it goes on the wire: origin-form target, HTTP/1.1, the fields as
/// they are (names lower case) but for the body's framing, which palisade writes:
/// `Content-Length` or chunked for a body, `Content-Length: 0` without one where a body is
/// expected or was announced.
fn write_head(out: &mut Vec<u8>, head: &http::request::Parts, outgoing: Outgoing) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut length_zero = matches!(head.method, Method::POST | Method::PUT | Method::PATCH);
    for (name, value) in &head.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            length_zero = true;
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match outgoing {
        Outgoing::None if length_zero => out.extend_from_slice(b"content-length: 0\r\n"),
        Outgoing::None => {}
        Outgoing::Length(length) => {
            out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
        }
        Outgoing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

enum Parsed {
    /// A 1xx answer other than 101, skipped.
    Interim,
    /// The answer's head, how its body is framed, and whether the connection may be reused.
    Final(Response<()>, Framing, Reuse),
}

/// Parses an answer head at the start of `buf`, taking it off `buf` when complete.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Parsed>, ExchangeError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::Head(format!(
                "more than {MAX_FIELDS} fields"
            )));
        }
        Err(_) if !starts_as_http(buf) => return Err(ExchangeError::NotHttp),
        Err(err) => return Err(ExchangeError::Head(err.to_string())),
    };
    let code = parsed.code.unwrap_or(0);
    if (100..200).contains(&code) && code != 101 {
        buf.advance(length);
        return Ok(Some(Parsed::Interim));
    }
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::Head(format!("invalid status code {code}")))?;
    // The upstream's own reason phrase, where it is not the usual one.
    let reason = parsed.reason.unwrap_or("");
    let reason = (status.canonical_reason() != Some(reason))
        .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok())
        .flatten();
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each field lies in the head, so the values can share the buffer.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_FIELDS];
    let count = parsed.headers.len();
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        let name = field.name.as_ptr() as usize - base;
        let value = field.value.as_ptr() as usize - base;
        *span = (
            name as u32,
            (name + field.name.len()) as u32,
            value as u32,
            (value + field.value.len()) as u32,
        );
    }
    let head = buf.split_to(length).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(name_start, name_end, value_start, value_end) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
            .map_err(|_| ExchangeError::Head("invalid field name".into()))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .map_err(|_| ExchangeError::Head("invalid field value".into()))?;
        headers.append(name, value);
    }
    let (framing, reuse) = framing(&mut headers, version, status, method)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    if let Some(reason) = reason {
        response.extensions_mut().insert(reason);
    }
    *response.headers_mut() = headers;
    Ok(Some(Parsed::Final(response, framing, reuse)))
}

/// Whether `bytes` begin as an HTTP/1.x status line does (as far as they go).
fn starts_as_http(bytes: &[u8]) -> bool {
    let prefix = b"HTTP/1.";
    let n = bytes.len().min(prefix.len());
    bytes[..n] == prefix[..n]
}

/// The body's framing (RFC 9112 §6.3) and whether the connection may carry another request.
fn framing(
    headers: &mut HeaderMap,
    version: Version,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, Reuse), ExchangeError> {
    let mut keep_alive = if version == Version::HTTP_11 {
        !has_token(headers, CONNECTION, "close")
    } else {
        has_token(headers, CONNECTION, "keep-alive")
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        keep_alive = false;
    }
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    if chunked {
        // Only chunked is decoded here: passing a body still under another transfer coding
        // on would hand the client bytes nothing tells it how to read.
        if !only_chunked(headers) {
            return Err(ExchangeError::Head(
                "a transfer coding other than a single chunked".into(),
            ));
        }
        // RFC 9112 §6.1: the length is the decoded one; a Content-Length beside it, or
        // Transfer-Encoding in an HTTP/1.0 answer, means the framing cannot be trusted for
        // another request on the connection.
        if headers.remove(CONTENT_LENGTH).is_some() || version == Version::HTTP_10 {
            keep_alive = false;
        }
    }
    let length = if chunked {
        None
    } else {
        content_length(headers)?
    };
    let bodiless = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let reuse = if keep_alive { Reuse::Now } else { Reuse::No };
    if bodiless {
        // Should the upstream send a body anyway (the one it announced, or a careless
        // one), it would be read as the answer to the connection's next request, someone
        // else's: the connection waits a little first, and is dropped if anything came.
        let announced = chunked || length.is_some_and(|n| n > 0);
        let careful = reuse == Reuse::Now && (announced || method == Method::HEAD);
        return Ok((
            Framing::Empty,
            if careful { Reuse::AfterGrace } else { reuse },
        ));
    }
    match (chunked, length) {
        (true, _) => Ok((Framing::Chunked, reuse)),
        (false, Some(0)) => Ok((Framing::Empty, reuse)),
        (false, Some(n)) => Ok((Framing::Length(n), reuse)),
        (false, None) => Ok((Framing::UntilClose, Reuse::No)),
    }
}

/// Whether the transfer codings, across every `Transfer-Encoding` field, are exactly one
/// `chunked` (empty list elements aside).
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    let first = codings.next();
    first.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked")) && codings.next().is_none()
}

/// The answer's `Content-Length`, when it has one: every value (fields and list items)
/// must be the same decimal number, which is then left as the only value, as the client
/// must read it (hyper's server writes no other form: `3, 3` would end the client's
/// connection with nothing sent).
pub(super) fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, ExchangeError> {
    let mut length = None;
    let mut items = 0;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let valid = !item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit);
            let parsed = std::str::from_utf8(item)
                .ok()
                .and_then(|text| text.parse::<u64>().ok());
            items += 1;
            match (valid, parsed, length) {
                (true, Some(n), None) => length = Some(n),
                (true, Some(n), Some(seen)) if n == seen => {}
                _ => {
                    return Err(ExchangeError::Head(
                        "invalid or conflicting Content-Length".into(),
                    ));
                }
            }
        }
    }
    if let (Some(n), true) = (length, items > 1) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

/// Whether a comma-separated field holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Where a chunked body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// In a chunk's data, this much left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section (bytes read so far).
    Trailers(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// An answer's body read from its connection as it is polled.
pub struct NativeBody {
    conn: Option<NativeConn>,
    state: State,
    /// Data that came with the head, handed on first.
    ready: Option<Bytes>,
    /// A failure, reported at the next poll (see [`Self::fail`]).
    failed: Option<ExchangeError>,
    /// The rest of the request's body, when the answer came before all of it was sent.
    sender: Option<Box<Sender>>,
    reuse: Reuse,
    pool: Arc<UpstreamPool>,
}

impl std::fmt::Debug for NativeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeBody")
            .field("state", &self.state)
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

impl NativeBody {
    fn new(
        conn: NativeConn,
        framing: Framing,
        reuse: Reuse,
        sender: Option<Box<Sender>>,
        pool: Arc<UpstreamPool>,
    ) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            ready: None,
            failed: None,
            sender,
            reuse,
            pool,
        };
        // The common case: the whole body came with the head.
        if let (State::Length(n), Some(conn)) = (body.state, body.conn.as_mut()) {
            if conn.buf.len() as u64 >= n {
                body.ready = Some(conn.buf.split_to(n as usize).freeze());
                body.state = State::Done;
            }
        }
        if body.state == State::Done {
            body.finish();
        }
        body
    }

    /// The body has ended: its connection goes back to the pool when nothing else came on
    /// it and its answer allows it.
    fn finish(&mut self) {
        self.state = State::Done;
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !conn.buf.is_empty() {
            return;
        }
        // The answer came, and ended, before the whole request body was sent, and did not
        // refuse it (that sender is dropped at the head): the upload goes on, apart, as the
        // upstream may act on all of it.
        if let Some(sender) = self.sender.take() {
            tokio::spawn(finish_upload(
                conn,
                sender,
                self.reuse,
                Arc::clone(&self.pool),
            ));
            return;
        }
        give_back(conn, self.reuse, &self.pool);
    }

    /// Ends the body with `error`, reported at the next poll: hyper's server writes what it
    /// holds of the answer only when the body waits, so an error reported in the same poll
    /// as the data before it (both already read) would keep the head and that data from the
    /// client, and the `request.failed` event would name a status never sent.
    fn fail(
        &mut self,
        cx: &mut Context<'_>,
        error: ExchangeError,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.state = State::Done;
        self.conn = None;
        self.sender = None;
        self.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads more from the connection into its buffer; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        poll_fill(&mut conn.stream, &mut conn.buf, cx)
    }

    /// Sends more of the request's body, when some is left; a body that fails ends the
    /// answer too (the client's fault), an upstream that stops reading only ends the
    /// sending (its answer may still come whole).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        let (Some(sender), Some(conn)) = (self.sender.as_mut(), self.conn.as_mut()) else {
            return Ok(());
        };
        match sender.poll_send(cx, &mut conn.stream) {
            Poll::Pending => Ok(()),
            Poll::Ready(Ok(())) => {
                self.sender = None;
                Ok(())
            }
            Poll::Ready(Err(SendError::Body(err))) => Err(ExchangeError::RequestBody(err)),
            Poll::Ready(Err(SendError::Write(err))) => {
                stopped_reading(&err);
                self.sender = None;
                self.reuse = Reuse::No;
                Ok(())
            }
        }
    }

    /// Takes up to `left` bytes of data from the buffer.
    fn take(&mut self, left: u64) -> Bytes {
        let buf = &mut self
            .conn
            .as_mut()
            .expect("a body being read has its connection")
            .buf;
        let n = (buf.len() as u64).min(left) as usize;
        buf.split_to(n).freeze()
    }

    fn buffered(&self) -> usize {
        self.conn.as_ref().map_or(0, |conn| conn.buf.len())
    }

    /// The next line of a chunked body (without its CRLF), taken off the buffer, or `None`
    /// while it has not all arrived. A line ended by a bare LF is refused: a reader that
    /// accepts it would frame the body differently from one that does not.
    fn line(&mut self, limit: usize) -> Result<Option<BytesMut>, ExchangeError> {
        let buf = &mut self
            .conn
            .as_mut()
            .expect("a body being read has its connection")
            .buf;
        let window = &buf[..buf.len().min(limit + 2)];
        let Some(end) = window.iter().position(|&byte| byte == b'\n') else {
            if buf.len() > limit {
                return Err(ExchangeError::Chunked("line too long"));
            }
            return Ok(None);
        };
        if end == 0 || buf[end - 1] != b'\r' {
            return Err(ExchangeError::Chunked("line ended by a bare LF"));
        }
        if end - 1 > limit {
            return Err(ExchangeError::Chunked("line too long"));
        }
        let line = buf.split_to(end - 1);
        buf.advance(2);
        Ok(Some(line))
    }
}

/// The size of a chunk-size line: hexadecimal digits, then optional whitespace and
/// extensions (RFC 9112 §7.1.1), which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let invalid = ExchangeError::Chunked("invalid chunk size");
    let digits = line
        .iter()
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(invalid);
    }
    let text = std::str::from_utf8(&line[..digits])
        .map_err(|_| ExchangeError::Chunked("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| invalid)
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = &mut *self;
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if let Some(data) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Err(error) = this.poll_send(cx) {
            return this.fail(cx, error);
        }
        loop {
            let need_more = match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if this.buffered() > 0 {
                        let data = this.take(left);
                        let left = left - data.len() as u64;
                        this.state = State::Length(left);
                        if left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    true
                }
                State::UntilClose => {
                    if this.buffered() > 0 {
                        return Poll::Ready(Some(Ok(Frame::data(this.take(u64::MAX)))));
                    }
                    true
                }
                State::Chunked(Chunk::Size) => match this.line(MAX_CHUNK_LINE) {
                    Err(error) => return this.fail(cx, error),
                    Ok(None) => true,
                    Ok(Some(line)) => {
                        match chunk_size(&line) {
                            Ok(0) => this.state = State::Chunked(Chunk::Trailers(0)),
                            Ok(size) => this.state = State::Chunked(Chunk::Data(size)),
                            Err(error) => return this.fail(cx, error),
                        }
                        false
                    }
                },
                State::Chunked(Chunk::Data(left)) => {
                    if this.buffered() > 0 {
                        let data = this.take(left);
                        let left = left - data.len() as u64;
                        this.state = State::Chunked(if left == 0 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left)
                        });
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    true
                }
                State::Chunked(Chunk::DataEnd) => {
                    if this.buffered() >= 2 {
                        let conn = this
                            .conn
                            .as_mut()
                            .expect("a body being read has its connection");
                        if &conn.buf[..2] != b"\r\n" {
                            return this
                                .fail(cx, ExchangeError::Chunked("no CRLF after chunk data"));
                        }
                        conn.buf.advance(2);
                        this.state = State::Chunked(Chunk::Size);
                        false
                    } else {
                        true
                    }
                }
                State::Chunked(Chunk::Trailers(seen)) => {
                    let limit = MAX_TRAILERS.saturating_sub(seen);
                    match this.line(limit) {
                        Err(error) => return this.fail(cx, error),
                        Ok(None) => true,
                        Ok(Some(line)) if line.is_empty() => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Some(line)) => {
                            this.state = State::Chunked(Chunk::Trailers(seen + line.len() + 2));
                            false
                        }
                    }
                }
            };
            if need_more {
                match ready!(this.poll_fill(cx)) {
                    Ok(0) if this.state == State::UntilClose => {
                        this.state = State::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Ok(0) => return this.fail(cx, ExchangeError::Truncated),
                    Ok(_) => {}
                    Err(err) => return this.fail(cx, ExchangeError::Read(err)),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done && self.ready.is_none() && self.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |data| data.len() as u64);
        match self.state {
            State::Done => SizeHint::with_exact(ready),
            State::Length(left) => SizeHint::with_exact(ready + left),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamProtocol;
    use crate::upstream_pool::PoolError;
    use crate::upstream_pool::tests::counted_upstream;
    use http::Request;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// What the scripted upstream does with one request: the bytes to send back, then
    /// whether to close the connection.
    type Script = fn(connection: usize, request: usize, head: &str) -> (Vec<u8>, bool);

    /// An upstream that answers each request head it reads as `script` says. Returns its
    /// address and the count of connections it accepted.
    async fn scripted(script: Script) -> (String, Arc<AtomicUsize>) {
        counted_upstream(move |mut socket, connection| async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 4096];
            let mut request = 0;
            loop {
                let Ok(n) = socket.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..end + 4]).into_owned();
                    seen.drain(..end + 4);
                    let (answer, close) = script(connection, request, &head);
                    request += 1;
                    if socket.write_all(&answer).await.is_err() || close {
                        return;
                    }
                }
            }
        })
        .await
    }

    fn pool(address: String) -> Arc<UpstreamPool> {
        Arc::new(UpstreamPool::new(
            address,
            None,
            UpstreamProtocol::Http1,
            Duration::from_secs(5),
            Duration::from_secs(60),
            4,
        ))
    }

    fn request(method: Method) -> Request<RequestBody> {
        Request::builder()
            .method(method)
            .uri("/path?q=1")
            .header(http::header::HOST, "upstream.test")
            .body(RequestBody::empty())
            .expect("request")
    }

    /// Sends a request and reads the whole answer: status, fields and body.
    async fn fetch(
        pool: &Arc<UpstreamPool>,
        method: Method,
    ) -> Result<(StatusCode, HeaderMap, Result<Bytes, String>), PoolError> {
        let response = pool.send(request(method)).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await;
        let body = body
            .map(|all| all.to_bytes())
            .map_err(|err| err.to_string());
        Ok((parts.status, parts.headers, body))
    }

    fn answer(text: &str) -> (Vec<u8>, bool) {
        (text.as_bytes().to_vec(), false)
    }

    #[tokio::test]
    async fn the_request_head_is_written_in_origin_form_with_its_fields() {
        let mut out = Vec::new();
        let (head, _) = request(Method::GET).into_parts();
        write_head(&mut out, &head, Outgoing::None);
        assert_eq!(
            out,
            b"GET /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\n\r\n"
        );
        let (head, _) = request(Method::POST).into_parts();
        write_head(&mut out, &head, Outgoing::None);
        assert_eq!(
            out,
            b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ncontent-length: 0\r\n\r\n"
        );
        let (mut head, _) = request(Method::POST).into_parts();
        // The client's framing fields give way to the body's.
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        write_head(&mut out, &head, Outgoing::Length(5));
        assert_eq!(
            out,
            b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ncontent-length: 5\r\n\r\n"
        );
        write_head(&mut out, &head, Outgoing::Chunked);
        assert_eq!(
            out,
            b"POST /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn chunked_answers_are_decoded_and_their_connection_reused() {
        let (address, accepted) = scripted(|_, _, _| {
            answer(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                 5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n",
            )
        })
        .await;
        let pool = pool(address);
        for _ in 0..3 {
            let (status, _, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body.expect("body"), "hello, world");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused() {
        let (address, accepted) = scripted(|_, _, _| {
            answer(
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n",
            )
        })
        .await;
        let pool = pool(address);
        for _ in 0..2 {
            let (_, headers, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(body.expect("body"), "hello");
            assert!(!headers.contains_key(CONTENT_LENGTH));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn conflicting_lengths_and_invalid_heads_are_refused() {
        // A refused answer takes its connection with it: each next one is a new connection's.
        let (address, _) = scripted(|connection, _, _| match connection {
            0 => answer("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"),
            1 => answer("HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc"),
            2 => answer("HTTP/1.1 200 OK\r\nbad field\r\n\r\n"),
            3 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
            _ => answer("HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n"),
        })
        .await;
        let pool = pool(address);
        for _ in 0..5 {
            let err = fetch(&pool, Method::GET).await.expect_err("refused");
            assert!(
                matches!(err, PoolError::Exchange(ExchangeError::Head(_))),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_named_so() {
        let (address, _) =
            scripted(|_, _, _| (b"\x15\x03\x03\x00\x02\x02\x50".to_vec(), true)).await;
        let err = fetch(&pool(address), Method::GET)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::NotHttp)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn agreeing_repeated_lengths_are_taken() {
        let (address, accepted) =
            scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc")).await;
        let pool = pool(address);
        for _ in 0..2 {
            let (_, headers, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(body.expect("body"), "abc");
            // One value, as the client must read it.
            assert_eq!(
                headers.get_all(CONTENT_LENGTH).iter().collect::<Vec<_>>(),
                ["3"]
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn agreeing_repeated_lengths_are_made_one_through_hyper_too() {
        let (address, _) =
            scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok")).await;
        // A request with a body goes through hyper's client.
        let mut body = RequestBody::empty();
        body.replace(http_body_util::Full::new(Bytes::from_static(b"x")));
        let request = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(http::header::HOST, "upstream.test")
            .header(CONTENT_LENGTH, "1")
            .body(body)
            .expect("request");
        let Ok(response) = pool(address).send(request).await else {
            panic!("answered");
        };
        let lengths: Vec<_> = response.headers().get_all(CONTENT_LENGTH).iter().collect();
        assert_eq!(lengths, ["2"]);
    }

    #[tokio::test]
    async fn invalid_chunks_and_cut_bodies_fail_the_body() {
        let (address, _) = scripted(|connection, _, _| match connection {
            0 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            1 => answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n"),
            2 => {
                answer("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n11111111111111111\r\n")
            }
            _ => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
                true,
            ),
        })
        .await;
        let pool = pool(address);
        let expected = [
            "invalid chunk size",
            "no CRLF",
            "invalid chunk size",
            "before the end",
        ];
        for want in expected {
            let (_, _, body) = fetch(&pool, Method::GET).await.expect("head answered");
            let err = body.expect_err("the body fails");
            assert!(err.contains(want), "{err}");
        }
    }

    #[tokio::test]
    async fn an_unframed_body_runs_until_close_and_its_connection_is_not_reused() {
        let (address, accepted) =
            scripted(|_, _, _| (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), true)).await;
        let pool = pool(address);
        for _ in 0..2 {
            let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(body.expect("body"), "until the end");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn interim_answers_are_skipped() {
        let (address, _) = scripted(|_, _, _| {
            answer(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
                 HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
            )
        })
        .await;
        let (status, _, body) = fetch(&pool(address), Method::GET).await.expect("answered");
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body.expect("body"), "ok");
    }

    #[tokio::test]
    async fn bodiless_answers_read_no_body_and_one_announcing_a_body_ends_its_connection() {
        let (address, accepted) = scripted(|_, _, head| {
            if head.starts_with("HEAD") {
                answer("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            } else {
                answer("HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n")
            }
        })
        .await;
        let pool = pool(address);
        // The HEAD's connection waits out its grace (the 1000 bytes could still come), so the
        // next request takes a new one; the 304's is reused at once.
        for method in [Method::HEAD, Method::GET, Method::GET] {
            let (_, headers, body) = fetch(&pool, method.clone()).await.expect("answered");
            assert_eq!(body.expect("body"), "");
            if method == Method::HEAD {
                assert_eq!(headers[CONTENT_LENGTH], "1000");
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_waiting_out_its_grace_is_left_for_later() {
        let (address, _) = scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\n\r\n")).await;
        let pool = pool(address.clone());
        let parked = TcpStream::connect(&address).await.expect("connect");
        pool.check_in_native(NativeConn::new(Stream::Plain(parked)), Some(BODILESS_GRACE));
        assert!(pool.check_out_native().is_none(), "in its grace period");
        assert_eq!(pool.native_idle.lock().expect("lock").len(), 1, "kept");
        // One whose grace is over is taken; the one still waiting stays.
        let ready = TcpStream::connect(&address).await.expect("connect");
        pool.check_in_native(NativeConn::new(Stream::Plain(ready)), Some(Duration::ZERO));
        assert!(pool.check_out_native().is_some(), "its grace is over");
        assert_eq!(pool.native_idle.lock().expect("lock").len(), 1, "kept");
    }

    #[tokio::test]
    async fn transfer_encoding_in_an_http_1_0_answer_ends_its_connection() {
        let (address, accepted) = scripted(|_, _, _| {
            answer(
                "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n\
                 2\r\nok\r\n0\r\n\r\n",
            )
        })
        .await;
        let pool = pool(address);
        for _ in 0..2 {
            let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(body.expect("body"), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_makes_the_upstream_hang_up_is_sent_twice_at_most() {
        static KILLS: AtomicUsize = AtomicUsize::new(0);
        let (address, _) = scripted(|_, _, head| {
            if head.starts_with("GET /kill") {
                KILLS.fetch_add(1, Ordering::SeqCst);
                (Vec::new(), true)
            } else {
                answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            }
        })
        .await;
        let pool = pool(address.clone());
        for _ in 0..3 {
            let stream = TcpStream::connect(&address).await.expect("connect");
            pool.check_in_native(NativeConn::new(Stream::Plain(stream)), None);
        }
        let request = Request::builder()
            .uri("/kill")
            .header(http::header::HOST, "upstream.test")
            .body(RequestBody::empty())
            .expect("request");
        let Err(err) = pool.send(request).await else {
            panic!("answered, though the upstream never answers /kill");
        };
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::ClosedBeforeAnswer)),
            "{err:?}"
        );
        assert_eq!(KILLS.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn bytes_after_an_answer_keep_its_connection_from_reuse() {
        let (address, accepted) =
            scripted(|_, _, _| answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")).await;
        let pool = pool(address);
        for _ in 0..2 {
            let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
            assert_eq!(body.expect("body"), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_head_past_the_limit_is_refused() {
        let (address, _) = scripted(|_, _, _| {
            let mut text = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..2000 {
                text.push_str(&format!("x-field-{i}: {}\r\n", "v".repeat(30)));
            }
            answer(&text)
        })
        .await;
        let err = fetch(&pool(address), Method::GET)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::Head(_))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_unanswered_request_on_a_reused_connection_is_retried_only_when_idempotent() {
        // Every connection answers its first request and closes at its second, unanswered,
        // as an upstream does when its keep-alive timeout meets a request.
        let (address, accepted) = scripted(|_, request, _| {
            if request == 0 {
                answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            } else {
                (Vec::new(), true)
            }
        })
        .await;
        let pool = pool(address);
        let (_, _, body) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(body.expect("body"), "ok");
        let (_, _, body) = fetch(&pool, Method::GET)
            .await
            .expect("retried on a new connection");
        assert_eq!(body.expect("body"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let err = fetch(&pool, Method::POST).await.expect_err("not retried");
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::ClosedBeforeAnswer)),
            "{err:?}"
        );
    }

    /// A body of unknown size, given in pieces.
    struct Pieces(std::collections::VecDeque<Bytes>);

    impl Body for Pieces {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
        }
    }

    fn with_body<B>(body: B) -> Request<RequestBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut request_body = RequestBody::empty();
        request_body.replace(body);
        Request::builder()
            .method(Method::POST)
            .uri("/upload")
            .header(http::header::HOST, "upstream.test")
            .body(request_body)
            .expect("request")
    }

    /// An upstream that reads each request whole (by `Content-Length` or chunked, decoded
    /// naively) and answers with what it read. Returns its address and connection count.
    async fn echo_upstream() -> (String, Arc<AtomicUsize>) {
        counted_upstream(|mut socket, _| async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                seen.drain(..end + 4);
                let body = if let Some(at) = head.find("content-length: ") {
                    let length: usize = head[at + 16..]
                        .split("\r\n")
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("length");
                    while seen.len() < length {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.drain(..length).collect::<Vec<u8>>()
                } else {
                    while !seen.windows(5).any(|w| w == b"0\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = seen
                        .windows(5)
                        .position(|w| w == b"0\r\n\r\n")
                        .expect("end");
                    let raw: Vec<u8> = seen.drain(..end + 5).collect();
                    // "size CRLF data CRLF" pieces, data kept.
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    let parts: Vec<&str> = text.split("\r\n").collect();
                    parts
                        .iter()
                        .skip(1)
                        .step_by(2)
                        .copied()
                        .collect::<String>()
                        .into_bytes()
                };
                let framing = if head.contains("transfer-encoding: chunked") {
                    "chunked"
                } else {
                    "length"
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{framing}:",
                    body.len() + framing.len() + 1
                );
                let mut out = answer.into_bytes();
                out.extend_from_slice(&body);
                if socket.write_all(&out).await.is_err() {
                    return;
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn bodies_of_known_size_go_with_their_length_and_the_connection_is_reused() {
        let (address, accepted) = echo_upstream().await;
        let pool = pool(address);
        for _ in 0..3 {
            let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
            let Ok(response) = pool.send(with_body(body)).await else {
                panic!("answered");
            };
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(body, "length:hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bodies_of_unknown_size_go_chunked() {
        let (address, accepted) = echo_upstream().await;
        let pool = pool(address);
        for _ in 0..2 {
            let pieces =
                ["abc", "", "defgh", "i"].map(|piece| Bytes::from_static(piece.as_bytes()));
            let body = Pieces(pieces.into_iter().collect());
            let Ok(response) = pool.send(with_body(body)).await else {
                panic!("answered");
            };
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(body, "chunked:abcdefghi");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_put_in_place_goes_with_the_length_its_stage_wrote() {
        let (address, _) = echo_upstream().await;
        let pool = pool(address);
        for (declared, expected) in [("9", Ok("length:abcdefghi")), ("5", Err(()))] {
            let pieces = ["abc", "defgh", "i"].map(|piece| Bytes::from_static(piece.as_bytes()));
            let mut request = with_body(Pieces(pieces.into_iter().collect()));
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static(declared));
            match (pool.send(request).await, expected) {
                (Ok(response), Ok(want)) => {
                    let body = response.into_body().collect().await.expect("body");
                    assert_eq!(body.to_bytes(), want);
                }
                (Err(err), Err(())) => assert!(
                    matches!(err, PoolError::Exchange(ExchangeError::RequestBody(_))),
                    "{err:?}"
                ),
                (Ok(_), Err(())) => panic!("a body longer than its length was sent"),
                (Err(err), Ok(_)) => panic!("{err:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_sent_is_taken_and_its_connection_dropped() {
        // Answers at the head, reads nothing of the body, keeps the connection open.
        let (address, accepted) = scripted(|_, _, _| {
            answer("HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig")
        })
        .await;
        let pool = pool(address);
        for _ in 0..2 {
            let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 8 << 20]));
            let Ok(response) = pool.send(with_body(body)).await else {
                panic!("answered");
            };
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(body, "big");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// A request body the test feeds piece by piece.
    struct Fed(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|piece| piece.map(|piece| Ok(Frame::data(piece))))
        }
    }

    #[tokio::test]
    async fn a_success_answered_before_the_body_ends_lets_the_upload_finish() {
        static RECEIVED: AtomicUsize = AtomicUsize::new(0);
        // Answers 202 as soon as it has a head, then reads the body its length announces.
        let (address, accepted) = counted_upstream(|mut socket, _| async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                seen.drain(..end + 4);
                let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
                if socket.write_all(answer).await.is_err() {
                    return;
                }
                let length: usize = head
                    .split("content-length: ")
                    .nth(1)
                    .and_then(|rest| rest.split("\r\n").next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                while seen.len() < length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                seen.drain(..length);
                RECEIVED.fetch_add(length, Ordering::SeqCst);
            }
        })
        .await;
        let pool = pool(address);
        let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
        feed.send(Bytes::from(vec![b'a'; 1000])).expect("feed");
        let mut request = with_body(Fed(fed));
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("300000"));
        let Ok(response) = pool.send(request).await else {
            panic!("answered");
        };
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes(),
            ""
        );
        // The answer is over; the rest of the body still goes.
        // The body's last byte; its end is not reported (`feed` stays open, as hyper's server
        // may report it only when the client next sends something): the length says it.
        feed.send(Bytes::from(vec![b'b'; 299_000])).expect("feed");
        // Waits (bounded) for the upload to end and its connection to be back.
        for _ in 0..5000 {
            let back = pool.native_idle.lock().expect("lock").len() == 1;
            if RECEIVED.load(Ordering::SeqCst) == 300_000 && back {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(RECEIVED.load(Ordering::SeqCst), 300_000);
        // And the connection, its request complete, serves the next one.
        let (status, _, _) = fetch(&pool, Method::GET).await.expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        drop(feed);
    }

    #[tokio::test]
    async fn the_response_timeout_does_not_count_the_clients_upload() {
        let (address, _) = echo_upstream().await;
        let pool = pool(address);
        let limit = Some(Duration::from_millis(1000));
        let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
        let mut request = with_body(Fed(fed));
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
        let sent = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.send_timed(request, limit).await.map(|_| ()) }
        });
        // The client takes 1.6 s over its 4 bytes, longer than the timeout.
        for piece in ["a", "b", "c", "d"] {
            tokio::time::sleep(Duration::from_millis(400)).await;
            feed.send(Bytes::from_static(piece.as_bytes()))
                .expect("feed");
        }
        let outcome = sent.await.expect("joined");
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_times_out() {
        let (address, _) = scripted(|_, _, _| (Vec::new(), false)).await;
        let limit = Some(Duration::from_millis(200));
        let Err(err) = pool(address).send_timed(request(Method::GET), limit).await else {
            panic!("answered");
        };
        assert!(matches!(err, PoolError::ResponseTimeout), "{err:?}");
    }

    #[tokio::test]
    async fn an_unusual_reason_phrase_is_kept() {
        let (address, _) =
            scripted(|_, _, _| answer("HTTP/1.1 413 Too Much\r\ncontent-length: 0\r\n\r\n")).await;
        let Ok(response) = pool(address).send(request(Method::GET)).await else {
            panic!("answered");
        };
        let reason = response.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(
            reason.map(|reason| reason.as_bytes()),
            Some(&b"Too Much"[..])
        );
    }

    #[tokio::test]
    async fn a_failing_request_body_fails_the_exchange_as_the_bodys() {
        struct Failing;
        impl Body for Failing {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Poll::Ready(Some(Err("the client went away".into())))
            }
        }
        let (address, _) = echo_upstream().await;
        let Err(err) = pool(address).send(with_body(Failing)).await else {
            panic!("answered without the body");
        };
        assert!(
            matches!(err, PoolError::Exchange(ExchangeError::RequestBody(_))),
            "{err:?}"
        );
    }
}
