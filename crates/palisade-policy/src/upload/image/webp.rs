//! WebP structure (RIFF container, Google's WebP container specification): `RIFF`, a size
//! that must cover exactly the file, `WEBP`, then chunks that stay inside it. The image's
//! dimensions come from VP8X (canvas), VP8 (lossy key frame) or VP8L (lossless) headers.

use super::{
    Collector, ImageInfo, ImageProblem, ImageSettings, Trailer, check_dimensions, le_u16, le_u32,
    push_edit,
};
use crate::upload::edit::Edit;

/// VP8X flag bits for the metadata chunks stripping removes.
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;
/// File offset of the VP8X flags byte (12-byte RIFF header + 8-byte chunk header).
const FLAGS_OFFSET: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    ChunkHeader,
    ChunkHead { fourcc: [u8; 4], size: u32 },
    Skip { remaining: u64 },
    End,
}

/// Streaming WebP checker.
#[derive(Debug)]
pub struct WebpParser {
    settings: ImageSettings,
    state: State,
    held: Collector,
    trailer: Trailer,
    offset: u64,
    riff_end: u64,
    riff_size: u32,
    chunk_start: u64,
    chunk_end: u64,
    chunks: u32,
    vp8x_flags: Option<u8>,
    dimensions: Option<(u32, u32)>,
    has_image: bool,
    removed: u64,
    edits: Vec<Edit>,
}

impl WebpParser {
    /// A checker expecting the RIFF header.
    pub fn new(settings: ImageSettings) -> Self {
        Self {
            settings,
            state: State::Header,
            held: Collector::default(),
            trailer: Trailer::new("WebP RIFF container"),
            offset: 0,
            riff_end: 0,
            riff_size: 0,
            chunk_start: 0,
            chunk_end: 0,
            chunks: 0,
            vp8x_flags: None,
            dimensions: None,
            has_image: false,
            removed: 0,
            edits: Vec::new(),
        }
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        let result = self.run(data);
        self.offset += data.len() as u64;
        result
    }

    fn run(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        let mut pos = 0;
        while pos < data.len() {
            self.step(data, &mut pos)?;
        }
        Ok(())
    }

    fn step(&mut self, data: &[u8], pos: &mut usize) -> Result<(), ImageProblem> {
        match self.state {
            State::Header => {
                if self.held.fill(12, data, pos) {
                    let header = self.held.take();
                    self.header(&header)?;
                }
            }
            State::ChunkHeader => {
                if self.held.is_empty() {
                    self.chunk_start = self.offset + *pos as u64;
                }
                if self.held.fill(8, data, pos) {
                    let header = self.held.take();
                    self.chunk_header(&header)?;
                }
            }
            State::ChunkHead { fourcc, size } => {
                let need = (size as usize).min(10);
                if self.held.fill(need, data, pos) {
                    let head = self.held.take();
                    self.chunk_head(&fourcc, &head)?;
                    self.state = State::Skip {
                        remaining: padded(size) - head.len() as u64,
                    };
                    self.after_skip(0);
                }
            }
            State::Skip { remaining } => {
                let take = remaining.min((data.len() - *pos) as u64);
                *pos += take as usize;
                self.after_skip(take);
            }
            State::End => {
                self.trailer.feed(&data[*pos..])?;
                *pos = data.len();
            }
        }
        Ok(())
    }

    fn header(&mut self, header: &[u8]) -> Result<(), ImageProblem> {
        if &header[0..4] != b"RIFF" || &header[8..12] != b"WEBP" {
            return Err(ImageProblem::broken(
                "WebP does not start with RIFF....WEBP",
            ));
        }
        self.riff_size = le_u32(&header[4..8]);
        if self.riff_size < 4 + 8 {
            return Err(ImageProblem::broken(
                "WebP RIFF size too small for any chunk",
            ));
        }
        self.riff_end = 8 + u64::from(self.riff_size);
        self.state = State::ChunkHeader;
        Ok(())
    }

