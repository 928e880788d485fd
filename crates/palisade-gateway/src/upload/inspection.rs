//! One upload in progress: the pure inspector, the spool, and the checks that need the
//! whole file (decoding, virus scanning), with quarantine of whatever is refused.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use palisade_policy::upload::{
    ClientRefusal, InspectedBody, InspectedFile, OnScannerError, Reason, Refusal, RequestHead,
    RequestInspector, UploadRule,
};
use serde::Serialize;

use super::UploadService;
use super::clamd::{ScanError, ScanVerdict};
use super::quarantine;
use super::spool::{ForwardBody, Spool, SpoolFull, SpooledBody};

/// How a file fared with the virus scanner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "scan", content = "detail")]
pub enum ScanOutcome {
    /// clamd found nothing.
    Clean,
    /// The rule does not scan.
    NotScanned,
    /// clamd failed and `on_scanner_error = "allow"` let the file through unscanned.
    Unavailable(String),
}

/// A file that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// What the streaming checks found.
    pub file: InspectedFile,
    /// What the scanner said.
    pub scan: ScanOutcome,
}

/// A request whose every file passed: forward `body` upstream, with `Content-Length` set
/// to `body.content_length()` (it differs from the client's when metadata was stripped).
#[derive(Debug)]
pub struct Passed {
    /// The body to forward.
    pub body: ForwardBody,
    /// The files, in body order.
    pub files: Vec<FileReport>,
}

/// A refused upload, with what is needed for the answer and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why, and which file.
    pub refusal: Refusal,
    /// Where the refused file was kept, when the rule has a quarantine directory.
    pub quarantined: Option<PathBuf>,
    /// Why keeping it failed, if it did (the refusal stands regardless).
    pub quarantine_error: Option<String>,
}

impl Refused {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.refusal.reason.http_status()
    }

    /// The JSON body for the client (no details, no signature names).
    pub fn client_body(&self) -> ClientRefusal {
        self.refusal.client_body()
    }

    /// The fields of the `upload.refused` event.
    pub fn event(&self) -> UploadEvent {
        let file = self.refusal.file.as_ref();
        UploadEvent {
            reason: self.refusal.reason.as_str(),
            status: self.status(),
            field: file.map(|f| f.display_name().to_owned()),
            filename: file.and_then(|f| f.filename.clone()),
            signature: match self.refusal.reason {
                Reason::Malware => self
                    .refusal
                    .detail
                    .strip_prefix(FOUND_PREFIX)
                    .map(str::to_owned),
                _ => None,
            },
            detail: self.refusal.detail.clone(),
            quarantined: self.quarantined.clone(),
        }
    }
}

/// How a malware refusal's detail starts; the signature name follows.
const FOUND_PREFIX: &str = "clamd found ";

/// The details of a refusal for the event bus and the log (never for the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadEvent {
    /// `size`, `type`, `mismatch`, `image`, `polyglot`, `malware`, `scanner_unavailable` or
    /// `malformed`.
    pub reason: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// The form field, `body` for a raw upload; absent for body-level refusals.
    pub field: Option<String>,
    /// The client's file name.
    pub filename: Option<String>,
    /// What exactly was wrong (signature name for malware).
    pub detail: String,
    /// The signature clamd found, for a malware refusal.
    pub signature: Option<String>,
    /// Where the file was kept.
    pub quarantined: Option<PathBuf>,
}

/// Why an inspection did not pass.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The upload was refused; answer with [`Refused::status`] and
    /// [`Refused::client_body`].
    #[error("{}", .0.refusal)]
    Refused(Box<Refused>),
    /// The spool could not be written or read (disk full, I/O error): a gateway fault,
    /// answered 500; nothing is forwarded.
    #[error("upload spool failed: {0}")]
    Spool(io::Error),
    /// Uploads in progress already hold `[spool] max_total` on disk: answered 503 (uploads
    /// temporarily unavailable); nothing is forwarded.
    #[error("{0}")]
    SpoolFull(SpoolFull),
}

impl From<io::Error> for UploadError {
    /// A spool write refused by the budget is [`UploadError::SpoolFull`]; any other I/O
    /// failure is [`UploadError::Spool`].
    fn from(err: io::Error) -> Self {
        match err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<SpoolFull>())
        {
            Some(full) => Self::SpoolFull(*full),
            None => Self::Spool(err),
        }
    }
}

