//! Chooses how to read a body from its declared type, falling back to its first byte when the
//! type is missing or unknown (attackers omit it to dodge parsers).

use super::{Collector, Source, StopReason, grpc, json, multipart, pairs, push_pair, xml};
use crate::normalize::Plus;
use crate::request::Request;

/// How a body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Form,
    Multipart,
    Json,
    Xml,
    Raw,
}

/// Reads the body of `req` into `out`.
pub(super) fn collect<'r>(req: &Request<'r>, out: &mut Collector<'r>) {
    let body = req.body;
    if body.is_empty() {
        return;
    }
    let content_type = req.header("content-type").unwrap_or_default();
    let encoding = req.header("grpc-encoding").unwrap_or_default();
    // gRPC servers do not all check the type: a call sent as bytes, or as nothing in
    // particular, is still read as the messages it holds.
    let framed = || grpc::looks_framed(body, req.body_truncated, encoding);
    if opaque_type(content_type) && !text_in_disguise(body) {
        if framed() {
            grpc::collect(body, grpc::Framing::Grpc, encoding, out);
        }
        return;
    }
    let lower = String::from_utf8_lossy(content_type).to_ascii_lowercase();
    let mime = mime_of(&lower);
    if let Some(framing) = grpc::framing(mime) {
        grpc::collect(body, framing, encoding, out);
        return;
    }
    match kind_of_mime(mime, body) {
        BodyKind::Raw if framed() => grpc::collect(body, grpc::Framing::Grpc, encoding, out),
        BodyKind::Form => {
            for (name, value) in pairs(body, b'&') {
                push_pair(out, Source::FormName, Source::Form, name, value);
            }
        }
        BodyKind::Multipart => match multipart::boundary(content_type) {
            Some(boundary) => multipart::collect(body, boundary, out),
            // TODO: read a boundary-less multipart body as what it is; as raw text, binary
            // file bytes there give findings by chance, so such a request may pass or be blocked.
            None => raw(body, out, true),
        },
        BodyKind::Json => json::collect(body, "", out),
        BodyKind::Xml => xml::collect(body, "", out),
        BodyKind::Raw => raw(body, out, false),
    }
}

/// The reading for a declared type, or a guess from the content when it says nothing useful.
pub(crate) fn kind_of(content_type: &[u8], body: &[u8]) -> BodyKind {
    let lower = String::from_utf8_lossy(content_type).to_ascii_lowercase();
    kind_of_mime(mime_of(&lower), body)
}

/// The media type of a lower-cased `Content-Type` value, without its parameters.
fn mime_of(lower: &str) -> &str {
    lower.split(';').next().unwrap_or("").trim()
}

/// [`kind_of`] for a media type already lower-cased and without parameters.
fn kind_of_mime(mime: &str, body: &[u8]) -> BodyKind {
    if mime == "application/x-www-form-urlencoded" {
        return BodyKind::Form;
    }
    if mime.starts_with("multipart/") {
        return BodyKind::Multipart;
    }
    if mime.ends_with("/json") || mime.ends_with("+json") {
        return BodyKind::Json;
    }
    if mime.ends_with("/xml") || mime.ends_with("+xml") {
        return BodyKind::Xml;
    }
    guess(body)
}

/// Media, archives and raw bytes: the upload checks' business when they are what they say.
/// The gateway asks the same question to decide whether to read such a body at all.
pub fn opaque_type(content_type: &[u8]) -> bool {
    let lower = content_type.to_ascii_lowercase();
    let mime = lower
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    const PREFIXES: [&[u8]; 4] = [b"image/", b"audio/", b"video/", b"font/"];
    const TYPES: [&[u8]; 6] = [
        b"application/octet-stream",
        b"application/pdf",
        b"application/zip",
        b"application/gzip",
        b"application/x-tar",
        b"application/x-7z-compressed",
    ];
    PREFIXES.iter().any(|p| mime.starts_with(p)) || TYPES.contains(&mime)
}

/// A body declared as media or bytes that is text: a form or JSON document sent as
/// `image/png` reaches an application that parses bodies whatever their declared type,
/// so it is read like an undeclared body. A body whose bytes are a known binary format,
/// or are not text, is not.
fn text_in_disguise(body: &[u8]) -> bool {
    // TODO: a form prefixed with binary junk (`\x89PNG...&q=<script>`) is not text here; an
    // application that parses any body as a form whatever its bytes still receives it unread.
    use palisade_policy::upload::FileType;
    use palisade_policy::upload::sniff::{SNIFF_WINDOW, sniff};
    let head = &body[..body.len().min(SNIFF_WINDOW)];
    match sniff(head) {
        Some(
            FileType::Text
            | FileType::Svg
            | FileType::Xml
            | FileType::Html
            | FileType::Php
            | FileType::Script,
        ) => true,
        Some(_) => false,
        None => multipart::looks_textual(body),
    }
}

fn guess(body: &[u8]) -> BodyKind {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{' | b'[') => BodyKind::Json,
        Some(b'<') => BodyKind::Xml,
        _ if body.contains(&b'=') && !body.contains(&b'\n') => BodyKind::Form,
        _ => BodyKind::Raw,
    }
}

/// Inspects the body as one piece of text.
pub(super) fn raw<'r>(body: &'r [u8], out: &mut Collector<'r>, malformed: bool) {
    if malformed {
        out.stop(StopReason::MalformedBody);
    }
    out.push(Source::Body, "", body.into(), Plus::Literal);
}
