//! HTML character references and JavaScript / C backslash escapes.
//!
//! Browsers accept numeric references without the closing `;` and with any number of
//! leading zeros, so both are decoded; named references cover the characters that matter to
//! markup and script (the full HTML table adds nothing a detector needs).

use super::DecodeFlags;
use super::percent::hex_digit;

/// Named references worth decoding: the characters that build tags, attributes and URLs.
const NAMED: &[(&[u8], char)] = &[
    (b"lt", '<'),
    (b"gt", '>'),
    (b"amp", '&'),
    (b"quot", '"'),
    (b"apos", '\''),
    (b"nbsp", ' '),
    (b"tab", '\t'),
    (b"newline", '\n'),
    (b"colon", ':'),
    (b"semi", ';'),
    (b"lpar", '('),
    (b"rpar", ')'),
    (b"sol", '/'),
    (b"bsol", '\\'),
    (b"grave", '`'),
    (b"equals", '='),
    (b"excl", '!'),
    (b"num", '#'),
    (b"period", '.'),
    (b"comma", ','),
    (b"lsqb", '['),
    (b"rsqb", ']'),
    (b"lcub", '{'),
    (b"rcub", '}'),
    (b"plus", '+'),
    (b"percnt", '%'),
    (b"dollar", '$'),
    (b"quest", '?'),
    (b"ast", '*'),
    (b"vert", '|'),
];

/// Decodes HTML character references from `input` into `out`; true if anything changed.
pub(super) fn decode_into(input: &[u8], out: &mut Vec<u8>, flags: &mut DecodeFlags) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'&'
            && let Some((c, used)) = reference(&input[i + 1..])
        {
            push_char(out, c);
            flags.insert(DecodeFlags::ENTITIES);
            changed = true;
            i += 1 + used;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    changed
}

/// The character a reference after `&` stands for, and how many bytes it used.
fn reference(rest: &[u8]) -> Option<(char, usize)> {
    if let Some(num) = rest.strip_prefix(b"#") {
        let (hex, digits) = match num.first() {
            Some(b'x' | b'X') => (true, &num[1..]),
            _ => (false, num),
        };
        let mut v: u32 = 0;
        let mut n = 0;
        while let Some(&d) = digits.get(n) {
            let dv = if hex {
                hex_digit(d).map(u32::from)
            } else {
                d.is_ascii_digit().then(|| u32::from(d - b'0'))
            };
            let Some(dv) = dv else { break };
            v = v
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(dv);
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let mut used = 1 + usize::from(hex) + n;
        if digits.get(n) == Some(&b';') {
            used += 1;
        }
        let c = char::from_u32(v).unwrap_or('\u{FFFD}');
        // Never longer than what was written: `&#1;` is 4 bytes, a char at most 4.
        return Some((c, used));
    }
    for (name, c) in NAMED {
        if rest.len() > name.len()
            && rest[..name.len()].eq_ignore_ascii_case(name)
            && rest[name.len()] == b';'
        {
            return Some((*c, name.len() + 1));
        }
    }
    // `&lt` without `;` is still read by browsers for the legacy names.
    for (name, c) in &NAMED[..5] {
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            return Some((*c, name.len()));
        }
    }
    None
}

/// Decodes `\xNN`, `\uNNNN` and `\u{N..}` escapes; true if anything changed.
pub(super) fn decode_escapes_into(
    input: &[u8],
    out: &mut Vec<u8>,
    flags: &mut DecodeFlags,
) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\'
            && let Some((c, used)) = escape(&input[i + 1..])
        {
            push_char(out, c);
            flags.insert(DecodeFlags::JS_ESCAPES);
            changed = true;
            i += 1 + used;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    changed
}

fn escape(rest: &[u8]) -> Option<(char, usize)> {
    match rest.first()? {
        b'x' | b'X' => {
            let v = hex_digit(*rest.get(1)?)? * 16 + hex_digit(*rest.get(2)?)?;
            Some((char::from(v), 3))
        }
        b'u' | b'U' if rest.get(1) == Some(&b'{') => {
            let end = rest.iter().take(10).position(|&b| b == b'}')?;
            let v = hex_value(&rest[2..end])?;
            Some((char::from_u32(v)?, end + 1))
        }
        b'u' | b'U' => {
            let v = hex_value(rest.get(1..5)?)?;
            Some((char::from_u32(v)?, 5))
        }
        _ => None,
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |v, &d| Some(v * 16 + u32::from(hex_digit(d)?)))
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}
