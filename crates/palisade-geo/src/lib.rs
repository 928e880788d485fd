//! Geo lookups for WAF rules: the country (`ip.src.country`) and autonomous system
//! (`ip.src.asnum`) of a client address, from MaxMind-format (.mmdb) databases.
//!
//! A [`GeoDatabase`] is one memory-mapped file: opening it costs no reading, and pages are
//! shared with every other process mapping the same file. A [`GeoSource`] follows a path:
//! [`GeoSource::refresh`] notices a replaced file and swaps the new database in; a broken
//! replacement is refused and the database in force stays.
//!
//! This crate reads files and nothing else: no network, no logging (callers log the errors it
//! returns). Its one `unsafe` block is the memory mapping (see `database.rs`); the database
//! file must be replaced by renaming a new file over it, never rewritten in place.

mod database;
mod source;

pub use database::{DatabaseKind, GeoDatabase, GeoError};
pub use source::GeoSource;
