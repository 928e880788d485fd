//! JPEG structure (ITU-T T.81 annex B): SOI, marker segments with lengths, a frame header
//! whose dimensions are checked before any decoding, entropy-coded scans (stuffed `FF 00`
//! bytes and restart markers), and EOI with nothing after it.

use super::{
    Collector, ImageInfo, ImageProblem, ImageSettings, Trailer, be_u16, check_dimensions, push_edit,
};
use crate::upload::edit::Edit;

/// Bytes of a segment's payload looked at to identify it (SOF fields, APPn identifiers).
const SEGMENT_HEAD: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Soi,
    /// Expecting the `FF` that starts a marker.
    MarkerStart,
    /// After an `FF`: fill bytes or the marker code.
    MarkerCode,
    Length {
        code: u8,
    },
    SegmentHead {
        code: u8,
        payload: u16,
    },
    Skip {
        remaining: u32,
        then_scan: bool,
    },
    /// Entropy-coded data; `after_ff` when the piece ended on an `FF`.
    Scan {
        after_ff: bool,
    },
    End,
}

/// Streaming JPEG checker.
#[derive(Debug)]
pub struct JpegParser {
    settings: ImageSettings,
    state: State,
    held: Collector,
    trailer: Trailer,
    offset: u64,
    marker_start: u64,
    dimensions: Option<(u32, u32)>,
    scans: u32,
    edits: Vec<Edit>,
}

impl JpegParser {
    /// A checker expecting SOI.
    pub fn new(settings: ImageSettings) -> Self {
        Self {
            settings,
            state: State::Soi,
            held: Collector::default(),
            trailer: Trailer::new("JPEG end (EOI)"),
            offset: 0,
            marker_start: 0,
            dimensions: None,
            scans: 0,
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
            State::Soi => {
                if self.held.fill(2, data, pos) {
                    if self.held.take() != [0xFF, 0xD8] {
                        return Err(ImageProblem::broken("JPEG does not start with SOI"));
                    }
                    self.state = State::MarkerStart;
                }
            }
            State::MarkerStart => {
                if data[*pos] != 0xFF {
                    return Err(ImageProblem::broken(format!(
                        "JPEG byte {:#04x} where a marker was expected",
                        data[*pos]
                    )));
                }
                self.marker_start = self.offset + *pos as u64;
                *pos += 1;
                self.state = State::MarkerCode;
            }
            State::MarkerCode => {
                let code = data[*pos];
                if code == 0xFF {
                    // Fill byte (T.81 B.1.1.2): the marker starts at the last FF.
                    self.marker_start = self.offset + *pos as u64;
                } else {
                    self.marker(code)?;
                }
                *pos += 1;
            }
            State::Length { code } => {
                if self.held.fill(2, data, pos) {
                    let length = be_u16(&self.held.take());
                    if length < 2 {
                        return Err(ImageProblem::broken("JPEG segment length under 2"));
                    }
                    self.state = State::SegmentHead {
                        code,
                        payload: length - 2,
                    };
                }
            }
            State::SegmentHead { code, payload } => {
                let need = usize::from(payload).min(SEGMENT_HEAD);
                if self.held.fill(need, data, pos) {
                    let head = self.held.take();
                    self.segment(code, payload, &head)?;
                }
            }
            State::Skip {
                remaining,
                then_scan,
            } => {
                let take = (remaining as usize).min(data.len() - *pos);
                *pos += take;
                let remaining = remaining - take as u32;
                self.state = match (remaining, then_scan) {
                    (0, true) => State::Scan { after_ff: false },
                    (0, false) => State::MarkerStart,
                    _ => State::Skip {
                        remaining,
                        then_scan,
                    },
                };
            }
            State::Scan { after_ff } => self.scan(data, pos, after_ff)?,
            State::End => {
                self.trailer.feed(&data[*pos..])?;
                *pos = data.len();
            }
        }
        Ok(())
    }

