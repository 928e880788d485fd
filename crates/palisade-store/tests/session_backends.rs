//! What only some stores promise: SQLite sessions survive a restart; Redis sessions are
//! shared by instances and expire through Redis TTLs.

mod support;

use std::sync::Arc;

use palisade_policy::session::{SessionSettings, Sessions};
use palisade_store::session::SqliteSessionStore;
use support::login;

const T0: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

#[tokio::test]
async fn sqlite_sessions_survive_a_restart() {
    let path = support::sqlite_path("restart");
    let cookie = {
        let store = SqliteSessionStore::open(&path).expect("open");
        let sessions = Sessions::new(SessionSettings::defaults(), Arc::new(store));
        login(&sessions, T0).await
    };
    let reopened = SqliteSessionStore::open(&path).expect("reopen");
    let sessions = Sessions::new(SessionSettings::defaults(), Arc::new(reopened));
    let resolved = sessions
        .resolve([cookie.as_bytes()], T0 + 1)
        .await
        .expect("resolve");
    assert_eq!(
        resolved.session.map(|s| s.user_id.as_str().to_owned()),
        Some("alice".into())
    );
    sessions.sweep(u64::MAX).await.expect("cleanup");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The database says who is logged in and with which roles: other local users must not read
/// it, whatever the process's umask, nor its write-ahead log.
#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let path = support::sqlite_path("private");
    let store = SqliteSessionStore::open(&path).expect("open");
    let sessions = Sessions::new(SessionSettings::defaults(), Arc::new(store));
    login(&sessions, T0).await;
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    for file in [path.clone(), wal.into()] {
        let mode = std::fs::metadata(&file)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", file.display());
    }
    drop(sessions);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

#[tokio::test]
async fn sqlite_refuses_a_path_it_cannot_open_with_a_clear_error() {
    let path = std::path::Path::new("/nonexistent-dir/palisade/sessions.db");
    let err = SqliteSessionStore::open(path).expect_err("no such directory");
    assert!(
        err.to_string()
            .contains("/nonexistent-dir/palisade/sessions.db"),
        "{err}"
    );
}

#[tokio::test]
async fn two_instances_sharing_redis_see_the_same_sessions() {
    let prefix = format!("palisade-test:session:{}:", support::unique("shared"));
    let first = Sessions::new(
        SessionSettings::defaults(),
        Arc::new(support::redis_store(&prefix).await),
    );
    let second = Sessions::new(
        SessionSettings::defaults(),
        Arc::new(support::redis_store(&prefix).await),
    );
    let cookie = login(&first, T0).await;
    let seen = second
        .resolve([cookie.as_bytes()], T0 + 1)
        .await
        .expect("resolve");
    let session = seen.session.expect("the other instance knows the session");
    assert!(second.revoke(&session.public_id).await.expect("revoke"));
    let gone = first
        .resolve([cookie.as_bytes()], T0 + 2)
        .await
        .expect("resolve");
    assert!(
        gone.session.is_none(),
        "revocation on one instance holds on the other"
    );
}

#[tokio::test]
async fn redis_session_keys_carry_a_ttl_matching_the_idle_timeout() {
    let prefix = format!("palisade-test:session:{}:", support::unique("ttl"));
    let store = support::redis_store(&prefix).await;
    let sessions = Sessions::new(SessionSettings::defaults(), Arc::new(store));
    let cookie = login(&sessions, T0).await;
    let resolved = sessions
        .resolve([cookie.as_bytes()], T0)
        .await
        .expect("resolve");
    let id = resolved.session.expect("session").public_id;

    let client = redis::Client::open(support::REDIS_URL).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let key = format!("{prefix}s:{id}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("pttl");
    let seven_days = i64::try_from(7 * DAY).expect("fits");
    assert!(ttl > seven_days - 60_000 && ttl <= seven_days, "ttl {ttl}");
    sessions.sweep(u64::MAX).await.expect("cleanup");
    let left: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_unavailable_error_not_a_hang() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = palisade_store::session::RedisSessionStore::connect("redis://127.0.0.1:1", "p:")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        err.to_string().starts_with("session store unavailable"),
        "{err}"
    );
}
