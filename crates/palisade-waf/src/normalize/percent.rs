//! Percent-decoding (`%XX`, IIS `%uXXXX`) and overlong UTF-8 folding.

use super::{DecodeFlags, Plus};

/// Decodes one round of percent escapes from `input` into `out`; true if anything changed.
/// A `%` without two hex digits after it is flagged only in the `first_round`: later
/// rounds read what an earlier one decoded, and `100%25 sure` properly encodes a percent.
pub(super) fn decode_into(
    input: &[u8],
    plus: Plus,
    first_round: bool,
    out: &mut Vec<u8>,
    flags: &mut DecodeFlags,
) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'+' && plus == Plus::IsSpace {
            out.push(b' ');
            changed = true;
            i += 1;
            continue;
        }
        if b != b'%' {
            if b == 0 {
                flags.insert(DecodeFlags::NUL);
            }
            out.push(b);
            i += 1;
            continue;
        }
        if let Some(byte) = hex_pair(input.get(i + 1..i + 3)) {
            out.push(byte);
            if byte == 0 {
                flags.insert(DecodeFlags::NUL);
            }
            flags.insert(DecodeFlags::PERCENT);
            changed = true;
            i += 3;
        } else if let Some(c) = unicode_escape(input.get(i + 1..i + 6)) {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            flags.insert(DecodeFlags::UNICODE_PERCENT);
            changed = true;
            i += 6;
        } else {
            if first_round {
                flags.insert(DecodeFlags::INVALID_PERCENT);
            }
            out.push(b);
            i += 1;
        }
    }
    changed
}

/// `%uXXXX`: `u` then four hex digits.
fn unicode_escape(rest: Option<&[u8]>) -> Option<char> {
    let rest = rest?;
    if !rest[0].eq_ignore_ascii_case(&b'u') {
        return None;
    }
    let mut v: u32 = 0;
    for &d in &rest[1..5] {
        v = v * 16 + hex_digit(d)? as u32;
    }
    char::from_u32(v)
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    Some(hex_digit(pair[0])? * 16 + hex_digit(pair[1])?)
}

/// The value of one hex digit.
pub(crate) fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Replaces overlong UTF-8 encodings of ASCII (2-byte `C0 xx`/`C1 xx`, 3-byte `E0 80..9F xx`)
/// by the ASCII byte they spell. Decoders that accept them let `%c0%af` stand for `/`.
pub(super) fn fold_overlong(bytes: &[u8], flags: &mut DecodeFlags) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let cont = |k: usize| bytes.get(i + k).filter(|c| (0x80..0xC0).contains(*c));
        if (b == 0xC0 || b == 0xC1)
            && let Some(&c1) = cont(1)
        {
            out.push(((b & 0x1F) << 6) | (c1 & 0x3F));
            flags.insert(DecodeFlags::OVERLONG_UTF8);
            i += 2;
            continue;
        }
        if b == 0xE0
            && let (Some(&c1), Some(&c2)) = (cont(1), cont(2))
            && c1 < 0xA0
        {
            let v = (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F);
            if v < 0x80 {
                out.push(v as u8);
                flags.insert(DecodeFlags::OVERLONG_UTF8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}
