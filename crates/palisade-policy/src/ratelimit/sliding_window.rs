//! The sliding window of @upstash/ratelimit, in whole numbers.
//!
//! Time is cut into windows of `window` milliseconds aligned to the Unix epoch. A key keeps
//! two counts: requests in the current window and requests in the one before. At `elapsed`
//! milliseconds into the current window, the estimate of the last `window` of traffic is
//!
//! ```text
//! floor(previous × (window − elapsed) / window) + current
//! ```
//!
//! A request is allowed while that estimate is below the limit, and only an allowed request
//! is counted: a client hammering a closed limit does not keep it closed.

use super::{Decision, Quota, div_ceil, narrow};
use crate::clock::UnixMillis;

/// The counts one key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The index (`time / window`) of the window `current` counts.
    pub window: u64,
    /// Allowed requests in window `window − 1`.
    pub previous: u64,
    /// Allowed requests in window `window`.
    pub current: u64,
}

impl State {
    /// No requests yet.
    pub fn fresh(quota: &Quota, now: UnixMillis) -> Self {
        Self {
            window: now / quota.window_ms(),
            previous: 0,
            current: 0,
        }
    }

    /// Decides one request at `now`, counting it when allowed.
    pub fn check(&mut self, quota: &Quota, now: UnixMillis) -> Decision {
        let window_ms = quota.window_ms();
        let elapsed = self.roll(window_ms, now);
        let decision = decide(quota.limit, window_ms, elapsed, self.previous, self.current);
        if decision.allowed {
            self.current += 1;
        }
        decision
    }

    /// Moves the counts to the window holding `now` and returns the milliseconds elapsed in
    /// it. A `now` before the stored window (a clock stepped back) counts as the stored
    /// window's first millisecond: time never runs backwards for a key.
    pub fn roll(&mut self, window_ms: u64, now: UnixMillis) -> u64 {
        let index = now / window_ms;
        if index < self.window {
            return 0;
        }
        if index == self.window + 1 {
            self.previous = self.current;
            self.current = 0;
        } else if index > self.window + 1 {
            self.previous = 0;
            self.current = 0;
        }
        self.window = index;
        now % window_ms
    }

    /// The counts stop mattering once the current window has also become the previous one.
    pub fn idle_at(&self, quota: &Quota) -> UnixMillis {
        self.window
            .saturating_add(2)
            .saturating_mul(quota.window_ms())
    }
}

/// The previous window's count weighted by the unelapsed part of the current window:
/// `floor(previous × (window − elapsed) / window)`.
pub fn weighted_previous(previous: u64, window_ms: u64, elapsed: u64) -> u64 {
    let unelapsed = u128::from(window_ms.saturating_sub(elapsed));
    narrow(u128::from(previous) * unelapsed / u128::from(window_ms.max(1)))
}

/// Decides a request `elapsed` milliseconds into the current window, given the counts before
/// it. The request is allowed when the estimate is below `limit`.
///
/// `remaining` is what is left after this request; `reset_after` is the end of the current
/// window (as @upstash/ratelimit reports it); `retry_after` is the earliest time a request
/// can be allowed if nobody else is counted meanwhile.
pub fn decide(limit: u64, window_ms: u64, elapsed: u64, previous: u64, current: u64) -> Decision {
    let estimate = weighted_previous(previous, window_ms, elapsed).saturating_add(current);
    let reset_after = window_ms - elapsed.min(window_ms);
    if estimate < limit {
        return Decision::allow(limit, limit - estimate - 1, reset_after);
    }
    let retry_after = retry_after(limit, window_ms, elapsed, previous, current);
    Decision::refuse(limit, reset_after, retry_after)
}

/// Milliseconds until a refused request could be allowed.
///
/// Within the current window only the previous window's weight shrinks, so while
/// `current < limit` the answer is the first `elapsed'` with
/// `previous × (window − elapsed') < (limit − current) × window`. Otherwise the request waits
/// for the next window, where `current` becomes the weighted previous count.
fn retry_after(limit: u64, window_ms: u64, elapsed: u64, previous: u64, current: u64) -> u64 {
    if current < limit {
        let at = first_allowed_elapsed(limit - current, window_ms, previous);
        return at.saturating_sub(elapsed).max(1);
    }
    let next_window = window_ms - elapsed.min(window_ms);
    next_window + first_allowed_elapsed(limit, window_ms, current)
}