impl UploadError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Refused(refused) => refused.status(),
            Self::Spool(_) => 500,
            Self::SpoolFull(_) => 503,
        }
    }

    /// The refusal, when this is one.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            Self::Refused(refused) => Some(refused),
            Self::Spool(_) | Self::SpoolFull(_) => None,
        }
    }
}

/// One upload being inspected. See the module documentation for the order of calls.
#[derive(Debug)]
pub struct UploadInspection {
    inspector: RequestInspector,
    context: Context,
}

/// Everything but the inspector, so that refusals can be handled after the inspector has
/// been consumed.
#[derive(Debug)]
struct Context {
    service: UploadService,
    rule: Arc<UploadRule>,
    content_type: Option<String>,
    spool: Spool,
}

impl UploadInspection {
    pub(super) fn start(
        service: UploadService,
        rule: Arc<UploadRule>,
        head: RequestHead<'_>,
    ) -> Result<Self, UploadError> {
        let inspector = RequestInspector::start(&rule, head).map_err(|refusal| {
            UploadError::Refused(Box::new(Refused {
                refusal,
                quarantined: None,
                quarantine_error: None,
            }))
        })?;
        let spool = Spool::new(service.inner.options.spool.clone());
        Ok(Self {
            inspector,
            context: Context {
                service,
                rule,
                content_type: head.content_type.map(str::to_owned),
                spool,
            },
        })
    }

    /// The rule this upload falls under.
    pub fn rule(&self) -> &UploadRule {
        &self.context.rule
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.inspector.received()
    }

    /// Bytes held in memory by the inspection (parser state plus the in-memory part of the
    /// spool): bounded by the spool's memory limit plus a few KiB, whatever the body size.
    pub fn buffered_len(&self) -> usize {
        self.inspector.buffered_len() + self.context.spool.memory_len()
    }

    /// Whether the body has moved from memory to a temporary file.
    pub fn is_spooled_to_disk(&self) -> bool {
        self.context.spool.is_on_disk()
    }

    /// Takes the next chunk of the body. A refusal here is final: answer it, stop reading
    /// the body, drop the inspection.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.context.spool.write(chunk).await?;
        match self.inspector.feed(chunk) {
            Ok(()) => Ok(()),
            Err(refusal) => Err(self.context.refuse_streaming(refusal).await),
        }
    }

    /// The body is complete: runs the checks that need whole files and returns the body to
    /// forward, or the refusal.
    pub async fn finish(self) -> Result<Passed, UploadError> {
        let Self {
            inspector,
            mut context,
        } = self;
        let inspected = match inspector.finish() {
            Ok(inspected) => inspected,
            Err(refusal) => return Err(context.refuse_streaming(refusal).await),
        };
        context.finish(inspected).await
    }
}

impl Context {
    async fn finish(mut self, inspected: InspectedBody) -> Result<Passed, UploadError> {
        let spool = std::mem::replace(&mut self.spool, Spool::new(Default::default()));
        let body = spool.into_body().await?;
        let mut files = Vec::with_capacity(inspected.files.len());
        for file in &inspected.files {
            self.check_image(&body, file).await?;
            let scan = self.scan(&body, file).await?;
            files.push(FileReport {
                file: file.clone(),
                scan,
            });
        }
        let forward = self.forward(body, inspected).await?;
        Ok(Passed {
            body: forward,
            files,
        })
    }

    async fn check_image(
        &self,
        body: &SpooledBody,
        file: &InspectedFile,
    ) -> Result<(), UploadError> {
        match self.service.inner.decode.check(body, file).await {
            Ok(()) => Ok(()),
            Err(detail) => {
                let refusal = Refusal::file(Reason::Image, &file.file, detail);
                Err(self.refuse_complete(body, file, refusal).await)
            }
        }
    }

    async fn scan(
        &self,
        body: &SpooledBody,
        file: &InspectedFile,
    ) -> Result<ScanOutcome, UploadError> {
        let Some(scanner) = self.service.scanner().filter(|_| self.rule.scan) else {
            return Ok(ScanOutcome::NotScanned);
        };
        let error = match scanner.scan_spooled(body, file.body_range()).await {
            Ok(ScanVerdict::Clean) => return Ok(ScanOutcome::Clean),
            Ok(ScanVerdict::Found(signature)) => {
                let detail = format!("{FOUND_PREFIX}{signature}");
                let refusal = Refusal::file(Reason::Malware, &file.file, detail);
                return Err(self.refuse_complete(body, file, refusal).await);
            }
            Err(error) => error,
        };
        self.scanner_failed(file, &error)
    }

