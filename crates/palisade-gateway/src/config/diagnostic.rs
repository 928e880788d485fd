//! Configuration errors as the operator reads them: `FILE:LINE:COL: message`.
//!
//! Parsers report byte offsets; this module turns them into 1-based lines and columns so that
//! `palisade check` and a refused reload point at the same place.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in (`<flags>` for command-line overrides).
    pub file: PathBuf,
    /// 1-based line, 0 when the problem has no position (a missing file).
    pub line: usize,
    /// 1-based column in characters, 0 when the problem has no position.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Diagnostic {
    /// A problem at byte `span` of `text`, the contents of `file`.
    pub fn at(file: &Path, text: &str, span: Option<Range<usize>>, message: String) -> Self {
        let (line, column) = span.map_or((0, 0), |span| line_and_column(text, span.start));
        Self {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    }

    /// A problem with the file as a whole (unreadable, or a value given by a flag).
    pub fn whole_file(file: &Path, message: String) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// Every problem found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, at least one.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// An error holding one diagnostic.
    pub fn single(diagnostic: Diagnostic) -> Self {
        Self {
            diagnostics: vec![diagnostic],
        }
    }

    /// Puts the diagnostics in reading order: those in `config` (the configuration file)
    /// first, then those of the files it names, each by line and column.
    pub fn sort_for(&mut self, config: &Path) {
        self.diagnostics
            .sort_by_cached_key(|d| (d.file != config, d.file.clone(), d.line, d.column));
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
///
/// An offset past the end (a parser pointing at end of input) is clamped to the end; an
/// offset inside a multi-byte character counts that character.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The message for a key or table written twice, at byte `span` of `text`: which one, and
/// the line of its first definition when that can be found.
pub(super) fn explain_duplicate(text: &str, span: Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim();
    if !line.starts_with('[') {
        let key = text.get(span).unwrap_or("").trim();
        return format!("duplicate key `{key}`: each key may be set once in its table");
    }
    let header = line.split('#').next().unwrap_or(line).trim();
    let name = header.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace());
    let first = text[..line_start]
        .lines()
        .position(|l| l.split('#').next().unwrap_or(l).trim() == header);
    match first {
        Some(index) => format!(
            "duplicate table `{header}` (first written on line {}): write the keys of `{name}` \
             in one table",
            index + 1
        ),
        None => format!("duplicate table `{header}`: `{name}` is already defined above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (1, 5));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 11), (2, 6));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "név = \"é\" x";
        let offset = text.find('x').expect("x is in the text");
        assert_eq!(line_and_column(text, offset), (1, 11));
    }

    #[test]
    fn offsets_past_the_end_point_at_the_end() {
        assert_eq!(line_and_column("ab\nc", 99), (2, 2));
    }

    #[test]
    fn diagnostics_print_file_line_column_message() {
        let d = Diagnostic::at(
            Path::new("p.toml"),
            "x\ny",
            Some(2..3),
            "bad (expected good)".into(),
        );
        assert_eq!(d.to_string(), "p.toml:2:1: bad (expected good)");
    }
}
