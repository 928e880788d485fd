//! A stored session and the lifecycle decisions about it, as pure functions of `now`.
//!
//! The rules, in the order they are applied:
//! 1. a session ends `absolute_ms` after login, whatever happens (never extended);
//! 2. a session ends `idle_ms` after its last use;
//! 3. a secret replaced by rotation keeps working until `grace_ms` after the rotation, so
//!    requests already in flight with the old cookie do not fail;
//! 4. a current secret older than `rotate_after_ms` is replaced on the next request.

use crate::clock::UnixMillis;

use super::config::Lifetimes;
use super::secret::{PublicId, SecretHash};
use super::user::{Roles, UserId};

/// The longest a session's last use goes unrecorded: touching the store on every request
/// would turn each read into a write. Idle expiry may be late by at most this much (or a
/// tenth of the idle timeout, when that is shorter).
pub const TOUCH_INTERVAL_MS: u64 = 60_000;

/// A secret replaced by rotation, still accepted until `valid_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Hash of the replaced secret.
    pub hash: SecretHash,
    /// The first instant at which it is refused.
    pub valid_until: UnixMillis,
}

/// Everything a store keeps about one session. Holds no secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The public name of the session.
    pub public_id: PublicId,
    /// Whom the session belongs to.
    pub user_id: UserId,
    /// The roles given at login.
    pub roles: Roles,
    /// Hash of the current secret.
    pub secret_hash: SecretHash,
    /// The secret replaced by the last rotation, while it is in its grace period.
    pub previous: Option<PreviousSecret>,
    /// Login time; the absolute timeout counts from here.
    pub created_at: UnixMillis,
    /// Last recorded use; the idle timeout counts from here.
    pub last_seen_at: UnixMillis,
    /// When the current secret was issued.
    pub rotated_at: UnixMillis,
}

/// Why a presented session is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// No session has this secret (never existed, logged out, revoked or swept).
    Unknown,
    /// The session was not used for longer than the idle timeout.
    IdleExpired,
    /// The session is older than the absolute timeout.
    AbsoluteExpired,
    /// The secret was replaced by a rotation and its grace period is over. A replay of an
    /// old cookie, possibly stolen.
    RotatedOut,
}

impl SessionRefusal {
    /// A stable name for events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::IdleExpired => "idle_expired",
            Self::AbsoluteExpired => "absolute_expired",
            Self::RotatedOut => "rotated_out",
        }
    }

    /// Whether the session itself is over (and should be deleted now).
    pub fn session_is_over(self) -> bool {
        matches!(self, Self::IdleExpired | Self::AbsoluteExpired)
    }
}

/// What to do with a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// The session is valid for this request.
    Valid {
        /// The current secret is due for replacement.
        rotate: bool,
        /// The last use should be recorded.
        touch: bool,
        /// The secret presented was the previous one, within its grace period.
        via_previous: bool,
    },
    /// The session is refused.
    Refused(SessionRefusal),
}

impl SessionRecord {
    /// A session created at `now`.
    pub fn new(
        public_id: PublicId,
        user_id: UserId,
        roles: Roles,
        secret_hash: SecretHash,
        now: UnixMillis,
    ) -> Self {
        Self {
            public_id,
            user_id,
            roles,
            secret_hash,
            previous: None,
            created_at: now,
            last_seen_at: now,
            rotated_at: now,
        }
    }

    /// The instant the session ends if it is not used again.
    pub fn expires_at(&self, l: &Lifetimes) -> UnixMillis {
        let idle_end = self.last_seen_at.saturating_add(l.idle_ms);
        idle_end.min(self.absolute_end(l))
    }

    /// The instant the session ends whatever happens.
    pub fn absolute_end(&self, l: &Lifetimes) -> UnixMillis {
        self.created_at.saturating_add(l.absolute_ms)
    }

    /// Decides whether `presented` opens this session at `now`.
    pub fn assess(&self, presented: &SecretHash, now: UnixMillis, l: &Lifetimes) -> Assessment {
        if now >= self.absolute_end(l) {
            return Assessment::Refused(SessionRefusal::AbsoluteExpired);
        }
        if now >= self.last_seen_at.saturating_add(l.idle_ms) {
            return Assessment::Refused(SessionRefusal::IdleExpired);
        }
        let via_previous = if *presented == self.secret_hash {
            false
        } else {
            match self.previous {
                Some(p) if p.hash == *presented && now < p.valid_until => true,
                Some(p) if p.hash == *presented => {
                    return Assessment::Refused(SessionRefusal::RotatedOut);
                }
                _ => return Assessment::Refused(SessionRefusal::Unknown),
            }
        };
        let rotate = !via_previous && now >= self.rotated_at.saturating_add(l.rotate_after_ms);
        let touch = rotate || now >= self.last_seen_at.saturating_add(touch_interval(l));
        Assessment::Valid {
            rotate,
            touch,
            via_previous,
        }
    }

