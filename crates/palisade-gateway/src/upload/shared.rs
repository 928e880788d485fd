//! What upload inspection keeps for the life of the process: the spool directory, prepared
//! and emptied once at start-up, and the gate bounding concurrent image decodes. Both
//! survive configuration reloads; the `[[upload]]` rules and the scanner address do not
//! (each reload builds a new [`UploadService`] over these).
//!
//! Spooled bodies are unlinked temporary files and leave no name behind, but a crash
//! between creating and unlinking a file (where the kernel lacks `O_TMPFILE`) could; the
//! directory is therefore palisade's alone and emptied on start.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use palisade_policy::upload::UploadConfig;
use tracing::info;

use super::{DecodeGate, SpoolSettings, UploadOptions, UploadService};

/// The upload machinery's process-wide parts.
#[derive(Debug, Clone)]
pub struct UploadShared {
    options: UploadOptions,
    decode: DecodeGate,
}

impl UploadShared {
    /// Prepares `spool.dir` (created with mode 0700 if missing, refused if another user
    /// owns it or others may write to it) and removes whatever files a previous run left.
    pub fn start(spool: SpoolSettings) -> io::Result<Self> {
        prepare_dir(&spool.dir)?;
        let removed = empty_dir(&spool.dir)?;
        if removed > 0 {
            info!(spool.dir = %spool.dir.display(), spool.removed = removed,
                  "removed files left in the upload spool by a previous run");
        }
        Ok(Self::unprepared(spool))
    }

    /// The same without touching the disk (tests and tools that spool into a directory
    /// they own).
    pub fn unprepared(spool: SpoolSettings) -> Self {
        let options = UploadOptions {
            spool,
            ..UploadOptions::default()
        };
        let decode = DecodeGate::new(options.decode_concurrency);
        Self { options, decode }
    }

    /// Where bodies are spooled.
    pub fn spool_dir(&self) -> &Path {
        &self.options.spool.dir
    }

    /// A service for `config` sharing this spool and decode gate.
    pub fn service(&self, config: UploadConfig) -> UploadService {
        UploadService::with_decode_gate(config, self.options.clone(), self.decode.clone())
    }
}

/// The default spool directory: `palisade-spool-<uid>` in the system temporary directory,
/// one per user, so that palisades run by different users never share (or refuse) one.
pub fn default_spool_dir() -> PathBuf {
    let name = own_uid().map_or_else(
        || "palisade-spool".to_owned(),
        |uid| format!("palisade-spool-{uid}"),
    );
    std::env::temp_dir().join(name)
}

fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(annotate(dir, e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| annotate(dir, e))?;
    vet_existing_dir(dir, &meta)
}

/// What start-up asks of a spool directory that already exists, as `palisade check` asks
/// it too: ours, a real directory, closed to others. In a shared /tmp, another user could
/// otherwise create it first and watch or swap the files palisade spools.
pub(crate) fn vet_existing_dir(dir: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("upload spool {}: {why}; set [spool] dir", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("not a directory (a symbolic link or a file)");
    }
    if own_uid().is_some_and(|uid| uid != meta.uid()) {
        return refuse("owned by another user");
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return refuse("writable by other users (chmod 700 it)");
    }
    Ok(())
}

/// The effective user id, read from `/proc` (the owner of `/proc/self`).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Removes the files directly inside `dir` (never directories or anything outside it).
fn empty_dir(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| annotate(dir, e))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            // Another palisade starting on the same directory got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(annotate(dir, e)),
        }
    }
    Ok(removed)
}

fn annotate(dir: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("upload spool {}: {error}", dir.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            memory_limit: 1024,
            ..SpoolSettings::default()
        }
    }

    #[test]
    fn start_creates_a_private_directory_and_empties_an_existing_one() {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("spool");
        UploadShared::start(settings(&dir)).expect("created");
        let mode = std::fs::metadata(&dir)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        std::fs::write(dir.join("left-over"), b"x").expect("write");
        std::fs::create_dir(dir.join("keep")).expect("mkdir");
        UploadShared::start(settings(&dir)).expect("reused");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["keep"]);
    }

    #[test]
    fn a_directory_others_can_write_to_is_refused() {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("open");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = UploadShared::start(settings(&dir)).expect_err("world-writable");
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }

    #[test]
    fn a_symlink_in_place_of_the_directory_is_refused() {
        let parent = tempfile::tempdir().expect("temp dir");
        let target = parent.path().join("elsewhere");
        std::fs::create_dir(&target).expect("mkdir");
        let link = parent.path().join("spool");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = UploadShared::start(settings(&link)).expect_err("symlink");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
