//! Streaming structural checks of images, fed the file's bytes in pieces as they arrive:
//! header dimensions against the pixel limit (so decompression bombs are refused before any
//! decoding), the container's structure, its end marker, and nothing but padding after it
//! (an image that carries an HTML, PHP or ZIP payload behind its end is a polyglot). When
//! asked, each parser also notes which metadata segments to remove.
//!
//! Memory per parser is a few dozen bytes plus the list of edits; nothing here decodes
//! pixels (the gateway does that, with limits, once a file has passed these checks).

mod code;
mod gif;
mod jpeg;
mod png;
mod webp;

#[cfg(test)]
mod tests;

pub use code::CodeScan;

use super::edit::Edit;
use super::sniff::{FileType, sniff};
use super::verdict::Reason;

/// Most metadata segments one image may ask to remove; more is refused rather than
/// remembered without bound.
pub const MAX_EDITS_PER_IMAGE: usize = 256;

/// What the image checks need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSettings {
    /// Most pixels (width × height) an image may claim.
    pub max_pixels: u64,
    /// Whether to plan the removal of EXIF/XMP/GPS metadata.
    pub strip_metadata: bool,
}

/// Why an image failed its structural checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProblem {
    /// [`Reason::Image`] or [`Reason::Polyglot`].
    pub reason: Reason,
    /// What was wrong.
    pub detail: String,
}

impl ImageProblem {
    pub(crate) fn broken(detail: impl Into<String>) -> Self {
        Self {
            reason: Reason::Image,
            detail: detail.into(),
        }
    }
}

/// What a structurally sound image looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels, from the header.
    pub width: u32,
    /// Height in pixels, from the header.
    pub height: u32,
    /// Metadata removals, in file offsets (empty unless stripping was asked for).
    pub edits: Vec<Edit>,
}

/// The structural check for one image type.
#[derive(Debug)]
pub enum ImageCheck {
    /// JPEG (ITU T.81 markers).
    Jpeg(jpeg::JpegParser),
    /// PNG (chunks with CRCs).
    Png(png::PngParser),
    /// WebP (RIFF chunks).
    Webp(webp::WebpParser),
    /// GIF (blocks and sub-blocks).
    Gif(gif::GifParser),
}

impl ImageCheck {
    /// The check for `file_type`, if palisade has one.
    // TODO: no structure checks for BMP/TIFF/ICO/AVIF/HEIC; if allowed they pass on magic bytes alone.
    pub fn for_type(file_type: FileType, settings: ImageSettings) -> Option<Self> {
        Some(match file_type {
            FileType::Jpeg => Self::Jpeg(jpeg::JpegParser::new(settings)),
            FileType::Png => Self::Png(png::PngParser::new(settings)),
            FileType::Webp => Self::Webp(webp::WebpParser::new(settings)),
            FileType::Gif => Self::Gif(gif::GifParser::new(settings)),
            _ => return None,
        })
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        match self {
            Self::Jpeg(p) => p.feed(data),
            Self::Png(p) => p.feed(data),
            Self::Webp(p) => p.feed(data),
            Self::Gif(p) => p.feed(data),
        }
    }

    /// Ends the file: it must have reached its end marker.
    pub fn finish(self) -> Result<ImageInfo, ImageProblem> {
        match self {
            Self::Jpeg(p) => p.finish(),
            Self::Png(p) => p.finish(),
            Self::Webp(p) => p.finish(),
            Self::Gif(p) => p.finish(),
        }
    }
}

/// Collects a fixed number of bytes that may arrive split across pieces.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    bytes: Vec<u8>,
}

impl Collector {
    /// Takes bytes from `data[*pos..]` until `need` are held; true once they are.
    pub(crate) fn fill(&mut self, need: usize, data: &[u8], pos: &mut usize) -> bool {
        let take = need.saturating_sub(self.bytes.len()).min(data.len() - *pos);
        self.bytes.extend_from_slice(&data[*pos..*pos + take]);
        *pos += take;
        self.bytes.len() >= need
    }

    /// The bytes held, emptied for the next use.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Refuses a claimed size over the pixel limit, before anything is decoded.
pub(crate) fn check_dimensions(
    width: u64,
    height: u64,
    settings: ImageSettings,
) -> Result<(u32, u32), ImageProblem> {
    if width == 0 || height == 0 {
        return Err(ImageProblem::broken(format!(
            "image claims {width} x {height} pixels"
        )));
    }
    let pixels = width.saturating_mul(height);
    if pixels > settings.max_pixels {
        return Err(ImageProblem::broken(format!(
            "image claims {width} x {height} = {pixels} pixels, over the limit of {}",
            settings.max_pixels
        )));
    }
    let narrow = |v: u64| u32::try_from(v).map_err(|_| ImageProblem::broken("image too wide"));
    Ok((narrow(width)?, narrow(height)?))
}

/// Bytes after an image's end marker. Zero padding (some encoders add it) is harmless;
/// anything else is a second file riding along, refused as a polyglot. The first
/// [`TRAILER_SAMPLE`] bytes of it are kept to name what it is, so the verdict does not
/// depend on how the stream was cut.
#[derive(Debug)]
pub(crate) struct Trailer {
    after: &'static str,
    sample: Vec<u8>,
}

/// How much of a trailing payload is sniffed to name it.
const TRAILER_SAMPLE: usize = 64;

impl Trailer {
    pub(crate) fn new(after: &'static str) -> Self {
        Self {
            after,
            sample: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        let data = if self.sample.is_empty() {
            match data.iter().position(|&b| b != 0) {
                Some(first) => &data[first..],
                None => return Ok(()),
            }
        } else {
            data
        };
        let take = (TRAILER_SAMPLE - self.sample.len()).min(data.len());
        self.sample.extend_from_slice(&data[..take]);
        if self.sample.len() == TRAILER_SAMPLE {
            return Err(self.problem());
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Result<(), ImageProblem> {
        if self.sample.is_empty() {
            Ok(())
        } else {
            Err(self.problem())
        }
    }

    fn problem(&self) -> ImageProblem {
        let what = match sniff(&self.sample) {
            Some(t) => format!("{t} data"),
            None => "unidentified data".to_owned(),
        };
        ImageProblem {
            reason: Reason::Polyglot,
            detail: format!("{what} after the {}", self.after),
        }
    }
}

/// Records an edit, refusing an unbounded number of them.
pub(crate) fn push_edit(edits: &mut Vec<Edit>, edit: Edit) -> Result<(), ImageProblem> {
    if edits.len() >= MAX_EDITS_PER_IMAGE {
        return Err(ImageProblem::broken(format!(
            "more than {MAX_EDITS_PER_IMAGE} metadata segments"
        )));
    }
    edits.push(edit);
    Ok(())
}

pub(crate) fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