/// The first millisecond of a window at which `floor(weight × (window − t) / window)` drops
/// below `room`. `room` is at least one.
fn first_allowed_elapsed(room: u64, window_ms: u64, weight: u64) -> u64 {
    if weight == 0 || room == 0 {
        return if room == 0 { window_ms } else { 0 };
    }
    // floor(w·u/W) < room  ⇔  w·u < room·W  ⇔  u ≤ ceil(room·W / w) − 1
    let longest_unelapsed =
        div_ceil(u128::from(room) * u128::from(window_ms), u128::from(weight)) - 1;
    narrow(u128::from(window_ms).saturating_sub(longest_unelapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Algorithm;
    use std::time::Duration;

    fn ten_per_ten_seconds() -> Quota {
        Quota {
            algorithm: Algorithm::SlidingWindow,
            limit: 10,
            window: Duration::from_secs(10),
        }
    }

    /// Runs `count` requests at `at`, returning the decisions.
    fn requests(state: &mut State, count: usize, at: UnixMillis) -> Vec<Decision> {
        (0..count)
            .map(|_| state.check(&ten_per_ten_seconds(), at))
            .collect()
    }

    #[test]
    fn ten_requests_pass_and_the_eleventh_in_the_same_window_is_refused() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 1_000_000);
        let first_ten = requests(&mut state, 10, 1_002_000);
        assert!(first_ten.iter().all(|d| d.allowed));
        let remaining: Vec<u64> = first_ten.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);

        let eleventh = state.check(&quota, 1_002_000);
        assert!(!eleventh.allowed);
        assert_eq!(eleventh.remaining, 0);
        assert_eq!(eleventh.reset_after, Duration::from_millis(8_000));
        // The window ends in 8 s; the next one starts with 10 weighted at 100 %, which drops
        // to 9 one millisecond later.
        assert_eq!(eleventh.retry_after, Some(Duration::from_millis(8_001)));
    }

    #[test]
    fn the_worked_example_in_docs_rate_limiting_holds() {
        // 8 requests in [0 s, 10 s), 3 so far in [10 s, 20 s), a request at 12 s.
        let allowed = decide(10, 10_000, 2_000, 8, 3);
        assert_eq!(weighted_previous(8, 10_000, 2_000), 6);
        assert!(allowed.allowed);
        assert_eq!(allowed.remaining, 0);
        assert_eq!(allowed.reset_after, Duration::from_millis(8_000));

        let refused = decide(10, 10_000, 2_000, 8, 4);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(501)));
        assert!(!decide(10, 10_000, 2_500, 8, 4).allowed);
        assert!(decide(10, 10_000, 2_501, 8, 4).allowed);
    }

    #[test]
    fn a_refused_request_is_not_counted() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 0);
        requests(&mut state, 10, 0);
        requests(&mut state, 50, 5_000);
        assert_eq!(state.current, 10);
    }

    #[test]
    fn sliding_window_counts_previous_window_by_weight() {
        // 10 requests in window [0 s, 10 s); at 13 s, 70 % of the current window is unelapsed,
        // so the previous count weighs floor(10 × 0.7) = 7 and three more requests fit.
        let mut state = State::fresh(&ten_per_ten_seconds(), 0);
        requests(&mut state, 10, 9_000);
        let at_13s = requests(&mut state, 4, 13_000);
        let allowed: Vec<bool> = at_13s.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
        assert_eq!(at_13s[0].remaining, 2);
        assert_eq!(at_13s[2].remaining, 0);
        assert_eq!(state.previous, 10);
        assert_eq!(state.current, 3);
    }

    #[test]
    fn the_weight_is_floored_not_rounded() {
        // 7 previous requests at 95 % unelapsed weigh 6.65, floored to 6.
        assert_eq!(weighted_previous(7, 10_000, 500), 6);
        // 100 previous requests at 66 % unelapsed weigh exactly 66; floating point
        // (1 − 0.34) × 100 gives 65.999…, which would floor to 65.
        assert_eq!(weighted_previous(100, 1_000, 340), 66);
        assert_eq!(weighted_previous(10, 10_000, 3_000), 7);
        assert_eq!(weighted_previous(10, 10_000, 0), 10);
        assert_eq!(weighted_previous(10, 10_000, 9_999), 0);
    }

    #[test]
    fn the_last_millisecond_of_a_window_still_counts_toward_it() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 0);
        requests(&mut state, 10, 9_999);
        let refused = state.check(&quota, 9_999);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_after, Duration::from_millis(1));
        // At 10 000 ms the window has rolled: previous = 10 at full weight, still refused.
        let at_boundary = state.check(&quota, 10_000);
        assert!(!at_boundary.allowed);
        assert_eq!(at_boundary.reset_after, Duration::from_millis(10_000));
        assert_eq!(at_boundary.retry_after, Some(Duration::from_millis(1)));
        // One millisecond later the weight is floor(10 × 9 999 / 10 000) = 9: allowed.
        let after = state.check(&quota, 10_001);
        assert!(after.allowed);
        assert_eq!(after.remaining, 0);
    }

    #[test]
    fn retry_after_points_at_the_first_millisecond_that_is_allowed() {
        // previous = 10, current = 3 at 13 s: refused. Room is 7, so the weight must drop
        // below 7: 10 × u < 70 000 ⇔ u ≤ 6 999 ⇔ elapsed ≥ 3 001, i.e. 1 ms later.
        let refused = decide(10, 10_000, 3_000, 10, 3);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(1)));
        assert!(decide(10, 10_000, 3_001, 10, 3).allowed);

        // previous = 4, current = 8 at 1 s: weight floor(4 × 0.9) = 3, estimate 11. Room is 2:
        // 4 × u < 20 000 ⇔ u ≤ 4 999 ⇔ elapsed ≥ 5 001.
        let refused = decide(10, 10_000, 1_000, 4, 8);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(4_001)));
        assert!(!decide(10, 10_000, 5_000, 4, 8).allowed);
        assert!(decide(10, 10_000, 5_001, 4, 8).allowed);
    }

    #[test]
    fn a_window_skipped_entirely_forgets_both_counts() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 0);
        requests(&mut state, 10, 0);
        let later = state.check(&quota, 25_000);
        assert!(later.allowed);
        assert_eq!(later.remaining, 9);
        assert_eq!((state.previous, state.current), (0, 1));
    }

    #[test]
    fn a_clock_stepped_back_counts_into_the_stored_window() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 20_000);
        requests(&mut state, 10, 20_000);
        let stepped_back = state.check(&quota, 15_000);
        assert!(!stepped_back.allowed);
        assert_eq!(state.window, 2);
    }

    #[test]
    fn state_is_idle_once_its_current_window_has_passed_as_previous() {
        let quota = ten_per_ten_seconds();
        let mut state = State::fresh(&quota, 12_000);
        state.check(&quota, 12_000);
        assert_eq!(state.idle_at(&quota), 30_000);
    }
}
