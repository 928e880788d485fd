//! Fixed windows aligned to the Unix epoch: at most `limit` allowed requests in each window
//! of `window` milliseconds. Cheaper than the sliding window, but a client can send `limit`
//! requests at the end of one window and `limit` more at the start of the next.

use super::{Decision, Quota};
use crate::clock::UnixMillis;

/// The count one key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The index (`time / window`) of the window `count` counts.
    pub window: u64,
    /// Allowed requests in that window.
    pub count: u64,
}

impl State {
    /// No requests yet.
    pub fn fresh(quota: &Quota, now: UnixMillis) -> Self {
        Self {
            window: now / quota.window_ms(),
            count: 0,
        }
    }

    /// Decides one request at `now`, counting it when allowed.
    pub fn check(&mut self, quota: &Quota, now: UnixMillis) -> Decision {
        let window_ms = quota.window_ms();
        let elapsed = self.roll(window_ms, now);
        let decision = decide(quota.limit, window_ms, elapsed, self.count);
        if decision.allowed {
            self.count += 1;
        }
        decision
    }

    /// Moves to the window holding `now` and returns the milliseconds elapsed in it. A `now`
    /// before the stored window counts as the stored window's first millisecond.
    pub fn roll(&mut self, window_ms: u64, now: UnixMillis) -> u64 {
        let index = now / window_ms;
        if index < self.window {
            return 0;
        }
        if index > self.window {
            self.window = index;
            self.count = 0;
        }
        now % window_ms
    }

    /// The count stops mattering when its window ends.
    pub fn idle_at(&self, quota: &Quota) -> UnixMillis {
        self.window
            .saturating_add(1)
            .saturating_mul(quota.window_ms())
    }
}

/// Decides a request `elapsed` milliseconds into a window that has counted `count` requests.
/// A refused request waits for the window to end.
pub fn decide(limit: u64, window_ms: u64, elapsed: u64, count: u64) -> Decision {
    let reset_after = window_ms - elapsed.min(window_ms);
    if count < limit {
        return Decision::allow(limit, limit - count - 1, reset_after);
    }
    Decision::refuse(limit, reset_after, reset_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Algorithm;
    use std::time::Duration;

    fn three_per_second() -> Quota {
        Quota {
            algorithm: Algorithm::FixedWindow,
            limit: 3,
            window: Duration::from_secs(1),
        }
    }

    #[test]
    fn three_requests_pass_and_the_fourth_waits_for_the_window_end() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 5_000);
        let remaining: Vec<u64> = (0..3)
            .map(|_| state.check(&quota, 5_250).remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);

        let fourth = state.check(&quota, 5_400);
        assert!(!fourth.allowed);
        assert_eq!(fourth.reset_after, Duration::from_millis(600));
        assert_eq!(fourth.retry_after, Some(Duration::from_millis(600)));
        assert_eq!(state.count, 3, "a refused request is not counted");
    }

    #[test]
    fn a_new_window_starts_from_zero_at_its_first_millisecond() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        for _ in 0..3 {
            state.check(&quota, 999);
        }
        assert!(!state.check(&quota, 999).allowed);
        let next = state.check(&quota, 1_000);
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert_eq!(next.reset_after, Duration::from_millis(1_000));
    }

    #[test]
    fn a_fixed_window_allows_a_burst_across_the_boundary() {
        // The known weakness the sliding window fixes: 3 at 999 ms and 3 at 1 000 ms all pass.
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        let times = [999, 999, 999, 1_000, 1_000, 1_000];
        assert!(times.iter().all(|&at| state.check(&quota, at).allowed));
    }

    #[test]
    fn state_is_idle_when_its_window_ends() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        state.check(&quota, 1_500);
        assert_eq!(state.idle_at(&quota), 2_000);
    }
}
