//! A watch on HTTP/1.1 request framing, run over the raw bytes of a client connection.
//!
//! hyper already refuses most malformed requests, but it accepts a request carrying both
//! `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1 allows a server to do so, letting
//! chunked win and closing the connection afterwards), and it reports a bad chunk size only
//! when the body is read, after the request head may have gone upstream. Both are request
//! smuggling shapes, so palisade answers them with 400 before anything is forwarded. This
//! tracker follows message boundaries (heads, fixed bodies, chunked bodies) just far enough
//! to see every request head and every chunk-size line; anything it does not understand
//! (HTTP/2, upgraded connections, heads hyper will refuse anyway) turns it off, leaving the
//! connection to hyper's own checks.
//!
//! It never changes bytes and never buffers more than one head or one chunk-size line.

/// How an HTTP/2 connection starts (RFC 9113 §3.4, §3.5).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface's first line: read as a request head, it is where the preface shows.
const HTTP2_PREFACE_LINE: &[u8] = HTTP2_PREFACE.split_at(16).0;

/// Whether `buf` starts with the HTTP/2 preface, or with as much of it as has arrived.
pub fn is_http2_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(HTTP2_PREFACE.len());
    n > 0 && buf[..n] == HTTP2_PREFACE[..n]
}

/// A framing violation seen on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A request head with both `Content-Length` and `Transfer-Encoding`.
    ConflictingLengths,
    /// A chunk-size line that is not hexadecimal digits (with optional extensions).
    InvalidChunkSize,
    /// A request head longer than `max_header_size`. hyper refuses one only past its own
    /// buffer (at least 8 KiB), so a smaller limit is kept here.
    HeadTooLarge,
}

impl Finding {
    /// Why the request is refused, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ConflictingLengths => "both content-length and transfer-encoding",
            Self::InvalidChunkSize => "invalid chunk size",
            Self::HeadTooLarge => "request head over max_header_size",
        }
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for or reading a request head.
    Head,
    /// Skipping a body of known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// Past a head over the size limit: everything after is taken as more of that head, so
    /// the header read timeout keeps running from its first byte.
    Oversized,
    /// No longer following the connection.
    Off,
}

/// Follows request framing on one connection.
#[derive(Debug)]
pub struct FramingTracker {
    state: State,
    line: Vec<u8>,
    /// The connection turned out to be HTTP/2 with prior knowledge (h2c).
    http2: bool,
    /// Empty lines arrived where a head is expected: the head has begun as far as the
    /// header timeout is concerned, or a client could hold a connection by sending `\r\n`
    /// forever.
    blank_lines: bool,
    max_head: usize,
    max_headers: usize,
    /// Heads read to their end so far.
    heads: u64,
    /// Which message (counted from 0 on this tracker) the finding is about, or where the
    /// watch stopped.
    finding_at: u64,
    /// A finding was returned (the watch stopped because of it).
    found: bool,
    /// [`Self::stopped_at`] has reported the stop.
    stop_reported: bool,
}

const MAX_CHUNK_LINE: usize = 4096;

impl FramingTracker {
    /// A tracker for a fresh connection, with the server's head limits.
    pub fn new(max_head: usize, max_headers: usize) -> Self {
        Self {
            state: State::Head,
            line: Vec::new(),
            blank_lines: false,
            http2: false,
            max_head,
            max_headers,
            heads: 0,
            finding_at: 0,
            found: false,
            stop_reported: false,
        }
    }

    /// Which message, counted from 0 on this tracker, the finding [`Self::feed`] returned is
    /// about: a head's own (or a head over the limit: the head being read), or, in a body
    /// (an invalid chunk size), the message the body belongs to. The requests before it
    /// were framed soundly and may be served.
    pub fn finding_at(&self) -> u64 {
        self.finding_at
    }

    /// The message at which the watch stopped without a finding (a `CONNECT`, an `Upgrade`,
    /// a head hyper refuses anyway), counted as [`Self::finding_at`] counts; `None` while it
    /// follows the connection, or when the connection turned out to be HTTP/2.
    /// Reported once: later calls return `None`.
    pub fn stopped_at(&mut self) -> Option<u64> {
        let stopped = matches!(self.state, State::Off) && !self.http2 && !self.found;
        if !stopped || self.stop_reported {
            return None;
        }
        self.stop_reported = true;
        Some(self.finding_at)
    }

