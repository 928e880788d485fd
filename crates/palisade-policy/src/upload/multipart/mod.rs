//! An incremental `multipart/form-data` parser (RFC 7578 on RFC 2046 §5.1.1): feed it the
//! body in pieces of any size as they arrive; it calls a [`PartSink`] with each part's
//! headers, content and end, holding no more than one part-header block and a partial
//! delimiter match in memory.
//!
//! Malformed bodies are refused with a precise reason rather than repaired: a boundary
//! that is missing or never closes, data outside the parts, a delimiter followed by
//! anything but `--` or a line end, oversized header blocks, nested multipart.

pub mod headers;

use memchr::memmem::Finder;

pub use headers::{Disposition, PartHeaders, parse_disposition, parse_part_headers};

use super::verdict::{Reason, Refusal};

/// Longest part-header block accepted, in bytes.
pub const MAX_HEADER_BLOCK: usize = 8 << 10;
/// Most whitespace accepted before the first boundary or after the closing one.
pub const MAX_OUTSIDE_WHITESPACE: usize = 1024;
/// Most transport padding accepted between a boundary and its line end.
const MAX_PADDING: usize = 64;

/// Receives the parts of a multipart body as they are parsed.
pub trait PartSink {
    /// A part begins; its content starts at `body_offset` in the body.
    fn part_start(
        &mut self,
        index: usize,
        headers: PartHeaders,
        body_offset: u64,
    ) -> Result<(), Refusal>;
    /// The next bytes of the current part's content.
    fn part_data(&mut self, data: &[u8]) -> Result<(), Refusal>;
    /// The current part ended.
    fn part_end(&mut self) -> Result<(), Refusal>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter(LineEnd),
    Headers,
    Body,
    Epilogue,
}

/// What may follow a delimiter: `--` (the close delimiter), or padding then CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    Start,
    SecondDash,
    Padding(usize),
    LineFeed,
}

/// The incremental parser.
#[derive(Debug)]
pub struct MultipartParser {
    /// `CRLF--boundary`.
    delimiter: Vec<u8>,
    finder: Finder<'static>,
    state: State,
    /// Bytes of the delimiter matched at the end of the previous piece.
    matched: usize,
    header: Vec<u8>,
    offset: u64,
    parts: usize,
    outside: usize,
}

fn malformed(detail: impl Into<String>) -> Refusal {
    Refusal::body(Reason::Malformed, detail)
}

impl MultipartParser {
    /// A parser for bodies delimited by `boundary` (already validated by [`boundary`]).
    pub fn new(boundary: &str) -> Self {
        let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
        Self {
            finder: Finder::new(&delimiter).into_owned(),
            delimiter,
            state: State::Preamble,
            // The first delimiter may open the body without a preceding CRLF: start as if
            // that CRLF had been seen.
            matched: 2,
            header: Vec::new(),
            offset: 0,
            parts: 0,
            outside: 0,
        }
    }

    /// Bytes held between pieces (header block and partial delimiter), for memory checks.
    pub fn buffered_len(&self) -> usize {
        self.header.capacity() + self.matched
    }

    /// Feeds the next piece of the body.
    pub fn feed(&mut self, piece: &[u8], sink: &mut dyn PartSink) -> Result<(), Refusal> {
        let result = self.run(piece, sink);
        self.offset += piece.len() as u64;
        result
    }

    fn run(&mut self, piece: &[u8], sink: &mut dyn PartSink) -> Result<(), Refusal> {
        let mut pos = 0;
        while pos < piece.len() {
            match self.state {
                State::Preamble | State::Body => self.search(piece, &mut pos, sink)?,
                State::AfterDelimiter(end) => {
                    self.line_end(end, piece[pos])?;
                    pos += 1;
                }
                State::Headers => self.headers(piece, &mut pos, sink)?,
                State::Epilogue => {
                    self.outside(&piece[pos..], "after the closing boundary")?;
                    pos = piece.len();
                }
            }
        }
        Ok(())
    }

    /// The body ended: it must have ended with the close delimiter.
    pub fn finish(&self) -> Result<(), Refusal> {
        match self.state {
            State::Epilogue => Ok(()),
            State::Preamble => Err(malformed("body ended before the first boundary")),
            State::Body => Err(malformed(
                "body ended in the middle of a part (the closing boundary never came)",
            )),
            State::Headers => Err(malformed("body ended inside part headers")),
            State::AfterDelimiter(_) => Err(malformed("body ended right after a boundary")),
        }
    }

    /// Looks for the next delimiter in content (or preamble), passing content on.
    fn search(
        &mut self,
        piece: &[u8],
        pos: &mut usize,
        sink: &mut dyn PartSink,
    ) -> Result<(), Refusal> {
        if self.matched > 0 {
            return self.continue_match(piece, pos, sink);
        }
        let rest = &piece[*pos..];
        if let Some(i) = self.finder.find(rest) {
            self.content(&rest[..i], sink)?;
            *pos += i + self.delimiter.len();
            return self.delimiter_found(sink);
        }
        let keep = partial_suffix(rest, &self.delimiter);
        self.content(&rest[..rest.len() - keep], sink)?;
        self.matched = keep;
        *pos = piece.len();
        Ok(())
    }

