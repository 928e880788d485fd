//! What an upload inspection concludes: the one reason a request is refused, which file or
//! field caused it, and the details that go into the event (never to the client).

use std::fmt;

use serde::Serialize;

/// Why an upload is refused. The names are the stable `reason` values of the refusal body
/// and of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A file, field, the body or the number of files is over its limit.
    Size,
    /// The file's bytes are of a type the route does not allow (or of no known type).
    Type,
    /// The declared `Content-Type` or the file-name extension disagrees with the bytes.
    Mismatch,
    /// The image is broken, truncated, or claims more pixels than allowed.
    Image,
    /// Something hides after the image's end marker (HTML, PHP, ZIP, ...).
    Polyglot,
    /// The virus scanner found a signature.
    Malware,
    /// The virus scanner could not give a verdict and the route refuses in that case.
    ScannerUnavailable,
    /// The body or a part of it does not follow `multipart/form-data`, or a file name is
    /// unsafe.
    Malformed,
}

impl Reason {
    /// The stable name used in refusal bodies, events and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Type => "type",
            Self::Mismatch => "mismatch",
            Self::Image => "image",
            Self::Polyglot => "polyglot",
            Self::Malware => "malware",
            Self::ScannerUnavailable => "scanner_unavailable",
            Self::Malformed => "malformed",
        }
    }

    /// The HTTP status this refusal answers with: 413 for sizes, 415 for types, 503 when the
    /// scanner is unavailable, 400 for malformed bodies and 422 for content refused on
    /// inspection (broken images, polyglots, malware).
    pub fn http_status(self) -> u16 {
        match self {
            Self::Size => 413,
            Self::Type | Self::Mismatch => 415,
            Self::Image | Self::Polyglot | Self::Malware => 422,
            Self::ScannerUnavailable => 503,
            Self::Malformed => 400,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file (or form field) a refusal is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRef {
    /// Position among the body's parts (0 for a raw body).
    pub index: usize,
    /// The form field name; `None` for a raw (non-multipart) body.
    pub field: Option<String>,
    /// The file name the client gave, if any.
    pub filename: Option<String>,
    /// Offset of the file's first byte within the request body.
    pub body_offset: u64,
}

impl FileRef {
    /// The name shown to the client as `file`: the field name, or `body` for a raw body.
    pub fn display_name(&self) -> &str {
        self.field.as_deref().unwrap_or("body")
    }
}

/// A refused upload: the reason, the file concerned and the details for the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Why the request is refused.
    pub reason: Reason,
    /// The file or field concerned; `None` when the refusal is about the whole body.
    pub file: Option<FileRef>,
    /// What exactly was wrong, for the event and the operator (may name a signature; never
    /// sent to the client).
    pub detail: String,
    /// How many bytes of the file had been received when it was refused (its whole length
    /// for a complete file); `None` when the refusal is not about a file's content.
    pub file_len: Option<u64>,
}

impl Refusal {
    /// A refusal about the whole body.
    pub fn body(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            file: None,
            detail: detail.into(),
            file_len: None,
        }
    }

    /// A refusal about one file or field.
    pub fn file(reason: Reason, file: &FileRef, detail: impl Into<String>) -> Self {
        Self {
            reason,
            file: Some(file.clone()),
            detail: detail.into(),
            file_len: None,
        }
    }

    /// The same refusal, noting that `len` bytes of the file had been received.
    pub fn with_file_len(self, len: u64) -> Self {
        Self {
            file_len: Some(len),
            ..self
        }
    }

    /// The body answered to the client: `{"error": "upload refused", "reason": ..., "file":
    /// ...}`. It carries no detail, so signatures and internal limits stay private.
    pub fn client_body(&self) -> ClientRefusal {
        ClientRefusal {
            error: "upload refused",
            reason: self.reason,
            file: self.file.as_ref().map(|f| f.display_name().to_owned()),
            message: match self.reason {
                Reason::ScannerUnavailable => Some("uploads are temporarily unavailable"),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(
                f,
                "upload refused ({}) in {}: {}",
                self.reason,
                file.display_name(),
                self.detail
            ),
            None => write!(f, "upload refused ({}): {}", self.reason, self.detail),
        }
    }
}

/// The JSON body of a refusal as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRefusal {
    /// Always `"upload refused"`.
    pub error: &'static str,
    /// The reason, one of the stable names of [`Reason`].
    pub reason: Reason,
    /// The field name of the file concerned (`body` for a raw upload), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A human sentence, present when the client can do something about it (retry later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}