    /// Whether the client opened with the HTTP/2 connection preface (RFC 9113 §3.4).
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// Whether part of a request head has arrived but not all of it (empty lines before the
    /// request line count as part of it).
    pub fn head_in_progress(&self) -> bool {
        match self.state {
            State::Head => self.blank_lines || !self.line.is_empty(),
            State::Oversized => true,
            _ => false,
        }
    }

    /// Feeds bytes read from the client; returns a violation when one is seen, after which
    /// the tracker stops following the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<Finding> {
        while !bytes.is_empty() {
            let step = match self.state {
                State::Off | State::Oversized => return None,
                State::Head => self.feed_head(bytes),
                State::Fixed(left) => Ok(self.skip_fixed(bytes, left)),
                State::ChunkSize => self.feed_chunk_size(bytes),
                State::ChunkData(left) => Ok(self.skip_chunk(bytes, left)),
                State::Trailers => Ok(self.feed_trailers(bytes)),
            };
            match step {
                Ok(used) => bytes = &bytes[used..],
                Err(finding) => {
                    self.finding_at = match self.state {
                        State::Head => self.heads,
                        _ => self.heads.saturating_sub(1),
                    };
                    self.found = finding.is_some();
                    self.state = match finding {
                        Some(Finding::HeadTooLarge) => State::Oversized,
                        _ => State::Off,
                    };
                    self.line = Vec::new();
                    return finding;
                }
            }
        }
        None
    }

    /// Takes bytes up to the end of a head; on a complete head, decides what follows.
    fn feed_head(&mut self, bytes: &[u8]) -> Result<usize, Option<Finding>> {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        if self.line.is_empty() {
            let skip = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if skip > 0 {
                self.blank_lines = true;
                return Ok(skip);
            }
            // The usual case, a whole head in one read, is parsed where it lies.
            if let Some(end) = find_head_end(bytes) {
                if end > self.max_head {
                    return Err(Some(Finding::HeadTooLarge));
                }
                self.head_complete(bytes.starts_with(HTTP2_PREFACE_LINE));
                self.state = self.after_head(&bytes[..end])?;
                self.heads += 1;
                return Ok(end);
            }
        }
        let search_from = self.line.len().saturating_sub(3);
        let take = bytes.len();
        self.line.extend_from_slice(bytes);
        let Some(end) = find_head_end(&self.line[search_from..]).map(|e| e + search_from) else {
            if self.line.len() > self.max_head {
                return Err(Some(Finding::HeadTooLarge));
            }
            return Ok(take);
        };
        if end > self.max_head {
            return Err(Some(Finding::HeadTooLarge));
        }
        let used = take - (self.line.len() - end);
        self.head_complete(self.line.starts_with(HTTP2_PREFACE_LINE));
        let next = self.after_head(&self.line[..end]);
        // Cleared, not dropped: the next head on this connection reuses the buffer.
        self.line.clear();
        self.state = next?;
        self.heads += 1;
        Ok(used)
    }

    /// Notes that a head ended (no blank lines pending) and whether it was HTTP/2's preface.
    fn head_complete(&mut self, http2_preface: bool) {
        self.blank_lines = false;
        if http2_preface {
            self.http2 = true;
        }
    }

    /// Reads one complete head and returns how its body is framed.
    fn after_head(&self, head: &[u8]) -> Result<State, Option<Finding>> {
        // Header slots on the stack for the usual limit, so a request costs no allocation
        // here; a configured limit above it gets heap slots.
        const STACK_SLOTS: usize = 128;
        let mut stack =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_SLOTS];
        let mut heap = Vec::new();
        let slots = if self.max_headers <= STACK_SLOTS {
            &mut stack[..self.max_headers]
        } else {
            heap.resize_with(self.max_headers, std::mem::MaybeUninit::uninit);
            &mut heap[..]
        };
        let mut request = httparse::Request::new(&mut []);
        match request.parse_with_uninit_headers(head, slots) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(None), // not HTTP/1 (h2 preface) or refused by hyper as well
        }
        let mut length = None;
        let mut has_length = false;
        let mut chunked = false;
        let mut has_te = false;
        let mut upgrade = false;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                has_length = true;
                length = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                has_te = true;
                chunked = header.value.to_ascii_lowercase().ends_with(b"chunked");
            } else if header.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        // Both, whatever the length says: hyper ignores a `Content-Length` after
        // `Transfer-Encoding` without reading it, so an unreadable one must count too.
        if has_te && has_length {
            return Err(Some(Finding::ConflictingLengths));
        }
        // What follows may be another protocol (a tunnel, an upgrade): the watch stops here,
        // and the gateway ends the connection after this answer unless it switched protocols
        // (`ConnShared::unwatched`).
        if upgrade || request.method == Some("CONNECT") {
            return Err(None);
        }
        if has_length && length.is_none() {
            return Err(None); // hyper refuses it
        }
        Ok(match (chunked, length) {
            (true, _) => State::ChunkSize,
            (false, Some(n)) if n > 0 => State::Fixed(n),
            _ if has_te => return Err(None),
            _ => State::Head,
        })
    }

    fn skip_fixed(&mut self, bytes: &[u8], left: u64) -> usize {
        let used = left.min(bytes.len() as u64);
        self.state = match left - used {
            0 => State::Head,
            rest => State::Fixed(rest),
        };
        used as usize
    }

    fn skip_chunk(&mut self, bytes: &[u8], left: u64) -> usize {
        let used = left.min(bytes.len() as u64);
        self.state = match left - used {
            // The data's CRLF is read as an empty chunk-size line below.
            0 => State::ChunkSize,
            rest => State::ChunkData(rest),
        };
        used as usize
    }

    fn feed_chunk_size(&mut self, bytes: &[u8]) -> Result<usize, Option<Finding>> {
        let Some((line, used)) = self.take_line(bytes) else {
            if self.line.len() > MAX_CHUNK_LINE {
                return Err(Some(Finding::InvalidChunkSize));
            }
            return Ok(bytes.len());
        };
        if line.is_empty() {
            return Ok(used); // the CRLF ending the previous chunk's data
        }
        let size = parse_chunk_size(&line).ok_or(Some(Finding::InvalidChunkSize))?;
        self.state = match size {
            0 => State::Trailers,
            n => State::ChunkData(n),
        };
        Ok(used)
    }

    fn feed_trailers(&mut self, bytes: &[u8]) -> usize {
        let Some((line, used)) = self.take_line(bytes) else {
            if self.line.len() > self.max_head {
                self.state = State::Off;
            }
            return bytes.len();
        };
        if line.is_empty() {
            self.state = State::Head;
        }
        used
    }

    /// Accumulates one line; returns it (without CRLF) and the bytes used when complete.
    fn take_line(&mut self, bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
        match memchr::memchr(b'\n', bytes) {
            None => {
                self.line.extend_from_slice(bytes);
                None
            }
            Some(at) => {
                self.line.extend_from_slice(&bytes[..at]);
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some((line, at + 1))
            }
        }
    }
}