    fn chunk_header(&mut self, header: &[u8]) -> Result<(), ImageProblem> {
        let fourcc = [header[0], header[1], header[2], header[3]];
        let size = le_u32(&header[4..8]);
        let end = self.chunk_start + 8 + padded(size);
        if end > self.riff_end {
            return Err(ImageProblem::broken(format!(
                "WebP chunk {} runs past the RIFF size",
                String::from_utf8_lossy(&fourcc)
            )));
        }
        self.chunk_end = end;
        self.chunks += 1;
        if self.chunks == 1 && !matches!(&fourcc, b"VP8 " | b"VP8L" | b"VP8X") {
            return Err(ImageProblem::broken(
                "WebP's first chunk is not VP8, VP8L or VP8X",
            ));
        }
        if self.settings.strip_metadata && matches!(&fourcc, b"EXIF" | b"XMP ") {
            push_edit(&mut self.edits, Edit::delete(self.chunk_start..end))?;
            self.removed += end - self.chunk_start;
        }
        self.state = State::ChunkHead { fourcc, size };
        Ok(())
    }

    fn chunk_head(&mut self, fourcc: &[u8; 4], head: &[u8]) -> Result<(), ImageProblem> {
        let too_short = || ImageProblem::broken("WebP image header too short");
        let (width, height) = match fourcc {
            b"VP8X" if self.chunks != 1 => {
                return Err(ImageProblem::broken("WebP VP8X is not the first chunk"));
            }
            b"VP8X" => {
                let h = head.get(..10).ok_or_else(too_short)?;
                self.vp8x_flags = Some(h[0]);
                (1 + le_u24(&h[4..7]), 1 + le_u24(&h[7..10]))
            }
            b"VP8 " => {
                let h = head.get(..10).ok_or_else(too_short)?;
                // Frame tag bit 0 clear = key frame, followed by the start code 9D 01 2A.
                if h[0] & 1 != 0 || h[3..6] != [0x9D, 0x01, 0x2A] {
                    return Err(ImageProblem::broken("WebP VP8 data is not a key frame"));
                }
                (
                    u32::from(le_u16(&h[6..8]) & 0x3FFF),
                    u32::from(le_u16(&h[8..10]) & 0x3FFF),
                )
            }
            b"VP8L" => {
                let h = head.get(..5).ok_or_else(too_short)?;
                if h[0] != 0x2F {
                    return Err(ImageProblem::broken("WebP VP8L signature missing"));
                }
                let bits = le_u32(&h[1..5]);
                (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
            }
            b"ANMF" => {
                self.has_image = true;
                return Ok(());
            }
            _ => return Ok(()),
        };
        if fourcc != b"VP8X" {
            self.has_image = true;
        }
        let checked = check_dimensions(width.into(), height.into(), self.settings)?;
        if self.dimensions.is_none() {
            self.dimensions = Some(checked);
        }
        Ok(())
    }

    fn after_skip(&mut self, taken: u64) {
        let State::Skip { remaining } = self.state else {
            return;
        };
        let remaining = remaining - taken;
        self.state = if remaining > 0 {
            State::Skip { remaining }
        } else if self.chunk_end >= self.riff_end {
            State::End
        } else {
            State::ChunkHeader
        };
    }

    /// Ends the file.
    pub fn finish(mut self) -> Result<ImageInfo, ImageProblem> {
        if self.state != State::End {
            return Err(ImageProblem::broken(
                "truncated WebP (file shorter than its RIFF size)",
            ));
        }
        self.trailer.finish()?;
        if !self.has_image {
            return Err(ImageProblem::broken("WebP has no image data"));
        }
        if self.removed > 0 {
            let size = self.riff_size - self.removed as u32;
            let mut edits = vec![Edit::overwrite(4, &size.to_le_bytes())];
            if let Some(flags) = self.vp8x_flags {
                edits.push(Edit::overwrite(
                    FLAGS_OFFSET,
                    &[flags & !(FLAG_EXIF | FLAG_XMP)],
                ));
            }
            edits.append(&mut self.edits);
            self.edits = edits;
        }
        let (width, height) = self.dimensions.unwrap_or_default();
        Ok(ImageInfo {
            width,
            height,
            edits: self.edits,
        })
    }
}

/// A chunk's size on disk: odd sizes are followed by one pad byte.
fn padded(size: u32) -> u64 {
    u64::from(size) + u64::from(size & 1)
}

fn le_u24(b: &[u8]) -> u32 {
    u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16
}
