//! The stall clock of an answer's body: how long an upstream may send nothing while more
//! of the body is awaited.

use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::Instant;

/// How long an upstream may send nothing while more of an answer's body is awaited
/// (`response_timeout`, as nginx's `proxy_read_timeout` bounds each read): without it, an
/// upstream that stops mid-body would hold the client's connection, and its own, for as long
/// as it likes. Time the client takes to read what came does not count.
pub(crate) struct StallTimer {
    limit: Option<Duration>,
    /// Made at the first wait: most bodies come whole with their head.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Something arrived since the timer was last set.
    moved: bool,
}

impl StallTimer {
    pub(crate) fn new(limit: Option<Duration>) -> Self {
        Self {
            limit,
            sleep: None,
            moved: false,
        }
    }

    /// The upstream sent something (or ended the body).
    pub(crate) fn progressed(&mut self) {
        self.moved = true;
    }

    /// The upstream sent nothing this time: whether it has now been silent for the limit.
    /// Registers `cx` to be woken when the limit is reached.
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let deadline = Instant::now() + limit;
        let moved = std::mem::take(&mut self.moved);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if moved {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }
}
