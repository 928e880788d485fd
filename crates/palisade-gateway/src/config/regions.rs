//! Finding every serde error of a configuration file, not only the first.
//!
//! serde stops at the first value it cannot read, so a file with three mistakes would be fixed
//! one `palisade check` at a time. This module cuts the file into regions (each table from its
//! header to the next header, each top-level `key = value` before the first header), reads each
//! region on its own, and reports one error per broken region at its line in the whole file.
//! The regions that read cleanly are then read together, so the caller can still run the
//! checks serde cannot make on them. No I/O here.
//!
//! TODO: within one region only the first error serde meets is reported, and serde meets keys
//! in alphabetical order, not file order (`zzz = 1` on line 2, then `listen = "bad"` on line 3,
//! reports line 3 alone); a user may need one more `palisade check` per mistake in a table.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml_parser::parser::{EventReceiver, parse_document};
use toml_parser::{ErrorSink, Source, Span};

use super::Diagnostic;

/// The byte ranges of the document's regions, in file order, covering it to the end.
///
/// The text must already be known to be valid TOML.
pub(super) fn split(text: &str) -> Vec<Range<usize>> {
    let tokens = Source::new(text).lex().into_vec();
    let mut starts = RegionStarts::default();
    let mut errors = ();
    parse_document(&tokens, &mut starts, &mut errors);
    let mut bounds: Vec<usize> = starts
        .starts
        .into_iter()
        .map(|at| line_start(text, at))
        .collect();
    bounds.dedup();
    let mut regions = Vec::with_capacity(bounds.len());
    for (i, &start) in bounds.iter().enumerate() {
        let end = bounds.get(i + 1).copied().unwrap_or(text.len());
        regions.push(start..end);
    }
    regions
}

/// Reads each region of `text` on its own as a `T`; returns the diagnostic of each region
/// that fails, and `text` with those regions blanked (same byte offsets, newlines kept).
pub(super) fn read_each<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    regions: &[Range<usize>],
) -> (Vec<Diagnostic>, String) {
    let mut diagnostics = Vec::new();
    let mut blanked = Vec::new();
    let mut lines_before = 0;
    let mut counted_to = 0;
    for region in regions {
        lines_before += text[counted_to..region.start].matches('\n').count();
        counted_to = region.start;
        let slice = &text[region.clone()];
        let Err(err) = toml::from_str::<T>(slice) else {
            continue;
        };
        let mut diagnostic = super::syntax_or_value_error(path, slice, &err);
        if diagnostic.line > 0 {
            diagnostic.line += lines_before;
        }
        diagnostics.push(diagnostic);
        blanked.push(region.clone());
    }
    (diagnostics, blank(text, &blanked))
}

/// `text` with every character inside `ranges` but the line breaks replaced by spaces, so
/// the offsets of everything else stay where they were.
fn blank(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for range in ranges {
        out.push_str(&text[last..range.start]);
        for c in text[range.clone()].chars() {
            match c {
                '\n' | '\r' => out.push(c),
                other => out.extend(std::iter::repeat_n(' ', other.len_utf8())),
            }
        }
        last = range.end;
    }
    out.push_str(&text[last..]);
    out
}

/// The start of the line holding byte `at`, so a region keeps its indentation.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Collects where regions begin from the parser's events: every table header, and every key
/// that opens a line at the top level before the first header.
#[derive(Default)]
struct RegionStarts {
    starts: Vec<usize>,
    /// Arrays and inline tables entered and not yet left.
    depth: usize,
    /// A table header has been seen: keys now belong to its region.
    in_tables: bool,
    /// The next top-level key starts a new `key = value` line.
    at_line_start: bool,
}

impl EventReceiver for RegionStarts {
    fn std_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.in_tables = true;
        self.starts.push(span.start());
    }

    fn array_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.in_tables = true;
        self.starts.push(span.start());
    }

    fn inline_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.depth += 1;
        true
    }

    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn array_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.depth += 1;
        true
    }

    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn simple_key(
        &mut self,
        span: Span,
        _kind: Option<toml_parser::decoder::Encoding>,
        _error: &mut dyn ErrorSink,
    ) {
        if !self.in_tables && self.depth == 0 && self.at_line_start {
            self.starts.push(span.start());
        }
        self.at_line_start = false;
    }

    fn newline(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if self.depth == 0 {
            self.at_line_start = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn tables_and_top_level_keys_are_regions_of_their_own() {
        let text = "# c\na = [\n  1,\n]\nb.c = { d = 1 }\n[x]\ny = 1\n  [[z]]\nw = \"[q]\"\n";
        assert_eq!(
            pieces(text),
            vec![
                "a = [\n  1,\n]\n",
                "b.c = { d = 1 }\n",
                "[x]\ny = 1\n",
                "  [[z]]\nw = \"[q]\"\n"
            ]
        );
    }

    #[test]
    fn blanking_keeps_offsets_and_line_breaks() {
        // One range from byte 1 to byte 5 (`b`, `\n`, `é`), then a second one, empty.
        assert_eq!(blank("ab\né\ncd", &[1..5, 7..7]), "a \n  \ncd");
    }
}
