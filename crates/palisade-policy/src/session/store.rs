//! The contract between the session logic and the places sessions are kept.
//!
//! Stores are persistence and nothing more: every lifecycle decision is made by
//! [`SessionRecord::assess`](super::record::SessionRecord::assess) from the record and
//! `now`. The caller computes each session's `expires_at` and hands it over, so a store
//! can sweep (or let Redis expire) sessions without knowing the configured lifetimes.
//! Implementations live in `palisade-store`: memory, SQLite, Redis.

use crate::clock::UnixMillis;

use super::record::SessionRecord;
use super::secret::{PublicId, SecretHash};
use super::user::UserId;

/// Why a store could not do what was asked. The gateway answers 503 for the request (it
/// never treats a store failure as "no session" for a request that has a cookie).
#[derive(Debug, thiserror::Error)]
pub enum SessionStoreError {
    /// The backend could not be reached, timed out, or failed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The backend holds data palisade cannot read back (edited by hand, or corrupted).
    #[error("session store holds unreadable data: {0}")]
    Corrupt(String),
}

/// A secret replacement, applied only if the session's current secret is still
/// `expected_current` (so two parallel requests cannot both rotate one session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The hash the session must still have.
    pub expected_current: SecretHash,
    /// The new current hash.
    pub new_hash: SecretHash,
    /// When the rotation happens (also recorded as last use).
    pub at: UnixMillis,
    /// Until when the replaced secret keeps working.
    pub previous_valid_until: UnixMillis,
    /// The session's new expiry.
    pub expires_at: UnixMillis,
}

/// Where sessions live.
///
/// Every method is one atomic step. `find_by_secret` may return a session that has
/// expired but was not swept yet; callers judge it with `assess`.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new session that ends at `expires_at` unless touched.
    async fn create(
        &self,
        record: &SessionRecord,
        expires_at: UnixMillis,
    ) -> Result<(), SessionStoreError>;

    /// The session whose current secret, or previous secret, has this hash.
    async fn find_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<SessionRecord>, SessionStoreError>;

    /// Records a use at `now`, moving the expiry to `expires_at`. False when the session
    /// no longer exists.
    async fn touch(
        &self,
        id: &PublicId,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<bool, SessionStoreError>;

    /// Replaces the secret if it is still `rotation.expected_current`. False when the
    /// session is gone or another request rotated it first.
    async fn rotate(&self, id: &PublicId, rotation: &Rotation) -> Result<bool, SessionStoreError>;

    /// Deletes one session. False when it did not exist.
    async fn delete(&self, id: &PublicId) -> Result<bool, SessionStoreError>;

    /// The sessions of a user that have not expired at `now`, oldest first.
    async fn list_by_user(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, SessionStoreError>;

    /// Deletes every session of a user ("log out everywhere"); returns how many there were.
    async fn delete_by_user(&self, user: &UserId) -> Result<u64, SessionStoreError>;

    /// Deletes sessions whose expiry is at or before `now`; returns how many.
    async fn sweep(&self, now: UnixMillis) -> Result<u64, SessionStoreError>;

    /// A short name for logs and metrics: `memory`, `sqlite`, `redis`.
    fn backend(&self) -> &'static str;

    /// Checks that the store answers, for readiness probes. Stores in this process (memory,
    /// a local SQLite file) always do.
    async fn ping(&self) -> Result<(), SessionStoreError> {
        Ok(())
    }
}
