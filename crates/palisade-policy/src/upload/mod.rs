//! Upload inspection, pure: configuration, type sniffing by magic bytes, an incremental
//! `multipart/form-data` parser, per-file checks (size, type, declared type and extension,
//! image structure and pixel limits, polyglots, file names) and metadata-stripping plans.
//!
//! Everything here is fed bytes and returns verdicts; it never reads a socket, a file or the
//! clock. The gateway's `upload` module drives it while the body streams, spools the body,
//! decodes images, asks the virus scanner and forwards what passed.
//!
//! Entry point: [`RequestInspector::start`], then [`RequestInspector::feed`] for each piece
//! of the body, then [`RequestInspector::finish`].

pub mod config;
pub mod edit;
pub mod file;
pub mod filename;
pub mod image;
pub mod multipart;
pub mod request;
pub mod sniff;
pub mod verdict;

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use config::{
    ClamdAddress, OnScannerError, ScannerConfig, ScannerSection, UploadConfig, UploadConfigError,
    UploadRule, UploadSection,
};
pub use edit::{Edit, EditPlan};
pub use file::{Declared, FileInspector, FileRules, InspectedFile};
pub use request::{InspectedBody, RequestHead, RequestInspector};
pub use sniff::FileType;
pub use verdict::{ClientRefusal, FileRef, Reason, Refusal};
