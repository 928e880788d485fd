//! Checks that serde cannot make: the sections owned by other crates validate themselves
//! (`StateConfig::validate`, `HeaderPolicy::from_config`), and their errors are placed at
//! the line of the key they name.

use std::path::Path;

use palisade_policy::headers::HeaderPolicy;

use super::{Config, Diagnostic};

/// Every problem found in the sections' own validation, located in `text`.
pub(super) fn sections(config: &Config, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    if let Err(err) = config.state.validate() {
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
    if config.server.body_read_timeout.0.is_zero() {
        let offset = locate(text, "server", "body_read_timeout");
        let message = "server.body_read_timeout: must be longer than 0s, such as \"30s\"";
        diagnostics.push(Diagnostic::at(path, text, offset, message.into()));
    }
    if let Err(err) = HeaderPolicy::from_config(&config.headers) {
        let key = err.field.rsplit('.').next().unwrap_or(&err.field);
        let offset = locate(text, "headers", key);
        diagnostics.push(Diagnostic::at(path, text, offset, err.to_string()));
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

fn key_of(line: &str) -> Option<&str> {
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
