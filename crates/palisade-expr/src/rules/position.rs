//! Positions in rules files, and the map from a place in an expression back to the file.
//!
//! An expression in YAML or TOML may be quoted, escaped, folded or indented, so its text is
//! not a plain slice of the file. [`ExprMap`] aligns the expression's characters with the raw
//! text of the value, greedily: each expression character is matched with the next raw
//! character equal to it (a folded line break counts as a space), skipping quotes,
//! indentation and escape backslashes. For plain, quoted and block scalars this is exact; an
//! escape that changes a character (`\x41`) can shift later positions, never past the value.

use std::fmt;

#[cfg(test)]
use crate::error::line_col;

/// A place in a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The file name as the caller gave it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

// TODO: align escapes that change a character (`\x41`, `\u00e9`) exactly; after one, error
// columns on the same line of a double-quoted YAML or TOML value may be off by a few.
/// Line and column (1-based) of expression byte offsets, sorted by offset.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExprMap {
    points: Vec<(usize, usize, usize)>,
}

impl ExprMap {
    /// Aligns `value` (the decoded expression) with `source[raw_start..raw_end]` (its raw
    /// text, quotes and indentation included).
    #[cfg(test)]
    pub fn align(source: &str, raw_start: usize, raw_end: usize, value: &str) -> ExprMap {
        let start = line_col(source, raw_start.min(raw_end).min(source.len()));
        Self::align_at(source, raw_start, raw_end, value, start)
    }

    /// [`ExprMap::align`] when the line and column of `raw_start` are known already.
    pub fn align_at(
        source: &str,
        raw_start: usize,
        raw_end: usize,
        value: &str,
        start: (usize, usize),
    ) -> ExprMap {
        let raw_end = raw_end.clamp(raw_start.min(source.len()), source.len());
        let raw_start = raw_start.min(raw_end);
        let (mut line, mut col) = start;
        let mut raw = source
            .get(raw_start..raw_end)
            .unwrap_or("")
            .chars()
            .peekable();
        let mut points = Vec::with_capacity(value.len() + 1);
        for (offset, want) in value.char_indices() {
            // Skip raw characters until one can stand for `want`.
            while let Some(&c) = raw.peek() {
                if c == want || (want == ' ' && c == '\n') {
                    break;
                }
                (line, col) = step(line, col, c);
                raw.next();
            }
            points.push((offset, line, col));
            if let Some(c) = raw.next() {
                (line, col) = step(line, col, c);
            }
        }
        points.push((value.len(), line, col));
        ExprMap { points }
    }

    /// File line and column of expression byte `offset`.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let i = self.points.partition_point(|(o, _, _)| *o <= offset);
        // Offsets inside a multi-byte character map to the character's start.
        self.points
            .get(i.saturating_sub(1))
            .map_or((1, 1), |&(_, line, col)| (line, col))
    }

    /// Where the expression starts.
    pub fn start(&self) -> (usize, usize) {
        self.locate(0)
    }
}

fn step(line: usize, col: usize, c: char) -> (usize, usize) {
    if c == '\n' {
        (line + 1, 1)
    } else {
        (line, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(source: &str, raw: &str, value: &str) -> ExprMap {
        let start = source.find(raw).expect("raw text in source");
        ExprMap::align(source, start, start + raw.len(), value)
    }

    #[test]
    fn plain_values_map_column_for_column() {
        let source = "rules:\n  - expression: a == 42\n";
        let map = map_of(source, "a == 42", "a == 42");
        assert_eq!(map.locate(5), (2, 22));
    }

    #[test]
    fn quoted_values_skip_quotes_and_escapes() {
        let source = r#"x = "a == \"b\" or c""#;
        let map = map_of(source, r#""a == \"b\" or c""#, r#"a == "b" or c"#);
        assert_eq!(map.locate(0), (1, 6));
        assert_eq!(map.locate(9), (1, 17));
    }

    #[test]
    fn block_scalars_map_to_their_own_lines() {
        let source = "e: |\n  a == 1\n  and b == 2\n";
        let map = map_of(
            source,
            "|\n  a == 1\n  and b == 2\n",
            "a == 1\nand b == 2\n",
        );
        assert_eq!(map.locate(7), (3, 3));
        assert_eq!(map.locate(16), (3, 12));
    }

    #[test]
    fn folded_line_breaks_stand_for_spaces() {
        let source = "e: >\n  a == 1\n  and b\n";
        let map = map_of(source, ">\n  a == 1\n  and b\n", "a == 1 and b\n");
        assert_eq!(map.locate(7), (3, 3));
    }
}
