//! A forgiving JSON walker: every object key and string value, with its dotted path, without
//! building a tree. It tolerates a body cut at the inspection cap and stops at the depth
//! limit; anything that is not JSON ends the walk and the rest is inspected as raw text.

use std::borrow::Cow;

use super::{Collector, Source, StopReason, body};
use crate::normalize::Plus;

/// Walks `text` (a JSON document) and keeps its keys and strings under `prefix`.
pub(super) fn collect<'r>(text: &'r [u8], prefix: &str, out: &mut Collector<'r>) {
    let mut walker = Walker {
        text,
        pos: 0,
        path: Vec::new(),
        depth: 0,
        prefix,
    };
    if walker.value(out).is_err() && !out.full() {
        let rest = &text[walker.pos.min(text.len())..];
        if !rest.iter().all(u8::is_ascii_whitespace) {
            body::raw(rest, out, true);
        }
    }
}

struct Walker<'r, 'p> {
    text: &'r [u8],
    pos: usize,
    path: Vec<String>,
    depth: usize,
    prefix: &'p str,
}

/// The walk ended early (malformed, cut short, too deep or out of budget).
struct Stop;

impl<'r> Walker<'r, '_> {
    fn value(&mut self, out: &mut Collector<'r>) -> Result<(), Stop> {
        self.skip_ws();
        match self.peek().ok_or(Stop)? {
            b'{' => self.object(out),
            b'[' => self.array(out),
            b'"' => {
                let s = self.string()?;
                let name = self.path_name();
                self.keep(out, Source::Json, &name, s)
            }
            _ => self.scalar(),
        }
    }

    fn object(&mut self, out: &mut Collector<'r>) -> Result<(), Stop> {
        self.enter(out)?;
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek().ok_or(Stop)? {
                b'}' => break,
                b',' => self.pos += 1,
                b'"' => {
                    let key = self.string()?;
                    let key_text = String::from_utf8_lossy(&key).chars().take(64).collect();
                    self.path.push(key_text);
                    let name = self.path_name();
                    self.keep(out, Source::JsonKey, &name, key)?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(Stop);
                    }
                    self.pos += 1;
                    self.value(out)?;
                    self.path.pop();
                }
                _ => return Err(Stop),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self, out: &mut Collector<'r>) -> Result<(), Stop> {
        self.enter(out)?;
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek().ok_or(Stop)? {
                b']' => break,
                b',' => self.pos += 1,
                _ => self.value(out)?,
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    /// Counts a level of nesting.
    fn enter(&mut self, out: &mut Collector<'r>) -> Result<(), Stop> {
        if self.depth >= out.limits().max_depth {
            out.stop(StopReason::TooDeep);
            return Err(Stop);
        }
        self.depth += 1;
        Ok(())
    }

    fn path_name(&self) -> String {
        let mut name = String::from(self.prefix);
        for seg in &self.path {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(seg);
        }
        name
    }

    fn keep(
        &mut self,
        out: &mut Collector<'r>,
        source: Source,
        name: &str,
        s: Cow<'r, [u8]>,
    ) -> Result<(), Stop> {
        if s.is_empty() || out.push(source, name, s, Plus::Literal) {
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// A string token, unescaped; borrowed when it holds no escapes.
    fn string(&mut self) -> Result<Cow<'r, [u8]>, Stop> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < self.text.len() {
            match self.text[i] {
                b'"' => {
                    self.pos = i + 1;
                    let raw = &self.text[start..i];
                    return Ok(if escaped {
                        Cow::Owned(unescape(raw))
                    } else {
                        Cow::Borrowed(raw)
                    });
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        self.pos = self.text.len();
        Err(Stop)
    }

    fn scalar(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                break;
            }
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        let number = token
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
        let ok = !token.is_empty() && (number || matches!(token, b"true" | b"false" | b"null"));
        if ok {
            Ok(())
        } else {
            self.pos = start;
            Err(Stop)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }
}

/// JSON string escapes to bytes (`\uXXXX` to UTF-8; surrogate halves become U+FFFD).
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 >= raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        let decoded = match c {
            b'n' => '\n',
            b't' => '\t',
            b'r' => '\r',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'u' => {
                let hex = raw.get(i..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        i += 4;
                        char::from_u32(v).unwrap_or('\u{FFFD}')
                    }
                    None => 'u',
                }
            }
            other => char::from(other),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(decoded.encode_utf8(&mut buf).as_bytes());
    }
    out
}
