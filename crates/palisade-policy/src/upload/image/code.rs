//! Script code hidden anywhere inside an image: `<?php` or `<script` in a comment, an EXIF
//! field or a text chunk turns an image into a file a server may execute or a browser may
//! render as HTML. These markers are 5 and 7 bytes long, so random pixel data matches them
//! about once in a trillion bytes; shorter markers (`<?=`, `<%`) would match real images and
//! are not searched for.

use super::ImageProblem;
use crate::upload::verdict::Reason;

const MARKERS: [(&[u8], &str); 2] = [(b"<?php", "PHP code"), (b"<script", "a script tag")];
/// Longest marker minus one: the bytes kept from one piece to find a marker cut in two.
const CARRY: usize = 6;

/// Streaming search for script markers, case-insensitive.
#[derive(Debug, Default)]
pub struct CodeScan {
    carry: Vec<u8>,
}

impl CodeScan {
    /// Feeds the next bytes of the image.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ImageProblem> {
        if !self.carry.is_empty() {
            let mut joined = std::mem::take(&mut self.carry);
            let carried = joined.len();
            joined.extend_from_slice(&data[..data.len().min(CARRY)]);
            search(&joined, carried)?;
            self.carry = joined;
            self.carry.truncate(carried);
        }
        search(data, data.len())?;
        self.carry
            .extend_from_slice(&data[data.len().saturating_sub(CARRY)..]);
        let excess = self.carry.len().saturating_sub(CARRY);
        self.carry.drain(..excess);
        Ok(())
    }
}

/// Looks for a marker starting before `starts_before` and ending within `data`.
fn search(data: &[u8], starts_before: usize) -> Result<(), ImageProblem> {
    for at in memchr::memchr_iter(b'<', &data[..starts_before.min(data.len())]) {
        for (marker, what) in MARKERS {
            let found = data
                .get(at..at + marker.len())
                .is_some_and(|bytes| bytes.eq_ignore_ascii_case(marker));
            if found {
                return Err(ImageProblem {
                    reason: Reason::Polyglot,
                    detail: format!("{what} inside the image"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(data: &[u8], piece: usize) -> Result<(), ImageProblem> {
        let mut scan = CodeScan::default();
        data.chunks(piece).try_for_each(|chunk| scan.feed(chunk))
    }

    #[test]
    fn markers_are_found_however_the_stream_is_cut() {
        let data = b"\xFF\xFE\x00\x10 comment <?PHP system($_GET[0]); ?> \xFF\xD9";
        for piece in 1..data.len() {
            let err = scan_in_pieces(data, piece).expect_err("php inside");
            assert_eq!(err.reason, Reason::Polyglot);
        }
        assert!(scan_in_pieces(b"xx<ScRiPt>alert(1)", 3).is_err());
    }

    #[test]
    fn near_misses_pass() {
        for piece in 1..8 {
            scan_in_pieces(b"<?xpacket begin='' ?><?ph p <scrip t <<?= 1", piece)
                .expect("no marker");
        }
    }
}
