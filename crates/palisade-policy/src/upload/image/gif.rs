//! GIF structure (GIF89a specification): header and logical screen, colour tables, then
//! extension and image blocks made of length-prefixed sub-blocks, and the `;` trailer with
//! nothing after it.

use super::{Collector, ImageInfo, ImageProblem, ImageSettings, Trailer, check_dimensions, le_u16};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Skip { remaining: usize, then: After },
    Block,
    ExtensionLabel,
    ImageDescriptor,
    LzwCodeSize,
    SubBlockLength { image: bool },
    End,
}

/// Where to go once a skipped run of bytes is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Block,
    LzwCodeSize,
    SubBlocks { image: bool },
}

/// Streaming GIF checker.
#[derive(Debug)]
pub struct GifParser {
    settings: ImageSettings,
    state: State,
    held: Collector,
    trailer: Trailer,
    dimensions: Option<(u32, u32)>,
    frames: u32,
}

impl GifParser {
    /// A checker expecting `GIF87a` or `GIF89a`.
    pub fn new(settings: ImageSettings) -> Self {
        Self {
            settings,
            state: State::Header,
            held: Collector::default(),
            trailer: Trailer::new("GIF trailer"),
            dimensions: None,
            frames: 0,
        }
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        let mut pos = 0;
        while pos < data.len() {
            self.step(data, &mut pos)?;
        }
        Ok(())
    }

    fn step(&mut self, data: &[u8], pos: &mut usize) -> Result<(), ImageProblem> {
        match self.state {
            State::Header => {
                if self.held.fill(13, data, pos) {
                    let header = self.held.take();
                    self.header(&header)?;
                }
            }
            State::Skip { remaining, then } => {
                let take = remaining.min(data.len() - *pos);
                *pos += take;
                self.state = match (remaining - take, then) {
                    (0, After::Block) => State::Block,
                    (0, After::LzwCodeSize) => State::LzwCodeSize,
                    (0, After::SubBlocks { image }) => State::SubBlockLength { image },
                    (remaining, then) => State::Skip { remaining, then },
                };
            }
            State::Block => {
                let byte = data[*pos];
                *pos += 1;
                self.state = match byte {
                    0x21 => State::ExtensionLabel,
                    0x2C => State::ImageDescriptor,
                    0x3B if self.frames == 0 => {
                        return Err(ImageProblem::broken("GIF ends before any image"));
                    }
                    0x3B => State::End,
                    other => {
                        return Err(ImageProblem::broken(format!(
                            "GIF block type {other:#04x} is unknown"
                        )));
                    }
                };
            }
            State::ExtensionLabel => {
                *pos += 1;
                self.state = State::SubBlockLength { image: false };
            }
            State::ImageDescriptor => {
                if self.held.fill(9, data, pos) {
                    let descriptor = self.held.take();
                    self.image_descriptor(&descriptor)?;
                }
            }
            State::LzwCodeSize => {
                let size = data[*pos];
                *pos += 1;
                if !(2..=8).contains(&size) {
                    return Err(ImageProblem::broken("GIF LZW code size out of range"));
                }
                self.state = State::SubBlockLength { image: true };
            }
            State::SubBlockLength { image } => {
                let length = usize::from(data[*pos]);
                *pos += 1;
                self.state = match length {
                    0 => State::Block,
                    n => State::Skip {
                        remaining: n,
                        then: After::SubBlocks { image },
                    },
                };
            }
            State::End => {
                self.trailer.feed(&data[*pos..])?;
                *pos = data.len();
            }
        }
        Ok(())
    }

    fn header(&mut self, header: &[u8]) -> Result<(), ImageProblem> {
        if &header[..6] != b"GIF87a" && &header[..6] != b"GIF89a" {
            return Err(ImageProblem::broken("bad GIF signature"));
        }
        let (width, height) = (le_u16(&header[6..8]), le_u16(&header[8..10]));
        self.dimensions = Some(check_dimensions(
            width.into(),
            height.into(),
            self.settings,
        )?);
        self.state = State::Skip {
            remaining: color_table_len(header[10]),
            then: After::Block,
        };
        Ok(())
    }

    fn image_descriptor(&mut self, d: &[u8]) -> Result<(), ImageProblem> {
        let (width, height) = (le_u16(&d[4..6]), le_u16(&d[6..8]));
        check_dimensions(width.into(), height.into(), self.settings)?;
        self.frames += 1;
        self.state = State::Skip {
            remaining: color_table_len(d[8]),
            then: After::LzwCodeSize,
        };
        Ok(())
    }

    /// Ends the file.
    pub fn finish(self) -> Result<ImageInfo, ImageProblem> {
        if self.state != State::End {
            return Err(ImageProblem::broken("truncated GIF (no trailer)"));
        }
        self.trailer.finish()?;
        let (width, height) = self.dimensions.unwrap_or_default();
        Ok(ImageInfo {
            width,
            height,
            edits: Vec::new(),
        })
    }
}

/// Size of the colour table announced by a packed-fields byte (flag in bit 7, size in the
/// low three bits).
fn color_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}
