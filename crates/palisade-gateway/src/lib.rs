//! The gateway: the reverse proxy, the ordered request pipeline, the admin listener,
//! metrics, events and configuration loading. It adapts the policy crates to HTTP.

pub mod upload;
