//! Helpers shared by the integration tests: locating `shared/`, decoding the corpus, and
//! reading a raw HTTP/1.1 request into the engine's input type the way a server would
//! (request line, headers, body with chunked framing removed).

#![allow(dead_code)]

use std::path::PathBuf;

use palisade_waf::{Header, Request};

/// The shared data directory: `PALISADE_SHARED`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// Standard base64 (padding optional).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A parsed raw request owning its parts.
pub struct RawRequest {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub version: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Parses request line, headers and body; tolerant of odd spacing as servers are.
    pub fn parse(raw: &[u8]) -> Self {
        let head_end = find(raw, b"\r\n\r\n")
            .map(|p| (p, p + 4))
            .or_else(|| find(raw, b"\n\n").map(|p| (p, p + 2)));
        let (head, body) = match head_end {
            Some((end, body_start)) => (&raw[..end], &raw[body_start..]),
            None => (raw, &[][..]),
        };
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let method = parts.next().unwrap_or_default().to_vec();
        let target = parts.next().unwrap_or_default().to_vec();
        let version = parts.next().unwrap_or_default().to_vec();
        let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
            .filter_map(|l| {
                let colon = l.iter().position(|&b| b == b':')?;
                Some((l[..colon].to_vec(), l[colon + 1..].trim_ascii().to_vec()))
            })
            .collect();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(b"transfer-encoding")
                && v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked")
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        };
        Self {
            method,
            target,
            version,
            headers,
            body,
        }
    }

    /// The engine's view of this request.
    pub fn request(&self) -> RequestView<'_> {
        RequestView {
            raw: self,
            headers: self
                .headers
                .iter()
                .map(|(n, v)| Header::new(n, v))
                .collect(),
        }
    }
}

/// Borrowed headers for [`Request`].
pub struct RequestView<'a> {
    raw: &'a RawRequest,
    headers: Vec<Header<'a>>,
}

impl<'a> RequestView<'a> {
    /// The request, ready for the engine.
    pub fn get(&'a self) -> Request<'a> {
        Request {
            method: &self.raw.method,
            target: &self.raw.target,
            version: &self.raw.version,
            headers: &self.headers,
            body: &self.raw.body,
            body_truncated: false,
            local_addr: None,
        }
    }
}

impl<'a> std::ops::Deref for RequestView<'a> {
    type Target = RawRequest;
    fn deref(&self) -> &RawRequest {
        self.raw
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(body, b"\r\n") else {
            out.extend_from_slice(body);
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            out.extend_from_slice(body);
            return out;
        };
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        let take = size.min(body.len());
        out.extend_from_slice(&body[..take]);
        body = &body[take..];
        body = body.strip_prefix(b"\r\n").unwrap_or(body);
    }
}
