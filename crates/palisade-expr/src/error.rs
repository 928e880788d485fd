//! Errors of the expression language: what went wrong and where, relative to the expression.
//! Rules files translate these positions into file positions (see `rules::position`).

use std::fmt;

/// A byte range inside an expression's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte (inclusive).
    pub start: usize,
    /// Last byte (exclusive).
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// An expression that failed to lex, parse or type-check.
///
/// `line` and `column` are 1-based and count characters inside the expression text; `offset` is
/// the byte offset of the same place, for callers that map it into a larger file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    /// What was expected and what was found, in lower case.
    pub message: String,
    /// Byte offset of the mistake in the expression.
    pub offset: usize,
    /// 1-based line inside the expression.
    pub line: usize,
    /// 1-based column (in characters) inside the expression.
    pub column: usize,
}

impl ExprError {
    /// An error at byte `offset` of `source`.
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> ExprError {
        let offset = offset.min(source.len());
        let (line, column) = line_col(source, offset);
        ExprError {
            message: message.into(),
            offset,
            line,
            column,
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

/// The line starts of one text, so that many positions in a large file (a rule table or a
/// rules file of thousands of rules) cost a binary search each instead of a scan from the
/// start of the file (quadratic: 50,000 rules took minutes to check).
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|at| at + 1));
        LineIndex { starts }
    }

    /// 1-based line and character column of byte `offset` in `text`, the text indexed.
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= end);
        let line_start = self.starts[line - 1];
        let column = text[line_start..end].chars().count() + 1;
        (line, column)
    }
}

/// 1-based line and character column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_a_scan() {
        let text = "a\nbé\r\n\nxyz\n";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.line_col(text, offset),
                line_col(text, offset),
                "{offset}"
            );
        }
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("é and x", 3), (1, 3));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