    /// A delimiter prefix ended the previous piece: finish or abandon the match.
    fn continue_match(
        &mut self,
        piece: &[u8],
        pos: &mut usize,
        sink: &mut dyn PartSink,
    ) -> Result<(), Refusal> {
        let wanted = &self.delimiter[self.matched..];
        let n = wanted.len().min(piece.len() - *pos);
        if piece[*pos..*pos + n] == wanted[..n] {
            self.matched += n;
            *pos += n;
            if self.matched == self.delimiter.len() {
                self.matched = 0;
                return self.delimiter_found(sink);
            }
            return Ok(());
        }
        // Not a delimiter after all: the held prefix was content. Only the first delimiter
        // byte is CR, so no shorter prefix can start inside it; resume at the same byte.
        let held = self.delimiter[..self.matched].to_vec();
        self.matched = 0;
        self.content(&held, sink)
    }

    fn content(&mut self, data: &[u8], sink: &mut dyn PartSink) -> Result<(), Refusal> {
        match self.state {
            State::Body if !data.is_empty() => sink.part_data(data),
            State::Preamble => self.outside(data, "before the first boundary"),
            _ => Ok(()),
        }
    }

    /// Outside the parts only line breaks and spaces are accepted, and few of them: a
    /// lenient parser upstream might find parts in anything else.
    fn outside(&mut self, data: &[u8], place: &str) -> Result<(), Refusal> {
        if !data
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Err(malformed(format!("data {place}")));
        }
        self.outside += data.len();
        if self.outside > MAX_OUTSIDE_WHITESPACE {
            return Err(malformed(format!(
                "more than {MAX_OUTSIDE_WHITESPACE} bytes {place}"
            )));
        }
        Ok(())
    }

    fn delimiter_found(&mut self, sink: &mut dyn PartSink) -> Result<(), Refusal> {
        if self.state == State::Body {
            sink.part_end()?;
        }
        self.state = State::AfterDelimiter(LineEnd::Start);
        Ok(())
    }

    fn line_end(&mut self, end: LineEnd, byte: u8) -> Result<(), Refusal> {
        let next = match (end, byte) {
            (LineEnd::Start, b'-') => LineEnd::SecondDash,
            (LineEnd::SecondDash, b'-') => {
                self.state = State::Epilogue;
                self.outside = 0;
                return Ok(());
            }
            (LineEnd::Start, b' ' | b'\t') => LineEnd::Padding(1),
            (LineEnd::Padding(n), b' ' | b'\t') if n < MAX_PADDING => LineEnd::Padding(n + 1),
            (LineEnd::Start | LineEnd::Padding(_), b'\r') => LineEnd::LineFeed,
            (LineEnd::LineFeed, b'\n') => {
                self.state = State::Headers;
                self.header.clear();
                return Ok(());
            }
            _ => {
                return Err(malformed(
                    "boundary followed by something other than a line end or \"--\"",
                ));
            }
        };
        self.state = State::AfterDelimiter(next);
        Ok(())
    }

    /// Accumulates the header block up to its blank line, bounded by [`MAX_HEADER_BLOCK`].
    fn headers(
        &mut self,
        piece: &[u8],
        pos: &mut usize,
        sink: &mut dyn PartSink,
    ) -> Result<(), Refusal> {
        let held = self.header.len();
        let room = MAX_HEADER_BLOCK + 4 - held;
        let take = room.min(piece.len() - *pos);
        self.header.extend_from_slice(&piece[*pos..*pos + take]);
        if self.header.starts_with(b"\r\n") {
            return Err(malformed("part without headers"));
        }
        let from = held.saturating_sub(3);
        let Some(i) = memchr::memmem::find(&self.header[from..], b"\r\n\r\n").map(|i| i + from)
        else {
            if self.header.len() >= MAX_HEADER_BLOCK + 4 {
                return Err(malformed(format!(
                    "part headers longer than {} KiB",
                    MAX_HEADER_BLOCK >> 10
                )));
            }
            *pos += take;
            return Ok(());
        };
        let used = i + 4 - held;
        *pos += used;
        let block = std::mem::take(&mut self.header);
        self.start_part(&block[..i], self.offset + *pos as u64, sink)
    }

    fn start_part(
        &mut self,
        block: &[u8],
        body_offset: u64,
        sink: &mut dyn PartSink,
    ) -> Result<(), Refusal> {
        // A header line that reads as a delimiter would split the body differently for a
        // parser that does not track header blocks.
        let boundary_line = &self.delimiter[2..];
        if block
            .split(|&b| b == b'\n')
            .any(|line| line.starts_with(boundary_line))
        {
            return Err(malformed("a part header line repeats the boundary"));
        }
        let headers = parse_part_headers(block).map_err(malformed)?;
        let index = self.parts;
        self.parts += 1;
        self.state = State::Body;
        sink.part_start(index, headers, body_offset)
    }
}

/// Length of the longest proper prefix of `delimiter` that `data` ends with.
fn partial_suffix(data: &[u8], delimiter: &[u8]) -> usize {
    let longest = (delimiter.len() - 1).min(data.len());
    (1..=longest)
        .rev()
        .find(|&k| data.ends_with(&delimiter[..k]))
        .unwrap_or(0)
}

/// The boundary of a `multipart/form-data` content type, validated (RFC 2046 §5.1.1: 1 to
/// 70 characters from a restricted set, not ending in a space).
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut found = None;
    for param in content_type.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("boundary") {
            continue;
        }
        if found.is_some() {
            return Err("two boundary parameters".into());
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted
                .strip_suffix('"')
                .ok_or("unterminated quoted boundary")?,
            None => value,
        };
        found = Some(value.to_owned());
    }
    let boundary = found.ok_or("multipart/form-data without a boundary")?;
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("boundary must be 1 to 70 characters".into());
    }
    if !boundary.chars().all(valid_char) || boundary.ends_with(' ') {
        return Err("boundary contains characters RFC 2046 does not allow".into());
    }
    Ok(boundary)
}

#[cfg(test)]
mod tests;