    fn scanner_failed(
        &self,
        file: &InspectedFile,
        error: &ScanError,
    ) -> Result<ScanOutcome, UploadError> {
        if self.rule.on_scanner_error == OnScannerError::Allow {
            tracing::warn!(
                upload.field = file.file.display_name(),
                scanner.error = %error,
                "virus scanner failed; file let through unscanned (on_scanner_error = allow)"
            );
            return Ok(ScanOutcome::Unavailable(error.to_string()));
        }
        let refusal = Refusal::file(Reason::ScannerUnavailable, &file.file, error.to_string());
        Err(UploadError::Refused(Box::new(Refused {
            refusal,
            quarantined: None,
            quarantine_error: None,
        })))
    }

    /// The forwarded body. With metadata stripped, the edited body is inspected again
    /// before anything is sent: removing bytes must not change how the body splits into
    /// parts, nor leave a file that no longer passes.
    async fn forward(
        &self,
        body: SpooledBody,
        inspected: InspectedBody,
    ) -> Result<ForwardBody, UploadError> {
        if inspected.edits.is_empty() {
            return Ok(body.forward(inspected.edits));
        }
        let mut rule = (*self.rule).clone();
        rule.strip_metadata = false;
        let head = RequestHead {
            content_type: self.content_type.as_deref(),
            ..RequestHead::default()
        };
        let refuse = |detail: String| {
            UploadError::Refused(Box::new(Refused {
                refusal: Refusal::body(Reason::Malformed, detail),
                quarantined: None,
                quarantine_error: None,
            }))
        };
        let mut again = RequestInspector::start(&rule, head).map_err(|r| refuse(r.detail))?;
        let mut stripped = body.clone().forward(inspected.edits.clone());
        while let Some(chunk) = stripped.next_chunk().await? {
            again
                .feed(&chunk)
                .map_err(|r| refuse(format!("stripped body: {}", r.detail)))?;
        }
        let again = again
            .finish()
            .map_err(|r| refuse(format!("stripped body: {}", r.detail)))?;
        if again.files.len() != inspected.files.len() || again.fields != inspected.fields {
            return Err(refuse(
                "stripping metadata would change the body's parts".into(),
            ));
        }
        Ok(body.forward(inspected.edits))
    }

    /// A refusal while streaming: keeps what arrived of the file, if quarantining.
    async fn refuse_streaming(&mut self, refusal: Refusal) -> UploadError {
        let (Some(dir), Some(file), Some(len)) = (
            self.rule.quarantine_dir.clone(),
            refusal.file.clone(),
            refusal.file_len.filter(|&n| n > 0),
        ) else {
            return refused(refusal, None, None);
        };
        let range = file.body_offset..file.body_offset + len;
        let complete = refusal.reason != Reason::Size;
        match self.spool.read_range(range).await {
            Ok(bytes) => self.keep(&dir, refusal, bytes, complete).await,
            Err(e) => refused(refusal, None, Some(e.to_string())),
        }
    }

    /// A refusal of a complete file (decoding, malware).
    async fn refuse_complete(
        &self,
        body: &SpooledBody,
        file: &InspectedFile,
        refusal: Refusal,
    ) -> UploadError {
        let Some(dir) = self.rule.quarantine_dir.clone() else {
            return refused(refusal, None, None);
        };
        let range = file.body_range();
        match body
            .read_at(range.start, (range.end - range.start) as usize)
            .await
        {
            Ok(bytes) => self.keep(&dir, refusal, bytes.to_vec(), true).await,
            Err(e) => refused(refusal, None, Some(e.to_string())),
        }
    }

    async fn keep(
        &self,
        dir: &std::path::Path,
        refusal: Refusal,
        bytes: Vec<u8>,
        complete: bool,
    ) -> UploadError {
        let now = self.service.inner.options.clock.now_ms();
        match quarantine::keep(dir, &refusal, bytes, complete, now).await {
            Ok(path) => refused(refusal, Some(path), None),
            Err(e) => refused(refusal, None, Some(e.to_string())),
        }
    }
}

fn refused(
    refusal: Refusal,
    quarantined: Option<PathBuf>,
    quarantine_error: Option<String>,
) -> UploadError {
    UploadError::Refused(Box::new(Refused {
        refusal,
        quarantined,
        quarantine_error,
    }))
}
