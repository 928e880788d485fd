//! palisade's own HTTP/1.1 server loop for the plain request, handing anything else to hyper.
//!
//! Most requests a gateway sees are `GET` or `HEAD` without a body on a kept-alive HTTP/1.1
//! connection. For those this loop reads and parses the head itself (httparse, as hyper
//! does), runs [`Gateway::handle`] in the connection's task, and writes the answer, with no
//! second parse for the framing watch and no dispatch through hyper's connection state.
//!
//! Anything else (a body, `Expect`, `Upgrade`, `TE`, a `Connection` option other than
//! `keep-alive`, HTTP/1.0, a target that is not origin-form, more header fields than this loop
//! parses, the HTTP/2 preface at a connection's start) is not handled here: the loop stops
//! before taking anything of that head and hands the connection, with every byte it has read
//! and not used, to hyper and the framing watch ([`crate::conn::GuardedIo::hand_over`]), which
//! serve it from then on exactly as they serve a connection from its start. So every
//! refusal, limit and smuggling check stays where it was.
//!
//! A head that is not HTTP (one hyper would refuse: obs-fold, a bad name or byte, a target
//! that is not a URI), or that is larger than `max_header_size`, is refused here with
//! palisade's own error page (`request.malformed` event, the security headers of every
//! answer, `Connection: close`), where hyper would send a bare one. The same status as
//! hyper's: 400, 431 for a head too large, 414 for a target over the 64 KiB a URI may have.
//!
//! Answers are written as hyper's server writes them: lower-case names, the body framed by
//! the answer's `Content-Length` or its body's exact size, else chunked; none for `HEAD`,
//! 1xx, 204 and 304; `Date` added when missing; `Connection: close` in an answer ends the
//! connection after it. Trailers are dropped (hyper sends them only to a client that asked
//! with `TE: trailers`, and such requests go to hyper). A client that closes its side while
//! its request is handled cancels the request, as hyper does without half-close.

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::debug;

use crate::body::BoxError;
use crate::conn::{GuardedIo, Prefixed};
use crate::framing::{FramingTracker, is_http2_preface};
use crate::gateway::{ConnInfo, Gateway, HeadRefusal, TrackedBody};

/// The most header fields a head parsed here may have (fewer when `max_headers` is lower);
/// a head with more goes to hyper, which applies `max_headers`.
const MAX_FIELDS: usize = 64;

/// Answer bytes gathered before a write: a body piece up to this size is copied behind the
/// head (one write for a small answer); a larger one is written on its own.
const GATHER: usize = 16 * 1024;

/// How long closing a connection may wait for the client (TLS `close_notify`).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The head limits that send a head to hyper instead.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `max_header_size`: a head (or a partial one) this large goes to hyper.
    pub max_head: usize,
    /// `max_headers`, for the framing watch after a hand-over.
    pub max_headers: usize,
}

