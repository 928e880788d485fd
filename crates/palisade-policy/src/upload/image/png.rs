//! PNG structure (ISO/IEC 15948, RFC 2083): signature, chunks with verified CRCs, IHDR
//! first, IDAT run unbroken, IEND last, nothing after it.

use super::{
    Collector, ImageInfo, ImageProblem, ImageSettings, Trailer, be_u32, check_dimensions, push_edit,
};
use crate::upload::edit::Edit;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Chunks carrying metadata that stripping removes: EXIF, text (including XMP, which lives
/// in `iTXt`) and the modification time.
const METADATA_CHUNKS: [&[u8; 4]; 5] = [b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Signature,
    ChunkHeader,
    Ihdr,
    ChunkData { remaining: u32 },
    Crc,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdatRun {
    NotYet,
    Inside,
    Over,
}

/// Streaming PNG checker.
#[derive(Debug)]
pub struct PngParser {
    settings: ImageSettings,
    state: State,
    held: Collector,
    trailer: Trailer,
    /// File offset of the current piece's first byte.
    offset: u64,
    chunk_start: u64,
    chunk_type: [u8; 4],
    crc: crc32fast::Hasher,
    dimensions: Option<(u32, u32)>,
    color_type: u8,
    seen_plte: bool,
    idat: IdatRun,
    edits: Vec<Edit>,
}

impl PngParser {
    /// A checker expecting the PNG signature.
    pub fn new(settings: ImageSettings) -> Self {
        Self {
            settings,
            state: State::Signature,
            held: Collector::default(),
            trailer: Trailer::new("PNG end (IEND)"),
            offset: 0,
            chunk_start: 0,
            chunk_type: [0; 4],
            crc: crc32fast::Hasher::new(),
            dimensions: None,
            color_type: 0,
            seen_plte: false,
            idat: IdatRun::NotYet,
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
            State::Signature => {
                if self.held.fill(8, data, pos) && self.held.take() != SIGNATURE {
                    return Err(ImageProblem::broken("bad PNG signature"));
                }
                if self.held.is_empty() {
                    self.state = State::ChunkHeader;
                }
            }
            State::ChunkHeader => {
                if self.held.is_empty() {
                    self.chunk_start = self.offset + *pos as u64;
                }
                if self.held.fill(8, data, pos) {
                    let header = self.held.take();
                    self.start_chunk(&header)?;
                }
            }
            State::Ihdr => {
                if self.held.fill(13, data, pos) {
                    let ihdr = self.held.take();
                    self.crc.update(&ihdr);
                    self.read_ihdr(&ihdr)?;
                    self.state = State::Crc;
                }
            }
            State::ChunkData { remaining } => {
                let take = (remaining as usize).min(data.len() - *pos);
                self.crc.update(&data[*pos..*pos + take]);
                *pos += take;
                let remaining = remaining - take as u32;
                self.state = if remaining == 0 {
                    State::Crc
                } else {
                    State::ChunkData { remaining }
                };
            }
            State::Crc => {
                if self.held.fill(4, data, pos) {
                    let stored = be_u32(&self.held.take());
                    let computed = std::mem::take(&mut self.crc).finalize();
                    if stored != computed {
                        return Err(ImageProblem::broken(format!(
                            "PNG chunk {} has a bad CRC",
                            String::from_utf8_lossy(&self.chunk_type)
                        )));
                    }
                    self.state = if &self.chunk_type == b"IEND" {
                        State::End
                    } else {
                        State::ChunkHeader
                    };
                }
            }
            State::End => {
                self.trailer.feed(&data[*pos..])?;
                *pos = data.len();
            }
        }
        Ok(())
    }

    fn start_chunk(&mut self, header: &[u8]) -> Result<(), ImageProblem> {
        let length = be_u32(&header[..4]);
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        if length > i32::MAX as u32 {
            return Err(ImageProblem::broken("PNG chunk length over 2^31 - 1"));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(ImageProblem::broken("PNG chunk type is not four letters"));
        }
        self.chunk_type = kind;
        self.crc = crc32fast::Hasher::new();
        self.crc.update(&kind);
        self.check_order(&kind, length)?;
        if self.settings.strip_metadata && METADATA_CHUNKS.contains(&&kind) {
            let end = self.chunk_start + 12 + u64::from(length);
            push_edit(&mut self.edits, Edit::delete(self.chunk_start..end))?;
        }
        self.state = match (&kind, length) {
            (b"IHDR", _) => State::Ihdr,
            (_, 0) => State::Crc,
            _ => State::ChunkData { remaining: length },
        };
        Ok(())
    }

    fn check_order(&mut self, kind: &[u8; 4], length: u32) -> Result<(), ImageProblem> {
        let first = self.dimensions.is_none();
        match kind {
            b"IHDR" if !first => Err(ImageProblem::broken("second PNG IHDR chunk")),
            b"IHDR" if length != 13 => Err(ImageProblem::broken("PNG IHDR is not 13 bytes")),
            b"IHDR" => Ok(()),
            _ if first => Err(ImageProblem::broken("PNG does not start with IHDR")),
            b"PLTE" => {
                self.seen_plte = true;
                Ok(())
            }
            b"IDAT" if self.idat == IdatRun::Over => {
                Err(ImageProblem::broken("PNG IDAT chunks are not consecutive"))
            }
            b"IDAT" if self.color_type == 3 && !self.seen_plte => {
                Err(ImageProblem::broken("palette PNG without PLTE before IDAT"))
            }
            b"IDAT" => {
                self.idat = IdatRun::Inside;
                Ok(())
            }
            b"IEND" if length != 0 => Err(ImageProblem::broken("PNG IEND is not empty")),
            b"IEND" if self.idat == IdatRun::NotYet => {
                Err(ImageProblem::broken("PNG has no image data (IDAT)"))
            }
            _ => {
                if self.idat == IdatRun::Inside {
                    self.idat = IdatRun::Over;
                }
                // Upper-case first letter: a critical chunk the decoder must understand.
                if kind[0].is_ascii_uppercase() && !matches!(kind, b"IEND") {
                    return Err(ImageProblem::broken(format!(
                        "unknown critical PNG chunk {}",
                        String::from_utf8_lossy(kind)
                    )));
                }
                Ok(())
            }
        }
    }

    fn read_ihdr(&mut self, ihdr: &[u8]) -> Result<(), ImageProblem> {
        let (width, height) = (be_u32(&ihdr[0..4]), be_u32(&ihdr[4..8]));
        let (depth, color, compression, filter, interlace) =
            (ihdr[8], ihdr[9], ihdr[10], ihdr[11], ihdr[12]);
        let depth_ok = match color {
            0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
            3 => matches!(depth, 1 | 2 | 4 | 8),
            2 | 4 | 6 => matches!(depth, 8 | 16),
            _ => false,
        };
        if !depth_ok || compression != 0 || filter != 0 || interlace > 1 {
            return Err(ImageProblem::broken(format!(
                "PNG IHDR has an invalid format (colour type {color}, depth {depth})"
            )));
        }
        self.color_type = color;
        self.dimensions = Some(check_dimensions(
            width.into(),
            height.into(),
            self.settings,
        )?);
        Ok(())
    }

    /// Ends the file.
    pub fn finish(self) -> Result<ImageInfo, ImageProblem> {
        if self.state != State::End {
            return Err(ImageProblem::broken("truncated PNG (no IEND chunk)"));
        }
        self.trailer.finish()?;
        let (width, height) = self.dimensions.unwrap_or_default();
        Ok(ImageInfo {
            width,
            height,
            edits: self.edits,
        })
    }
}
