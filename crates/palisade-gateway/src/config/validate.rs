//! Checks that serde cannot make: the sections owned by other crates validate themselves
//! (`StateConfig::validate`, `HeaderPolicy::from_config`), and their errors are placed at
//! the line of the key they name.

use std::path::Path;

use palisade_policy::headers::HeaderPolicy;
use palisade_policy::session::StoreKind;
use palisade_store::ratelimit::{BackendKind, RedisUrl, StateConfig};
use palisade_store::redis_conn;

use super::{Config, Diagnostic};

/// Every problem found in the sections' own validation, located in `text`.
pub(super) fn sections(config: &Config, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    if let Err(err) = state_as_served(config).validate() {
        let offset = locate(text, "state", err.field);
        diagnostics.push(Diagnostic::at(path, text, offset, err.to_string()));
    }
    if let Some(url) = &config.state.redis_url {
        if url.0.contains('@') {
            let offset = locate(text, "state", "redis_url");
            let message = "state.redis_url: credentials must not be in the config file (set \
                           the PALISADE_REDIS_URL environment variable instead)";
            diagnostics.push(Diagnostic::at(path, text, offset, message.into()));
        }
    }
    diagnostics.extend(session_redis_at_its_line(config, path, text));
    for key in config.upstream.tls_without_https() {
        let offset = locate(text, "upstream", key);
        let message = format!(
            "upstream.{key}: is set but the upstream URL is http:// (plain text): write \
             https:// for TLS, or remove {key}"
        );
        diagnostics.push(Diagnostic::at(path, text, offset, message));
    }
    if let Some((key, message)) = config.upstream.half_client_pair() {
        let other = if key == "client_key" {
            "client_cert"
        } else {
            "client_key"
        };
        let offset = locate(text, "upstream", other);
        let message = format!("upstream.{key}: {message}");
        diagnostics.push(Diagnostic::at(path, text, offset, message));
    }
    // A zero head timeout cuts every connection before its first request arrives.
    let server = &config.server;
    for (key, duration, example) in [
        ("header_read_timeout", server.header_read_timeout, "10s"),
        ("body_read_timeout", server.body_read_timeout, "30s"),
    ] {
        if duration.0.is_zero() {
            let offset = locate(text, "server", key);
            let message = format!("server.{key}: must be longer than 0s, such as \"{example}\"");
            diagnostics.push(Diagnostic::at(path, text, offset, message));
        }
    }
    diagnostics.extend(bounds(config, path, text));
    if let Err(err) = HeaderPolicy::from_config(&config.headers) {
        let key = err.field.rsplit('.').next().unwrap_or(&err.field);
        let offset = locate(text, "headers", key);
        diagnostics.push(Diagnostic::at(path, text, offset, err.to_string()));
    }
    diagnostics
}

/// `[state]` as the file's checks see it. A URL with a password can only come from the
/// environment, and is checked once read (`Config::read_environment`), so a file without
/// one is not wrong when `PALISADE_REDIS_URL` is set: a stand-in URL lets the section's
/// other keys be checked, and placed at their lines, all the same.
fn state_as_served(config: &Config) -> std::borrow::Cow<'_, StateConfig> {
    let state = &config.state;
    if state.redis_url.is_some() || std::env::var_os(super::REDIS_URL_ENV).is_none() {
        return std::borrow::Cow::Borrowed(state);
    }
    let stand_in = RedisUrl("rediss://palisade-redis-url.invalid".into());
    std::borrow::Cow::Owned(StateConfig {
        redis_url: Some(stand_in),
        ..state.clone()
    })
}

/// The `[state]` Redis settings as the session store uses them ([`session_redis`]), placed
/// at the key at fault. (With `backend = "redis"`, `StateConfig::validate` checks them.)
fn session_redis_at_its_line(config: &Config, path: &Path, text: &str) -> Option<Diagnostic> {
    // With the URL in `PALISADE_REDIS_URL` (checked once read, `Config::use_redis_url`),
    // `[session] redis_url`'s default is not the one sessions use: nothing to judge here.
    if config.state.redis_url.is_none() && std::env::var_os(super::REDIS_URL_ENV).is_some() {
        return None;
    }
    let (key, message) = session_redis(config)?;
    let offset = locate(text, "state", key);
    Some(Diagnostic::at(
        path,
        text,
        offset,
        format!("state.{key}: {message}"),
    ))
}

