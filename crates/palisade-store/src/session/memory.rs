//! Sessions in process memory: for tests, demos and single instances that accept losing
//! every session on restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use palisade_policy::clock::UnixMillis;
use palisade_policy::session::{PublicId, Rotation, SecretHash, SessionRecord, SessionStore};
use palisade_policy::session::{SessionStoreError, UserId};

/// An in-memory [`SessionStore`].
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<PublicId, Entry>,
    /// Current and previous secret hashes → session.
    by_hash: HashMap<[u8; 32], PublicId>,
    by_user: HashMap<UserId, BTreeSet<PublicId>>,
}

#[derive(Debug)]
struct Entry {
    record: SessionRecord,
    expires_at: UnixMillis,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks lookups, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn remove(&mut self, id: &PublicId) -> bool {
        let Some(entry) = self.sessions.remove(id) else {
            return false;
        };
        let record = entry.record;
        self.by_hash.remove(record.secret_hash.as_bytes());
        if let Some(previous) = record.previous {
            self.by_hash.remove(previous.hash.as_bytes());
        }
        if let Some(ids) = self.by_user.get_mut(&record.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&record.user_id);
            }
        }
        true
    }
}

#[async_trait::async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(
        &self,
        record: &SessionRecord,
        expires_at: UnixMillis,
    ) -> Result<(), SessionStoreError> {
        let mut inner = self.lock();
        let id = record.public_id;
        inner.by_hash.insert(*record.secret_hash.as_bytes(), id);
        inner
            .by_user
            .entry(record.user_id.clone())
            .or_default()
            .insert(id);
        inner.sessions.insert(
            id,
            Entry {
                record: record.clone(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn find_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<SessionRecord>, SessionStoreError> {
        let inner = self.lock();
        let record = inner
            .by_hash
            .get(hash.as_bytes())
            .and_then(|id| inner.sessions.get(id))
            .map(|entry| entry.record.clone());
        Ok(record)
    }

    async fn touch(
        &self,
        id: &PublicId,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<bool, SessionStoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.sessions.get_mut(id) else {
            return Ok(false);
        };
        entry.record.last_seen_at = now;
        entry.expires_at = expires_at;
        Ok(true)
    }

    async fn rotate(&self, id: &PublicId, rotation: &Rotation) -> Result<bool, SessionStoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.sessions.get_mut(id) else {
            return Ok(false);
        };
        if entry.record.secret_hash != rotation.expected_current {
            return Ok(false);
        }
        let dropped = entry.record.previous.map(|p| p.hash);
        entry.record.previous = Some(palisade_policy::session::record::PreviousSecret {
            hash: rotation.expected_current,
            valid_until: rotation.previous_valid_until,
        });
        entry.record.secret_hash = rotation.new_hash;
        entry.record.last_seen_at = rotation.at;
        entry.record.rotated_at = rotation.at;
        entry.expires_at = rotation.expires_at;
        if let Some(dropped) = dropped {
            inner.by_hash.remove(dropped.as_bytes());
        }
        inner.by_hash.insert(*rotation.new_hash.as_bytes(), *id);
        Ok(true)
    }

    async fn delete(&self, id: &PublicId) -> Result<bool, SessionStoreError> {
        Ok(self.lock().remove(id))
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, SessionStoreError> {
        let inner = self.lock();
        let ids = inner.by_user.get(user).into_iter().flatten();
        let mut records: Vec<SessionRecord> = ids
            .filter_map(|id| inner.sessions.get(id))
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.record.clone())
            .collect();
        records.sort_by_key(|r| (r.created_at, r.public_id));
        Ok(records)
    }

    async fn delete_by_user(&self, user: &UserId) -> Result<u64, SessionStoreError> {
        let mut inner = self.lock();
        let ids: Vec<PublicId> = inner
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        Ok(ids.iter().filter(|id| inner.remove(id)).count() as u64)
    }

    async fn sweep(&self, now: UnixMillis) -> Result<u64, SessionStoreError> {
        let mut inner = self.lock();
        let expired: Vec<PublicId> = inner
            .sessions
            .iter()
            .filter(|(_, entry)| entry.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        Ok(expired.iter().filter(|id| inner.remove(id)).count() as u64)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
