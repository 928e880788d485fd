//! Byte-range edits to a body, such as removing an image's metadata segments, described
//! while the body streams past and applied later, while it is forwarded from the spool.
//! Describing instead of rewriting keeps inspection single-pass and memory-bounded.

use std::ops::Range;

/// Replace the bytes in `range` with `replacement` (empty to delete them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Input offsets replaced.
    pub range: Range<u64>,
    /// Bytes written in their place.
    pub replacement: Vec<u8>,
}

impl Edit {
    /// Removes `range`.
    pub fn delete(range: Range<u64>) -> Self {
        Self {
            range,
            replacement: Vec::new(),
        }
    }

    /// Overwrites the bytes at `at` with `bytes` (same length).
    pub fn overwrite(at: u64, bytes: &[u8]) -> Self {
        Self {
            range: at..at + bytes.len() as u64,
            replacement: bytes.to_vec(),
        }
    }

    fn shifted(&self, by: u64) -> Self {
        Self {
            range: self.range.start + by..self.range.end + by,
            replacement: self.replacement.clone(),
        }
    }
}

/// Edits in ascending, non-overlapping order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditPlan {
    edits: Vec<Edit>,
}

impl EditPlan {
    /// A plan from edits in any order. Overlapping edits are a bug in the caller.
    pub fn new(mut edits: Vec<Edit>) -> Self {
        edits.sort_by_key(|e| e.range.start);
        debug_assert!(edits.windows(2).all(|w| w[0].range.end <= w[1].range.start));
        Self { edits }
    }

    /// Appends the edits of a file whose first byte is at `offset` in the body.
    pub fn extend_at(&mut self, offset: u64, file_edits: &[Edit]) {
        self.edits
            .extend(file_edits.iter().map(|e| e.shifted(offset)));
        self.edits.sort_by_key(|e| e.range.start);
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The edits, in order.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// Length of the output for an input of `input_len` bytes.
    pub fn output_len(&self, input_len: u64) -> u64 {
        self.edits.iter().fold(input_len, |len, e| {
            len - (e.range.end - e.range.start) + e.replacement.len() as u64
        })
    }

    /// A cursor that applies this plan to the input fed to it in order.
    pub fn into_cursor(self) -> EditCursor {
        EditCursor {
            edits: self.edits,
            next: 0,
            position: 0,
        }
    }
}

/// Applies an [`EditPlan`] to input arriving in pieces.
#[derive(Debug)]
pub struct EditCursor {
    edits: Vec<Edit>,
    next: usize,
    position: u64,
}

impl EditCursor {
    /// Whether the cursor changes nothing (the plan was empty).
    pub fn is_identity(&self) -> bool {
        self.edits.is_empty()
    }

    /// Feeds the next `input` bytes and appends the edited output to `out`.
    pub fn apply(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let end = self.position + input.len() as u64;
        let mut at = self.position;
        while at < end {
            let Some(edit) = self.edits.get(self.next) else {
                out.extend_from_slice(&input[(at - self.position) as usize..]);
                break;
            };
            if at < edit.range.start {
                let until = edit.range.start.min(end);
                let from = (at - self.position) as usize;
                out.extend_from_slice(&input[from..(until - self.position) as usize]);
                at = until;
                continue;
            }
            if at == edit.range.start {
                out.extend_from_slice(&edit.replacement);
            }
            // Inside the replaced range: skip input up to its end.
            at = edit.range.end.min(end);
            if at == edit.range.end {
                self.next += 1;
            }
        }
        self.position = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_in_pieces(plan: &EditPlan, input: &[u8], piece: usize) -> Vec<u8> {
        let mut cursor = plan.clone().into_cursor();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            cursor.apply(chunk, &mut out);
        }
        out
    }

    #[test]
    fn edits_apply_the_same_whatever_the_piece_size() {
        let input = b"0123456789abcdefghij";
        let plan = EditPlan::new(vec![
            Edit::delete(12..16),
            Edit::overwrite(2, b"XY"),
            Edit::delete(0..1),
        ]);
        let expected = b"1XY456789abghij".to_vec();
        assert_eq!(plan.output_len(input.len() as u64), expected.len() as u64);
        for piece in 1..=input.len() {
            assert_eq!(
                apply_in_pieces(&plan, input, piece),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn an_edit_at_the_very_end_is_applied() {
        let plan = EditPlan::new(vec![Edit::delete(8..10)]);
        assert_eq!(apply_in_pieces(&plan, b"0123456789", 3), b"01234567");
    }
}
