//! Holding a request body while it is inspected: the first bytes in memory, the rest in an
//! anonymous temporary file, so memory stays bounded whatever the body's size.
//!
//! The temporary file is created unlinked (`O_TMPFILE` where the kernel has it, else
//! created and removed at once), so it has no name to leave behind: dropping the spool on
//! any path (refusal, error, a cancelled request, even a crash) releases it.
//!
//! Every byte on disk is counted against one [`SpoolBudget`] shared by all uploads
//! (`[spool] max_total`): without it, enough concurrent uploads just under their size
//! limits fill the disk palisade shares with its logs and state. A write that would pass
//! the budget fails with [`SpoolFull`], and the upload is refused as temporarily
//! unavailable; the bytes go back to the budget when the last handle on the file drops.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use palisade_policy::upload::edit::{EditCursor, EditPlan};
use tokio::io::AsyncWriteExt;

/// How much a forwarded body is read from the spool at a time.
pub const READ_CHUNK: usize = 64 << 10;

/// Where bodies are spooled, how much of each stays in memory, and the disk budget all of
/// them share.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Directory of the temporary files.
    pub dir: PathBuf,
    /// Bytes kept in memory before the body moves to a file.
    pub memory_limit: usize,
    /// The disk space all spooled bodies may take together. Clones share it.
    pub budget: SpoolBudget,
}

/// The default `[spool] max_total`: 1 GiB.
pub const DEFAULT_MAX_TOTAL: u64 = 1 << 30;

impl Default for SpoolSettings {
    /// The system temporary directory, 64 KiB in memory, and a fresh 1 GiB budget.
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            memory_limit: 64 << 10,
            budget: SpoolBudget::new(DEFAULT_MAX_TOTAL),
        }
    }
}

/// The disk space spooled bodies may take together; clones share one count.
#[derive(Debug, Clone)]
pub struct SpoolBudget {
    inner: Arc<BudgetCount>,
}

#[derive(Debug)]
struct BudgetCount {
    limit: u64,
    used: AtomicU64,
}

/// A spool write was refused because all spooled bodies together would pass the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upload spool full: uploads in progress already hold [spool] max_total ({limit} bytes)")]
pub struct SpoolFull {
    /// The budget, in bytes.
    pub limit: u64,
}

