//! Rate-limit decisions sent to Redis together: one `EVALSHA` of `lua/batch.lua` takes every
//! decision waiting when it leaves.
//!
//! A decision that finds fewer than [`MAX_IN_FLIGHT`] batches on their way leaves at once,
//! alone, so nothing waits while Redis keeps up. Decisions that arrive while the batches are
//! on their way wait for the next one and leave together. Under load one script call then
//! carries many decisions: Redis pays its cost per call (reading the command, setting up the
//! script, the reply) once for all of them, and reads and writes a key that appears several
//! times in a batch once. The script takes the decisions in order with the results one call
//! per decision would give, so batching changes no decision.
//!
//! Each thread that decides (each gateway worker) has a queue of its own, whose batches are
//! sent, and answers handed out, by tasks on that thread: one shared queue had a worker's
//! sender wake the other worker for about half the decisions, a cross-thread wake-up (a
//! futex call and a scheduler pass) per request.
//!
//! Batches are sent by tasks of their own, never by a request's task: a request that goes
//! away (its client disconnected) cannot strand the decisions queued behind it, and every
//! waiting decision is answered within [`Batcher::wait_limit`] of being queued whatever
//! happens. A decision given up on before its batch left is never sent.
//!
//! That limit is kept by the senders, with one timer per batch, not by a timer per decision:
//! a tokio timer whose deadline comes before every other of its runtime wakes the runtime's
//! driver (a write to its eventfd, and one more `epoll_wait` round) when it is set, which
//! cost a system call for about every fourth decision (docs/gateway-benchmark.md).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use palisade_policy::clock::UnixMillis;
use palisade_policy::ratelimit::{Algorithm, StoreError};
use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use crate::redis_conn::{ConnectionError, SharedConnection};

/// Batches on their way to Redis at once. Two keep Redis busy while the next batch gathers.
const MAX_IN_FLIGHT: usize = 2;

/// Queues per batcher: threads beyond this many share them (still correct, only slower).
const QUEUES: usize = 8;

/// The queue the current thread uses.
fn queue_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % QUEUES;
    }
    SLOT.with(|slot| *slot)
}

/// Most decisions in one script call (up to 5 arguments each).
const MAX_BATCH: usize = 128;

/// Extra lifetime given to Redis keys past the moment they go idle, so a key never expires
/// while it still matters, whatever the round-trip time.
const EXPIRY_SLACK_MS: u64 = 1_000;

/// Integers per decision, as the policy's functions take them (see [`expand`]), and per
/// script entry in the script's answer.
pub(super) const REPLY_WIDTH: usize = 4;

/// One decision for the script: the key (naming its algorithm and quota) and its arguments.
#[derive(Debug)]
pub(super) struct Ask {
    pub key: String,
    pub algorithm: Algorithm,
    pub limit: u64,
    pub window_ms: u64,
    /// The caller's time (tests only); `None` lets the script read Redis `TIME`.
    pub now: Option<UnixMillis>,
}

/// The script's integers for one decision (see `lua/batch.lua`).
pub(super) type Reply = [i64; REPLY_WIDTH];

/// The first integer of an entry's answer when its key holds something other than a hash
/// (WRONGTYPE): that entry was not decided; the rest of its batch was.
pub(super) const UNUSABLE: i64 = -1;

struct Waiting {
    ask: Ask,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
    queued: Instant,
}

impl Borrow<Ask> for Waiting {
    fn borrow(&self) -> &Ask {
        &self.ask
    }
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    in_flight: usize,
}

/// The queue of decisions for one Redis connection, and the tasks that send them.
pub(super) struct Batcher {
    pub connection: SharedConnection,
    script: redis::Script,
    queues: Box<[Mutex<Queue>]>,
    /// Longest a decision waits for its batch's answer: one batch ahead of it and its own,
    /// each allowed to connect and to run its command.
    wait_limit: Duration,
    batches_sent: AtomicU64,
}

