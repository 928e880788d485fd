//! Sessions in Redis, shared by every palisade instance.
//!
//! Each operation is one Lua script, so it is atomic and costs one round trip (a rotation
//! is a compare-and-swap: two instances cannot both rotate one session). Session keys
//! carry TTLs matching their expiry, so Redis drops expired sessions by itself; the
//! sweeper only cleans the indexes. The layout is described in `lua/common.lua`.

use std::collections::HashMap;

use palisade_policy::clock::UnixMillis;
use palisade_policy::session::{PublicId, Rotation, SecretHash, SessionRecord, SessionStore};
use palisade_policy::session::{SessionStoreError, UserId};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::codec::StoredFields;
use crate::redis_conn::{self, ConnectionError, RedisTls};

/// The longest palisade waits for Redis to connect or to answer one script.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How many expired sessions one sweep script removes before yielding to other clients.
const SWEEP_BATCH: u64 = 500;

macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

/// The scripts, hashed once.
struct Scripts {
    create: Script,
    find: Script,
    touch: Script,
    rotate: Script,
    delete: Script,
    delete_user: Script,
    list_user: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(script!("create.lua")),
            find: Script::new(script!("find.lua")),
            touch: Script::new(script!("touch.lua")),
            rotate: Script::new(script!("rotate.lua")),
            delete: Script::new(script!("delete.lua")),
            delete_user: Script::new(script!("delete_user.lua")),
            list_user: Script::new(script!("list_user.lua")),
            sweep: Script::new(script!("sweep.lua")),
        }
    }
}

/// A [`SessionStore`] in Redis. `C` is any async Redis connection that can be cloned
/// cheaply (a `ConnectionManager`, which reconnects by itself, or a multiplexed connection).
///
/// Keys are built inside the scripts from the prefix, so this store targets a single Redis
/// server (or a primary with replicas), not Redis Cluster.
// TODO: declare every key in KEYS with a hash tag; until then Redis Cluster users cannot
// keep sessions in a cluster.
pub struct RedisSessionStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
    scripts: Scripts,
}

impl<C> std::fmt::Debug for RedisSessionStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore<ConnectionManager> {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`) with a reconnecting connection.
    /// Connecting and each answer are bounded by [`REDIS_TIMEOUT`], so a stalled Redis
    /// turns into `Unavailable` errors rather than hung requests.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, SessionStoreError> {
        Self::connect_with_tls(url, &RedisTls::default(), prefix).await
    }

    /// As [`Self::connect`], and a `rediss://` URL trusts only `tls`'s CA when it has one
    /// (the public web roots otherwise) and presents its client certificate if any.
    pub async fn connect_with_tls(
        url: &str,
        tls: &RedisTls,
        prefix: &str,
    ) -> Result<Self, SessionStoreError> {
        let client = redis_conn::client(url, tls)
            .map_err(|err| SessionStoreError::Unavailable(err.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|err| {
                if err.is_timeout() && redis_conn::is_tls(url) {
                    // A plain-text Redis never answers a TLS handshake: name the likely cause.
                    let cause = ConnectionError::timed_out(true, REDIS_TIMEOUT);
                    return SessionStoreError::Unavailable(cause.to_string());
                }
                unavailable(err)
            })?;
        Ok(Self::with_connection(conn, prefix))
    }
}

impl<C> RedisSessionStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store over an existing connection (shared with other users of Redis); every key
    /// starts with `prefix`.
    pub fn with_connection(conn: C, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            scripts: Scripts::new(),
        }
    }
}

/// A Redis failure as the store's error; a failed TLS handshake says so.
fn unavailable(e: RedisError) -> SessionStoreError {
    match ConnectionError::from(e) {
        ConnectionError::Redis(e) => SessionStoreError::Unavailable(format!("redis: {e}")),
        tls => SessionStoreError::Unavailable(tls.to_string()),
    }
}

/// A Redis TTL for something ending at `end`, seen from `now`: at least 1 ms, since
/// PEXPIRE with zero would delete the key the caller just wrote.
fn ttl(end: UnixMillis, now: UnixMillis) -> u64 {
    end.saturating_sub(now).max(1)
}

