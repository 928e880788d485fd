//! Implementations of the store traits from `palisade-policy`: memory, SQLite (the embedded
//! default), Redis (shared state between instances) and PostgreSQL (audit, jobs).

pub mod ca;
pub mod client_cert;
pub mod ratelimit;
pub mod redis_conn;
pub mod session;
