//! Chooses how to read a body from its declared type, falling back to its first byte when the
//! type is missing or unknown (attackers omit it to dodge parsers).

use super::{Collector, Source, StopReason, json, multipart, pairs, push_pair, xml};
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
    match kind_of(content_type, body) {
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
    let ct = String::from_utf8_lossy(content_type).to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
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
