//! Payloads hidden in base64 or hex runs inside a value.
//!
//! A base64 run can hide a keyword at any of three alignments (the encoder groups bytes in
//! threes, so the same word encodes three ways depending on what precedes it); each run is
//! decoded at every alignment and kept when the result reads as text or starts with a known
//! binary magic. The output is bounded by [`MAX_HIDDEN`].

/// Bytes of decoded payload kept per input.
pub const MAX_HIDDEN: usize = 2048;
/// Shortest run worth decoding.
const MIN_RUN: usize = 6;

/// Bytes recovered from one encoded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenPayload {
    /// The decoded bytes.
    pub bytes: Vec<u8>,
    /// True for base64, false for hex.
    pub base64: bool,
}

impl HiddenPayload {
    /// The payload as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Decodes base64 and hex runs of `text` that look deliberate (not plain words).
pub fn hidden_payloads(text: &str) -> Vec<HiddenPayload> {
    let mut found = Vec::new();
    let mut budget = MAX_HIDDEN;
    for run in runs(text.as_bytes()) {
        if budget == 0 {
            break;
        }
        if let Some(object) = java_object(run).or_else(|| compressed_java_object(run)) {
            push(&mut found, &mut budget, object, true);
        } else if let Some(bytes) = hex_run(run) {
            push(&mut found, &mut budget, bytes, false);
        } else if looks_encoded(run) {
            for pad in 0..3 {
                let bytes = decode_base64_shifted(run, pad);
                if readable(&bytes) || has_magic(&bytes) {
                    push(&mut found, &mut budget, bytes, true);
                    break;
                }
            }
        }
    }
    if budget > 0
        && !found.iter().any(|payload| has_magic(&payload.bytes))
        && let Some(object) = java_object_with_junk(text.as_bytes())
    {
        push(&mut found, &mut budget, object, true);
    }
    found
}

/// The base64 alphabet (standard and URL-safe), without the padding `=`.
fn in_alphabet(b: u8) -> bool {
    ALPHABET[usize::from(b)]
}

/// [`in_alphabet`] as a table: it is asked of every byte of a value that may hide a payload.
const ALPHABET: [bool; 256] = crate::byte_table!(false, |byte| byte.is_ascii_alphanumeric()
    || matches!(byte, b'+' | b'/' | b'-' | b'_'));

/// Most base64 characters read for a serialised object (more than [`MAX_HIDDEN`] bytes'
/// worth, which is all that is kept).
const MAX_OBJECT_CHARS: usize = 4096;

/// A serialised Java object in base64 with bytes outside the alphabet inside it, which
/// lenient decoders skip (Java's MIME decoder, commons-codec): `rO0A.BXNy...`, or base64
/// spaced every few characters (second red team's finding). Read from each `r` a decoder
/// would start at: the value's start, or after a byte outside the alphabet.
fn java_object_with_junk(text: &[u8]) -> Option<Vec<u8>> {
    magic_starts(text).find_map(|at| {
        let rest = &text[at..text.len().min(at + MAX_OBJECT_CHARS)];
        let bytes = decode_base64(
            rest.iter()
                .filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/'),
        );
        has_magic(&bytes).then_some(bytes)
    })
}

/// Where a lenient decoder would meet a serialised Java object's magic in `text`: an `r` at
/// the value's start or after a byte outside the alphabet, whose next alphabet characters
/// are `rO0AB` and one that completes `AC ED 00 05` (`Q` to `Z`, `a` to `f`).
fn magic_starts(text: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let starts = if text.len() < 16 { &text[..0] } else { text };
    memchr::memchr_iter(b'r', starts).filter(move |&at| {
        if at > 0 && in_alphabet(text[at - 1]) {
            return false;
        }
        // Letters and digits only: the magic's six characters are all such, and a lenient
        // decoder skips whatever else lies between them (`-` and `_` too, outside the
        // standard alphabet: third red team's finding).
        let mut head = text[at..].iter().copied().filter(u8::is_ascii_alphanumeric);
        head.by_ref().take(5).eq(b"rO0AB".iter().copied())
            && head
                .next()
                .is_some_and(|b| matches!(b, b'Q'..=b'Z' | b'a'..=b'f'))
    })
}

/// Whether `text` may hold a serialised Java object that bytes outside the alphabet hide
/// from the attack words: such a value is not plain ([`crate::detect::is_plain`]).
pub(crate) fn may_hide_java_object(text: &[u8]) -> bool {
    magic_starts(text).next().is_some()
}

/// A gzip- or zlib-compressed serialised Java object in base64 (`H4sI...`, as JSF keeps its
/// view state; `eJ...`, `eA...`, `eF...`, `eN...`, what Java's `InflaterInputStream` reads),
/// inflated as far as [`MAX_HIDDEN`] bytes (second and third red teams' findings).
fn compressed_java_object(run: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let gzip = run.starts_with(b"H4sI");
    // A zlib header: deflate with a 32 KiB window (`0x78`) and a flag byte whose check
    // makes the pair a multiple of 31, read from the first four characters before any
    // decoder is made.
    let zlib = run.len() >= 16 && run[0] == b'e' && {
        let head = decode_base64(run[..4].iter());
        head.len() >= 2
            && head[0] == 0x78
            && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0
    };
    if !gzip && !zlib {
        return None;
    }
    let compressed = decode_base64(run[..run.len().min(MAX_OBJECT_CHARS)].iter());
    let mut inflated = Vec::new();
    // A short read (the run cut at the limit, a corrupt stream) still shows the magic.
    let _ = if gzip {
        flate2::read::GzDecoder::new(compressed.as_slice())
            .take(MAX_HIDDEN as u64)
            .read_to_end(&mut inflated)
    } else {
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(MAX_HIDDEN as u64)
            .read_to_end(&mut inflated)
    };
    has_magic(&inflated).then_some(inflated)
}

fn push(found: &mut Vec<HiddenPayload>, budget: &mut usize, mut bytes: Vec<u8>, base64: bool) {
    bytes.truncate(*budget);
    *budget -= bytes.len();
    found.push(HiddenPayload { bytes, base64 });
}

/// Maximal runs of base64 alphabet characters (URL-safe included), at least `MIN_RUN` long.
fn runs(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| !(in_alphabet(b) || b == b'='))
        .map(trim_padding)
        .filter(|run| run.len() >= MIN_RUN)
}