/// Serves plain requests on `io` until the connection ends (`None`: closed by either side,
/// timed out, or shut down) or a request this loop does not serve arrives (`Some`: hyper
/// serves the connection from here, with the bytes read and not used put back in front).
/// hyper would take an HTTP/2 preface for h2 with prior knowledge; that preface is valid
/// only at a connection's start (RFC 9113 §3.4), and not at all where `http2` is false (a
/// TLS connection that agreed on `http/1.1`), so the loop refuses it with 400 itself once a
/// request was answered, or where `http2` is false. `stop` turns true when palisade shuts
/// down: an idle connection closes at once, a busy one after its answer.
pub async fn serve<T>(
    mut io: GuardedIo<Prefixed<T>>,
    gateway: &Arc<Gateway>,
    info: &ConnInfo,
    limits: HeadLimits,
    http2: bool,
    stop: &mut watch::Receiver<bool>,
) -> Option<GuardedIo<Prefixed<T>>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut served = false;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fields = Vec::new();
    // Made once per connection: a new wait per idle spell registered with the channel and
    // left it again on every request.
    let mut signal = stop.clone();
    let mut stopping = std::pin::pin!(async move {
        let _ = signal.wait_for(|stop| *stop).await;
    });
    loop {
        let (len, method, target) = match parse(&buf, limits, &mut fields) {
            Parsed::Partial => {
                io.head_in_progress(!buf.is_empty());
                let read = if buf.is_empty() {
                    tokio::select! {
                        biased;
                        read = read_more(&mut io, &mut buf) => read,
                        () = &mut stopping => return None,
                    }
                } else {
                    read_more(&mut io, &mut buf).await
                };
                match read {
                    Ok(0) => return None,
                    Ok(_) => continue,
                    Err(err) => {
                        debug!(client.peer = %info.peer, error = %err, "connection ended");
                        return None;
                    }
                }
            }
            Parsed::Hyper if (served || !http2) && is_http2_preface(&buf) => {
                let refusal = HeadRefusal::preface();
                refuse(io, gateway, info, refusal, false).await;
                return None;
            }
            Parsed::Hyper => return hand_over(io, buf.freeze(), limits),
            Parsed::Refused(refusal) => {
                let head_request = buf.trim_ascii_start().starts_with(b"HEAD ");
                refuse(io, gateway, info, refusal, head_request).await;
                return None;
            }
            Parsed::Plain {
                len,
                method,
                target,
            } => (len, method, target),
        };
        io.head_in_progress(false);
        let head = buf.split_to(len).freeze();
        let head_request = method == Method::HEAD;
        let request = match request(&head, method, target, &mut fields) {
            Ok(request) => request,
            Err(Some(refusal)) => {
                refuse(io, gateway, info, refusal, head_request).await;
                return None;
            }
            Err(None) => {
                let mut unused = BytesMut::with_capacity(head.len() + buf.len());
                unused.extend_from_slice(&head);
                unused.extend_from_slice(&buf);
                return hand_over(io, unused.freeze(), limits);
            }
        };
        drop(head);
        let handling = gateway.handle(request, None, info, io.last_read());
        tokio::pin!(handling);
        let response = loop {
            tokio::select! {
                biased;
                response = &mut handling => break Some(response),
                gone = client_gone(&mut io, &mut buf, limits.max_head) => if gone {
                    break None;
                },
            }
        };
        // A client gone before its answer: dropping the handler counts the request as
        // cancelled (see `gateway::Handling`).
        let response = response?;
        served = true;
        match write_response(&mut io, &mut out, response, head_request).await {
            Ok(true) if !*stop.borrow() => {}
            Ok(_) => {
                let _ = tokio::time::timeout(CLOSE_WAIT, io.shutdown()).await;
                return None;
            }
            Err(err) => {
                debug!(client.peer = %info.peer, error = %err, "answer not delivered");
                return None;
            }
        }
    }
}

fn hand_over<T>(
    mut io: GuardedIo<Prefixed<T>>,
    unused: Bytes,
    limits: HeadLimits,
) -> Option<GuardedIo<Prefixed<T>>> {
    io.hand_over(
        unused,
        FramingTracker::new(limits.max_head, limits.max_headers),
    );
    Some(io)
}

/// Answers a head this loop refuses with palisade's error page and ends the connection.
/// The client may still be sending (the rest of a head too large): its side is read and
/// dropped for up to [`CLOSE_WAIT`] after the answer, as closing a socket with unread bytes
/// makes the kernel reset the connection, and a client's kernel that gets the reset may
/// drop the answer before its program reads it. A head that says `HEAD` gets no page.
///
/// Boxed: refusals are rare, and the response phase's future and the drain's buffer inline
/// would grow every connection's future (kept, and moved, for the common request too).
fn refuse<'a, T>(
    io: GuardedIo<Prefixed<T>>,
    gateway: &'a Gateway,
    info: &'a ConnInfo,
    refusal: HeadRefusal,
    head_request: bool,
) -> Pin<Box<impl Future<Output = ()> + 'a>>
where
    T: AsyncRead + AsyncWrite + Unpin + 'a,
{
    Box::pin(refuse_inline(io, gateway, info, refusal, head_request))
}

async fn refuse_inline<T>(
    mut io: GuardedIo<Prefixed<T>>,
    gateway: &Gateway,
    info: &ConnInfo,
    refusal: HeadRefusal,
    head_request: bool,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let answer = gateway.refuse_head(info, refusal).await;
    let mut out = Vec::new();
    if let Err(err) = write_response(&mut io, &mut out, answer, head_request).await {
        debug!(client.peer = %info.peer, error = %err, "refusal not delivered");
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        let _ = io.shutdown().await;
        let mut sink = [0; 4096];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Reads more of the connection into `buf`.
async fn read_more<T>(io: &mut GuardedIo<Prefixed<T>>, buf: &mut BytesMut) -> io::Result<usize>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
    io.read_buf(buf).await
}

/// Watches the connection while its request is handled: true when the client has closed it
/// (or it failed). Bytes that arrive meanwhile (a pipelined request) are kept in `buf`, up to
/// `max_head`; past that nothing more is read until the answer is out.
async fn client_gone<T>(io: &mut GuardedIo<Prefixed<T>>, buf: &mut BytesMut, max: usize) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if buf.len() >= max {
        return std::future::pending().await;
    }
    !matches!(read_more(io, buf).await, Ok(n) if n > 0)
}

