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
//! framing can still run into its strings there; only the top level is certain). Messages
//! compressed with `gzip` or `deflate` (`grpc-encoding`) are inflated, up to the inspection
//! budget; gRPC-Web's base64 form (`grpc-web-text`) is decoded first. A message that does not
//! parse, one compressed otherwise, and anything after a malformed prefix are inspected as
//! raw text, as bodies of no known type are.

use std::borrow::Cow;
use std::io::Read;

use super::{Collector, Source, StopReason};
use crate::normalize::Plus;

/// How a body of one of these types is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/grpc`, `+proto`, `application/grpc-web`, `+proto`: 5-byte prefixed
    /// messages.
    Grpc,
    /// `application/grpc-web-text`, `+proto`: the same, base64-encoded.
    GrpcWebText,
    /// `application/x-protobuf`, `application/protobuf`: one bare message.
    Bare,
}

/// Nested messages are read as fields this deep, as protobuf's own parsers do by default;
/// a value deeper still is inspected as text and as its runs of printable bytes.
const MAX_DEPTH: usize = 100;

/// The most inflated bytes read from one request's compressed messages (past them the
/// inspection is incomplete, `total_budget`).
const MAX_INFLATED: usize = 1024 * 1024;

/// The framing of a gRPC or protobuf `mime` type (lower case, no parameters); `None` for
/// other types and for gRPC's JSON encoding (`+json`, read as JSON).
pub(crate) fn framing(mime: &str) -> Option<Framing> {
    match mime {
        "application/grpc"
        | "application/grpc+proto"
        | "application/grpc-web"
        | "application/grpc-web+proto" => Some(Framing::Grpc),
        "application/grpc-web-text" | "application/grpc-web-text+proto" => {
            Some(Framing::GrpcWebText)
        }
        "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf" => {
            Some(Framing::Bare)
        }
        _ => None,
    }
}

/// Whether `body` holds gRPC messages: gRPC frames from its first byte to its end (the last
/// one may be cut when `truncated`), or frames from its first byte of which one holds a
/// message that parses (inflated by `encoding` when compressed), whatever follows them. This
/// is how a gRPC call sent under another content type is recognised, since gRPC servers do
/// not all check the type, and some serve the messages before a stray tail.
pub(crate) fn looks_framed(body: &[u8], truncated: bool, encoding: &[u8]) -> bool {
    let mut rest = body;
    let mut whole = true;
    let mut parsed = false;
    while !rest.is_empty() {
        let (Some(&flag), Some(length)) = (rest.first(), rest.get(1..5)) else {
            whole = false;
            break;
        };
        if flag > 1 {
            whole = false;
            break;
        }
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let after = &rest[5..];
        if length > after.len() {
            whole &= truncated;
            break;
        }
        let message = &after[..length];
        parsed = parsed
            || if flag == 0 {
                parses(message)
            } else {
                inflate(message, encoding, MAX_INFLATED).is_some_and(|plain| parses(&plain))
            };
        rest = &after[length..];
    }
    !body.is_empty() && (whole || parsed)
}

/// Reads `body` framed as `framing` into `out`; `encoding` is the request's
/// `grpc-encoding`.
pub(super) fn collect(body: &[u8], framing: Framing, encoding: &[u8], out: &mut Collector<'_>) {
    match framing {
        Framing::Bare => top_level(body, out),
        Framing::Grpc => frames(body, encoding, out),
        // Base64 text holds no control byte below a tab: a body that does is frames as they
        // are, which gRPC servers that ignore the type read as such.
        Framing::GrpcWebText if body.iter().any(|&b| b < b'\t') => frames(body, encoding, out),
        Framing::GrpcWebText => frames(&decode_base64(body), encoding, out),
    }
}

