//! The upload sections: `[[upload]]` and `[scanner]` (their shapes and validation live in
//! `palisade_policy::upload`), and `[spool]`, where bodies wait while they are inspected.
//!
//! `[[upload]]` and `[scanner]` are validated together (a rule scans by default only when a
//! scanner exists), once, into [`UploadConfig`]; an error is placed at the key it names, or
//! at the table's header when the key is not written.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use palisade_policy::units::ByteSize;
use palisade_policy::upload::{UploadConfig, UploadConfigError};
use serde::Deserialize;
use toml::Spanned;

use super::{Config, Diagnostic};

/// Largest in-memory buffer a `[spool]` may ask for: the buffer is per upload in flight.
const MAX_MEMORY_LIMIT: u64 = 16 << 20;

/// `[spool]`: where upload bodies are held while they are inspected. Read at start-up only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory for bodies beyond the memory buffer; palisade's alone (created 0700,
    /// emptied on start). Default: `palisade-spool-<uid>` in the system temporary directory.
    pub dir: Option<PathBuf>,
    /// Bytes of each upload kept in memory before it moves to an (unlinked) temporary file.
    /// Default `64KB`, at most `16MB`.
    pub memory_limit: ByteSize,
    /// Disk space all uploads in progress may spool together; an upload that would pass it
    /// is refused with 503 (uploads temporarily unavailable). Default `1GB`.
    pub max_total: ByteSize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: None,
            memory_limit: ByteSize(64 << 10),
            max_total: ByteSize(crate::upload::DEFAULT_MAX_TOTAL),
        }
    }
}

impl SpoolConfig {
    /// The settings the upload machinery reads.
    pub fn settings(&self) -> crate::upload::SpoolSettings {
        crate::upload::SpoolSettings {
            dir: self
                .dir
                .clone()
                .unwrap_or_else(crate::upload::default_spool_dir),
            memory_limit: self.memory_limit.0 as usize,
            budget: crate::upload::SpoolBudget::new(self.max_total.0),
        }
    }
}

/// Validates the upload sections of `config`, parsed from `text` (the contents of `path`).
pub(super) fn validate(
    config: &Config,
    path: &Path,
    text: &str,
) -> Result<UploadConfig, Diagnostic> {
    if config.spool.memory_limit.0 == 0 || config.spool.memory_limit.0 > MAX_MEMORY_LIMIT {
        let span = locate_spool(text, "memory_limit");
        let message = "spool.memory_limit: must be between 1B and 16MB, such as \"64KB\"";
        return Err(Diagnostic::at(path, text, span, message.into()));
    }
    if config.spool.max_total.0 == 0 {
        let span = locate_spool(text, "max_total");
        let message = "spool.max_total: must be at least 1B, such as \"1GB\"";
        return Err(Diagnostic::at(path, text, span, message.into()));
    }
    if config.spool.dir.as_ref().is_some_and(|d| !d.is_absolute()) {
        let span = locate_spool(text, "dir");
        let message = "spool.dir: must be an absolute path, such as \"/var/lib/palisade/spool\"";
        return Err(Diagnostic::at(path, text, span, message.into()));
    }
    UploadConfig::from_sections(&config.upload, config.scanner.as_ref()).map_err(|err| {
        let span = locate_error(text, &err);
        Diagnostic::at(path, text, span, err.to_string())
    })
}

/// Where the sections were written, read again with their spans.
#[derive(Debug, Default, Deserialize)]
struct Spans {
    #[serde(default)]
    upload: Vec<Spanned<Table>>,
    scanner: Option<Spanned<Table>>,
    spool: Option<Spanned<Table>>,
}

type Table = BTreeMap<String, Spanned<toml::Value>>;

