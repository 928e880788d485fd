//! Managed attack detection: request normalisation once per request, then tokenizer-based
//! detectors that score each attack class. No I/O and no clock: the gateway hands in a
//! borrowed [`Request`] and gets a [`Verdict`] back.
//!
//! ```
//! use palisade_waf::{Action, Engine, Header, Request, WafSettings};
//!
//! let engine = Engine::new(WafSettings::default());
//! let headers = [Header::new(b"Host", b"shop.example"), Header::new(b"User-Agent", b"curl/8")];
//! let req = Request {
//!     method: b"GET",
//!     target: b"/search?q=1%27%20OR%20%271%27%3D%271",
//!     version: b"HTTP/1.1",
//!     headers: &headers,
//!     ..Request::default()
//! };
//! let verdict = engine.inspect(&req);
//! assert_eq!(verdict.action, Action::Block);
//! assert_eq!(verdict.findings[0].location.to_string(), "args.q");
//! ```
//!
//! Scores follow Cloudflare's convention: 1 means certainly an attack, 99 clean. Each
//! paranoia level blocks at or below a threshold (see [`Paranoia::threshold`]). Work per
//! request is bounded by [`Limits`]; when a limit cuts inspection short the verdict says so
//! in [`Verdict::incomplete`].

/// A table with one entry per byte value, each `$value` with `$byte` bound to the byte (a
/// `u8`), built at compile time: for the checks that read every byte of every input.
macro_rules! byte_table {
    ($zero:expr, |$byte:ident| $value:expr) => {{
        let mut table = [$zero; 256];
        let mut at = 0;
        while at < 256 {
            let $byte = at as u8;
            table[at] = $value;
            at += 1;
        }
        table
    }};
}
pub(crate) use byte_table;

pub mod class;
pub mod config;
pub mod detect;
mod engine;
pub mod extract;
pub mod normalize;
pub mod request;
pub mod verdict;

pub use class::{AttackClass, DetectorKind};
pub use config::{Exclusion, ExclusionTarget, Mode, Paranoia, WafSettings};
pub use engine::Engine;
pub use extract::{Limits, Location, Source, StopReason};
pub use request::{Header, Request};
pub use verdict::{Action, Finding, Scores, Verdict};
