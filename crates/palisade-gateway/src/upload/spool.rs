//! Holding a request body while it is inspected: the first bytes in memory, the rest in an
//! anonymous temporary file, so memory stays bounded whatever the body's size.
//!
//! The temporary file is created unlinked (`O_TMPFILE` where the kernel has it, else
//! created and removed at once), so it has no name to leave behind: dropping the spool on
//! any path (refusal, error, a cancelled request, even a crash) releases it.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use palisade_policy::upload::edit::{EditCursor, EditPlan};
use tokio::io::AsyncWriteExt;

/// How much a forwarded body is read from the spool at a time.
pub const READ_CHUNK: usize = 64 << 10;

/// Where bodies are spooled and how much of each stays in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// Directory of the temporary files.
    pub dir: PathBuf,
    /// Bytes kept in memory before the body moves to a file.
    pub memory_limit: usize,
}

impl Default for SpoolSettings {
    /// The system temporary directory and 64 KiB in memory.
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            memory_limit: 64 << 10,
        }
    }
}

/// A body being written.
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    memory: Vec<u8>,
    file: Option<tokio::fs::File>,
    len: u64,
}

impl Spool {
    /// An empty spool.
    pub fn new(settings: SpoolSettings) -> Self {
        Self {
            settings,
            memory: Vec::new(),
            file: None,
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
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() <= self.settings.memory_limit {
            self.memory.extend_from_slice(data);
            self.len += data.len() as u64;
            return Ok(());
        }
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
                Storage::File(Arc::new(file.into_std().await))
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
                let std_file = Arc::new(file.try_clone().await?.into_std().await);
                read_at(std_file, range.start, (range.end - range.start) as usize).await
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Storage {
    Memory(Bytes),
    File(Arc<std::fs::File>),
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

async fn read_at(file: Arc<std::fs::File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    })
    .await
    .map_err(io::Error::other)?
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
            Storage::File(file) => file.read_at(&mut buf[..want], self.position)?,
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