    /// A marker code outside entropy-coded data.
    fn marker(&mut self, code: u8) -> Result<(), ImageProblem> {
        self.state = match code {
            0xD9 if self.scans == 0 => {
                return Err(ImageProblem::broken("JPEG ends before any scan"));
            }
            0xD9 => State::End,
            0xD8 => return Err(ImageProblem::broken("second JPEG SOI marker")),
            0x00 => return Err(ImageProblem::broken("stuffed byte outside JPEG scan data")),
            // Standalone markers without a length: RSTn and TEM.
            0xD0..=0xD7 | 0x01 => State::MarkerStart,
            _ => State::Length { code },
        };
        Ok(())
    }

    /// A whole segment header has been read; decide what it means, then skip its rest.
    fn segment(&mut self, code: u8, payload: u16, head: &[u8]) -> Result<(), ImageProblem> {
        let mut then_scan = false;
        match code {
            0xC0..=0xCF if !matches!(code, 0xC4 | 0xC8 | 0xCC) => self.frame(head)?,
            0xDA if self.dimensions.is_none() => {
                return Err(ImageProblem::broken("JPEG scan before the frame header"));
            }
            0xDA => {
                self.scans += 1;
                then_scan = true;
            }
            0xE0..=0xEF | 0xFE if self.settings.strip_metadata && is_metadata(code, head) => {
                let end = self.marker_start + 4 + u64::from(payload);
                push_edit(&mut self.edits, Edit::delete(self.marker_start..end))?;
            }
            _ => {}
        }
        let remaining = u32::from(payload) - head.len() as u32;
        self.state = match (remaining, then_scan) {
            (0, true) => State::Scan { after_ff: false },
            (0, false) => State::MarkerStart,
            _ => State::Skip {
                remaining,
                then_scan,
            },
        };
        Ok(())
    }

    /// SOFn: precision, height, width, components. A height of 0 (defined later by a DNL
    /// marker) is refused: the pixel count must be known before decoding.
    fn frame(&mut self, head: &[u8]) -> Result<(), ImageProblem> {
        if self.dimensions.is_some() {
            return Err(ImageProblem::broken("second JPEG frame header"));
        }
        if head.len() < 6 {
            return Err(ImageProblem::broken("JPEG frame header too short"));
        }
        let (height, width) = (be_u16(&head[1..3]), be_u16(&head[3..5]));
        self.dimensions = Some(check_dimensions(
            width.into(),
            height.into(),
            self.settings,
        )?);
        Ok(())
    }

    /// Entropy-coded data runs until an `FF` that is neither stuffing (`FF 00`) nor a
    /// restart marker; that `FF` starts the next marker.
    fn scan(&mut self, data: &[u8], pos: &mut usize, after_ff: bool) -> Result<(), ImageProblem> {
        if after_ff {
            let code = data[*pos];
            *pos += 1;
            match code {
                0x00 | 0xD0..=0xD7 => self.state = State::Scan { after_ff: false },
                0xFF => self.marker_start = self.offset + *pos as u64 - 1,
                _ => self.marker(code)?,
            }
            return Ok(());
        }
        match memchr::memchr(0xFF, &data[*pos..]) {
            None => *pos = data.len(),
            Some(i) => {
                self.marker_start = self.offset + (*pos + i) as u64;
                *pos += i + 1;
                self.state = State::Scan { after_ff: true };
            }
        }
        Ok(())
    }

    /// Ends the file.
    pub fn finish(self) -> Result<ImageInfo, ImageProblem> {
        if self.state != State::End {
            return Err(ImageProblem::broken("truncated JPEG (no EOI marker)"));
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

/// APPn and COM segments removed by stripping: everything except JFIF (APP0), colour
/// profiles (APP2 `ICC_PROFILE`) and Adobe's colour-transform flag (APP14), which change
/// how the pixels look. EXIF (with GPS) and XMP live in APP1, IPTC in APP13.
fn is_metadata(code: u8, head: &[u8]) -> bool {
    match code {
        0xE0 | 0xEE => false,
        0xE2 => !head.starts_with(b"ICC_PROFILE\0"),
        _ => true,
    }
}
