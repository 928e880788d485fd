//! Builds each store for a test and cleans up after it. Shared by several test binaries,
//! each using a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_policy::session::directives::Login;
use palisade_policy::session::{Directives, Resolved, Roles, SessionStore, Sessions, UserId};
use palisade_store::session::{MemorySessionStore, RedisSessionStore, SqliteSessionStore};

/// Where the test Redis listens (`scripts/services up` starts it).
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A store under test and what must be removed afterwards.
pub struct Harness {
    store: Arc<dyn SessionStore>,
    files: Vec<PathBuf>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other test, process or earlier run uses.
pub fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{nanos}-{n}", std::process::id())
}

/// A fresh SQLite file path in the system's temporary directory.
pub fn sqlite_path(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("palisade-{}.db", unique(label)))
}

/// Connects to the test Redis, or fails with instructions.
pub async fn redis_store(prefix: &str) -> RedisSessionStore {
    RedisSessionStore::connect(REDIS_URL, prefix)
        .await
        .unwrap_or_else(|e| {
            panic!("these tests need Redis on 127.0.0.1:6379 (run `scripts/services up`): {e}")
        })
}

impl Harness {
    pub fn memory() -> Self {
        Self {
            store: Arc::new(MemorySessionStore::new()),
            files: Vec::new(),
        }
    }

    pub fn sqlite(label: &str) -> Self {
        let path = sqlite_path(label);
        let store = SqliteSessionStore::open(&path).expect("open a SQLite file in the temp dir");
        let files = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
            .collect();
        Self {
            store: Arc::new(store),
            files,
        }
    }

    pub async fn redis(label: &str) -> Self {
        let prefix = format!("palisade-test:session:{}:", unique(label));
        Self {
            store: Arc::new(redis_store(&prefix).await),
            files: Vec::new(),
        }
    }

    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::clone(&self.store)
    }

    /// Deletes every session the test left (all of them expire by `u64::MAX`), so Redis
    /// keeps no keys of this test, then removes files.
    pub async fn finish(self) {
        self.store.sweep(u64::MAX).await.expect("final sweep");
        drop(self.store);
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Logs `alice` in at `now` and returns the session cookie as a browser sends it back.
pub async fn login(sessions: &Sessions, now: u64) -> String {
    let login = Login {
        user_id: UserId::parse("alice").expect("valid user"),
        roles: Roles::none(),
    };
    let directives = Directives {
        login: Some(login),
        ..Default::default()
    };
    let done = sessions
        .respond(Resolved::default(), directives, Vec::new(), now)
        .await;
    let cookie = done.expect("login").set_cookie.expect("cookie");
    cookie
        .as_str()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}
