//! The checks of `palisade upload check FILE...`: each local file goes through exactly the
//! inspection an upload would (as a raw body named after the file), scanner included when
//! configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_policy::upload::{RequestHead, UploadConfig, UploadRule, UploadSection};
use tokio::io::AsyncReadExt;

use super::inspection::{FileReport, UploadError};
use super::{UploadService, spool::READ_CHUNK};

/// The verdict on one local file.
#[derive(Debug)]
pub struct FileCheck {
    /// The file checked.
    pub path: PathBuf,
    /// Its report, or why it is refused (or could not be read).
    pub outcome: Result<FileReport, UploadError>,
}

impl FileCheck {
    /// Whether the file passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Checks `paths` under the service's first `[[upload]]` rule, or under the default rule
/// (scanning when a scanner is configured) when there is none. The command exits non-zero
/// when any returned check did not pass.
pub async fn check_files(service: &UploadService, paths: &[PathBuf]) -> Vec<FileCheck> {
    let rule = match service.config().rules.first() {
        Some(rule) => Arc::new(rule.clone()),
        None => Arc::new(default_rule(service.config())),
    };
    let mut checks = Vec::with_capacity(paths.len());
    for path in paths {
        let outcome = check_one(service, rule.clone(), path).await;
        checks.push(FileCheck {
            path: path.clone(),
            outcome,
        });
    }
    checks
}

fn default_rule(config: &UploadConfig) -> UploadRule {
    let mut section = UploadSection::with_path("/");
    section.scan = Some(false);
    let mut rule = UploadConfig::from_sections(&[section], None)
        .expect("the default upload rule is valid")
        .rules
        .remove(0);
    rule.scan = config.scanner.is_some();
    rule
}

async fn check_one(
    service: &UploadService,
    rule: Arc<UploadRule>,
    path: &Path,
) -> Result<FileReport, UploadError> {
    let mut file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let head = RequestHead {
        content_length: Some(length),
        file_name: name.as_deref(),
        ..RequestHead::default()
    };
    let mut inspection = service.begin_with(rule, head)?;
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        inspection.feed(&buf[..n]).await?;
    }
    let mut passed = inspection.finish().await?;
    Ok(passed.files.remove(0))
}
