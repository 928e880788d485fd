//! A database that follows its file: replaced files are mapped anew, broken ones refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::database::{DatabaseKind, FileStamp, GeoDatabase, GeoError};

/// The database at a path, swapped for the new one when the file is replaced.
///
/// Readers call [`GeoSource::current`] (a lock-free load) per lookup; a background task of
/// the caller's calls [`GeoSource::refresh`] now and then.
#[derive(Debug)]
pub struct GeoSource {
    path: PathBuf,
    kind: DatabaseKind,
    current: ArcSwap<GeoDatabase>,
    /// The stamp of a replacement that failed to open, so it is not retried (and reported)
    /// on every call until the file changes again.
    refused: Mutex<Option<FileStamp>>,
}

impl GeoSource {
    /// Opens the database at `path`.
    pub fn open(path: &Path, kind: DatabaseKind) -> Result<Self, GeoError> {
        let database = GeoDatabase::open(path, kind)?;
        Ok(Self {
            path: path.to_path_buf(),
            kind,
            current: ArcSwap::from_pointee(database),
            refused: Mutex::new(None),
        })
    }

    /// The database in force.
    pub fn current(&self) -> Arc<GeoDatabase> {
        self.current.load_full()
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the file again if it changed since it was opened. `Ok(true)`: a new database is
    /// in force; `Ok(false)`: unchanged; `Err`: the new file is missing or broken and the
    /// database in force stays. A refused file is reported once; the next change to it is
    /// tried again.
    pub fn refresh(&self) -> Result<bool, GeoError> {
        let stamp = FileStamp::of(&self.path).ok();
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if stamp == Some(self.current.load().stamp) || (stamp.is_some() && stamp == *refused) {
            return Ok(false);
        }
        match GeoDatabase::open(&self.path, self.kind) {
            Ok(database) => {
                self.current.store(Arc::new(database));
                *refused = None;
                Ok(true)
            }
            Err(err) => {
                *refused = stamp;
                Err(err)
            }
        }
    }
}
