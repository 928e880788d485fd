//! A bounded, sharded map from string keys to values that go idle at a known time.
//!
//! Both the memory limiter (counters) and the Redis limiter's local cache (keys known to be
//! blocked) keep one. Keys come from clients, so the map must stay within its bound whatever
//! they send: when a shard is full, entries already idle are dropped first, and only if too
//! few are idle are the live entries closest to going idle dropped as well. Each such sweep
//! frees at least an eighth of the shard, so its cost is spread over many insertions.
//!
//! The hasher is seeded at random per map, so clients cannot aim their keys at one bucket.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;
use palisade_policy::clock::UnixMillis;

/// Most shards a map uses; enough that two cores never queue on one lock.
const MAX_SHARDS: usize = 64;
/// Fewest entries a shard is sized for, so small maps do not split into many tiny shards.
const MIN_PER_SHARD: usize = 256;

/// One stored entry.
struct Slot<V> {
    key: Box<str>,
    hash: u64,
    idle_at: UnixMillis,
    value: V,
}

/// A shard on its own cache line, so locking one does not slow its neighbours.
#[repr(align(64))]
struct Shard<V>(Mutex<HashTable<Slot<V>>>);

/// The bounded map.
pub(crate) struct BoundedMap<V> {
    shards: Box<[Shard<V>]>,
    per_shard: usize,
    hasher: foldhash::quality::RandomState,
    evicted_live: AtomicU64,
}

