//! Policy logic with no knowledge of HTTP servers or databases: rate-limit algorithms,
//! security header sets, session lifecycle, CSRF tokens, upload inspection. Every function
//! takes the current time as an argument; nothing here reads the clock or does I/O.
//! The store traits that `palisade-store` implements are defined here.

pub mod challenge;
pub mod clock;
pub mod csrf;
pub mod headers;
pub mod identity;
pub mod ratelimit;
pub mod session;
pub mod units;
pub mod upload;
