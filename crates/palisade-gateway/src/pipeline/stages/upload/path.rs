//! The path an `[[upload]]` rule is matched against: the request path as an upstream might
//! read it, so that spelling a path differently cannot skip inspection (`/%75pload`,
//! `/img/../upload`, `//upload`, `/upload;x=1`, `\upload`, `/UPLOAD` for an upstream on a
//! case-insensitive file system).
//!
//! The matching is deliberately generous: a path that some upstream would read as an
//! upload path is inspected, even if this upstream would not.

use palisade_expr::normal::{self, hex};

/// Most rounds of percent-decoding: `%2575` is `%75` after one round and `u` after two.
const DECODE_ROUNDS: usize = 3;

/// Percent-decodes (repeatedly), turns backslashes into slashes, drops `;parameters`,
/// empty and `.` segments, resolves `..` (RFC 3986 §5.2.4, never above the root), and
/// lower-cases the result (rule prefixes are lower-cased to match).
pub fn normalise(path: &str) -> String {
    let mut decoded = path.to_owned();
    for _ in 0..DECODE_ROUNDS {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    // The segment rules are the ones rule fields use; only the decoding and case differ.
    normal::resolve_segments(&decoded).to_lowercase()
}

/// One round of percent-decoding; invalid escapes stay as written, invalid UTF-8 becomes
/// U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::normalise;

    proptest! {
        /// Whatever the client sends, the result is an absolute path without dot segments,
        /// empty segments (but a trailing slash) or backslashes: a prefix match on it cannot
        /// be fooled by a segment the upstream would resolve away.
        #[test]
        fn normalised_paths_have_no_segments_an_upstream_would_resolve(
            path in "[/a-zA-Z.%25;\\\\0-9]{0,40}"
        ) {
            let normal = normalise(&path);
            prop_assert!(normal.starts_with('/'));
            prop_assert!(!normal.contains('\\'));
            let inner = normal.trim_end_matches('/');
            for segment in inner.split('/').skip(1) {
                prop_assert!(!matches!(segment, "" | "." | ".."), "{path:?} -> {normal:?}");
            }
        }
    }

    #[test]
    fn other_spellings_of_a_path_normalise_to_it() {
        for spelling in [
            "/upload/x",
            "/%75pload/x",
            "/%2575pload/x",
            "//upload//x",
            "/img/../upload/x",
            "/./upload/x",
            "/upload;jsessionid=1/x",
            "\\upload\\x",
            "/upload%2Fx",
            "/a/b/../../upload/x",
            "/UPLOAD/X",
            "/%55pload/x",
        ] {
            assert_eq!(normalise(spelling), "/upload/x", "{spelling}");
        }
    }

    #[test]
    fn dot_segments_never_climb_above_the_root() {
        assert_eq!(normalise("/../../upload"), "/upload");
        assert_eq!(normalise(""), "/");
        assert_eq!(normalise("/.."), "/");
    }

    #[test]
    fn trailing_slashes_and_odd_escapes_are_kept() {
        assert_eq!(normalise("/upload/"), "/upload/");
        assert_eq!(normalise("/a%zz%4"), "/a%zz%4");
        assert_eq!(normalise("/%ff"), "/\u{fffd}");
    }
}