/// What the buffered bytes hold.
#[derive(Debug)]
enum Parsed {
    /// Not a whole head yet (or nothing).
    Partial,
    /// A head this loop serves: its length, method and target's place in the buffer.
    Plain {
        len: usize,
        method: Method,
        target: Range<usize>,
    },
    /// Something for hyper.
    Hyper,
    /// A head refused here (hyper would refuse it with a bare answer).
    Refused(HeadRefusal),
}

/// Parses a head at the start of `buf`. A plain head's field names and the places of their
/// values go into `fields`.
fn parse(buf: &[u8], limits: HeadLimits, fields: &mut Vec<(HeaderName, Range<usize>)>) -> Parsed {
    // Left uninitialised: httparse writes only the fields it finds (filling all 64 slots
    // first cost more than parsing a short head).
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut head = httparse::Request::new(&mut []);
    let parsed =
        head.parse_with_uninit_headers(buf, &mut slots[..limits.max_headers.min(MAX_FIELDS)]);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Parsed::Partial,
        Ok(httparse::Status::Partial) => return Parsed::Refused(HeadRefusal::too_large()),
        // More fields than this loop parses, fewer than `max_headers` allows: hyper's.
        Err(httparse::Error::TooManyHeaders) if limits.max_headers > MAX_FIELDS => {
            return Parsed::Hyper;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(HeadRefusal::too_many_fields());
        }
        // The HTTP/2 preface (h2c with prior knowledge, where allowed): see `serve`.
        Err(httparse::Error::Version) if is_http2_preface(buf) => return Parsed::Hyper,
        Err(err) => return Parsed::Refused(HeadRefusal::malformed(what_is_wrong(buf, err))),
    };
    if len > limits.max_head {
        return Parsed::Refused(HeadRefusal::too_large());
    }
    if head.version != Some(1) {
        return Parsed::Hyper;
    }
    let method = match head.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Hyper,
    };
    let Some(path) = head.path.filter(|path| path.starts_with('/')) else {
        return Parsed::Hyper;
    };
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + part.len()
    };
    fields.clear();
    for field in head.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            fields.clear();
            return Parsed::Hyper;
        };
        let plain = match name {
            CONTENT_LENGTH
            | TRANSFER_ENCODING
            | http::header::TE
            | http::header::EXPECT
            | http::header::UPGRADE => false,
            CONNECTION => field.value.eq_ignore_ascii_case(b"keep-alive"),
            _ => true,
        };
        if !plain {
            fields.clear();
            return Parsed::Hyper;
        }
        fields.push((name, at(field.value)));
    }
    Parsed::Plain {
        len,
        method,
        target: at(path.as_bytes()),
    }
}

/// What is wrong with a head httparse refused, for the event: its words, but a line that
/// starts with white space, which it calls a bad name, by what it is: obs-fold (a field
/// continued on the next line, RFC 9112 §5.2), or white space before the first field
/// (RFC 9112 §2.2).
fn what_is_wrong(buf: &[u8], err: httparse::Error) -> String {
    if err != httparse::Error::HeaderName {
        return err.to_string();
    }
    let head = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf, |end| &buf[..end]);
    let mut lines = head
        .split(|&b| b == b'\n')
        .skip_while(|line| line.trim_ascii().is_empty());
    let _request_line = lines.next();
    let indented = |line: &[u8]| matches!(line.first(), Some(b' ' | b'\t'));
    if lines.next().is_some_and(indented) {
        return "white space between the request line and the first header field".into();
    }
    if lines.any(indented) {
        return "obs-fold: a header field continued on a line of its own".into();
    }
    err.to_string()
}

/// The request for a plain head (`head` holds its bytes, `fields` what [`parse`] found).
/// A target that is not a URI is refused as hyper refuses it (`Some`); a value `http` does
/// not accept goes to hyper (`None`), whose parser does not check values again.
fn request(
    head: &Bytes,
    method: Method,
    target: Range<usize>,
    fields: &mut Vec<(HeaderName, Range<usize>)>,
) -> Result<http::request::Parts, Option<HeadRefusal>> {
    let length = target.len();
    let uri = Uri::from_maybe_shared(head.slice(target))
        .map_err(|_| Some(HeadRefusal::bad_target(length)))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    // With room for the forwarding fields palisade adds (`X-Forwarded-*`, `Forwarded`).
    headers.reserve(fields.len() + 4);
    for (name, value) in fields.drain(..) {
        let value = HeaderValue::from_maybe_shared(head.slice(value)).map_err(|_| None)?;
        headers.append(name, value);
    }
    Ok(request.into_parts().0)
}

