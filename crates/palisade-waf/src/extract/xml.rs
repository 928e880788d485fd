//! A forgiving XML scanner: text nodes, CDATA and attribute values, named by the element
//! path (`root.a`, `root.a@probe`). Element and attribute names are not inspected: they are
//! the application's vocabulary, not user data. Declarations (`<!DOCTYPE`, `<!ENTITY`) are
//! inspected whole, since external entities point at files and URLs.

use super::{Collector, Source, StopReason};
use crate::normalize::Plus;

/// Scans `text` and keeps its values under `prefix`.
pub(super) fn collect<'r>(text: &'r [u8], prefix: &str, out: &mut Collector<'r>) {
    let mut path: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < text.len() && !out.full() {
        let Some(lt) = memchr::memchr(b'<', &text[i..]).map(|at| i + at) else {
            keep_text(&text[i..], &path, prefix, out);
            return;
        };
        keep_text(&text[i..lt], &path, prefix, out);
        let rest = &text[lt..];
        i = if rest.starts_with(b"<!--") {
            lt + skip_past(rest, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            let end = skip_past(rest, b"]]>");
            let inner_end = end.saturating_sub(3).max(9);
            keep_text(&rest[9..inner_end.min(rest.len())], &path, prefix, out);
            lt + end
        } else if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            let end = skip_past(rest, b">");
            if rest.starts_with(b"<!") {
                out.push(
                    Source::Xml,
                    &name(prefix, &path, b"!doctype"),
                    rest[..end].into(),
                    Plus::Literal,
                );
            }
            lt + end
        } else if rest.starts_with(b"</") {
            path.pop();
            lt + skip_past(rest, b">")
        } else {
            let end = skip_past(rest, b">");
            let tag = &rest[1..end.saturating_sub(1).max(1)];
            let self_closing = tag.ends_with(b"/");
            let tag_name = element(tag, &mut path, out);
            attributes(&tag[tag_name..], &path, prefix, out);
            if self_closing {
                path.pop();
            }
            lt + end
        };
    }
}

/// Pushes the element name on the path; returns how many bytes of `tag` it used.
fn element<'t>(tag: &'t [u8], path: &mut Vec<&'t [u8]>, out: &mut Collector<'_>) -> usize {
    let end = tag
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/')
        .unwrap_or(tag.len());
    if path.len() >= out.limits().max_depth {
        out.stop(StopReason::TooDeep);
        path.pop();
    }
    path.push(&tag[..end]);
    end
}

/// Keeps each `name="value"` attribute value.
fn attributes<'r>(mut rest: &'r [u8], path: &[&[u8]], prefix: &str, out: &mut Collector<'r>) {
    while let Some(eq) = memchr::memchr(b'=', rest) {
        let attr = rest[..eq].trim_ascii();
        let after = rest[eq + 1..].trim_ascii_start();
        let (value, used) = match after.first() {
            Some(&q @ (b'"' | b'\'')) => {
                let end = memchr::memchr(q, &after[1..]).unwrap_or(after.len() - 1);
                (&after[1..1 + end], 2 + end)
            }
            _ => {
                let end = after
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if !value.is_empty() && !attr.starts_with(b"xmlns") {
            let mut field = name(prefix, path, b"");
            field.push('@');
            field.push_str(&String::from_utf8_lossy(attr));
            out.push(Source::Xml, &field, value.into(), Plus::Literal);
        }
        let consumed = (rest.len() - after.len()) + used.min(after.len());
        rest = &rest[consumed.max(eq + 1)..];
    }
}

fn keep_text<'r>(text: &'r [u8], path: &[&[u8]], prefix: &str, out: &mut Collector<'r>) {
    let trimmed = text.trim_ascii();
    if !trimmed.is_empty() {
        out.push(
            Source::Xml,
            &name(prefix, path, b""),
            trimmed.into(),
            Plus::Literal,
        );
    }
}

fn name(prefix: &str, path: &[&[u8]], last: &[u8]) -> String {
    let mut out = String::from(prefix);
    for seg in path
        .iter()
        .copied()
        .chain((!last.is_empty()).then_some(last))
    {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(seg));
    }
    out
}

/// Bytes of `rest` up to and including `end`, or all of it.
fn skip_past(rest: &[u8], end: &[u8]) -> usize {
    memchr::memmem::find(&rest[1..], end).map_or(rest.len(), |at| 1 + at + end.len())
}