/// What `StateConfig::validate` checks of the `[state]` Redis URL, for the session store
/// when only sessions use Redis (`backend = "memory"`): sessions then take `[state]`'s URL
/// (the file's or `PALISADE_REDIS_URL`) when set, so it must be one palisade accepts, and
/// `redis_ca_file` or `redis_client_cert` beside a plain-text URL would connect without the
/// TLS they ask for.
/// Returns the `[state]` key at fault and why.
pub(super) fn session_redis(config: &Config) -> Option<(&'static str, &'static str)> {
    let state = &config.state;
    let session = &config.session.file;
    if session.store != StoreKind::Redis || state.backend == BackendKind::Redis {
        return None;
    }
    let url = match &state.redis_url {
        Some(url) => {
            if let Err(message) = redis_conn::check_url(&url.0) {
                return Some(("redis_url", message));
            }
            &url.0
        }
        None => &session.redis_url,
    };
    let field = state.tls_key_set()?;
    if redis_conn::is_tls(url) {
        return None;
    }
    Some((
        field,
        "is set but the sessions' Redis URL is redis:// (plain text): write rediss:// for TLS",
    ))
}

/// Counts that size threads, queues or buffers at start-up, with their sane range: without
/// a cap, a slip of the keyboard (`workers = 100000`, `queue = 1e12`) ends in palisade
/// failing to start, or dying later, for want of threads or memory, rather than in an error
/// that names the key.
const COUNT_BOUNDS: [(&str, &str, u64, u64, &str); 5] = [
    (
        "server",
        "workers",
        0,
        1024,
        "each is a thread; 0 means one per core",
    ),
    ("server", "max_connections", 1, 1_000_000, "such as 10000"),
    ("server", "max_headers", 1, 1024, "such as 100"),
    ("upstream", "pool_max_idle", 0, 65_536, "such as 256"),
    ("log", "queue", 1, 1_048_576, "such as 8192"),
];

/// The largest request head a client may send: a head is held in memory while it is read.
const MAX_HEADER_SIZE: u64 = 1 << 20;

/// Numbers out of their sane range, each at its key.
fn bounds(config: &Config, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let server = &config.server;
    let values = [
        server.workers,
        server.max_connections,
        server.max_headers,
        config.upstream.pool_max_idle,
        config.log.queue,
    ];
    for ((section, key, min, max, hint), value) in COUNT_BOUNDS.into_iter().zip(values) {
        let value = value as u64;
        if !(min..=max).contains(&value) {
            let message =
                format!("{section}.{key}: must be between {min} and {max} ({hint}), found {value}");
            let at = locate(text, section, key);
            diagnostics.push(Diagnostic::at(path, text, at, message));
        }
    }
    let head = server.max_header_size.0;
    if head == 0 || head > MAX_HEADER_SIZE {
        let message = "server.max_header_size: must be between 1B and 1MB, such as \"32KB\"";
        let at = locate(text, "server", "max_header_size");
        diagnostics.push(Diagnostic::at(path, text, at, message.into()));
    }
    if config.log.repeat_window.0 > super::server::MAX_REPEAT_WINDOW {
        let message =
            "log.repeat_window: must be at most 1h, such as \"10s\" (\"0s\" writes every event)";
        let at = locate(text, "log", "repeat_window");
        diagnostics.push(Diagnostic::at(path, text, at, message.into()));
    }
    if server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.reload_interval.0.is_zero())
    {
        let message = "server.tls.reload_interval: must be longer than 0s, such as \"10s\"";
        let at = locate(text, "server.tls", "reload_interval");
        diagnostics.push(Diagnostic::at(path, text, at, message.into()));
    }
    diagnostics
}

/// The byte range of the first `key = ...` line after the `[section]` header (or of the
/// header when the key is not written there, for a missing key).
pub(super) fn locate(text: &str, section: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    let mut header_at = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            let name = trimmed.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace());
            if header_at.is_some() && !name.starts_with(section) {
                break;
            }
            if name == section || name.starts_with(&format!("{section}.")) {
                header_at.get_or_insert(offset + indent);
            }
        } else if header_at.is_some() && key_of(trimmed) == Some(key) {
            return Some(offset + indent..offset + line.trim_end().len());
        }
        offset += line.len();
    }
    header_at.map(|at| at..at + 1)
}

pub(super) fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    Some(key.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_inside_their_section() {
        let text = "[server]\nredis_url = 1\n[state]\nbackend = \"redis\"\nredis_url = \"x\"\n";
        let range = locate(text, "state", "redis_url").expect("found");
        assert_eq!(&text[range], "redis_url = \"x\"");
        let range = locate(text, "state", "key_prefix").expect("section header");
        assert_eq!(&text[range.start..range.start + 7], "[state]");
        assert_eq!(locate(text, "headers", "x"), None);
    }
}