/// The span of the key an error names (`upload[1].allowed_types`, `scanner.clamd`).
fn locate_error(text: &str, err: &UploadConfigError) -> Option<Range<usize>> {
    let (table, key) = err.key.split_once('.').unwrap_or((&err.key, ""));
    let index = table
        .strip_prefix("upload[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse::<usize>().ok());
    let spans: Spans = toml::from_str(text).ok()?;
    let found = match index {
        Some(i) => spans.upload.into_iter().nth(i),
        None if table == "scanner" => spans.scanner,
        None => None,
    }?;
    Some(span_of(found, key))
}

/// The span of `key` in the `index`th `[[upload]]` table (0-based).
pub(super) fn locate_key(text: &str, index: usize, key: &str) -> Option<Range<usize>> {
    let spans: Spans = toml::from_str(text).ok()?;
    Some(span_of(spans.upload.into_iter().nth(index)?, key))
}

/// The span of `spool.<key>`.
pub(super) fn locate_spool(text: &str, key: &str) -> Option<Range<usize>> {
    let spans: Spans = toml::from_str(text).ok()?;
    Some(span_of(spans.spool?, key))
}

/// The value of `key` in `table`, or the table itself when the key is not written.
fn span_of(table: Spanned<Table>, key: &str) -> Range<usize> {
    let whole = table.span();
    table
        .into_inner()
        .remove(key)
        .map_or(whole, |value| value.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, String> {
        Config::from_toml(Path::new("p.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn upload_rules_and_the_scanner_are_validated_into_the_config() {
        let config = check(
            "[[upload]]\npath = \"/upload\"\n\n[scanner]\nclamd = \"tcp://127.0.0.1:3310\"\n",
        )
        .expect("valid");
        assert_eq!(config.uploads.rules.len(), 1);
        assert!(
            config.uploads.rules[0].scan,
            "scanning defaults on with a scanner"
        );
        assert!(check("").expect("valid").uploads.rules.is_empty());
    }

    #[test]
    fn errors_point_at_the_key_of_the_right_table() {
        let text = "[[upload]]\npath = \"/a\"\n\n[[upload]]\npath = \"/b\"\n\
                    allowed_types = [\"image/nope\"]\n";
        let err = check(text).expect_err("unknown type");
        assert!(
            err.starts_with("p.toml:6:17: upload[1].allowed_types"),
            "{err}"
        );

        let err = check("[scanner]\nclamd = \"127.0.0.1:3310\"\n").expect_err("no scheme");
        assert!(err.starts_with("p.toml:2:9: scanner.clamd"), "{err}");
    }

    #[test]
    fn errors_about_scanning_and_limits_point_at_their_values() {
        let text = "[server]\nworkers = 1\n\n[[upload]]\npath = \"/a\"\nscan = true\n";
        let err = check(text).expect_err("scan without scanner");
        assert!(err.starts_with("p.toml:6:8: upload[0].scan"), "{err}");
        let text = "[[upload]]\npath = \"/a\"\nmax_files = 0\n";
        let err = check(text).expect_err("zero files");
        assert!(err.starts_with("p.toml:3:13: upload[0].max_files"), "{err}");
    }

    #[test]
    fn spool_settings_are_checked() {
        let err = check("[spool]\nmemory_limit = \"1GB\"\n").expect_err("too much memory");
        assert!(err.starts_with("p.toml:2:16: spool.memory_limit"), "{err}");
        let err = check("[spool]\ndir = \"spool\"\n").expect_err("relative");
        assert!(err.starts_with("p.toml:2:7: spool.dir"), "{err}");
        let config = check("[spool]\ndir = \"/srv/spool\"\n").expect("valid");
        assert_eq!(config.spool.settings().dir, Path::new("/srv/spool"));
        assert_eq!(config.spool.settings().memory_limit, 64 << 10);
        assert_eq!(config.spool.settings().budget.limit(), 1 << 30);
        let err = check("[spool]\nmax_total = \"0B\"\n").expect_err("no room at all");
        assert!(err.starts_with("p.toml:2:13: spool.max_total"), "{err}");
        let config = check("[spool]\nmax_total = \"20MB\"\n").expect("valid");
        assert_eq!(config.spool.settings().budget.limit(), 20 << 20);
    }
}
