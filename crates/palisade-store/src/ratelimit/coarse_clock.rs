//! A wall clock that is cheap to read: a background thread stores the time every
//! millisecond and readers load one atomic. Reading `SystemTime::now()` costs 40–75 ns on
//! this project's virtual machines, more than the rest of a memory rate-limit decision.
//!
//! The time it gives may lag the real clock by the ticker's delay (a millisecond, more on
//! a starved machine) and never runs backwards. The thread stops when the clock is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use palisade_policy::clock::{Clock, SystemClock, UnixMillis};

/// How often the background thread refreshes the time.
const TICK: Duration = Duration::from_millis(1);

/// A millisecond wall clock refreshed by a background thread.
#[derive(Debug)]
pub struct CoarseClock {
    now: AtomicU64,
}

impl CoarseClock {
    /// Starts the clock and its ticker thread. Fails only if the thread cannot be spawned.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let clock = Arc::new(Self {
            now: AtomicU64::new(SystemClock.now_ms()),
        });
        let weak = Arc::downgrade(&clock);
        thread::Builder::new()
            .name("palisade-clock".into())
            .spawn(move || tick(&weak))?;
        Ok(clock)
    }
}

fn tick(clock: &Weak<CoarseClock>) {
    loop {
        thread::sleep(TICK);
        let Some(clock) = clock.upgrade() else {
            return;
        };
        // fetch_max keeps the clock monotonic if the wall clock is stepped back.
        clock.now.fetch_max(SystemClock.now_ms(), Ordering::Relaxed);
    }
}

impl Clock for CoarseClock {
    fn now_ms(&self) -> UnixMillis {
        self.now.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarse_clock_starts_at_the_wall_clock_and_never_runs_backwards() {
        let before = SystemClock.now_ms();
        let clock = CoarseClock::start().expect("thread spawns");
        let first = clock.now_ms();
        assert!(first >= before);
        let second = clock.now_ms();
        assert!(second >= first);
    }
}
