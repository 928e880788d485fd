//! A token bucket that holds `limit` tokens and refills them evenly over `window`: one token
//! every `window / limit` milliseconds. Each allowed request takes one token; a full bucket
//! allows a burst of `limit`.
//!
//! The refill is exact in whole numbers: progress toward the next token is kept as `carry`,
//! in units of 1/`limit` of a millisecond, so `window / limit` need not be a whole number of
//! milliseconds and no rounding ever accumulates.

use super::{Decision, Quota, div_ceil, narrow};
use crate::clock::UnixMillis;

/// The bucket one key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// Whole tokens in the bucket.
    pub tokens: u64,
    /// Progress toward the next token, in `[0, window)`, in units of 1/`limit` ms.
    pub carry: u64,
    /// When `tokens` and `carry` were last brought up to date.
    pub refilled_at: UnixMillis,
}

impl State {
    /// A full bucket.
    pub fn fresh(quota: &Quota, now: UnixMillis) -> Self {
        Self {
            tokens: quota.limit,
            carry: 0,
            refilled_at: now,
        }
    }

    /// Decides one request at `now`, taking a token when allowed.
    pub fn check(&mut self, quota: &Quota, now: UnixMillis) -> Decision {
        self.refill(quota, now);
        let decision = decide(quota.limit, quota.window_ms(), self.tokens, self.carry);
        if decision.allowed {
            self.tokens -= 1;
        }
        decision
    }

    /// Adds the tokens earned since `refilled_at`. A full bucket earns nothing (its carry
    /// stays zero), and a `now` before `refilled_at` earns nothing.
    pub fn refill(&mut self, quota: &Quota, now: UnixMillis) {
        let window_ms = quota.window_ms();
        let elapsed = now.saturating_sub(self.refilled_at);
        self.refilled_at = self.refilled_at.max(now);
        if elapsed >= window_ms {
            // A whole window refills any bucket; this also keeps the product below small.
            self.tokens = quota.limit;
            self.carry = 0;
            return;
        }
        let progress = u128::from(elapsed) * u128::from(quota.limit) + u128::from(self.carry);
        let earned = narrow(progress / u128::from(window_ms));
        self.tokens = self.tokens.saturating_add(earned);
        self.carry = narrow(progress % u128::from(window_ms));
        if self.tokens >= quota.limit {
            self.tokens = quota.limit;
            self.carry = 0;
        }
    }

    /// The bucket is full, which is what a fresh one is, once the missing tokens are earned.
    pub fn idle_at(&self, quota: &Quota) -> UnixMillis {
        let after = until_full(quota.limit, quota.window_ms(), self.tokens, self.carry);
        self.refilled_at.saturating_add(after)
    }
}

/// Decides a request given the bucket after refilling.
///
/// `remaining` is the tokens left after this request; `reset_after` is the time until the
/// bucket is full again; `retry_after` is the time until the next token.
pub fn decide(limit: u64, window_ms: u64, tokens: u64, carry: u64) -> Decision {
    if tokens > 0 {
        let left = tokens - 1;
        return Decision::allow(limit, left, until_full(limit, window_ms, left, carry));
    }
    let next_token = div_ceil(
        u128::from(window_ms.saturating_sub(carry)),
        u128::from(limit),
    );
    let reset_after = until_full(limit, window_ms, tokens, carry);
    Decision::refuse(limit, reset_after, narrow(next_token))
}

/// Milliseconds until a bucket holding `tokens` and `carry` is full.
pub fn until_full(limit: u64, window_ms: u64, tokens: u64, carry: u64) -> u64 {
    let missing = u128::from(limit.saturating_sub(tokens));
    if missing == 0 {
        return 0;
    }
    let needed = (missing * u128::from(window_ms)).saturating_sub(u128::from(carry));
    narrow(div_ceil(needed, u128::from(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Algorithm;
    use std::time::Duration;

    /// 3 tokens refilled over 1 s: one token every 333⅓ ms.
    fn three_per_second() -> Quota {
        Quota {
            algorithm: Algorithm::TokenBucket,
            limit: 3,
            window: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_full_bucket_allows_a_burst_of_limit_then_refuses() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        let burst: Vec<Decision> = (0..4).map(|_| state.check(&quota, 0)).collect();
        let remaining: Vec<u64> = burst.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(!burst[3].allowed);
        // The first token comes back after ceil(1000 / 3) = 334 ms; full after 1 s.
        assert_eq!(burst[3].retry_after, Some(Duration::from_millis(334)));
        assert_eq!(burst[3].reset_after, Duration::from_millis(1_000));
    }

    #[test]
    fn tokens_come_back_one_every_third_of_the_window_without_drift() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        for _ in 0..3 {
            state.check(&quota, 0);
        }
        // 333 ms is 999/1000 of a token: still empty.
        assert!(!state.check(&quota, 333).allowed);
        assert_eq!(state.carry, 999);
        assert!(state.check(&quota, 334).allowed);
        // Two thirds of a second makes the second token at 666.67 ms: 667 passes, 666 not.
        assert!(!state.check(&quota, 666).allowed);
        assert!(state.check(&quota, 667).allowed);
        assert!(!state.check(&quota, 999).allowed);
        assert!(state.check(&quota, 1_000).allowed);
    }

    #[test]
    fn a_refused_request_takes_no_token() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        for _ in 0..20 {
            state.check(&quota, 0);
        }
        assert_eq!(state.tokens, 0);
        assert!(state.check(&quota, 334).allowed);
    }

    #[test]
    fn a_bucket_never_holds_more_than_limit() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 0);
        state.check(&quota, 0);
        let much_later = state.check(&quota, 3_600_000);
        assert_eq!(much_later.remaining, 2);
        assert_eq!(much_later.reset_after, Duration::from_millis(334));
    }

    #[test]
    fn reset_after_counts_the_partial_token_already_earned() {
        // Empty at 0, then at 100 ms one token is 300/1000 earned: full needs 3000 − 300
        // units of 1/3 ms, i.e. ceil(2700 / 3) = 900 ms.
        assert_eq!(until_full(3, 1_000, 0, 300), 900);
        assert_eq!(until_full(3, 1_000, 3, 0), 0);
    }

    #[test]
    fn state_is_idle_when_the_bucket_is_full_again() {
        let quota = three_per_second();
        let mut state = State::fresh(&quota, 10_000);
        state.check(&quota, 10_000);
        assert_eq!(state.idle_at(&quota), 10_334);
        assert_eq!(State::fresh(&quota, 5).idle_at(&quota), 5);
    }
}
