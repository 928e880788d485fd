//! The stages of the pipeline, one module each. [`super::Pipeline::build`] orders them.

pub mod client_ip;
pub mod conformance;
pub mod csrf;
pub mod identity;
pub mod managed;
pub mod rate_limit;
pub mod security_headers;
pub mod session_cookies;
pub mod upload;
pub mod waf;