impl SpoolBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(BudgetCount {
                limit,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes spooled to disk now.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` of the budget, or none of it when that would pass the limit.
    fn reserve(&self, bytes: u64) -> Result<(), SpoolFull> {
        let full = SpoolFull {
            limit: self.inner.limit,
        };
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.inner.limit)
            })
            .map(drop)
            .map_err(|_| full)
    }

    fn release(&self, bytes: u64) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A temporary file and the part of the budget it holds, given back when it drops.
#[derive(Debug)]
struct SpoolFile {
    file: std::fs::File,
    budget: SpoolBudget,
    held: u64,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

/// A body being written.
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    memory: Vec<u8>,
    file: Option<tokio::fs::File>,
    /// Budget bytes held for `file`; given back on drop unless moved into the body.
    held: Held,
    len: u64,
}

/// Budget bytes a [`Spool`] holds for its file until the file moves into a
/// [`SpooledBody`] (which gives them back when it drops).
#[derive(Debug)]
struct Held {
    budget: SpoolBudget,
    bytes: u64,
}

impl Held {
    fn grow(&mut self, bytes: u64) -> io::Result<()> {
        self.budget.reserve(bytes).map_err(io::Error::other)?;
        self.bytes += bytes;
        Ok(())
    }

    fn take(&mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

impl Spool {
    /// An empty spool.
    pub fn new(settings: SpoolSettings) -> Self {
        let held = Held {
            budget: settings.budget.clone(),
            bytes: 0,
        };
        Self {
            settings,
            memory: Vec::new(),
            file: None,
            held,
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body has moved to a temporary file.
    pub fn is_on_disk(&self) -> bool {
        self.file.is_some()
    }

    /// Bytes held in memory (never more than the memory limit).
    pub fn memory_len(&self) -> usize {
        self.memory.len()
    }

    /// Appends bytes, moving to a temporary file once the memory limit would be passed.
    /// Bytes bound for the disk are first taken from the budget; when it has too little
    /// left, the write fails with an [`io::Error`] wrapping [`SpoolFull`].
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() <= self.settings.memory_limit {
            self.memory.extend_from_slice(data);
            self.len += data.len() as u64;
            return Ok(());
        }
        let to_disk = match self.file {
            None => self.memory.len() + data.len(),
            Some(_) => data.len(),
        };
        self.held.grow(to_disk as u64)?;
        if self.file.is_none() {
            let dir = self.settings.dir.clone();
            let std_file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
                .await
                .map_err(io::Error::other)??;
            let mut file = tokio::fs::File::from_std(std_file);
            file.write_all(&self.memory).await?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(data).await?;
            // Wait for the write to land, so no write is still in flight on the blocking
            // pool when this returns: a dropped spool then closes its file at once.
            file.flush().await?;
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Everything written, readable at any offset.
    pub async fn into_body(self) -> io::Result<SpooledBody> {
        let storage = match self.file {
            None => Storage::Memory(Bytes::from(self.memory)),
            Some(mut file) => {
                file.flush().await?;
                let mut held = self.held;
                Storage::File(Arc::new(SpoolFile {
                    file: file.into_std().await,
                    budget: held.budget.clone(),
                    held: held.take(),
                }))
            }
        };
        Ok(SpooledBody {
            storage,
            len: self.len,
        })
    }

    /// Reads `range` of what was written so far (for quarantining a refused file).
    pub async fn read_range(&mut self, range: Range<u64>) -> io::Result<Vec<u8>> {
        let range = range.start.min(self.len)..range.end.min(self.len);
        match self.file.as_mut() {
            None => Ok(self.memory[range.start as usize..range.end as usize].to_vec()),
            Some(file) => {
                file.flush().await?;
                let std_file = file.try_clone().await?.into_std().await;
                let len = (range.end - range.start) as usize;
                tokio::task::spawn_blocking(move || read_exact_at(&std_file, range.start, len))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Storage {
    Memory(Bytes),
    File(Arc<SpoolFile>),
}

/// A complete spooled body. Cheap to clone; the temporary file goes when the last clone
/// does.
#[derive(Debug, Clone)]
pub struct SpooledBody {
    storage: Storage,
    len: u64,
}

impl SpooledBody {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads up to `max` bytes at `offset`.
    pub async fn read_at(&self, offset: u64, max: usize) -> io::Result<Bytes> {
        let end = (offset + max as u64).min(self.len);
        let offset = offset.min(end);
        match &self.storage {
            Storage::Memory(bytes) => Ok(bytes.slice(offset as usize..end as usize)),
            Storage::File(file) => {
                let data = read_at(file.clone(), offset, (end - offset) as usize).await?;
                Ok(Bytes::from(data))
            }
        }
    }

    /// A blocking reader over `range`, for decoders running on a blocking thread.
    pub fn range_reader(&self, range: Range<u64>) -> RangeReader {
        RangeReader {
            storage: self.storage.clone(),
            start: range.start,
            end: range.end.min(self.len),
            position: range.start,
        }
    }

    /// The body as it should be forwarded: byte for byte, or with `edits` applied.
    pub fn forward(self, edits: EditPlan) -> ForwardBody {
        ForwardBody {
            content_length: edits.output_len(self.len),
            body: self,
            cursor: edits.into_cursor(),
            position: 0,
        }
    }
}

async fn read_at(file: Arc<SpoolFile>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || read_exact_at(&file.file, offset, len))
        .await
        .map_err(io::Error::other)?
}

fn read_exact_at(file: &std::fs::File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// A `Read + Seek` view of a byte range of a spooled body.
#[derive(Debug)]
pub struct RangeReader {
    storage: Storage,
    start: u64,
    end: u64,
    position: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.end.saturating_sub(self.position)) as usize;
        let read = match &self.storage {
            Storage::Memory(bytes) => {
                let from = self.position as usize;
                buf[..want].copy_from_slice(&bytes[from..from + want]);
                want
            }
            Storage::File(spooled) => spooled.file.read_at(&mut buf[..want], self.position)?,
        };
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let length = (self.end - self.start) as i128;
        let relative = (self.position - self.start) as i128;
        let target = match pos {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(n) => length + i128::from(n),
            SeekFrom::Current(n) => relative + i128::from(n),
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        }
        self.position = self.start + target.min(length) as u64;
        Ok(self.position - self.start)
    }
}

/// The body to send upstream, read from the spool in [`READ_CHUNK`] pieces.
#[derive(Debug)]
pub struct ForwardBody {
    body: SpooledBody,
    cursor: EditCursor,
    position: u64,
    content_length: u64,
}

impl ForwardBody {
    /// The length of what will be sent (the `Content-Length` to forward).
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// The next piece of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        while self.position < self.body.len() {
            let input = self.body.read_at(self.position, READ_CHUNK).await?;
            self.position += input.len() as u64;
            if self.cursor.is_identity() {
                return Ok(Some(input));
            }
            let mut out = Vec::with_capacity(input.len());
            self.cursor.apply(&input, &mut out);
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path, budget: &SpoolBudget) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            memory_limit: 4,
            budget: budget.clone(),
        }
    }

    #[tokio::test]
    async fn spools_share_one_disk_budget_and_give_it_back_when_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let budget = SpoolBudget::new(20);
        let mut first = Spool::new(settings(dir.path(), &budget));
        first.write(b"abc").await.expect("in memory: no budget");
        assert_eq!(budget.used(), 0);
        first.write(b"defghijkl").await.expect("to disk");
        assert_eq!(budget.used(), 12);

        let mut second = Spool::new(settings(dir.path(), &budget));
        let err = second.write(&[0; 9]).await.expect_err("12 + 9 > 20");
        let full = err.get_ref().and_then(|e| e.downcast_ref::<SpoolFull>());
        assert_eq!(full, Some(&SpoolFull { limit: 20 }));
        assert!(!second.is_on_disk());

        let body = first.into_body().await.expect("body");
        assert_eq!(budget.used(), 12, "the body keeps the file and its share");
        let clone = body.clone();
        drop(body);
        assert_eq!(budget.used(), 12);
        drop(clone);
        assert_eq!(budget.used(), 0);
        second.write(&[0; 9]).await.expect("room again");
        drop(second);
        assert_eq!(budget.used(), 0);
    }
}
