//! Gateway-issued sessions: the upstream logs users in and out through response headers,
//! palisade keeps the session server-side and the browser holds only a random secret.
//!
//! Layout: [`config`] (the `[session]` section), [`secret`] (the credential and its hash),
//! [`user`] (validated user ids and roles), [`record`] (lifetimes as pure functions of
//! `now`), [`cookie`] (reading `Cookie`, writing `Set-Cookie`), [`directives`] (the
//! upstream's response headers), [`store`] (the storage contract) and [`manager`] (the
//! service the gateway calls). Nothing here reads the clock, does I/O, or logs; secrets never
//! appear in `Debug` output.

pub mod config;
pub mod cookie;
pub mod directives;
pub mod manager;
pub mod record;
pub mod secret;
pub mod store;
pub mod user;

pub use config::{SessionConfig, SessionSettings, StoreKind};
pub use directives::{DirectiveError, Directives};
pub use manager::{ActiveSession, Resolved, Responded, SessionError, SessionEvent, Sessions};
pub use record::{SessionRecord, SessionRefusal};
pub use secret::{PublicId, SecretHash, SessionSecret};
pub use store::{Rotation, SessionStore, SessionStoreError};
pub use user::{Roles, UserId};
