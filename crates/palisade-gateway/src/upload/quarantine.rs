//! Keeping refused files for review: each one is written to the quarantine directory as
//! `<id>.bin` with a `<id>.json` note saying when, why and what was declared. Files are
//! created with mode 0600 and never overwrite an existing entry.

use std::io;
use std::path::{Path, PathBuf};

use palisade_policy::clock::UnixMillis;
use palisade_policy::upload::Refusal;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The JSON note beside a quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineNote {
    /// When it was refused, in milliseconds since the Unix epoch.
    pub refused_at_ms: UnixMillis,
    /// The refusal's reason (`malware`, `polyglot`, ...).
    pub reason: String,
    /// What exactly was wrong (signature name, trailing payload, ...).
    pub detail: String,
    /// The form field (`body` for a raw upload).
    pub field: String,
    /// The client's file name, if any.
    pub filename: Option<String>,
    /// Bytes kept.
    pub size: u64,
    /// Whether the whole file was received (a file refused mid-stream is kept in part).
    pub complete: bool,
    /// SHA-256 of the bytes kept, in hex.
    pub sha256: String,
}

/// Writes `bytes` and their note; returns the path of the kept file.
pub async fn keep(
    dir: &Path,
    refusal: &Refusal,
    bytes: Vec<u8>,
    complete: bool,
    now: UnixMillis,
) -> io::Result<PathBuf> {
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = refusal.file.as_ref();
    let note = QuarantineNote {
        refused_at_ms: now,
        reason: refusal.reason.to_string(),
        detail: refusal.detail.clone(),
        field: file.map_or("body", |f| f.display_name()).to_owned(),
        filename: file.and_then(|f| f.filename.clone()),
        size: bytes.len() as u64,
        complete,
        sha256,
    };
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || write_entry(&dir, &note, &bytes))
        .await
        .map_err(io::Error::other)?
}

fn write_entry(dir: &Path, note: &QuarantineNote, bytes: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{}-{}", note.refused_at_ms, &note.sha256[..16]);
    for attempt in 0..100u32 {
        let name = match attempt {
            0 => stem.clone(),
            n => format!("{stem}-{n}"),
        };
        let data_path = dir.join(format!("{name}.bin"));
        match create_new(&data_path) {
            Ok(mut file) => {
                io::Write::write_all(&mut file, bytes)?;
                let mut note_file = create_new(&dir.join(format!("{name}.json")))?;
                let json = serde_json::to_vec_pretty(note).map_err(io::Error::other)?;
                io::Write::write_all(&mut note_file, &json)?;
                return Ok(data_path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "quarantine entry names exhausted",
    ))
}

fn create_new(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
