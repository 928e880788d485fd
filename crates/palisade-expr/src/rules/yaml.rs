//! Reading the YAML rules file with `saphyr-parser`'s event stream, keeping every value's
//! position. Aliases are refused (no billion laughs), nesting is capped, and a file may hold
//! one document only.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span};

use super::build::{KEYS, Located, MAX_RULES_FILE_BYTES, RawRule};
use super::position::ExprMap;
use super::{LoadError, LoadErrors};

/// Deepest nesting of YAML collections accepted (a rules file needs 3).
const MAX_YAML_DEPTH: usize = 16;

#[derive(Debug)]
struct Node {
    kind: Kind,
    start: Marker,
    end: Marker,
}

#[derive(Debug)]
enum Kind {
    Scalar(String, ScalarStyle),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML mistake at a place (1-based line, 0-based column as saphyr reports).
struct YamlError {
    line: usize,
    col: usize,
    message: String,
}

impl YamlError {
    fn at(mark: Marker, message: impl Into<String>) -> YamlError {
        YamlError {
            line: mark.line(),
            col: mark.col(),
            message: message.into(),
        }
    }
}

/// The rules of a YAML rules file, not yet validated, and the errors of the rules that could
/// not be read (one each). The readable rules are still returned so that their own mistakes
/// are reported in the same run. A file that is not a rules file at all is one error.
pub(crate) fn read_rules(
    file: &str,
    text: &str,
) -> Result<(Vec<RawRule>, Vec<LoadError>), LoadErrors> {
    let fail = |e: YamlError| {
        let (line, column) = (e.line.max(1), e.col + 1);
        LoadErrors(vec![LoadError {
            file: file.to_owned(),
            line,
            column,
            rule: None,
            message: e.message,
        }])
    };
    if text.len() > MAX_RULES_FILE_BYTES {
        let message = format!(
            "the file is {} bytes; the limit is {MAX_RULES_FILE_BYTES}",
            text.len()
        );
        return Err(fail(YamlError {
            line: 1,
            col: 0,
            message,
        }));
    }
    let root = document(text).map_err(fail)?;
    let list = rules_list(root).map_err(fail)?;
    let offsets = CharOffsets::new(text);
    let mut raws = Vec::with_capacity(list.len());
    let mut errors = Vec::new();
    for item in list {
        match rule(item, text, &offsets) {
            Ok(raw) => raws.push(raw),
            Err(e) => errors.push(fail(e).0.remove(0)),
        }
    }
    Ok((raws, errors))
}

fn document(text: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut root = None;
    loop {
        let (event, span) = next(&mut parser)?;
        match event {
            Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            _ if root.is_some() => {
                return Err(YamlError::at(
                    span.start,
                    "a rules file holds one YAML document only",
                ));
            }
            _ => root = Some(node(&mut parser, event, span, 0)?),
        }
    }
    root.ok_or_else(|| YamlError {
        line: 1,
        col: 0,
        message: empty_file_message(),
    })
}

fn empty_file_message() -> String {
    "the file is empty; expected 'rules:' followed by a list of rules".to_owned()
}

fn next<'i>(
    parser: &mut Parser<'i, saphyr_parser::StrInput<'i>>,
) -> Result<(Event<'i>, Span), YamlError> {
    match parser.next_event() {
        Some(Ok(pair)) => Ok(pair),
        Some(Err(e)) => Err(YamlError::at(
            *e.marker(),
            format!("invalid YAML: {}", e.info()),
        )),
        None => Err(YamlError {
            line: 1,
            col: 0,
            message: "invalid YAML: unexpected end".to_owned(),
        }),
    }
}

fn node<'i>(
    parser: &mut Parser<'i, saphyr_parser::StrInput<'i>>,
    event: Event<'i>,
    span: Span,
    depth: usize,
) -> Result<Node, YamlError> {
    if depth > MAX_YAML_DEPTH {
        return Err(YamlError::at(
            span.start,
            "the YAML is nested too deeply for a rules file",
        ));
    }
    let kind = match event {
        Event::Scalar(value, style, _, _) => Kind::Scalar(value.into_owned(), style),
        Event::Alias(_) => {
            return Err(YamlError::at(
                span.start,
                "aliases (*name) are not allowed in rules files",
            ));
        }
        Event::SequenceStart(..) => {
            let start = span.start;
            let mut items = Vec::new();
            loop {
                let (event, span) = next(parser)?;
                if event == Event::SequenceEnd {
                    return Ok(Node {
                        kind: Kind::Seq(items),
                        start,
                        end: span.end,
                    });
                }
                items.push(node(parser, event, span, depth + 1)?);
            }
        }
        Event::MappingStart(..) => {
            let start = span.start;
            let mut pairs = Vec::new();
            loop {
                let (event, span) = next(parser)?;
                if event == Event::MappingEnd {
                    return Ok(Node {
                        kind: Kind::Map(pairs),
                        start,
                        end: span.end,
                    });
                }
                let key = node(parser, event, span, depth + 1)?;
                let (event, span) = next(parser)?;
                let value = node(parser, event, span, depth + 1)?;
                pairs.push((key, value));
            }
        }
        other => {
            return Err(YamlError::at(
                span.start,
                format!("unexpected YAML event {other:?}"),
            ));
        }
    };
    Ok(Node {
        kind,
        start: span.start,
        end: span.end,
    })
}

