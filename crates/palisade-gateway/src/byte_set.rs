//! Sets of bytes looked up in a table, for the checks that read every byte of a field on
//! every request (a slice's `contains` per byte scanned the set each time).

/// A set of byte values.
pub(crate) struct ByteSet([bool; 256]);

impl ByteSet {
    /// ASCII letters and digits, and the bytes of `extra`.
    pub(crate) const fn alphanumeric_and(extra: &[u8]) -> Self {
        let mut set = [false; 256];
        let mut byte = 0;
        while byte < 256 {
            set[byte] = (byte as u8).is_ascii_alphanumeric();
            byte += 1;
        }
        let mut i = 0;
        while i < extra.len() {
            set[extra[i] as usize] = true;
            i += 1;
        }
        Self(set)
    }

    /// Whether every byte of `bytes` is in the set.
    pub(crate) fn holds_all(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.0[usize::from(b)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_letters_digits_and_the_extra_bytes_only() {
        const SET: ByteSet = ByteSet::alphanumeric_and(b"-.:");
        assert!(SET.holds_all(b"Example-1.test:8080"));
        assert!(SET.holds_all(b""));
        for byte in 0..=255u8 {
            let expected = byte.is_ascii_alphanumeric() || b"-.:".contains(&byte);
            assert_eq!(SET.holds_all(&[byte]), expected, "byte {byte:#04x}");
        }
    }
}