/// How the answer's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes (none for a bodiless answer).
    Length(u64),
    Chunked,
}

/// Writes `response`; true when the connection may serve another request.
async fn write_response<T>(
    io: &mut GuardedIo<Prefixed<T>>,
    out: &mut Vec<u8>,
    response: Response<TrackedBody>,
    head_request: bool,
) -> io::Result<bool>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let empty = body.is_end_stream();
    let exact = if empty {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let size = BodySize { empty, exact };
    let lines = body.head_lines.take();
    let (framing, keep_alive) = write_head(out, &parts, lines.as_deref(), size, head_request);
    let mut left = match framing {
        Framing::Length(0) => {
            drop(body);
            io.write_all(out).await?;
            io.flush().await?;
            return Ok(keep_alive);
        }
        Framing::Length(length) => Some(length),
        Framing::Chunked => None,
    };
    loop {
        let frame = match poll_now(&mut body) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                io.write_all(out).await?;
                out.clear();
                io.flush().await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(err)) => {
                // What was sent stays unfinished (no last chunk, or short of its length),
                // so the client sees the answer cut, not complete.
                io.write_all(out).await?;
                return Err(io::Error::other(err));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        match left.as_mut() {
            Some(left) => {
                if data.len() as u64 > *left {
                    io.write_all(out).await?;
                    return Err(io::Error::other("answer body longer than its length"));
                }
                *left -= data.len() as u64;
            }
            None => {
                let _ = write!(out, "{:x}\r\n", data.len());
            }
        }
        if out.len() + data.len() <= GATHER {
            out.extend_from_slice(&data);
        } else {
            io.write_all(out).await?;
            out.clear();
            io.write_all(&data).await?;
        }
        if left.is_none() {
            out.extend_from_slice(b"\r\n");
        }
    }
    drop(body);
    match left {
        None => out.extend_from_slice(b"0\r\n\r\n"),
        Some(0) => {}
        Some(short) => {
            io.write_all(out).await?;
            return Err(io::Error::other(format!(
                "answer body ended {short} bytes short of its length"
            )));
        }
    }
    io.write_all(out).await?;
    out.clear();
    io.flush().await?;
    Ok(keep_alive)
}

/// Polls the body once without waiting: a piece that is already there goes out with what
/// is gathered; the wait for one that is not starts after the gathered bytes are written.
fn poll_now(body: &mut TrackedBody) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(body).poll_frame(&mut cx)
}

/// What an answer's body says of its size.
#[derive(Debug, Clone, Copy)]
struct BodySize {
    /// It has ended already: nothing to send.
    empty: bool,
    /// Its exact length, when known.
    exact: Option<u64>,
}

/// Appends a `content-length` field line (the number without a formatter: every answer
/// writes one).
fn push_content_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the status line and fields of an answer into `out` (cleared first); returns how
/// its body is framed and whether the connection may be kept after it.
fn write_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    lines: Option<&[u8]>,
    body: BodySize,
    head_request: bool,
) -> (Framing, bool) {
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let no_length = status.is_informational()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let no_body = head_request || no_length;
    let BodySize { empty, exact } = body;
    let mut framing = None;
    let mut keep_alive = true;
    let mut dated = false;
    for (name, value) in &parts.headers {
        match *name {
            CONTENT_LENGTH => {
                if framing.is_some() || (empty && !head_request) {
                    continue;
                }
                let length = match exact {
                    Some(_) if empty => content_length(value),
                    Some(exact) => Some(exact),
                    None => content_length(value),
                };
                let Some(length) = length else { continue };
                push_content_length(out, length);
                framing = Some(Framing::Length(length));
                continue;
            }
            TRANSFER_ENCODING | TRAILER => continue,
            CONNECTION => keep_alive &= !has_close(value),
            DATE => dated = true,
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = match framing {
        Some(framing) => framing,
        None => match exact {
            None if no_body => Framing::Length(0),
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            Some(0) if no_body => Framing::Length(0),
            Some(length) => {
                if !no_length {
                    push_content_length(out, length);
                }
                Framing::Length(length)
            }
        },
    };
    if let Some(lines) = lines {
        out.extend_from_slice(lines);
    }
    if !dated {
        DATE_CACHE.with(|cache| {
            field(out, b"date", cache.borrow_mut().now());
        });
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        return (Framing::Length(0), keep_alive);
    }
    (framing, keep_alive)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn content_length(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn has_close(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// The `Date` value, formatted once per second per thread.
struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

thread_local! {
    static DATE_CACHE: RefCell<DateCache> = const {
        RefCell::new(DateCache { second: 0, text: String::new() })
    };
}

#[cfg(test)]
mod tests;