fn trim_padding(run: &[u8]) -> &[u8] {
    let end = run.iter().rposition(|&b| b != b'=').map_or(0, |at| at + 1);
    &run[..end]
}

/// Base64 that hides words mixes cases or digits with letters; plain words do not.
/// One pass over the run (it reads every byte of values that may hide a payload).
fn looks_encoded(run: &[u8]) -> bool {
    let (mut upper, mut lower, mut digit, mut inner_upper) = (false, false, false, false);
    for (at, &b) in run.iter().enumerate() {
        match b {
            b'/' => return false,
            b'A'..=b'Z' => {
                upper = true;
                inner_upper |= at > 0;
            }
            b'a'..=b'z' => lower = true,
            b'0'..=b'9' => digit = true,
            _ => {}
        }
    }
    lower && (inner_upper || digit) && (upper || digit)
}

/// `0x414243` or a bare even-length hex run of 8+ digits that is not all digits.
fn hex_run(run: &[u8]) -> Option<Vec<u8>> {
    let digits = run
        .strip_prefix(b"0x")
        .or_else(|| run.strip_prefix(b"0X"))
        .unwrap_or(run);
    let prefixed = digits.len() != run.len();
    if digits.len() < 8 || digits.len() % 2 != 0 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if !prefixed && digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let bytes: Vec<u8> = digits
        .chunks(2)
        .map(|p| {
            let v = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
            v(p[0]) * 16 + v(p[1])
        })
        .collect();
    readable(&bytes).then_some(bytes)
}

/// Decodes `run` as if `pad` zero sextets preceded it, dropping the bytes made only of them:
/// this reads a run cut out of a longer encoding at any of its three byte alignments.
fn decode_base64_shifted(run: &[u8], pad: usize) -> Vec<u8> {
    let padding = [b'A'; 2];
    let mut bytes = decode_base64(padding[..pad].iter().chain(run.iter()));
    let leading = bytes.iter().take(pad).take_while(|&&b| b == 0).count();
    bytes.drain(..leading);
    bytes
}

/// Base64 (standard or URL alphabet) of `run`, skipping every other byte (whitespace,
/// padding).
pub(crate) fn decode_base64<'a>(run: impl Iterator<Item = &'a u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in run {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
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

/// Printable ASCII (with whitespace) through and through, and long enough to mean something.
fn readable(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes
            .iter()
            .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\n' || b == b'\t')
}

/// A serialised Java object in base64, decoded from its magic `rO0AB` when that starts the
/// run, follows an `=`, or starts a group of four, where a decoder reading the value would
/// meet it: whatever precedes it in the run (`token=`), and whether or not the run holds a
/// `/`, which [`looks_encoded`] refuses (standard base64 uses it for one value in 64, so most
/// objects of any size hold one; red-team and review findings).
fn java_object(run: &[u8]) -> Option<Vec<u8>> {
    // Built once: a searcher per run cost more than the search. Short runs (most words of
    // most values) are read directly, and none shorter than a header and a class name.
    static MAGIC: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"rO0AB"));
    let starts = |at: &usize| *at % 4 == 0 || run[*at - 1] == b'=';
    let at = match run.len() {
        ..16 => return None,
        16..=64 => (0..run.len() - 4)
            .filter(|&at| &run[at..at + 5] == b"rO0AB")
            .find(starts)?,
        _ => MAGIC.find_iter(run).find(starts)?,
    };
    let bytes = decode_base64(run[at..run.len().min(at + MAX_OBJECT_CHARS)].iter());
    has_magic(&bytes).then_some(bytes)
}

