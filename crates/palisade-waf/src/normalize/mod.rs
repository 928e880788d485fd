//! Normalisation: undo the encodings attackers use to slip payloads past filters, once per
//! input, so that every detector sees the same decoded text.
//!
//! Work is bounded: every pass is linear and never lengthens its input (each escape decodes
//! to at most as many bytes as it was written with), and the passes repeat to a fixed point
//! at most [`MAX_ROUNDS`] times. What was undone is recorded in [`DecodeFlags`], because
//! layered encodings are themselves a sign of evasion. Nothing here allocates more than a
//! small multiple of the input.

mod entity;
pub(crate) mod hidden;
mod path;
mod percent;

pub use hidden::{HiddenPayload, MAX_HIDDEN, hidden_payloads};
pub use path::{exclusion_paths, normalize_path};

/// Passes of (percent, entity, escape) decoding before giving up on reaching a fixed point.
pub const MAX_ROUNDS: usize = 4;

/// What decoding found and undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeFlags(u16);

impl DecodeFlags {
    /// `%XX` escapes were decoded.
    pub const PERCENT: Self = Self(1);
    /// A second round of decoding still changed the text (`%2527`).
    pub const MULTI_ENCODED: Self = Self(1 << 1);
    /// `%` not followed by two hex digits.
    pub const INVALID_PERCENT: Self = Self(1 << 2);
    /// IIS-style `%uXXXX` escapes.
    pub const UNICODE_PERCENT: Self = Self(1 << 3);
    /// Overlong UTF-8 (`%c0%af` for `/`).
    pub const OVERLONG_UTF8: Self = Self(1 << 4);
    /// Bytes that are not UTF-8 at all.
    pub const INVALID_UTF8: Self = Self(1 << 5);
    /// HTML character references.
    pub const ENTITIES: Self = Self(1 << 6);
    /// JavaScript / C escapes (`\x3c`, `\u003c`, `\u{3c}`).
    pub const JS_ESCAPES: Self = Self(1 << 7);
    /// NUL bytes (removed).
    pub const NUL: Self = Self(1 << 8);
    /// Fullwidth forms folded to ASCII (`％`, `／`).
    pub const FULLWIDTH: Self = Self(1 << 9);
    /// Other control characters (not tab, CR, LF).
    pub const CONTROL: Self = Self(1 << 10);
    /// Still changing after [`MAX_ROUNDS`] rounds.
    pub const ENDLESS: Self = Self(1 << 11);
    /// Typographic quotes folded to ASCII quotes (`’` to `'`).
    pub const QUOTE_LOOKALIKE: Self = Self(1 << 12);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Whether nothing was decoded or flagged.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Whether `+` means a space (form and query encoding) or itself (paths, headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// `application/x-www-form-urlencoded` rules.
    IsSpace,
    /// Literal plus.
    Literal,
}

/// Decodes `raw` to a fixed point (bounded) and returns the text with what was undone.
pub fn decode(raw: &[u8], plus: Plus) -> (String, DecodeFlags) {
    let mut flags = DecodeFlags::default();
    // Most values are plain text: nothing to decode, nothing to flag.
    if let Ok(plain) = std::str::from_utf8(raw)
        && !raw.iter().any(|&b| needs_work(b, Plus::Literal))
    {
        // Form encoding with spaces as `+` and nothing else to undo.
        return match plus {
            Plus::IsSpace if raw.contains(&b'+') => (plain.replace('+', " "), flags),
            _ => (plain.to_string(), flags),
        };
    }
    let mut cur = raw.to_vec();
    let mut next = Vec::with_capacity(raw.len());
    let mut settled = false;
    for round in 0..MAX_ROUNDS {
        let plus_here = if round == 0 { plus } else { Plus::Literal };
        let mut changed = false;
        if memchr::memchr(b'%', &cur).is_some() || plus_here == Plus::IsSpace {
            next.clear();
            changed |= percent::decode_into(&cur, plus_here, round == 0, &mut next, &mut flags);
            std::mem::swap(&mut cur, &mut next);
        }
        if memchr::memchr(b'&', &cur).is_some() {
            next.clear();
            changed |= entity::decode_into(&cur, &mut next, &mut flags);
            std::mem::swap(&mut cur, &mut next);
        }
        if memchr::memchr(b'\\', &cur).is_some() {
            next.clear();
            changed |= entity::decode_escapes_into(&cur, &mut next, &mut flags);
            std::mem::swap(&mut cur, &mut next);
        }
        let more = memchr::memchr3(b'%', b'&', b'\\', &cur).is_some();
        if !changed || !more {
            settled = true;
            if changed && round >= 1 {
                flags.insert(DecodeFlags::MULTI_ENCODED);
            }
            break;
        }
        if round >= 1 {
            flags.insert(DecodeFlags::MULTI_ENCODED);
        }
    }
    if !settled {
        flags.insert(DecodeFlags::ENDLESS);
    }
    let text = to_text(&cur, &mut flags);
    (text, flags)
}

/// Bytes that decoding or folding would change or flag.
fn needs_work(b: u8, plus: Plus) -> bool {
    matches!(b, b'%' | b'&' | b'\\' | 0..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f)
        || (b == b'+' && plus == Plus::IsSpace)
        || b >= 0x80
}

/// Converts decoded bytes to text: overlong UTF-8 folded to what it spells, invalid bytes
/// replaced, NULs dropped, fullwidth forms folded to ASCII.
fn to_text(bytes: &[u8], flags: &mut DecodeFlags) -> String {
    let clean_ascii = bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'));
    if clean_ascii {
        return String::from_utf8(bytes.to_vec()).unwrap_or_default();
    }
    let fixed = percent::fold_overlong(bytes, flags);
    let lossy = String::from_utf8_lossy(&fixed);
    if matches!(lossy, std::borrow::Cow::Owned(_)) {
        flags.insert(DecodeFlags::INVALID_UTF8);
    }
    let mut out = String::with_capacity(lossy.len());
    for c in lossy.chars() {
        match c {
            '\0' => flags.insert(DecodeFlags::NUL),
            '\u{3002}' | '\u{FF61}' => {
                flags.insert(DecodeFlags::FULLWIDTH);
                out.push('.');
            }
            '\u{2460}'..='\u{2468}' | '\u{24EA}' | '\u{24B6}'..='\u{24E9}' => {
                flags.insert(DecodeFlags::FULLWIDTH);
                out.push(enclosed_to_ascii(c));
            }
            '\u{FF01}'..='\u{FF5E}' => {
                flags.insert(DecodeFlags::FULLWIDTH);
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            // Quote look-alikes that best-fit charset conversion turns into real quotes.
            '\u{2018}' | '\u{2019}' | '\u{201b}' | '\u{2032}' | '\u{02bc}' | '\u{00b4}' => {
                flags.insert(DecodeFlags::QUOTE_LOOKALIKE);
                out.push('\'');
            }
            '\u{201c}' | '\u{201d}' | '\u{2033}' | '\u{02ba}' => {
                flags.insert(DecodeFlags::QUOTE_LOOKALIKE);
                out.push('"');
            }
            '\u{1}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}' => {
                flags.insert(DecodeFlags::CONTROL);
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// `①` → `1`, `⓪` → `0`, `Ⓐ` → `A`, `ⓐ` → `a`: enclosed forms some parsers fold.
fn enclosed_to_ascii(c: char) -> char {
    let v = c as u32;
    let ascii = match v {
        0x2460..=0x2468 => v - 0x2460 + u32::from(b'1'),
        0x24EA => u32::from(b'0'),
        0x24B6..=0x24CF => v - 0x24B6 + u32::from(b'A'),
        _ => v - 0x24D0 + u32::from(b'a'),
    };
    char::from_u32(ascii).unwrap_or(c)
}

/// The text lowercased, with SQL/C comments (`/* */`) and HTML comments (`<!-- -->`)
/// removed and whitespace runs folded to one space: the view keyword checks use.
pub fn fold(text: &str) -> String {
    let bytes = text.as_bytes();
    let simple = bytes
        .iter()
        .all(|&b| b.is_ascii() && b != b'/' && b != b'<')
        && !bytes
            .windows(2)
            .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        && !bytes.iter().any(|&b| b.is_ascii_whitespace() && b != b' ');
    if simple {
        let trimmed = text.trim_matches(' ');
        return trimmed.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut space = false;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"/*") {
            i += skip_until(rest, 2, b"*/");
            space = !out.is_empty();
            continue;
        }
        if rest.starts_with(b"<!--") {
            i += skip_until(rest, 4, b"-->");
            space = !out.is_empty();
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        i += c.len_utf8();
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        for lc in c.to_lowercase() {
            out.push(lc);
        }
    }
    out
}

/// Length of `rest` up to and including `end` (searched from `from`), or all of it.
fn skip_until(rest: &[u8], from: usize, end: &[u8]) -> usize {
    memchr::memmem::find(&rest[from..], end).map_or(rest.len(), |at| from + at + end.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &str) -> String {
        decode(raw.as_bytes(), Plus::IsSpace).0
    }

    #[test]
    fn decodes_percent_escapes_and_plus_in_forms() {
        assert_eq!(text("a%27+b"), "a' b");
        assert_eq!(decode(b"a+b", Plus::Literal).0, "a+b");
    }

    #[test]
    fn decodes_double_encoding_to_a_fixed_point_and_says_so() {
        let (t, flags) = decode(b"%252e%252e%252f", Plus::Literal);
        assert_eq!(t, "../");
        assert!(flags.contains(DecodeFlags::MULTI_ENCODED));
    }

    #[test]
    fn stops_after_bounded_rounds_on_endless_encodings() {
        let mut raw = String::from("'");
        for _ in 0..10 {
            raw = raw.replace('%', "%25").replace('\'', "%27");
        }
        let (_, flags) = decode(raw.as_bytes(), Plus::Literal);
        assert!(flags.contains(DecodeFlags::ENDLESS));
    }

    #[test]
    fn decodes_iis_unicode_escapes_and_fullwidth_forms() {
        let (t, flags) = decode(b"%u003cscript%uff1e", Plus::Literal);
        assert_eq!(t, "<script>");
        assert!(flags.contains(DecodeFlags::UNICODE_PERCENT));
        assert!(flags.contains(DecodeFlags::FULLWIDTH));
    }

    #[test]
    fn folds_overlong_utf8_to_the_ascii_it_spells() {
        let (t, flags) = decode(b"..%c0%af..%c0%afetc", Plus::Literal);
        assert_eq!(t, "../../etc");
        assert!(flags.contains(DecodeFlags::OVERLONG_UTF8));
    }

    #[test]
    fn decodes_html_entities_with_and_without_semicolons() {
        assert_eq!(text("&lt;script&gt;"), "<script>");
        assert_eq!(text("&#x3C;a&#60b&#x0000003e;"), "<a<b>");
        assert_eq!(text("java&Tab;script&colon;"), "java\tscript:");
    }

    #[test]
    fn decodes_javascript_escapes() {
        assert_eq!(text(r"\x3cimg\u0020src\u{3d}x"), "<img src=x");
    }

    #[test]
    fn drops_nul_bytes_and_flags_them() {
        let (t, flags) = decode(b"/etc/passwd%00.png", Plus::Literal);
        assert_eq!(t, "/etc/passwd.png");
        assert!(flags.contains(DecodeFlags::NUL));
    }

    #[test]
    fn replaces_invalid_utf8_without_panicking() {
        let (t, flags) = decode(b"a\xff\xfeb%ff", Plus::Literal);
        assert!(t.starts_with('a') && t.contains('b'));
        assert!(flags.contains(DecodeFlags::INVALID_UTF8));
    }

    #[test]
    fn plain_text_is_left_alone() {
        let (t, flags) = decode(b"O'Brien and sons", Plus::IsSpace);
        assert_eq!(t, "O'Brien and sons");
        assert!(flags.is_empty());
    }

    #[test]
    fn fold_lowercases_strips_comments_and_squeezes_whitespace() {
        assert_eq!(fold("SeL/**/EcT  \t1<!-- x -->FROM"), "sel ect 1 from");
    }
}