impl Batcher {
    pub fn new(
        connection: SharedConnection,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Self {
            connection,
            script: redis::Script::new(include_str!("lua/batch.lua")),
            queues: (0..QUEUES).map(|_| Mutex::default()).collect(),
            wait_limit: 2 * (connect_timeout + command_timeout),
            batches_sent: AtomicU64::new(0),
        }
    }

    /// Script calls made so far.
    pub fn batches_sent(&self) -> u64 {
        self.batches_sent.load(Ordering::Relaxed)
    }

    /// Queues one decision and waits for its batch's answer, which comes within
    /// [`Self::wait_limit`]. Must be called inside a tokio runtime: a sender task may be
    /// spawned on it.
    pub async fn decide(self: &Arc<Self>, ask: Ask) -> Result<Reply, StoreError> {
        let (reply, answer) = oneshot::channel();
        let slot = queue_slot();
        let queued = Instant::now();
        let start_sender = {
            let mut queue = self.lock(slot);
            queue.waiting.push(Waiting { ask, reply, queued });
            let start = queue.in_flight < MAX_IN_FLIGHT;
            if start {
                queue.in_flight += 1;
            }
            start
        };
        if start_sender {
            tokio::spawn(Arc::clone(self).send_batches(slot));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the batch carrying this decision was dropped (runtime shutting down)".into(),
            ))
        })
    }

    /// Why a decision got no answer from Redis in time.
    fn too_late(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "no decision from redis within {:?}",
            self.wait_limit
        ))
    }

    /// Sends batches until the queue `slot` is empty.
    async fn send_batches(self: Arc<Self>, slot: usize) {
        let mut sender = SenderSlot(Some((&self, slot)));
        while let Some(mut batch) = self.next_batch(slot) {
            // The batch's first decision, queued first, sets how long the batch may take.
            let left = self.wait_limit.saturating_sub(batch[0].queued.elapsed());
            // Boxed: the connection's and the script call's futures inline made this task's
            // future kilobytes long, copied several times at every spawn.
            let sending = Box::pin(self.send(slot, &mut batch));
            let answers = match tokio::time::timeout(left, sending).await {
                Ok(answers) => answers,
                Err(_) => Err(self.too_late()),
            };
            deliver(batch.into_iter().map(|waiting| waiting.reply), answers);
        }
        // `next_batch` gave the place back with the queue's lock held.
        sender.0 = None;
    }

    /// Connects and runs one batch, first leaving out the callers that went away while the
    /// connection was made.
    async fn send(&self, slot: usize, batch: &mut Vec<Waiting>) -> Result<Vec<Reply>, StoreError> {
        // Connecting can take up to `connect_timeout`, or wait for another sender's try.
        let connection = match self.connection.get().await {
            Ok(connection) => connection,
            // Redis cannot be reached now: the decisions queued meanwhile would only wait
            // for another try to fail, so they fail with this one (on_error answers them).
            Err(err) => {
                batch.append(&mut self.lock(slot).waiting);
                return Err(unavailable(err));
            }
        };
        batch.retain(|waiting| !waiting.reply.is_closed());
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.run(batch, connection).await
    }

    /// Takes the next batch, or gives this sender's place back when nothing waits.
    /// Decisions that waited out [`Self::wait_limit`] in the queue are answered so here and
    /// not sent.
    fn next_batch(&self, slot: usize) -> Option<Vec<Waiting>> {
        let mut queue = self.lock(slot);
        // A caller that stopped waiting (its request went away) was not decided by Redis:
        // Redis must not count it.
        queue.waiting.retain(|waiting| !waiting.reply.is_closed());
        // The queue is in the order decisions came, so the late ones are at its front.
        let late = queue
            .waiting
            .iter()
            .take_while(|waiting| waiting.queued.elapsed() >= self.wait_limit)
            .count();
        let late: Vec<Waiting> = queue.waiting.drain(..late).collect();
        let batch = if queue.waiting.is_empty() {
            queue.in_flight -= 1;
            None
        } else {
            let take = queue.waiting.len().min(MAX_BATCH);
            Some(queue.waiting.drain(..take).collect())
        };
        drop(queue);
        if !late.is_empty() {
            deliver(
                late.into_iter().map(|waiting| waiting.reply),
                Err(self.too_late()),
            );
        }
        batch
    }

    /// One script call deciding `batch` in order.
    async fn run(
        &self,
        batch: &[Waiting],
        mut connection: MultiplexedConnection,
    ) -> Result<Vec<Reply>, StoreError> {
        let entries = Entries::of(batch);
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(EXPIRY_SLACK_MS);
        for entry in &entries.list {
            let ask = &batch[entry.first].ask;
            let now = ask.now.map_or_else(String::new, |now| now.to_string());
            invocation
                .key(&ask.key)
                .arg(algorithm_code(ask.algorithm))
                .arg(ask.limit)
                .arg(ask.window_ms)
                .arg(now)
                .arg(entry.count);
        }
        self.batches_sent.fetch_add(1, Ordering::Relaxed);
        let flat = match invocation.invoke_async::<Vec<i64>>(&mut connection).await {
            Ok(flat) => flat,
            // Redis closes connections left idle past its `timeout`, and all of them when it
            // restarts; that shows only when one is next used. One more try, on a new one.
            // TODO: a batch whose connection broke after Redis ran it is counted twice; the
            // cost is up to one batch of extra counts, refusing early, in a rare race. A
            // token per batch with each key's earlier state kept beside it fixes it but cost
            // Redis 20 % more per call (docs/gateway-benchmark.md), so it was not kept.
            Err(err) if err.is_connection_dropped() => {
                let mut fresh = self
                    .connection
                    .replace_dropped(&err)
                    .await
                    .map_err(unavailable)?;
                self.batches_sent.fetch_add(1, Ordering::Relaxed);
                invocation
                    .invoke_async::<Vec<i64>>(&mut fresh)
                    .await
                    .map_err(|err| self.failed(err))?
            }
            Err(err) => return Err(self.failed(err)),
        };
        let out_of_date = || {
            StoreError::Protocol(format!(
                "the batch script answered {} integers for {} entries: the deployed script is \
                 out of date",
                flat.len(),
                entries.list.len()
            ))
        };
        if flat.len() != entries.list.len() * REPLY_WIDTH {
            return Err(out_of_date());
        }
        let summaries: Vec<Reply> = flat
            .chunks_exact(REPLY_WIDTH)
            .map(|chunk| [chunk[0], chunk[1], chunk[2], chunk[3]])
            .collect();
        let fits = |(summary, entry): (&Reply, &Entry)| {
            summary[0] == UNUSABLE
                || usize::try_from(summary[0]).is_ok_and(|allowed| allowed <= entry.count)
        };
        if !summaries.iter().zip(&entries.list).all(fits) {
            return Err(out_of_date());
        }
        let replies = entries
            .placed
            .iter()
            .zip(batch)
            .map(|(&(entry, nth), waiting)| expand(waiting.ask.algorithm, &summaries[entry], nth));
        Ok(replies.collect())
    }

    /// Classifies a failed command, dropping the connection if it broke.
    pub fn failed(&self, err: redis::RedisError) -> StoreError {
        self.connection.report(&err);
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Protocol(err.to_string())
        }
    }

    fn lock(&self, slot: usize) -> MutexGuard<'_, Queue> {
        self.queues[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands each waiting caller its answer, or the batch's error.
fn deliver(
    replies: impl Iterator<Item = oneshot::Sender<Result<Reply, StoreError>>>,
    answers: Result<Vec<Reply>, StoreError>,
) {
    match answers {
        Ok(answers) => {
            for (reply, answer) in replies.zip(answers) {
                // The request may have gone away since its batch left; Redis counted it.
                let _ = reply.send(Ok(answer));
            }
        }
        Err(err) => {
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

/// A connection that could not be had, as the store reports it.
pub(super) fn unavailable(err: ConnectionError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Decision `nth` (0-based) of a script entry, from the entry's answer: the entry's first
/// `allowed` decisions are allowed, each counting one, and the rest refused.
fn expand(algorithm: Algorithm, summary: &Reply, nth: usize) -> Reply {
    let &[allowed, first, second, third] = summary;
    if allowed == UNUSABLE {
        return *summary;
    }
    let nth = i64::try_from(nth).unwrap_or(i64::MAX);
    let used = nth.min(allowed);
    let verdict = i64::from(nth < allowed);
    match algorithm {
        // {allowed, elapsed, previous, current}: the current count grows.
        Algorithm::SlidingWindow => [verdict, first, second, third + used],
        // {allowed, elapsed, count, 0}
        Algorithm::FixedWindow => [verdict, first, second + used, 0],
        // {allowed, tokens, carry, 0}: the tokens shrink.
        Algorithm::TokenBucket => [verdict, first - used, second, 0],
    }
}

/// Decisions of one key at one moment, in a row: one script entry.
struct Entry {
    /// The first of its decisions, in the batch.
    first: usize,
    count: usize,
}

/// A batch's decisions grouped into script entries. In production every decision reads Redis
/// `TIME`, so all decisions of a key in a batch make one entry; with callers' times (tests) a
/// key's decisions at different moments stay apart, in their order.
struct Entries {
    list: Vec<Entry>,
    /// For each decision of the batch, its entry and its place among the entry's decisions.
    placed: Vec<(usize, usize)>,
}

impl Entries {
    fn of<A: Borrow<Ask>>(asks: &[A]) -> Self {
        let key_of = |entry: &Entry| asks[entry.first].borrow().key.as_str();
        let mut list: Vec<Entry> = Vec::new();
        // Each key's last entry: found by reading the entries while they are few (the usual
        // batch: a few keys, hashing each decision's key cost more), by a map once a batch
        // of many clients has more than `SCANNED` of them.
        const SCANNED: usize = 16;
        let mut last_of_key: Option<HashMap<&str, usize>> = None;
        let mut placed = Vec::with_capacity(asks.len());
        for (i, ask) in asks.iter().enumerate() {
            let ask: &Ask = ask.borrow();
            let last = match &last_of_key {
                Some(map) => map.get(ask.key.as_str()).copied(),
                None => list.iter().rposition(|entry| key_of(entry) == ask.key),
            };
            let same = last.filter(|&e| asks[list[e].first].borrow().now == ask.now);
            let entry = same.unwrap_or_else(|| {
                list.push(Entry { first: i, count: 0 });
                let entry = list.len() - 1;
                if let Some(map) = &mut last_of_key {
                    map.insert(&ask.key, entry);
                } else if list.len() > SCANNED {
                    // In order, so each key keeps its last entry.
                    let map = list.iter().enumerate().map(|(e, entry)| (key_of(entry), e));
                    last_of_key = Some(map.collect());
                }
                entry
            });
            placed.push((entry, list[entry].count));
            list[entry].count += 1;
        }
        Self { list, placed }
    }
}

/// A sender's place among the [`MAX_IN_FLIGHT`]: given back if its task ends early (a panic,
/// or the runtime dropping it), so later decisions still start senders.
struct SenderSlot<'a>(Option<(&'a Batcher, usize)>);

impl Drop for SenderSlot<'_> {
    fn drop(&mut self) {
        if let Some((batcher, slot)) = self.0 {
            batcher.lock(slot).in_flight -= 1;
        }
    }
}

/// The algorithm's name in keys and in the script's arguments.
pub(super) fn algorithm_code(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::SlidingWindow => "sw",
        Algorithm::FixedWindow => "fw",
        Algorithm::TokenBucket => "tb",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(key: &str, now: Option<UnixMillis>) -> Ask {
        Ask {
            key: key.to_owned(),
            algorithm: Algorithm::SlidingWindow,
            limit: 10,
            window_ms: 1_000,
            now,
        }
    }

    #[test]
    fn a_keys_decisions_at_one_moment_share_an_entry_and_keep_their_order() {
        let asks = [
            ask("a", None),
            ask("b", None),
            ask("a", None),
            ask("a", None),
        ];
        let entries = Entries::of(&asks);
        let counts: Vec<(usize, usize)> = entries.list.iter().map(|e| (e.first, e.count)).collect();
        assert_eq!(counts, [(0, 3), (1, 1)]);
        // a's decisions are its entry's first, second and third, in their order.
        assert_eq!(entries.placed, [(0, 0), (1, 0), (0, 1), (0, 2)]);
    }

    #[test]
    fn a_keys_decisions_at_different_moments_stay_apart_in_order() {
        let asks = [ask("a", Some(5)), ask("a", Some(7)), ask("a", Some(7))];
        let entries = Entries::of(&asks);
        let counts: Vec<(usize, usize)> = entries.list.iter().map(|e| (e.first, e.count)).collect();
        assert_eq!(counts, [(0, 1), (1, 2)]);
        assert_eq!(entries.placed, [(0, 0), (1, 0), (1, 1)]);
    }

    /// Past the few entries read one by one, the map takes over with the same answers: a
    /// batch of 40 keys, each asked at two moments, grouped as a plain map of each key's
    /// last entry groups them.
    #[test]
    fn a_batch_of_many_keys_is_grouped_as_one_of_few() {
        let asks: Vec<Ask> = (0..200u64)
            .map(|i| ask(&format!("k{}", i * 7 % 40), Some(i % 3 / 2)))
            .collect();
        let mut list: Vec<(usize, usize)> = Vec::new();
        let mut last: HashMap<&str, usize> = HashMap::new();
        let mut placed = Vec::new();
        for (i, a) in asks.iter().enumerate() {
            let entry = match last.get(a.key.as_str()) {
                Some(&e) if asks[list[e].0].now == a.now => e,
                _ => {
                    list.push((i, 0));
                    last.insert(&a.key, list.len() - 1);
                    list.len() - 1
                }
            };
            placed.push((entry, list[entry].1));
            list[entry].1 += 1;
        }
        let entries = Entries::of(&asks);
        let counts: Vec<(usize, usize)> = entries.list.iter().map(|e| (e.first, e.count)).collect();
        assert!(counts.len() > 40, "{}", counts.len());
        assert_eq!(counts, list);
        assert_eq!(entries.placed, placed);
    }

    #[test]
    fn an_entrys_answer_gives_each_decision_its_count_before_it() {
        // Three decisions, two allowed: the third sees both counted and is refused.
        let sliding: Vec<Reply> = (0..3)
            .map(|nth| expand(Algorithm::SlidingWindow, &[2, 400, 7, 5], nth))
            .collect();
        assert_eq!(sliding, [[1, 400, 7, 5], [1, 400, 7, 6], [0, 400, 7, 7]]);
        let fixed: Vec<Reply> = (0..3)
            .map(|nth| expand(Algorithm::FixedWindow, &[1, 400, 9, 0], nth))
            .collect();
        assert_eq!(fixed, [[1, 400, 9, 0], [0, 400, 10, 0], [0, 400, 10, 0]]);
        let bucket: Vec<Reply> = (0..3)
            .map(|nth| expand(Algorithm::TokenBucket, &[2, 2, 30, 0], nth))
            .collect();
        assert_eq!(bucket, [[1, 2, 30, 0], [1, 1, 30, 0], [0, 0, 30, 0]]);
        // None allowed: every decision sees the entry's counts unchanged.
        assert_eq!(
            expand(Algorithm::SlidingWindow, &[0, 400, 7, 9], 4),
            [0, 400, 7, 9]
        );
    }
}
