//! The passed body as an [`http_body::Body`], so the proxy can hand it to hyper as the
//! upstream request body. Its size hint is exact: the `Content-Length` to send.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::spool::ForwardBody;

type Read = Pin<Box<dyn Future<Output = (ForwardBody, io::Result<Option<Bytes>>)> + Send>>;

/// A [`ForwardBody`] that hyper can poll.
pub struct ForwardHttpBody {
    state: State,
    remaining: u64,
}

enum State {
    Idle(Box<ForwardBody>),
    Reading(Read),
    Done,
}

impl std::fmt::Debug for ForwardHttpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardHttpBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ForwardBody {
    /// This body as an [`http_body::Body`].
    pub fn into_http_body(self) -> ForwardHttpBody {
        ForwardHttpBody {
            remaining: self.content_length(),
            state: State::Idle(Box::new(self)),
        }
    }
}

impl Body for ForwardHttpBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(mut body) => {
                    self.state = State::Reading(Box::pin(async move {
                        let chunk = body.next_chunk().await;
                        (*body, chunk)
                    }));
                }
                State::Reading(mut read) => {
                    let Poll::Ready((body, chunk)) = read.as_mut().poll(cx) else {
                        self.state = State::Reading(read);
                        return Poll::Pending;
                    };
                    return Poll::Ready(match chunk {
                        Ok(Some(bytes)) => {
                            self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                            self.state = State::Idle(Box::new(body));
                            Some(Ok(Frame::data(bytes)))
                        }
                        Ok(None) => None,
                        Err(e) => Some(Err(e)),
                    });
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
