//! The session stores: [`MemorySessionStore`], [`SqliteSessionStore`] (the default) and
//! [`RedisSessionStore`], all implementing `palisade_policy::session::SessionStore` with the
//! same behaviour (one test suite runs against all three).
//!
//! Stores persist and index; they decide nothing. They hold secret hashes only, never
//! secrets, and never log.

mod codec;
mod memory;
mod redis;
mod sqlite;

pub use memory::MemorySessionStore;
pub use redis::{REDIS_TIMEOUT, RedisSessionStore};
pub use sqlite::SqliteSessionStore;
