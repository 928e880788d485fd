//! The gateway: the reverse proxy, the ordered request pipeline, the admin listener,
//! metrics, events and configuration loading. It adapts the policy crates to HTTP.
//!
//! The path of a request: [`server`] accepts and guards the connection ([`conn`],
//! [`framing`]), [`gateway::Gateway::handle`] runs the [`pipeline`] and forwards through
//! [`proxy`], and every decision is an [`events::Event`]. `docs/pipeline.md` walks through
//! it. This crate never logs secrets (tokens, cookies, query strings, bodies).

pub mod admin;
pub mod advice;
pub mod body;
mod byte_set;
pub mod client_ip;
pub mod config;
pub mod conn;
pub mod demo_app;
pub mod error;
pub mod events;
pub mod forwarding;
pub mod framing;
pub mod gateway;
pub mod grpc;
pub mod http1;
pub mod metrics;
pub mod pipeline;
pub mod proxy;
pub mod send_watch;
pub mod serve;
pub mod server;
pub mod services;
pub mod sessions;
pub mod tls;
pub mod upload;
pub mod upstream_pool;
pub mod upstream_tls;
pub mod waf;