fn decode(fields: Vec<String>) -> Result<SessionRecord, SessionStoreError> {
    let mut map: HashMap<String, String> = HashMap::with_capacity(fields.len() / 2);
    let mut pairs = fields.into_iter();
    while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
        map.insert(k, v);
    }
    let text = |k: &str| map.get(k).map(String::as_str).unwrap_or_default();
    let time = |k: &str| -> Result<u64, SessionStoreError> {
        text(k)
            .parse()
            .map_err(|_| SessionStoreError::Corrupt(format!("redis session field {k}")))
    };
    StoredFields {
        public_id: text("id"),
        user_id: text("user"),
        roles: text("roles"),
        secret_hash: text("secret"),
        previous_hash: text("prev"),
        previous_valid_until: time("prev_until")?,
        created_at: time("created")?,
        last_seen_at: time("last_seen")?,
        rotated_at: time("rotated")?,
    }
    .decode()
}

#[async_trait::async_trait]
impl<C> SessionStore for RedisSessionStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn create(
        &self,
        r: &SessionRecord,
        expires_at: UnixMillis,
    ) -> Result<(), SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.create.prepare_invoke();
        call.arg(&self.prefix)
            .arg(r.public_id.to_string())
            .arg(r.user_id.as_str());
        call.arg(r.roles.to_header_value())
            .arg(r.secret_hash.to_hex());
        call.arg(r.created_at)
            .arg(r.last_seen_at)
            .arg(r.rotated_at)
            .arg(expires_at);
        call.arg(ttl(expires_at, r.last_seen_at));
        call.invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn find_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<SessionRecord>, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.find.prepare_invoke();
        call.arg(&self.prefix).arg(hash.to_hex());
        let fields: Option<Vec<String>> =
            call.invoke_async(&mut conn).await.map_err(unavailable)?;
        fields.map(decode).transpose()
    }

    async fn touch(
        &self,
        id: &PublicId,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<bool, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.touch.prepare_invoke();
        call.arg(&self.prefix)
            .arg(id.to_string())
            .arg(now)
            .arg(expires_at);
        call.arg(ttl(expires_at, now));
        let done: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(done == 1)
    }

    async fn rotate(&self, id: &PublicId, r: &Rotation) -> Result<bool, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.rotate.prepare_invoke();
        call.arg(&self.prefix).arg(id.to_string());
        call.arg(r.expected_current.to_hex())
            .arg(r.new_hash.to_hex())
            .arg(r.at);
        call.arg(r.previous_valid_until).arg(r.expires_at);
        call.arg(ttl(r.expires_at, r.at))
            .arg(ttl(r.previous_valid_until, r.at));
        let done: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(done == 1)
    }

    async fn delete(&self, id: &PublicId) -> Result<bool, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.delete.prepare_invoke();
        call.arg(&self.prefix).arg(id.to_string());
        let existed: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(existed == 1)
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.list_user.prepare_invoke();
        call.arg(&self.prefix).arg(user.as_str());
        let lists: Vec<Vec<String>> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        let mut live = Vec::with_capacity(lists.len());
        for fields in lists {
            let expires = expires_field(&fields);
            let record = decode(fields)?;
            if expires.is_none_or(|e| e > now) {
                live.push(record);
            }
        }
        live.sort_by_key(|r| (r.created_at, r.public_id));
        Ok(live)
    }

    async fn delete_by_user(&self, user: &UserId) -> Result<u64, SessionStoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.delete_user.prepare_invoke();
        call.arg(&self.prefix).arg(user.as_str());
        call.invoke_async(&mut conn).await.map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), SessionStoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn sweep(&self, now: UnixMillis) -> Result<u64, SessionStoreError> {
        let mut total = 0;
        loop {
            let mut conn = self.conn.clone();
            let mut call = self.scripts.sweep.prepare_invoke();
            call.arg(&self.prefix).arg(now).arg(SWEEP_BATCH);
            let n: u64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
            total += n;
            if n < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

fn expires_field(fields: &[String]) -> Option<u64> {
    fields
        .chunks_exact(2)
        .find(|pair| pair[0] == "expires")
        .and_then(|pair| pair[1].parse().ok())
}