/// Reads a series of 5-byte prefixed messages.
fn frames(body: &[u8], encoding: &[u8], out: &mut Collector<'_>) {
    let mut rest = body;
    let mut inflated = 0;
    while !rest.is_empty() && !out.full() {
        let (Some(&flag), Some(length)) = (rest.first(), rest.get(1..5)) else {
            // Cut inside a prefix.
            raw(rest, out, true);
            return;
        };
        if flag > 1 {
            // Not gRPC's framing.
            raw(rest, out, true);
            return;
        }
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let payload = &rest[5..];
        // A message past the inspection cap is read as far as it arrived.
        let message = &payload[..length.min(payload.len())];
        if flag == 1 {
            let budget = MAX_INFLATED.saturating_sub(inflated);
            match inflate(message, encoding, budget) {
                Some(plain) => {
                    if plain.len() >= budget {
                        out.stop(StopReason::TotalBudget);
                    }
                    inflated += plain.len();
                    top_level(&plain, out);
                }
                None => raw(message, out, false),
            }
        } else {
            top_level(message, out);
        }
        rest = &payload[message.len()..];
    }
}

/// `message` inflated by `encoding` (`gzip`, or `deflate` as zlib), at most `budget` bytes
/// of it; `None` for another encoding, or bytes that do not inflate.
fn inflate(message: &[u8], encoding: &[u8], budget: usize) -> Option<Vec<u8>> {
    let mut plain = Vec::new();
    let limit = u64::try_from(budget).unwrap_or(u64::MAX);
    let read = if encoding.eq_ignore_ascii_case(b"gzip") {
        flate2::read::GzDecoder::new(message)
            .take(limit)
            .read_to_end(&mut plain)
    } else if encoding.eq_ignore_ascii_case(b"deflate") {
        flate2::read::ZlibDecoder::new(message)
            .take(limit)
            .read_to_end(&mut plain)
    } else {
        return None;
    };
    // A stream cut at the inspection cap inflates as far as it goes.
    match read {
        Ok(_) => Some(plain),
        Err(_) if !plain.is_empty() => Some(plain),
        Err(_) => None,
    }
}

/// A message known to be one (a gRPC frame's, or a bare protobuf body): its fields, or raw
/// text from where it stops parsing.
fn top_level(message: &[u8], out: &mut Collector<'_>) {
    if let Err(at) = fields(message, "", 0, out) {
        raw(&message[at..], out, true);
    }
}

/// Inspects `bytes` as one raw text; `malformed` notes that the body did not parse.
fn raw(bytes: &[u8], out: &mut Collector<'_>, malformed: bool) {
    if malformed {
        out.stop(StopReason::MalformedBody);
    }
    out.push(Source::Body, "", Cow::Owned(bytes.to_vec()), Plus::Literal);
}

/// Pushes the values of `message`'s fields under `path`. A length-delimited value cut
/// short at the top level (the body reached the inspection cap) is read as far as it goes.
/// The error is the offset where the bytes stopped being a message.
fn fields(message: &[u8], path: &str, depth: usize, out: &mut Collector<'_>) -> Result<(), usize> {
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
        let nested = parses(value);
        let deep = depth >= MAX_DEPTH;
        if nested && !deep {
            let _ = fields(value, &name, depth + 1, out);
        }
        let text = std::str::from_utf8(value).is_ok();
        if text || deep || (!nested && mostly_printable(value)) {
            push(out, &name, value);
        } else if !nested {
            // Bytes (an image, a digest, packed numbers): read as one text, their random
            // bytes look like attack syntax now and then; their longer runs of printable
            // bytes, and their text if they are UTF-16, are what an application might read.
            if let Some(text) = utf16(value) {
                push(out, &name, text.as_bytes());
            }
            for run in printable_runs(value, MIN_RUN) {
                push(out, &name, run);
            }
        }
        if nested && deep {
            // Too deep to read as fields: the text between its framing bytes too.
            for run in printable_runs(value, 4) {
                push(out, &name, run);
            }
        }
    }
    Ok(())
}

fn push(out: &mut Collector<'_>, name: &str, value: &[u8]) {
    out.push(
        Source::Protobuf,
        name,
        Cow::Owned(value.to_vec()),
        Plus::Literal,
    );
}

/// The shortest run of printable bytes read from binary bytes.
const MIN_RUN: usize = 12;

/// Whether `byte` is printable ASCII or whitespace.
fn printable(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x20..=0x7e)
}

