//! gRPC and protobuf bodies, read without a schema: the strings of each message's fields,
//! with their field-number paths (`body.grpc.1.3`), instead of the message bytes as one text.
//!
//! Read as one text, a message's framing bytes run into its strings: a field key and a
//! length byte can read as `\n"` before `document.cookie ...`, and an ordinary sentence then
//! looks like script. A gRPC request body is a series of messages, each behind a 5-byte
//! prefix (a compression flag and a big-endian length); a message is a series of fields,
//! each a varint key (field number and wire type) and a value: a varint, 4 or 8 fixed bytes,
//! or a length and that many bytes, which are a string, raw bytes or a nested message.
//!
//! Without the schema a length-delimited value that is valid UTF-8 may still be a nested
//! message: it is then inspected both ways, as its text and as the fields it parses into, so
//! that a value crafted to parse as a message cannot hide its text (a nested message's own
//! framing can still run into its strings there; only the top level is certain). A message
//! that does not parse, a compressed one (palisade does not inflate it) and anything after a
//! malformed prefix are inspected as raw text, as bodies of no known type are.

use super::{Collector, Source, StopReason, body};
use crate::normalize::Plus;

/// How a body of one of these types is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/grpc`, `+proto`, `application/grpc-web`, `+proto`: 5-byte prefixed
    /// messages.
    Grpc,
    /// `application/x-protobuf`, `application/protobuf`: one bare message.
    Bare,
}

/// Nested messages read at most this deep (a value deeper is inspected as text only).
const MAX_DEPTH: usize = 8;

/// The framing of a gRPC or protobuf `mime` type (lower case, no parameters); `None` for
/// other types, and for gRPC's JSON and base64 (`grpc-web-text`) encodings.
pub(crate) fn framing(mime: &str) -> Option<Framing> {
    match mime {
        "application/grpc"
        | "application/grpc+proto"
        | "application/grpc-web"
        | "application/grpc-web+proto" => Some(Framing::Grpc),
        "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf" => {
            Some(Framing::Bare)
        }
        _ => None,
    }
}

/// Reads `body` framed as `framing` into `out`.
pub(super) fn collect<'r>(body: &'r [u8], framing: Framing, out: &mut Collector<'r>) {
    match framing {
        Framing::Bare => top_level(body, out),
        Framing::Grpc => {
            let mut rest = body;
            while !rest.is_empty() && !out.full() {
                let Some((&flag, after_flag)) = rest.split_first() else {
                    return;
                };
                let (Some(length), true) = (after_flag.first_chunk::<4>(), flag <= 1) else {
                    // Not gRPC's framing, or cut inside a prefix.
                    body::raw(rest, out, true);
                    return;
                };
                let length = u32::from_be_bytes(*length) as usize;
                let payload = &after_flag[4..];
                // A message past the inspection cap is read as far as it arrived.
                let message = &payload[..length.min(payload.len())];
                if flag == 1 {
                    body::raw(message, out, false);
                } else {
                    top_level(message, out);
                }
                rest = &payload[message.len()..];
            }
        }
    }
}

/// A message known to be one (a gRPC frame's, or a bare protobuf body): its fields, or raw
/// text from where it stops parsing.
fn top_level<'r>(message: &'r [u8], out: &mut Collector<'r>) {
    if let Err(at) = fields(message, "", 0, out) {
        out.stop(StopReason::MalformedBody);
        body::raw(&message[at..], out, false);
    }
}

/// Pushes the values of `message`'s fields under `path`. A length-delimited value cut
/// short (the body reached the inspection cap) is read as far as it goes. The error is the
/// offset where the bytes stopped being a message.
fn fields<'r>(
    message: &'r [u8],
    path: &str,
    depth: usize,
    out: &mut Collector<'r>,
) -> Result<(), usize> {
    let mut pos = 0;
    while pos < message.len() {
        if out.full() {
            return Ok(());
        }
        let start = pos;
        let (number, value) = field(message, &mut pos, depth == 0).ok_or(start)?;
        let Some(value) = value else {
            continue;
        };
        let name = if path.is_empty() {
            number.to_string()
        } else {
            format!("{path}.{number}")
        };
        if depth < MAX_DEPTH && parses(value) {
            let _ = fields(value, &name, depth + 1, out);
            if std::str::from_utf8(value).is_ok() {
                out.push(Source::Protobuf, &name, value.into(), Plus::Literal);
            }
        } else {
            out.push(Source::Protobuf, &name, value.into(), Plus::Literal);
        }
    }
    Ok(())
}