/// Parses `1a;ext=1` (RFC 9112 §7.1): hex digits, optional whitespace and extensions.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .is_none_or(|i| rest[i] == b';');
    if digits == 0 || digits > 16 || !rest_ok {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// The end of a head: its empty line, ended by CRLF or by a bare LF as httparse (and so
/// hyper) accepts either.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find_map(|at| match bytes.get(at + 1) {
        Some(b'\n') => Some(at + 2),
        Some(b'\r') if bytes.get(at + 2) == Some(&b'\n') => Some(at + 3),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(input: &[u8]) -> Option<Finding> {
        FramingTracker::new(8192, 100).feed(input)
    }

    fn feed_byte_by_byte(input: &[u8]) -> Option<Finding> {
        let mut tracker = FramingTracker::new(8192, 100);
        input
            .iter()
            .find_map(|b| tracker.feed(std::slice::from_ref(b)))
    }

    #[test]
    fn content_length_with_transfer_encoding_is_a_finding() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\
                      Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(feed_all(input), Some(Finding::ConflictingLengths));
        assert_eq!(feed_byte_by_byte(input), Some(Finding::ConflictingLengths));
    }

    /// Regression: hyper refuses a head only past its own buffer (8 KiB at least), so with a
    /// smaller `max_header_size` a longer head was forwarded, and one trickled in a byte at a
    /// time was never timed out (the watch had stopped following the connection).
    #[test]
    fn a_head_over_the_limit_is_a_finding_and_stays_in_progress() {
        let head = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(200));
        let mut whole = FramingTracker::new(100, 100);
        assert_eq!(whole.feed(head.as_bytes()), Some(Finding::HeadTooLarge));
        let mut trickled = FramingTracker::new(100, 100);
        let found = head
            .as_bytes()
            .iter()
            .find_map(|b| trickled.feed(std::slice::from_ref(b)));
        assert_eq!(found, Some(Finding::HeadTooLarge));
        for tracker in [&mut whole, &mut trickled] {
            assert_eq!(tracker.feed(b"more bytes, never a new head\r\n\r\n"), None);
            assert!(tracker.head_in_progress(), "the header timer keeps running");
        }
        assert_eq!(FramingTracker::new(8192, 100).feed(head.as_bytes()), None);
    }

    #[test]
    fn findings_name_the_message_they_are_about() {
        let sound = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        let conflicting = format!(
            "{sound}POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let mut tracker = FramingTracker::new(8192, 100);
        assert_eq!(
            tracker.feed(conflicting.as_bytes()),
            Some(Finding::ConflictingLengths)
        );
        assert_eq!(tracker.finding_at(), 2);
        let bad_chunk =
            format!("{sound}POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        let mut tracker = FramingTracker::new(8192, 100);
        assert_eq!(
            tracker.feed(bad_chunk.as_bytes()),
            Some(Finding::InvalidChunkSize)
        );
        assert_eq!(
            tracker.finding_at(),
            2,
            "the chunk belongs to the third message"
        );
        let mut tracker = FramingTracker::new(64, 100);
        let long = format!(
            "GET / HTTP/1.1\r\n\r\nGET /{} HTTP/1.1\r\n",
            "a".repeat(100)
        );
        assert_eq!(tracker.feed(long.as_bytes()), Some(Finding::HeadTooLarge));
        assert_eq!(tracker.finding_at(), 1);
    }

    /// Regression (red team): heads ended by bare LFs (which httparse and hyper accept)
    /// were read as one with the next head, which then went unexamined.
    #[test]
    fn heads_ended_by_bare_line_feeds_are_followed() {
        let input = "POST /a HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc\
                     POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut tracker = FramingTracker::new(8192, 100);
        assert_eq!(
            tracker.feed(input.as_bytes()),
            Some(Finding::ConflictingLengths)
        );
        assert_eq!(tracker.finding_at(), 1);
        let byte_by_byte = feed_byte_by_byte(input.as_bytes());
        assert_eq!(byte_by_byte, Some(Finding::ConflictingLengths));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\n\r\nrest"), Some(23));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    /// Regression (red team): `Transfer-Encoding` with an unreadable `Content-Length`
    /// stopped the watch instead of counting as both lengths (hyper ignores that length).
    #[test]
    fn both_lengths_count_whatever_the_length_says() {
        let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: abc\r\n\r\n";
        assert_eq!(feed_all(input), Some(Finding::ConflictingLengths));
    }

    /// A `CONNECT` or an `Upgrade` stops the watch (a tunnel may follow); where it stopped
    /// is known, for the gateway to end the connection unless it switched protocols.
    #[test]
    fn tunnels_and_upgrades_stop_the_watch_at_their_message() {
        for head in [
            "CONNECT x:80 HTTP/1.1\r\nHost: x:80\r\n\r\n",
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ] {
            let mut tracker = FramingTracker::new(8192, 100);
            let input = format!("GET / HTTP/1.1\r\n\r\n{head}POST / HTTP/1.1\r\n");
            assert_eq!(tracker.feed(input.as_bytes()), None);
            assert_eq!(tracker.stopped_at(), Some(1), "{head}");
            assert_eq!(tracker.stopped_at(), None, "reported once");
        }
        let mut tracker = FramingTracker::new(8192, 100);
        assert_eq!(tracker.feed(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(tracker.stopped_at(), None);
    }

    #[test]
    fn the_http2_preface_is_known_from_its_first_bytes() {
        assert!(is_http2_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"));
        assert!(is_http2_preface(b"PRI * HTTP/2"));
        assert!(!is_http2_preface(b"PRI * HTTP/2.1\r\n\r\n"));
        assert!(!is_http2_preface(b"GET / HTTP/2.0\r\n\r\n"));
        assert!(!is_http2_preface(b""));
    }

    #[test]
    fn invalid_chunk_sizes_are_a_finding() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(feed_all(input), Some(Finding::InvalidChunkSize));
    }

    #[test]
    fn a_smuggled_head_inside_a_body_is_not_read_as_a_head() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut input = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        assert_eq!(feed_all(&input), None);
        assert_eq!(feed_byte_by_byte(&input), None);
    }

    #[test]
    fn valid_chunked_and_pipelined_requests_pass() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;name=v\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
                      GET / HTTP/1.1\r\nHost: a\r\n\r\n\
                      POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(feed_all(input), None);
        assert_eq!(feed_byte_by_byte(input), None);
    }

    #[test]
    fn a_later_smuggling_head_on_a_kept_alive_connection_is_found() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
                      POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
                      Content-Length: 3\r\n\r\n";
        assert_eq!(feed_byte_by_byte(input), Some(Finding::ConflictingLengths));
    }

    #[test]
    fn http2_prefaces_turn_the_tracker_off() {
        let mut tracker = FramingTracker::new(8192, 100);
        assert_eq!(tracker.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert!(tracker.is_http2());
        assert_eq!(
            tracker.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\n"),
            None
        );
        assert!(!tracker.head_in_progress());
    }

    #[test]
    fn partial_heads_are_reported_in_progress() {
        let mut tracker = FramingTracker::new(8192, 100);
        assert!(!tracker.head_in_progress());
        tracker.feed(b"\r\n");
        assert!(
            tracker.head_in_progress(),
            "empty lines start the header timer"
        );
        tracker.feed(b"GET / HT");
        assert!(tracker.head_in_progress());
        tracker.feed(b"TP/1.1\r\nHost: a\r\n\r\n");
        assert!(!tracker.head_in_progress());
    }

    #[test]
    fn chunk_sizes_follow_rfc_9112() {
        assert_eq!(parse_chunk_size(b"1A"), Some(26));
        assert_eq!(parse_chunk_size(b"0 ;x=y"), Some(0));
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"1 2"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn request() -> impl Strategy<Value = Vec<u8>> {
            let body = prop::collection::vec(any::<u8>(), 0..64);
            (body, any::<bool>(), any::<bool>()).prop_map(|(body, chunked, conflicting)| {
                let mut out = b"POST /x HTTP/1.1\r\nHost: a\r\n".to_vec();
                if chunked {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                    if conflicting {
                        out.extend_from_slice(b"Content-Length: 1\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                    out.extend_from_slice(&body);
                    out.extend_from_slice(b"\r\n0\r\n\r\n");
                } else {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&body);
                }
                out
            })
        }

        proptest! {
            #[test]
            fn how_bytes_are_split_never_changes_the_finding(
                requests in prop::collection::vec(request(), 1..4),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            ) {
                let stream: Vec<u8> = requests.concat();
                let whole = FramingTracker::new(8192, 100).feed(&stream);
                let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                points.sort_unstable();
                let mut tracker = FramingTracker::new(8192, 100);
                let mut start = 0;
                let mut split = None;
                for point in points.into_iter().chain([stream.len()]) {
                    if split.is_none() {
                        split = tracker.feed(&stream[start..point]);
                    }
                    start = point;
                }
                prop_assert_eq!(whole, split);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = FramingTracker::new(256, 16).feed(&bytes);
            }
        }
    }
}