/// `bytes` decoded as UTF-16 text when they are: a byte-order mark, or a zero in nine of
/// ten bytes on one side (ASCII text in UTF-16 without a mark).
fn utf16(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 4 {
        return None;
    }
    let zeros = |offset: usize| {
        bytes
            .iter()
            .skip(offset)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let half = bytes.len() / 2;
    let little = match bytes {
        [0xff, 0xfe, ..] => true,
        [0xfe, 0xff, ..] => false,
        _ if zeros(1) * 10 >= half * 9 => true,
        _ if zeros(0) * 10 >= half * 9 => false,
        _ => return None,
    };
    let units = bytes.chunks_exact(2).map(|pair| {
        if little {
            u16::from_le_bytes([pair[0], pair[1]])
        } else {
            u16::from_be_bytes([pair[0], pair[1]])
        }
    });
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{fffd}'))
            .collect(),
    )
}

/// The runs of `min` or more printable bytes in `bytes`.
fn printable_runs(bytes: &[u8], min: usize) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| !printable(b))
        .filter(move |run| run.len() >= min)
}

/// Whether three quarters of `bytes` are printable: text with a few stray bytes, read as
/// text, rather than binary.
fn mostly_printable(bytes: &[u8]) -> bool {
    bytes.iter().filter(|&&b| printable(b)).count() * 4 >= bytes.len() * 3
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

/// Decodes gRPC-Web text: base64 (standard or URL alphabet), possibly several padded
/// chunks one after another (each message is encoded on its own), whitespace ignored.
fn decode_base64(text: &[u8]) -> Vec<u8> {
    // Padding ends a chunk: the next one starts on a fresh alignment.
    text.split(|&b| b == b'=')
        .flat_map(|chunk| crate::normalize::hidden::decode_base64(chunk.iter()))
        .collect()
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
        verdict_with(&[(b"Content-Type", content_type)], body)
    }

    fn verdict_with(extra: &[(&[u8], &[u8])], body: &[u8]) -> Action {
        let mut headers = vec![
            Header::new(b"Host", b"api.example"),
            Header::new(b"User-Agent", b"grpc-go/1.62"),
        ];
        headers.extend(extra.iter().map(|(name, value)| Header::new(name, value)));
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
            verdict(b"application/x-unknown", &body[5..]),
            Action::Block,
            "the message read as one raw text"
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
        // Text made invalid UTF-8 by one stray byte is still read as text, and an attack
        // inside binary bytes is found in its printable run.
        let stray = [&b"\xff"[..], SQLI].concat();
        assert_eq!(
            verdict(b"application/grpc", &frame(&string_field(3, &stray))),
            Action::Block
        );
        let mut binary = vec![0xffu8, 0x00, 0x81, 0x10, 0x9c, 0x02];
        binary.extend_from_slice(SQLI);
        binary.extend([0x00, 0xfe, 0x80]);
        assert_eq!(
            verdict(b"application/grpc", &frame(&string_field(3, &binary))),
            Action::Block
        );
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

    const SQLI: &[u8] = b"' union select password from users where '1'='1";

    /// Padded standard base64.
    fn base64(bytes: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes()
    }

    /// gRPC-Web's text form is base64 of the same frames, each message possibly encoded on
    /// its own (padding in the middle).
    #[test]
    fn grpc_web_text_is_decoded_before_it_is_read() {
        let first = base64(&frame(&string_field(1, b"hello")));
        let second = base64(&frame(&string_field(2, SQLI)));
        let body = [first, second].concat();
        let got = located(b"application/grpc-web-text", &body);
        assert!(
            got.contains(&("body.grpc.1".into(), "hello".into())),
            "{got:?}"
        );
        assert_eq!(verdict(b"application/grpc-web-text", &body), Action::Block);
    }

    /// Every gRPC server inflates `gzip`: so does palisade, for what it inspects.
    #[test]
    fn compressed_messages_are_inflated() {
        use std::io::Write;
        let message = string_field(2, SQLI);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&message).expect("gzip");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&message).expect("zlib");
        for (encoding, compressed) in [
            (&b"gzip"[..], gzip.finish().expect("gzip")),
            (&b"deflate"[..], zlib.finish().expect("zlib")),
        ] {
            let mut body = frame(&compressed);
            body[0] = 1;
            let headers: [(&[u8], &[u8]); 2] = [
                (b"Content-Type", b"application/grpc"),
                (b"grpc-encoding", encoding),
            ];
            assert_eq!(verdict_with(&headers, &body), Action::Block, "{encoding:?}");
        }
    }

    /// gRPC servers do not all check the content type: a call labelled as bytes, or as
    /// nothing, is read as its messages all the same.
    #[test]
    fn a_grpc_call_under_another_type_is_read_as_one() {
        let body = frame(&string_field(2, SQLI));
        for content_type in [
            &b"application/octet-stream"[..],
            b"image/png",
            b"text/plain",
        ] {
            assert_eq!(
                verdict(content_type, &body),
                Action::Block,
                "{content_type:?}"
            );
        }
        assert_eq!(verdict_with(&[], &body), Action::Block);
        let got = located(
            b"application/octet-stream",
            &frame(&string_field(1, b"hello")),
        );
        assert!(
            got.contains(&("body.grpc.1".into(), "hello".into())),
            "{got:?}"
        );
        // Binary that merely starts with a zero byte is not taken for gRPC.
        assert!(!super::looks_framed(b"\0\0\0\0\x09abc", false, b""));
        assert!(super::looks_framed(b"\0\0\0\0\x09abc", true, b""));
        // A stray tail after a message does not hide it.
        for tail in [&b"\0"[..], b"xyz", b"\0\0\0\0\x0aab"] {
            let body = [frame(&string_field(2, SQLI)), tail.to_vec()].concat();
            assert_eq!(
                verdict(b"application/octet-stream", &body),
                Action::Block,
                "{tail:?}"
            );
        }
        // Frames labelled as base64 text are read as the frames they are.
        assert_eq!(verdict(b"application/grpc-web-text", &body), Action::Block);
    }

    /// Text in a bytes field that is not UTF-8 is still read: UTF-16 (with or without a
    /// byte-order mark), and printable runs split by form feeds or vertical tabs.
    #[test]
    fn text_in_bytes_fields_is_read_in_other_encodings() {
        let xss = "<img src=x onerror=alert(1)>";
        let mut le = vec![0xff, 0xfe];
        le.extend(xss.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xfe, 0xff];
        be.extend(xss.encode_utf16().flat_map(u16::to_be_bytes));
        for utf16 in [le, be] {
            let body = frame(&string_field(6, &utf16));
            assert_eq!(verdict(b"application/grpc", &body), Action::Block);
        }
        let mut spaced = b"1'\x0cOR\x0c'1'='1'\x0b--\x0c".to_vec();
        spaced.extend([0xff; 8]);
        let body = frame(&string_field(6, &spaced));
        assert_eq!(verdict(b"application/grpc", &body), Action::Block);
    }

    #[test]
    fn deep_nesting_hides_nothing() {
        let mut message = string_field(1, SQLI);
        for _ in 0..250 {
            let mut wrapped = vec![0x0a];
            let mut length = message.len();
            while length >= 0x80 {
                wrapped.push((length as u8 & 0x7f) | 0x80);
                length >>= 7;
            }
            wrapped.push(length as u8);
            wrapped.extend_from_slice(&message);
            message = wrapped;
        }
        assert_eq!(
            verdict(b"application/grpc", &frame(&message)),
            Action::Block
        );
    }

    /// Bytes fields and packed numbers hold any bytes at all: malformed UTF-8 there is no
    /// attack.
    #[test]
    fn binary_fields_pass() {
        let mut seed: u32 = 7;
        let random: Vec<u8> = (0..1024)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        let mut message = string_field(1, b"avatar.png");
        message.extend([0x12, 0x80, 0x08]); // field 2, 1024 bytes
        message.extend_from_slice(&random);
        assert_eq!(
            verdict(b"application/grpc", &frame(&message)),
            Action::Allow
        );
        // A packed repeated int32 of ten numbers.
        let packed = [
            0x3a, 0x1c, 0xae, 0x42, 0xc9, 0x95, 0x03, 0xd8, 0x81, 0x02, 0xed, 0xfb, 0x01, 0xc0,
            0x87, 0x04, 0xf8, 0x9a, 0x04, 0xf7, 0xec, 0x01, 0x9d, 0x99, 0x05, 0xfa, 0x66, 0x80,
            0x9d, 0x05,
        ];
        assert_eq!(verdict(b"application/grpc", &frame(&packed)), Action::Allow);
    }
}