/// Reads the field at `*pos`, moving past it: its number, and its bytes when it is
/// length-delimited. A length past the end of `message` is cut there when `cut_ok` (a value
/// the inspection cap cut short), else the bytes are not a message. `None` when the bytes
/// are not a field.
fn field<'m>(message: &'m [u8], pos: &mut usize, cut_ok: bool) -> Option<(u64, Option<&'m [u8]>)> {
    let key = varint(message, pos)?;
    let number = key >> 3;
    if number == 0 || number >= 1 << 29 {
        return None;
    }
    let (size, delimited) = match key & 7 {
        0 => {
            varint(message, pos)?;
            (0, false)
        }
        1 => (8, false),
        5 => (4, false),
        2 => (usize::try_from(varint(message, pos)?).ok()?, true),
        _ => return None,
    };
    let start = *pos;
    let end = match start.checked_add(size) {
        Some(end) if end <= message.len() => end,
        _ if delimited && cut_ok => message.len(),
        _ => return None,
    };
    *pos = end;
    Some((number, delimited.then(|| &message[start..end])))
}

/// Whether `bytes` parse whole as a message of at least one field, every length within
/// them.
fn parses(bytes: &[u8]) -> bool {
    let mut pos = 0;
    while pos < bytes.len() {
        if field(bytes, &mut pos, false).is_none() {
            return false;
        }
    }
    !bytes.is_empty()
}