/// The list under the top-level `rules:` key.
fn rules_list(root: Node) -> Result<Vec<Node>, YamlError> {
    let Kind::Map(pairs) = root.kind else {
        return Err(YamlError::at(
            root.start,
            "expected 'rules:' followed by a list of rules",
        ));
    };
    let mut list = None;
    for (key, value) in pairs {
        match scalar(&key) {
            Some("rules") if list.is_some() => {
                return Err(YamlError::at(key.start, "duplicate key 'rules'"));
            }
            Some("rules") => list = Some(value),
            _ => {
                let message = "unknown top-level key; a rules file has only 'rules:'";
                return Err(YamlError::at(key.start, message));
            }
        }
    }
    let Some(list) = list else {
        return Err(YamlError::at(
            root.start,
            "expected 'rules:' followed by a list of rules",
        ));
    };
    match list.kind {
        Kind::Seq(items) => Ok(items),
        Kind::Scalar(s, ScalarStyle::Plain) if s.is_empty() || s == "~" || s == "null" => {
            Ok(Vec::new())
        }
        _ => Err(YamlError::at(
            list.start,
            "expected a list of rules (lines starting with '- ') under 'rules:'",
        )),
    }
}

fn scalar(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar(s, _) => Some(s),
        _ => None,
    }
}

fn rule(item: Node, text: &str, offsets: &CharOffsets) -> Result<RawRule, YamlError> {
    let Kind::Map(pairs) = item.kind else {
        let message = "expected a rule: a mapping with name:, expression: and action:";
        return Err(YamlError::at(item.start, message));
    };
    let mut raw = RawRule {
        line: item.start.line(),
        column: item.start.col() + 1,
        ..RawRule::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = scalar(&key) else {
            return Err(YamlError::at(key.start, "expected a key name"));
        };
        if !KEYS.contains(&name) {
            let message = format!(
                "unknown key '{name}' in rule; the keys are {}",
                KEYS.join(", ")
            );
            return Err(YamlError::at(key.start, message));
        }
        if seen.iter().any(|s| s == name) {
            return Err(YamlError::at(
                key.start,
                format!("duplicate key '{name}' in rule"),
            ));
        }
        seen.push(name.to_owned());
        set_key(&mut raw, name, value, text, offsets)?;
    }
    Ok(raw)
}

fn set_key(
    raw: &mut RawRule,
    key: &str,
    value: Node,
    text: &str,
    offsets: &CharOffsets,
) -> Result<(), YamlError> {
    if key == "skip" {
        raw.skip = Some(string_list(value)?);
        return Ok(());
    }
    if key == "expression" {
        let located = located(&value, key)?;
        let (start, end) = (
            offsets.byte(value.start.index()),
            offsets.byte(value.end.index()),
        );
        // The marker's position, not a scan of the file up to it: that was quadratic.
        let at = (value.start.line(), value.start.col() + 1);
        let map = ExprMap::align_at(text, start, end, &located.value, at);
        raw.expression = Some((located.value, map));
        return Ok(());
    }
    let located = Some(located(&value, key)?);
    match key {
        "name" => raw.name = located,
        "action" => raw.action = located,
        "threshold" => raw.threshold = located,
        "description" => raw.description = located,
        "enabled" => raw.enabled = located,
        "mode" => raw.mode = located,
        "status" => raw.status = located,
        "body" => raw.body = located,
        "period" => raw.period = located,
        _ => raw.key = located,
    }
    Ok(())
}

fn located(node: &Node, key: &str) -> Result<Located<String>, YamlError> {
    let Some(value) = scalar(node) else {
        return Err(YamlError::at(
            node.start,
            format!("expected a single value for '{key}', not a list or mapping"),
        ));
    };
    Ok(Located {
        value: value.to_owned(),
        line: node.start.line(),
        column: node.start.col() + 1,
    })
}

/// `skip: [a, b]`, a block list, or a single name.
fn string_list(node: Node) -> Result<Located<Vec<String>>, YamlError> {
    let (line, column) = (node.start.line(), node.start.col() + 1);
    let items = match node.kind {
        Kind::Scalar(s, _) => vec![s],
        Kind::Seq(items) => items
            .iter()
            .map(|n| {
                scalar(n)
                    .map(str::to_owned)
                    .ok_or_else(|| YamlError::at(n.start, "expected a rule name or phase"))
            })
            .collect::<Result<_, _>>()?,
        Kind::Map(_) => {
            return Err(YamlError::at(
                node.start,
                "expected a list of rule names or phases for 'skip'",
            ));
        }
    };
    Ok(Located {
        value: items,
        line,
        column,
    })
}

/// Byte offsets of character indexes (saphyr's markers count characters).
struct CharOffsets {
    bytes: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> CharOffsets {
        let bytes = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        CharOffsets {
            bytes,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.bytes {
            None => char_index.min(self.len),
            Some(table) => table.get(char_index).copied().unwrap_or(self.len),
        }
    }
}
