//! The session store `[session] store` names: memory, SQLite (the default) or Redis.
//!
//! Redis is the server of `[state]` when that section names one (`PALISADE_REDIS_URL` or
//! `[state] redis_url`), so one Redis and one secret serve counters and sessions alike;
//! otherwise `[session] redis_url`. Either way a `rediss://` URL trusts `[state] redis_ca_file`
//! when it is set, as the rate limiter's connection does.

use std::sync::Arc;

use palisade_policy::session::{SessionStore, StoreKind};
use palisade_store::session::{MemorySessionStore, RedisSessionStore, SqliteSessionStore};
use tracing::{info, warn};

use crate::config::Config;
use crate::services::ServicesError;

/// Opens the configured store. SQLite is opened on the blocking pool; Redis must answer.
pub(super) async fn open(config: &Config) -> Result<Arc<dyn SessionStore>, ServicesError> {
    let file = &config.session.file;
    match file.store {
        StoreKind::Memory => Ok(Arc::new(MemorySessionStore::new())),
        StoreKind::Sqlite => {
            let path = file.sqlite_path.clone();
            let shown = path.display().to_string();
            let opened = tokio::task::spawn_blocking(move || SqliteSessionStore::open(&path))
                .await
                .map_err(|err| failed("sqlite", err.to_string()))?
                .map_err(|err| {
                    failed(
                        "sqlite",
                        format!("{err} (set [session] sqlite_path to a writable file)"),
                    )
                })?;
            info!(session.sqlite_path = %shown, "sessions kept in SQLite");
            Ok(Arc::new(opened))
        }
        StoreKind::Redis => {
            let url = redis_url(config);
            let tls = config
                .state
                .redis_tls()
                .map_err(|err| failed("redis", err.to_string()))?;
            let store = RedisSessionStore::connect_with_tls(&url, &tls, &file.redis_prefix)
                .await
                .map_err(|err| failed("redis", err.to_string()))?;
            Ok(Arc::new(store))
        }
    }
}

/// The Redis server for sessions: the `[state]` one when set, else `[session] redis_url`.
fn redis_url(config: &Config) -> String {
    let session_url = &config.session.file.redis_url;
    let Some(state_url) = &config.state.redis_url else {
        return session_url.clone();
    };
    let default = palisade_policy::session::SessionConfig::default().redis_url;
    if *session_url != default && *session_url != state_url.0 {
        warn!(
            "[session] redis_url is ignored: sessions use the Redis server of [state] \
             (PALISADE_REDIS_URL or [state] redis_url)"
        );
    }
    state_url.0.clone()
}

fn failed(store: &'static str, detail: String) -> ServicesError {
    ServicesError::SessionStore { store, detail }
}
