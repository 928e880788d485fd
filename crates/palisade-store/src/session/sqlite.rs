//! Sessions in an embedded SQLite file: the default store, surviving restarts of a single
//! instance.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool and never stalls the
//! request threads. One connection behind a mutex is enough: each operation is one short
//! statement on an indexed column, and SQLite serialises writers anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};

use palisade_policy::clock::UnixMillis;
use palisade_policy::session::{PublicId, Rotation, SecretHash, SessionRecord, SessionStore};
use palisade_policy::session::{SessionStoreError, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::codec::StoredFields;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS palisade_sessions (
    public_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    previous_hash TEXT NOT NULL DEFAULT '',
    previous_valid_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS palisade_sessions_user ON palisade_sessions (user_id);
CREATE INDEX IF NOT EXISTS palisade_sessions_previous ON palisade_sessions (previous_hash);
CREATE INDEX IF NOT EXISTS palisade_sessions_expiry ON palisade_sessions (expires_at);
";

const COLUMNS: &str = "public_id, user_id, roles, secret_hash, previous_hash, \
                       previous_valid_until, created_at, last_seen_at, rotated_at";

/// A [`SessionStore`] in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteSessionStore {
    /// Opens (creating if needed) the database at `path`. Blocking: call at start-up.
    pub fn open(path: &Path) -> Result<Self, SessionStoreError> {
        create_private(path).map_err(|e| {
            SessionStoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
        })?;
        let conn = Connection::open(path).map_err(|e| {
            SessionStoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `op` with the connection on the blocking pool.
    async fn with_conn<T, F>(&self, op: F) -> Result<T, SessionStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SessionStoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            op(&conn)
        })
        .await
        .map_err(|e| SessionStoreError::Unavailable(format!("sqlite task failed: {e}")))?
    }
}

/// Creates the database file readable and writable by its owner only, if it does not exist:
/// it says who is logged in, with which roles. SQLite gives its `-wal` and `-shm` files the
/// database file's permissions. An existing file keeps the mode its operator gave it.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

fn unavailable(e: rusqlite::Error) -> SessionStoreError {
    SessionStoreError::Unavailable(format!("sqlite: {e}"))
}

/// SQLite integers are signed; times past year 292 million saturate.
fn int(ms: UnixMillis) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<SessionRecord, SessionStoreError>> {
    let text = |i: usize| row.get::<_, String>(i);
    let time = |i: usize| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    let (id, user, roles, secret, previous) = (text(0)?, text(1)?, text(2)?, text(3)?, text(4)?);
    let fields = StoredFields {
        public_id: &id,
        user_id: &user,
        roles: &roles,
        secret_hash: &secret,
        previous_hash: &previous,
        previous_valid_until: time(5)?,
        created_at: time(6)?,
        last_seen_at: time(7)?,
        rotated_at: time(8)?,
    };
    Ok(fields.decode())
}

#[async_trait::async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create(
        &self,
        record: &SessionRecord,
        expires_at: UnixMillis,
    ) -> Result<(), SessionStoreError> {
        let r = record.clone();
        self.with_conn(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO palisade_sessions ({COLUMNS}, expires_at) \
                          VALUES (?1, ?2, ?3, ?4, '', 0, ?5, ?6, ?7, ?8)"
                ),
                params![
                    r.public_id.to_string(),
                    r.user_id.as_str(),
                    r.roles.to_header_value(),
                    r.secret_hash.to_hex(),
                    int(r.created_at),
                    int(r.last_seen_at),
                    int(r.rotated_at),
                    int(expires_at),
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn find_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<SessionRecord>, SessionStoreError> {
        let hex = hash.to_hex();
        self.with_conn(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM palisade_sessions WHERE secret_hash = ?1 \
                 UNION ALL SELECT {COLUMNS} FROM palisade_sessions WHERE previous_hash = ?1 \
                 LIMIT 1"
            );
            let row = conn
                .query_row(&sql, [hex], read_row)
                .optional()
                .map_err(unavailable)?;
            row.transpose()
        })
        .await
    }

    async fn touch(
        &self,
        id: &PublicId,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<bool, SessionStoreError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE palisade_sessions SET last_seen_at = ?2, expires_at = ?3 \
                     WHERE public_id = ?1",
                    params![id, int(now), int(expires_at)],
                )
                .map_err(unavailable)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn rotate(&self, id: &PublicId, rotation: &Rotation) -> Result<bool, SessionStoreError> {
        let (id, r) = (id.to_string(), *rotation);
        self.with_conn(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE palisade_sessions SET previous_hash = secret_hash, \
                     previous_valid_until = ?3, secret_hash = ?4, last_seen_at = ?5, \
                     rotated_at = ?5, expires_at = ?6 \
                     WHERE public_id = ?1 AND secret_hash = ?2",
                    params![
                        id,
                        r.expected_current.to_hex(),
                        int(r.previous_valid_until),
                        r.new_hash.to_hex(),
                        int(r.at),
                        int(r.expires_at),
                    ],
                )
                .map_err(unavailable)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete(&self, id: &PublicId) -> Result<bool, SessionStoreError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let changed = conn
                .execute("DELETE FROM palisade_sessions WHERE public_id = ?1", [id])
                .map_err(unavailable)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, SessionStoreError> {
        let user = user.as_str().to_owned();
        self.with_conn(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM palisade_sessions WHERE user_id = ?1 AND expires_at > ?2 \
                 ORDER BY created_at, public_id"
            );
            let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(params![user, int(now)], read_row)
                .map_err(unavailable)?;
            rows.map(|row| row.map_err(unavailable)?).collect()
        })
        .await
    }

    async fn delete_by_user(&self, user: &UserId) -> Result<u64, SessionStoreError> {
        let user = user.as_str().to_owned();
        self.with_conn(move |conn| {
            let n = conn
                .execute("DELETE FROM palisade_sessions WHERE user_id = ?1", [user])
                .map_err(unavailable)?;
            Ok(n as u64)
        })
        .await
    }

    async fn sweep(&self, now: UnixMillis) -> Result<u64, SessionStoreError> {
        self.with_conn(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM palisade_sessions WHERE expires_at <= ?1",
                    [int(now)],
                )
                .map_err(unavailable)?;
            Ok(n as u64)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