    /// The record after its secret is replaced by `new_hash` at `now`.
    pub fn rotated(&self, new_hash: SecretHash, now: UnixMillis, l: &Lifetimes) -> Self {
        Self {
            secret_hash: new_hash,
            previous: Some(PreviousSecret {
                hash: self.secret_hash,
                valid_until: now.saturating_add(l.grace_ms),
            }),
            last_seen_at: now,
            rotated_at: now,
            ..self.clone()
        }
    }
}

fn touch_interval(l: &Lifetimes) -> u64 {
    TOUCH_INTERVAL_MS.min(l.idle_ms / 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::config::SessionSettings;
    use crate::session::secret::SessionSecret;

    const T0: UnixMillis = 1_700_000_000_000;
    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;

    fn lifetimes() -> Lifetimes {
        SessionSettings::defaults().lifetimes
    }

    fn record() -> (SessionRecord, SecretHash) {
        let hash = SessionSecret::from_bytes([1; 32]).hash();
        let user = UserId::parse("alice").expect("valid user");
        let id = PublicId::from_bytes([9; 16]);
        (SessionRecord::new(id, user, Roles::none(), hash, T0), hash)
    }

    #[test]
    fn a_fresh_session_is_valid_without_rotation_or_touch() {
        let (r, h) = record();
        let verdict = r.assess(&h, T0 + 1, &lifetimes());
        let expected = Assessment::Valid {
            rotate: false,
            touch: false,
            via_previous: false,
        };
        assert_eq!(verdict, expected);
    }

    #[test]
    fn a_session_unused_for_seven_days_is_idle_expired() {
        let (r, h) = record();
        let l = lifetimes();
        assert!(matches!(
            r.assess(&h, T0 + 7 * DAY - 1, &l),
            Assessment::Valid { .. }
        ));
        let late = r.assess(&h, T0 + 7 * DAY, &l);
        assert_eq!(late, Assessment::Refused(SessionRefusal::IdleExpired));
    }

    #[test]
    fn a_session_older_than_thirty_days_ends_even_when_used_daily() {
        let (mut r, h) = record();
        let l = lifetimes();
        r.last_seen_at = T0 + 30 * DAY - HOUR;
        r.rotated_at = r.last_seen_at;
        let end = r.assess(&h, T0 + 30 * DAY, &l);
        assert_eq!(end, Assessment::Refused(SessionRefusal::AbsoluteExpired));
        assert_eq!(r.expires_at(&l), T0 + 30 * DAY);
    }

    #[test]
    fn a_secret_older_than_a_day_is_due_for_rotation() {
        let (r, h) = record();
        let verdict = r.assess(&h, T0 + DAY, &lifetimes());
        let expected = Assessment::Valid {
            rotate: true,
            touch: true,
            via_previous: false,
        };
        assert_eq!(verdict, expected);
    }

    #[test]
    fn the_replaced_secret_works_for_the_grace_period_and_not_after() {
        let (r, old) = record();
        let l = lifetimes();
        let new = SessionSecret::from_bytes([2; 32]).hash();
        let rotated = r.rotated(new, T0 + DAY, &l);
        let in_grace = rotated.assess(&old, T0 + DAY + 59_999, &l);
        let expected = Assessment::Valid {
            rotate: false,
            touch: false,
            via_previous: true,
        };
        assert_eq!(in_grace, expected);
        let after = rotated.assess(&old, T0 + DAY + 60_000, &l);
        assert_eq!(after, Assessment::Refused(SessionRefusal::RotatedOut));
        assert!(matches!(
            rotated.assess(&new, T0 + DAY + 60_000, &l),
            Assessment::Valid { .. }
        ));
    }

    #[test]
    fn a_secret_that_matches_neither_hash_is_unknown() {
        let (r, _) = record();
        let stranger = SessionSecret::from_bytes([3; 32]).hash();
        let verdict = r.assess(&stranger, T0, &lifetimes());
        assert_eq!(verdict, Assessment::Refused(SessionRefusal::Unknown));
    }

    #[test]
    fn use_is_recorded_at_most_once_a_minute() {
        let (r, h) = record();
        let l = lifetimes();
        assert!(matches!(
            r.assess(&h, T0 + 59_999, &l),
            Assessment::Valid { touch: false, .. }
        ));
        assert!(matches!(
            r.assess(&h, T0 + 60_000, &l),
            Assessment::Valid { touch: true, .. }
        ));
    }
}
