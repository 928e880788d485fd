//! Upload inspection at the gateway: drives the pure inspector of
//! `palisade_policy::upload` while a request body streams in, spools the body, decodes
//! images, asks clamd, quarantines refused files, and hands back either a refusal or the
//! body to forward (byte for byte, or with metadata stripped).
//!
//! The request path, in order:
//! 1. [`UploadService::begin`] picks the `[[upload]]` rule for the method and normalised
//!    path and checks the headers (declared length, multipart boundary).
//! 2. [`UploadInspection::feed`] takes each body chunk as it arrives: spooled (memory, then
//!    an unlinked temporary file) and inspected at once, so a file over its limit or of a
//!    refused type stops the upload on the chunk that shows it.
//! 3. [`UploadInspection::finish`] at the end of the body: checks the body ended properly,
//!    decodes each image, scans each file with clamd, and returns [`Passed`] with a
//!    [`ForwardBody`] to send upstream ([`ForwardBody::into_http_body`] for hyper). Nothing
//!    may be forwarded before this returns.
//!
//! Dropping an inspection at any point (refusal, client gone, timeout) deletes the spool.
//! Nothing here writes to the client or upstream, and nothing here logs file contents.

mod check;
mod clamd;
mod decode;
mod forward;
mod inspection;
mod quarantine;
mod shared;
mod spool;

use std::sync::Arc;

use palisade_policy::clock::{Clock, SystemClock};
use palisade_policy::upload::{RequestHead, UploadConfig, UploadRule};

pub use check::{FileCheck, check_files};
pub use clamd::{ClamdClient, Instream, ScanError, ScanVerdict};
pub use decode::DecodeGate;
pub use forward::ForwardHttpBody;
pub use inspection::{
    FileReport, Passed, Refused, ScanOutcome, UploadError, UploadEvent, UploadInspection,
};
pub use quarantine::QuarantineNote;
pub(crate) use shared::vet_existing_dir;
pub use shared::{UploadShared, default_spool_dir};
pub use spool::{
    DEFAULT_MAX_TOTAL, ForwardBody, RangeReader, Spool, SpoolBudget, SpoolFull, SpoolSettings,
    SpooledBody,
};

/// Settings of the upload machinery that are not in `palisade.toml`.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Where and how bodies are spooled.
    pub spool: SpoolSettings,
    /// Most images decoded at once (each may take up to width × height × 8 bytes).
    pub decode_concurrency: usize,
    /// Time source for quarantine notes.
    pub clock: Arc<dyn Clock>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            spool: SpoolSettings::default(),
            decode_concurrency: 2,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The upload machinery shared by all requests; cheap to clone.
#[derive(Debug, Clone)]
pub struct UploadService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: UploadConfig,
    rules: Vec<Arc<UploadRule>>,
    scanner: Option<ClamdClient>,
    options: UploadOptions,
    decode: DecodeGate,
}

impl UploadService {
    /// Builds the service from validated configuration.
    pub fn new(config: UploadConfig, options: UploadOptions) -> Self {
        let decode = DecodeGate::new(options.decode_concurrency);
        Self::with_decode_gate(config, options, decode)
    }

    /// Builds the service around an existing decode gate, so that services built on
    /// successive reloads share one bound on concurrent decodes
    /// (`options.decode_concurrency` is then ignored).
    pub fn with_decode_gate(
        config: UploadConfig,
        options: UploadOptions,
        decode: DecodeGate,
    ) -> Self {
        let scanner = config.scanner.as_ref().map(ClamdClient::new);
        let rules = config.rules.iter().cloned().map(Arc::new).collect();
        Self {
            inner: Arc::new(Inner {
                config,
                rules,
                scanner,
                options,
                decode,
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &UploadConfig {
        &self.inner.config
    }

    /// The clamd client, when a scanner is configured.
    pub fn scanner(&self) -> Option<&ClamdClient> {
        self.inner.scanner.as_ref()
    }

    /// Starts inspecting a request if it is an upload: `None` when no `[[upload]]` rule
    /// matches `method` and `path` (forward as usual), `Some(Err)` when the headers alone
    /// refuse it. `path` must be the normalised path the WAF sees.
    pub fn begin(
        &self,
        method: &str,
        path: &str,
        head: RequestHead<'_>,
    ) -> Option<Result<UploadInspection, UploadError>> {
        let config = &self.inner.config;
        let chosen = config.rule_for(method, path)?;
        let index = config.rules.iter().position(|r| std::ptr::eq(r, chosen))?;
        Some(self.begin_with(self.inner.rules[index].clone(), head))
    }

    /// Starts inspecting a body under a given rule.
    pub fn begin_with(
        &self,
        rule: Arc<UploadRule>,
        head: RequestHead<'_>,
    ) -> Result<UploadInspection, UploadError> {
        UploadInspection::start(self.clone(), rule, head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The gateway holds these across `.await` points in a multi-threaded runtime.
    #[test]
    fn inspections_and_their_futures_are_send() {
        let service = UploadService::new(UploadConfig::default(), UploadOptions::default());
        assert_send(&service);
        let section = palisade_policy::upload::UploadSection::with_path("/");
        let config = UploadConfig::from_sections(&[section], None).expect("valid");
        let rule = Arc::new(config.rules[0].clone());
        let Ok(mut inspection) = service.begin_with(rule, RequestHead::default()) else {
            panic!("a raw body starts");
        };
        assert_send(&inspection);
        assert_send(&inspection.feed(b"x"));
        assert_send(&inspection.finish());
    }
}