/// A base-128 varint at `*pos` (at most 10 bytes), moving past it.
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in 0..10 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::extract::{Collector, Limits, collect as collect_request};
    use crate::request::{Header, Request};
    use crate::verdict::Action;
    use crate::{Engine, WafSettings};

    /// A length-delimited field: key, length, bytes.
    fn string_field(number: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(value.len()).expect("short")];
        out.extend_from_slice(value);
        out
    }

    /// `message` behind gRPC's 5-byte prefix.
    fn frame(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(message.len()).expect("short").to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn located(content_type: &[u8], body: &[u8]) -> Vec<(String, String)> {
        let headers = [Header::new(b"Content-Type", content_type)];
        let req = Request {
            method: b"POST",
            target: b"/demo.Notes/Add",
            headers: &headers,
            body,
            ..Request::default()
        };
        let mut out = Collector::new(Limits::default());
        collect_request(&req, &mut out);
        out.inputs
            .iter()
            .map(|i| (i.location.to_string(), i.text.clone()))
            .collect()
    }

    fn verdict(content_type: &[u8], body: &[u8]) -> Action {
        let headers = [
            Header::new(b"Host", b"api.example"),
            Header::new(b"User-Agent", b"grpc-go/1.62"),
            Header::new(b"Content-Type", content_type),
        ];
        let req = Request {
            method: b"POST",
            target: b"/demo.Notes/Add",
            version: b"HTTP/2.0",
            headers: &headers,
            body,
            ..Request::default()
        };
        Engine::new(WafSettings::default()).inspect(&req).action
    }

    /// 34 bytes: its length byte is `"`, and its key byte a newline.
    const SENTENCE: &[u8] = b"document.cookie is set by the app.";

    #[test]
    fn strings_of_each_message_are_inspected_by_field_path() {
        let mut inner = string_field(1, b"O'Brien");
        inner.extend([0x10, 0x96, 0x01]); // field 2: varint 150
        let mut message = string_field(1, b"hello");
        message.extend(string_field(3, &inner));
        message.extend([0x25, 1, 2, 3, 4]); // field 4: fixed32
        let mut body = frame(&message);
        body.extend(frame(&string_field(2, b"second message")));
        let got = located(b"application/grpc", &body);
        assert!(
            got.contains(&("body.grpc.1".into(), "hello".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("body.grpc.3.1".into(), "O'Brien".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("body.grpc.2".into(), "second message".into())),
            "{got:?}"
        );
        assert!(
            !got.iter().any(|(at, _)| at == "body"),
            "nothing read as one raw text: {got:?}"
        );
    }

    /// The false positive this reading removes: read as one text, the field's key and length
    /// bytes make `\n"document.cookie ...` of an ordinary sentence.
    #[test]
    fn a_sentence_behind_a_quote_like_length_byte_is_not_script() {
        let body = frame(&string_field(1, SENTENCE));
        assert_eq!(
            verdict(b"application/x-unknown", &body),
            Action::Block,
            "read as one raw text"
        );
        assert_eq!(verdict(b"application/grpc", &body), Action::Allow);
        assert_eq!(
            verdict(b"application/x-protobuf", &body[5..]),
            Action::Allow
        );
    }

    /// Nested messages hold zero varints and small lengths: NULs and control bytes in the
    /// text reading of their bytes are no sign of an attack there.
    #[test]
    fn ordinary_nested_messages_pass() {
        let mut note = string_field(1, b"Lunch with Ana at noon");
        note.extend([0x10, 0x00, 0x18, 0x01]); // fields 2 and 3: varints 0 and 1
        note.extend(string_field(4, b"2026-12-05T12:00:00Z"));
        let mut message = string_field(1, &note);
        message.extend(string_field(2, SENTENCE));
        assert_eq!(
            verdict(b"application/grpc", &frame(&message)),
            Action::Allow
        );
    }

    #[test]
    fn attacks_in_fields_are_still_found_nested_or_not() {
        let sqli = b"1' OR '1'='1' --";
        let xss = b"<script>alert(document.cookie)</script>";
        for attack in [&sqli[..], &xss[..]] {
            let top = frame(&string_field(2, attack));
            assert_eq!(verdict(b"application/grpc+proto", &top), Action::Block);
            let nested = frame(&string_field(5, &string_field(1, attack)));
            assert_eq!(verdict(b"application/grpc-web", &nested), Action::Block);
        }
        // A value crafted to parse as a message as well is read as its text too.
        let crafted = string_field(4, &[b"x".as_slice(), &string_field(1, xss)].concat());
        assert_eq!(
            verdict(b"application/grpc", &frame(&crafted)),
            Action::Block
        );
    }

    #[test]
    fn what_does_not_parse_is_read_as_raw_text() {
        // A wire type 7 key, then an attack.
        let mut message = vec![0x0f];
        message.extend_from_slice(b"<script>alert(1)</script>");
        let got = located(b"application/grpc", &frame(&message));
        assert!(
            got.iter()
                .any(|(at, text)| at == "body" && text.contains("<script>")),
            "{got:?}"
        );
        // Not gRPC's framing at all.
        let got = located(b"application/grpc", b"<script>alert(1)</script>");
        assert!(got.iter().any(|(at, _)| at == "body"), "{got:?}");
        // A compressed message is not inflated: its bytes are read as they are.
        let mut compressed = frame(b"abc<script>");
        compressed[0] = 1;
        let got = located(b"application/grpc", &compressed);
        assert!(
            got.contains(&("body".into(), "abc<script>".into())),
            "{got:?}"
        );
    }

    #[test]
    fn a_message_cut_by_the_inspection_cap_is_read_as_far_as_it_goes() {
        let mut body = frame(&string_field(1, b"0123456789 <script>alert(1)</script>"));
        body.truncate(body.len() - 10);
        let got = located(b"application/grpc", &body);
        assert!(
            got.iter()
                .any(|(at, text)| at == "body.grpc.1" && text.ends_with("<script>alert(1")),
            "{got:?}"
        );
    }
}