impl<V> BoundedMap<V> {
    /// A map that never holds more than `max_keys` entries (at least one per shard).
    pub(crate) fn new(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let shard_count = (max_keys / MIN_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let shards = (0..shard_count)
            .map(|_| Shard(Mutex::new(HashTable::new())))
            .collect();
        Self {
            shards,
            per_shard: (max_keys / shard_count).max(1),
            hasher: foldhash::quality::RandomState::default(),
            evicted_live: AtomicU64::new(0),
        }
    }

    /// Runs `update` on the value for `key`, inserting `fresh()` first when the key is absent
    /// (or idle at `now`, which counts as absent). `update` returns its result and the time
    /// the value goes idle.
    pub(crate) fn update<R>(
        &self,
        key: &str,
        now: UnixMillis,
        fresh: impl FnOnce() -> V,
        update: impl FnOnce(&mut V) -> (R, UnixMillis),
    ) -> R {
        let hash = self.hasher.hash_one(key);
        let mut table = self.lock(hash);
        if let Some(slot) = table.find_mut(hash, |s| s.hash == hash && *s.key == *key) {
            if slot.idle_at <= now {
                slot.value = fresh();
            }
            let (result, idle_at) = update(&mut slot.value);
            slot.idle_at = idle_at;
            return result;
        }

        let mut value = fresh();
        let (result, idle_at) = update(&mut value);
        self.insert_new(&mut table, key, hash, now, value, idle_at);
        result
    }

    /// Adds an entry known to be absent, making room first when the shard is full.
    fn insert_new(
        &self,
        table: &mut HashTable<Slot<V>>,
        key: &str,
        hash: u64,
        now: UnixMillis,
        value: V,
        idle_at: UnixMillis,
    ) {
        if table.len() >= self.per_shard {
            let evicted = make_room(table, now, self.per_shard);
            self.count_evictions(evicted);
        }
        let slot = Slot {
            key: key.into(),
            hash,
            idle_at,
            value,
        };
        table.insert_unique(hash, slot, |s| s.hash);
    }

    /// Reads the value for `key` if it is present and not idle at `now`.
    #[allow(dead_code)]
    pub(crate) fn read<R>(
        &self,
        key: &str,
        now: UnixMillis,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        let table = self.lock(hash);
        let slot = table.find(hash, |s| s.hash == hash && *s.key == *key)?;
        (slot.idle_at > now).then(|| read(&slot.value))
    }

    /// Stores `value` for `key` until `idle_at`, replacing any previous value.
    #[allow(dead_code)]
    pub(crate) fn insert(&self, key: &str, now: UnixMillis, value: V, idle_at: UnixMillis) {
        let hash = self.hasher.hash_one(key);
        let mut table = self.lock(hash);
        if let Some(slot) = table.find_mut(hash, |s| s.hash == hash && *s.key == *key) {
            slot.value = value;
            slot.idle_at = idle_at;
            return;
        }
        self.insert_new(&mut table, key, hash, now, value, idle_at);
    }

    /// How many entries the map holds, idle ones included.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// The most entries the map will ever hold.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// How many entries were dropped before going idle because the map was full.
    pub(crate) fn evicted_live(&self) -> u64 {
        self.evicted_live.load(Ordering::Relaxed)
    }

    fn lock(&self, hash: u64) -> MutexGuard<'_, HashTable<Slot<V>>> {
        // hashbrown uses the low bits for the bucket and the top 7 for its tag; the shard
        // takes bits from the middle so the three stay independent.
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        // A panic while holding the lock leaves plain counters behind, still usable.
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn count_evictions(&self, evicted: u64) {
        if evicted == 0 {
            return;
        }
        let before = self.evicted_live.fetch_add(evicted, Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(
                ratelimit.max_keys = self.capacity(),
                "rate-limit memory is full of live keys; dropping the counters closest to \
                 expiry, so some clients get a fresh quota: raise [state] memory_max_keys"
            );
        }
    }
}

/// Frees at least an eighth of a full shard: idle entries first, then the live entries that
/// go idle soonest. Returns how many live entries were dropped.
fn make_room<V>(table: &mut HashTable<Slot<V>>, now: UnixMillis, capacity: usize) -> u64 {
    table.retain(|slot| slot.idle_at > now);
    let target = capacity - capacity / 8 - 1;
    if table.len() <= target {
        return 0;
    }
    let excess = table.len() - target;
    let mut idle_times: Vec<UnixMillis> = table.iter().map(|slot| slot.idle_at).collect();
    let (_, &mut cutoff, _) = idle_times.select_nth_unstable(excess - 1);

    // Everything strictly before the cutoff goes, then ties at the cutoff until enough did.
    let mut budget = excess;
    table.retain(|slot| {
        let evict = slot.idle_at < cutoff;
        budget -= usize::from(evict);
        !evict
    });
    table.retain(|slot| {
        let evict = slot.idle_at == cutoff && budget > 0;
        budget -= usize::from(evict);
        !evict
    });
    excess as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_never_holds_more_than_its_bound_under_a_flood_of_distinct_keys() {
        let map = BoundedMap::<u64>::new(1_000);
        for i in 0..50_000u64 {
            map.insert(&format!("flood:{i}"), 0, i, 60_000);
            if i % 97 == 0 {
                assert!(map.len() <= 1_000, "{} keys after {i}", map.len());
            }
        }
        assert!(map.len() <= 1_000);
        assert!(map.len() >= 800, "a full map keeps most of its keys");
        assert!(map.evicted_live() > 0);
    }

    #[test]
    fn idle_entries_are_dropped_before_live_ones() {
        let map = BoundedMap::<&str>::new(300);
        map.insert("blocked", 0, "live", 1_000_000);
        for i in 0..2_000 {
            // Each flood key goes idle 10 ms after it is made; time moves 1 ms per key.
            map.insert(&format!("k{i}"), i, "flood", i + 10);
        }
        assert_eq!(map.read("blocked", 2_000, |v| *v), Some("live"));
        assert_eq!(map.evicted_live(), 0);
    }

    #[test]
    fn live_eviction_drops_the_entries_closest_to_going_idle() {
        let map = BoundedMap::<u64>::new(256);
        map.insert("long-lived", 0, 1, 1_000_000);
        for i in 0..1_000 {
            map.insert(&format!("k{i}"), 0, 0, 500 + i);
        }
        assert_eq!(map.read("long-lived", 0, |v| *v), Some(1));
        assert!(map.len() <= 256);
    }

    #[test]
    fn an_idle_entry_reads_as_absent_and_updates_from_fresh() {
        let map = BoundedMap::<u64>::new(10);
        map.insert("k", 0, 41, 100);
        assert_eq!(map.read("k", 99, |v| *v), Some(41));
        assert_eq!(map.read("k", 100, |v| *v), None);
        let seen = map.update("k", 100, || 7, |v| (*v, 200));
        assert_eq!(seen, 7);
    }
}
