//! The last image check: the file must decode cleanly. Runs only after the streaming
//! checks passed (so the claimed dimensions are already within `max_pixels`), on a
//! blocking thread, with the `image` crate's allocation limits, and never more than a few
//! at a time: decoding is the one step whose memory grows with the image
//! (about width × height × 4 bytes; 200 MB at the 50-megapixel default).

use std::io::BufReader;
use std::sync::Arc;

use image::{ImageFormat, ImageReader, Limits};
use palisade_policy::upload::{FileType, InspectedFile};
use tokio::sync::Semaphore;

use super::spool::SpooledBody;

/// Bytes per pixel allowed for decoding: 16-bit RGBA, the widest format these decoders
/// produce.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Limits how many images decode at once.
#[derive(Debug, Clone)]
pub struct DecodeGate {
    permits: Arc<Semaphore>,
}

impl DecodeGate {
    /// At most `concurrent` decodes at a time (at least one).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// Decodes `file` from `body`; `Err` says why it does not decode. Files of types
    /// without a decoder here pass.
    pub async fn check(&self, body: &SpooledBody, file: &InspectedFile) -> Result<(), String> {
        let Some(format) = format_of(file.file_type) else {
            return Ok(());
        };
        let Some((width, height)) = file.dimensions else {
            return Ok(());
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "image decoding is shut down".to_owned())?;
        let reader = body.range_reader(file.body_range());
        // The permit moves into the blocking task: a cancelled request must not free its
        // slot while its decode still runs.
        tokio::task::spawn_blocking(move || {
            let result = decode(reader, format, width, height);
            drop(permit);
            result
        })
        .await
        .map_err(|e| format!("image decoder failed: {e}"))?
    }
}

fn format_of(file_type: FileType) -> Option<ImageFormat> {
    Some(match file_type {
        FileType::Jpeg => ImageFormat::Jpeg,
        FileType::Png => ImageFormat::Png,
        FileType::Webp => ImageFormat::WebP,
        FileType::Gif => ImageFormat::Gif,
        _ => return None,
    })
}

fn decode(
    reader: super::spool::RangeReader,
    format: ImageFormat,
    width: u32,
    height: u32,
) -> Result<(), String> {
    let mut limits = Limits::default();
    // The header was checked against max_pixels; the decoder must not find bigger ones.
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc =
        Some(u64::from(width) * u64::from(height) * MAX_BYTES_PER_PIXEL + (16 << 20));
    let mut image = ImageReader::with_format(BufReader::new(reader), format);
    image.limits(limits);
    image
        .decode()
        .map(drop)
        .map_err(|e| format!("image does not decode: {e}"))
}
