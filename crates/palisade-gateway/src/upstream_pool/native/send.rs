//! The request on its way: the head palisade writes and the body it forwards.

use super::*;

/// How the request's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// No body.
    None,
    /// `Content-Length`, from the body's exact size.
    Length(u64),
    /// `Transfer-Encoding: chunked`, for a body of unknown size.
    Chunked,
}

/// Why sending the request's body stopped.
pub(super) enum SendError {
    /// The body itself failed.
    Body(BoxError),
    /// Writing to the upstream failed.
    Write(io::Error),
}

/// The request's body on its way to the upstream, one frame at a time (nothing more is
/// held, whatever its size).
pub(super) struct Sender {
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
    pub(super) wrote: bool,
    /// Whether the last [`Self::poll_send`] waits for the client's next piece of body.
    pub(super) waiting_for_client: bool,
}

impl Sender {
    pub(super) fn new(body: RequestBody, framing: Outgoing) -> Self {
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

    /// The client's body that was not sent, if it came from the client.
    pub(super) fn into_unread(mut self) -> Option<hyper::body::Incoming> {
        self.body.take_unread()
    }

    /// Writes what it can; ready once the whole body (and its last chunk) is written.
    pub(super) fn poll_send(
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
/// expected or was announced; then the forwarding fields.
pub(super) fn write_head(
    out: &mut Vec<u8>,
    head: &http::request::Parts,
    fields: &ForwardingFields,
    outgoing: Outgoing,
) {
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
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Outgoing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    fields.write(out);
    out.extend_from_slice(b"\r\n");
}