/// Serialised Java objects start with `AC ED 00 05`.
fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xAC, 0xED, 0x00, 0x05])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        hidden_payloads(s).iter().map(HiddenPayload::text).collect()
    }

    /// A serialised object's base64 is decoded even with a `/` in it (which keeps other
    /// runs, such as paths, from being read as base64), from where a decoder would start.
    #[test]
    fn java_objects_are_decoded_whatever_base64_characters_they_hold() {
        let magic = [0xAC, 0xED, 0x00, 0x05];
        let long = format!(
            "x=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP///w{}",
            "A/".repeat(40)
        );
        for text in [
            "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP///w==",
            "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==",
            "data=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP///w==",
            "abcdrO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP///w==",
            "token=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAK",
            "x=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAK",
            &long,
        ] {
            let payloads = hidden_payloads(text);
            assert!(
                payloads.iter().any(|p| p.bytes.starts_with(&magic)),
                "{text}: {payloads:?}"
            );
        }
        // The magic where no decoder of the value would start (mid-group, after a letter),
        // and a run too short to hold an object.
        for text in [
            "xyzrO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP///w==",
            "/x/yzrO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA",
            "rO0ABXNy/ABFq",
        ] {
            let payloads = hidden_payloads(text);
            assert!(
                !payloads.iter().any(|p| p.bytes.starts_with(&magic)),
                "{text}: {payloads:?}"
            );
        }
    }

    /// Objects a lenient decoder still reads: bytes outside the alphabet inside the magic,
    /// spaces every few characters, and gzip (second red team's findings).
    #[test]
    fn java_objects_behind_junk_or_gzip_are_found() {
        use std::io::Write as _;
        let magic = [0xAC, 0xED, 0x00, 0x05];
        let object = "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAK";
        let spaced: String = object
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let raw = decode_base64(object.as_bytes().iter());
        gzip.write_all(&raw).expect("gzip");
        let gzipped = base64_of(&gzip.finish().expect("gzip"));
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&raw).expect("zlib");
        let zlibbed = base64_of(&zlib.finish().expect("zlib"));
        let every_char: String = object.chars().flat_map(|c| [c, ' ']).collect();
        for text in [
            format!("rO0A.{}", &object[4..]),
            format!("data=r!O0AB{}", &object[5..]),
            format!("rO0A-B{}", &object[5..]),
            format!("r_O_0_A_B{}", &object[5..]),
            every_char,
            spaced,
            gzipped,
            zlibbed,
        ] {
            let payloads = hidden_payloads(&text);
            assert!(
                payloads.iter().any(|p| p.bytes.starts_with(&magic)),
                "{text}: {payloads:?}"
            );
        }
        // Prose with `r` words and punctuation is no object.
        let prose = hidden_payloads("read the report, rapidly: r. O, 0! A? B9 rO0A 9x");
        assert!(
            !prose.iter().any(|p| p.bytes.starts_with(&magic)),
            "{prose:?}"
        );
    }

    /// Unpadded standard base64.
    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    #[test]
    fn looks_encoded_answers_as_counting_each_class_does() {
        let counted = |run: &[u8]| {
            let upper = run.iter().filter(|b| b.is_ascii_uppercase()).count();
            let lower = run.iter().filter(|b| b.is_ascii_lowercase()).count();
            let digit = run.iter().filter(|b| b.is_ascii_digit()).count();
            let inner_upper = run[1..].iter().any(|b| b.is_ascii_uppercase());
            lower > 0 && (inner_upper || digit > 0) && upper + digit > 0 && !run.contains(&b'/')
        };
        // Every run of 6 over one byte of each class the check tells apart.
        let alphabet = b"aZ9/_+";
        let mut run = [0u8; 6];
        for n in 0..alphabet.len().pow(6) {
            let mut rest = n;
            for b in &mut run {
                *b = alphabet[rest % alphabet.len()];
                rest /= alphabet.len();
            }
            assert_eq!(
                looks_encoded(&run),
                counted(&run),
                "{}",
                String::from_utf8_lossy(&run)
            );
        }
    }

    #[test]
    fn finds_base64_words_at_every_alignment() {
        assert_eq!(texts("cnVudGltZQ"), ["runtime"]);
        assert!(texts("HJ1bnRpbWU")[0].contains("runtime"));
        assert!(texts("BydW50aW1l")[0].contains("runtime"));
    }

    #[test]
    fn finds_java_serialisation_magic() {
        let found = hidden_payloads("rO0ABQ");
        assert!(has_magic(&found[0].bytes));
    }

    #[test]
    fn decodes_hex_literals_that_spell_text() {
        assert_eq!(texts("0x3c7363726970743e"), ["<script>"]);
    }

    #[test]
    fn ignores_plain_words_and_numbers() {
        assert!(texts("hello world 12345678 Richardson").is_empty());
    }
}
