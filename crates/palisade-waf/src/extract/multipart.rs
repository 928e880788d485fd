//! `multipart/form-data` (RFC 7578): field names, file names and values; parts that declare
//! JSON or XML are read as such. A body that does not follow the format is inspected as raw
//! text and reported, because broken multipart is a classic way past parsers.

use super::{Collector, Source, StopReason, body, json, xml};
use crate::normalize::Plus;

/// The boundary parameter of a multipart content type.
pub(super) fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let lower = content_type.to_ascii_lowercase();
    let at = memchr::memmem::find(&lower, b"boundary=")? + b"boundary=".len();
    let rest = &content_type[at..];
    let value = match rest.first() {
        Some(b'"') => {
            let end = memchr::memchr(b'"', &rest[1..])?;
            &rest[1..1 + end]
        }
        _ => {
            let end = rest
                .iter()
                .position(|&b| b == b';' || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            &rest[..end]
        }
    };
    (!value.is_empty() && value.len() <= 200).then_some(value)
}

/// Reads every part of `body` delimited by `--boundary`.
pub(super) fn collect<'r>(body: &'r [u8], boundary: &[u8], out: &mut Collector<'r>) {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    let starts: Vec<usize> = finder
        .find_iter(body)
        .take(out.limits().max_parts + 2)
        .collect();
    if starts.is_empty() {
        body::raw(body, out, true);
        return;
    }
    if starts.len() > out.limits().max_parts + 1 {
        out.stop(StopReason::TooManyParts);
    }
    let mut malformed = false;
    for pair in starts.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        malformed |= !self::part(part, out);
        if out.full() {
            return;
        }
    }
    let last = starts[starts.len() - 1] + delimiter.len();
    if !body[last..].starts_with(b"--") {
        malformed = true;
        self::part(&body[last..], out);
    }
    if malformed {
        out.stop(StopReason::MalformedBody);
    }
}

/// One part after its delimiter; false when it does not look like a part.
fn part<'r>(part: &'r [u8], out: &mut Collector<'r>) -> bool {
    let part = strip_line_end(part);
    let Some((head, content)) = split_head(part) else {
        if !part.iter().all(u8::is_ascii_whitespace) {
            body::raw(part, out, true);
        }
        return false;
    };
    let content = trim_trailing_newline(content);
    let mut name: &[u8] = b"";
    let mut filename: Option<&[u8]> = None;
    let mut content_type: &[u8] = b"";
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let lower = line.to_ascii_lowercase();
        if lower.starts_with(b"content-disposition:") {
            name = param(line, b"name").unwrap_or_default();
            filename = param(line, b"filename");
        } else if lower.starts_with(b"content-type:") {
            content_type = &line[b"content-type:".len()..];
        }
    }
    let (field, _) = crate::normalize::decode(name, Plus::Literal);
    if !name.is_empty() {
        out.push(Source::MultipartName, &field, name.into(), Plus::Literal);
    }
    if let Some(file) = filename {
        out.push(Source::FileName, &field, file.into(), Plus::Literal);
    }
    match body::kind_of(content_type, content) {
        body::BodyKind::Json if !content_type.is_empty() => json::collect(content, &field, out),
        body::BodyKind::Xml if !content_type.is_empty() => xml::collect(content, &field, out),
        _ if filename.is_some() && !is_text(content_type) && !looks_textual(content) => {}
        _ => {
            out.push(Source::Multipart, &field, content.into(), Plus::Literal);
        }
    }
    true
}

/// Uploaded files are inspected only when declared as text (the upload checks own the rest).
fn is_text(content_type: &[u8]) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let ct = ct.trim_ascii();
    ct.is_empty() || ct.starts_with(b"text/") || ct.starts_with(b"application/x-php")
}

/// Files declared as binary but made of text (a PHP shell named `.jpg`) are inspected too.
pub(super) fn looks_textual(content: &[u8]) -> bool {
    let head = &content[..content.len().min(512)];
    let printable = head
        .iter()
        .filter(|&&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    !head.is_empty() && printable * 100 >= head.len() * 97
}

fn strip_line_end(part: &[u8]) -> &[u8] {
    let part = part.strip_prefix(b"\r").unwrap_or(part);
    part.strip_prefix(b"\n").unwrap_or(part)
}

fn trim_trailing_newline(content: &[u8]) -> &[u8] {
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    content.strip_suffix(b"\r").unwrap_or(content)
}

/// Splits a part into its header block and content at the first empty line.
fn split_head(part: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(at) = memchr::memmem::find(part, b"\r\n\r\n") {
        return Some((&part[..at], &part[at + 4..]));
    }
    let at = memchr::memmem::find(part, b"\n\n")?;
    Some((&part[..at], &part[at + 2..]))
}

/// A `key="value"` (or unquoted) parameter of a header line; `name` never matches `filename`.
fn param<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let boundary_ok = i == 0 || matches!(line[i - 1], b';' | b' ' | b'\t');
        if boundary_ok
            && rest.len() > key.len()
            && rest[..key.len()].eq_ignore_ascii_case(key)
            && rest[key.len()] == b'='
        {
            let value = &rest[key.len() + 1..];
            return Some(match value.first() {
                Some(b'"') => {
                    let end = quoted_end(&value[1..]);
                    &value[1..1 + end]
                }
                _ => {
                    let end = memchr::memchr(b';', value).unwrap_or(value.len());
                    value[..end].trim_ascii()
                }
            });
        }
        i += 1;
    }
    None
}

/// End of a quoted parameter value, honouring backslash escapes.
fn quoted_end(value: &[u8]) -> usize {
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    value.len()
}
