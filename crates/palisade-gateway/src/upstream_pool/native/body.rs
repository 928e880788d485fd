//! The answer's body, read from its connection as the client takes it.

use super::*;
use crate::upstream_pool::StallTimer;

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
    /// Bounds each wait for more of the body (`response_timeout`).
    stall: StallTimer,
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
    pub(super) fn new(
        conn: NativeConn,
        framing: Framing,
        reuse: Reuse,
        sender: Option<Box<Sender>>,
        stall_limit: Option<std::time::Duration>,
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
            stall: StallTimer::new(stall_limit),
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

    /// Reads more from the connection into its buffer; `Ok(0)` at its end. Waiting, it
    /// fails with [`ExchangeError::BodyTimedOut`] once the upstream has sent nothing for
    /// the stall limit (time the client takes to read what came before does not count).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ExchangeError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if let Poll::Ready(filled) = poll_fill(&mut conn.stream, &mut conn.buf, cx) {
            self.stall.progressed();
            return Poll::Ready(filled.map_err(ExchangeError::Read));
        }
        if self.stall.expired(cx) {
            return Poll::Ready(Err(ExchangeError::BodyTimedOut));
        }
        Poll::Pending
    }

    /// Sends more of the request's body, when some is left; a body that fails ends the
    /// answer too (the client's fault), an upstream that stops reading only ends the
    /// sending (its answer may still come whole).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        let (Some(sender), Some(conn)) = (self.sender.as_mut(), self.conn.as_mut()) else {
            return Ok(());
        };
        let polled = sender.poll_send(cx, &mut conn.stream);
        // While the request's body still goes up (a two-way stream: an echo, a gRPC call),
        // a quiet upstream may be waiting for the client's next piece: the stall clock runs
        // only while the upstream is what the answer waits for, as for the head.
        if sender.wrote || sender.waiting_for_client {
            self.stall.progressed();
        }
        match polled {
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
                    Err(err) => return this.fail(cx, err),
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
