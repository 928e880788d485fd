//! `[[waf.rule]]` tables in `palisade.toml`: serde types the gateway embeds in its config,
//! with byte spans (from the `toml` crate) so errors point into the TOML file.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::build::{Located, RawRule};
use super::position::ExprMap;
use crate::error::LineIndex;

/// One `[[waf.rule]]` table: the same keys as a rule in the YAML file.
///
/// Deserialize it with the `toml` crate (spans need its deserializer), then pass the tables
/// and the TOML text to [`super::load_tables`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTable {
    /// `name = "..."`.
    pub name: Option<Spanned<String>>,
    /// `expression = '...'`.
    pub expression: Option<Spanned<String>>,
    /// `action = "block"`, ...
    pub action: Option<Spanned<String>>,
    /// `threshold = "100/minute"` (or a number with `period`).
    pub threshold: Option<Spanned<TableValue>>,
    /// `description = "..."`.
    pub description: Option<Spanned<String>>,
    /// `enabled = false`.
    pub enabled: Option<Spanned<bool>>,
    /// `mode = "log"`.
    pub mode: Option<Spanned<String>>,
    /// `status = 451`.
    pub status: Option<Spanned<TableValue>>,
    /// `body = "..."`.
    pub body: Option<Spanned<String>>,
    /// `period = "1m"`.
    pub period: Option<Spanned<String>>,
    /// `key = "header:x-api-key"`.
    pub key: Option<Spanned<String>>,
    /// `skip = ["rule name", "managed"]`.
    pub skip: Option<Spanned<Vec<String>>>,
}

/// A TOML value that may be written as a number or a string (`threshold`, `status`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum TableValue {
    /// `100`.
    Int(i64),
    /// `"100/minute"`.
    Text(String),
}

impl TableValue {
    fn text(&self) -> String {
        match self {
            TableValue::Int(n) => n.to_string(),
            TableValue::Text(s) => s.clone(),
        }
    }
}

impl RuleTable {
    /// The keys with file positions computed from `source`, the TOML text.
    pub(crate) fn to_raw(&self, source: &str, lines: &LineIndex) -> RawRule {
        let at = |s: &Spanned<String>| locate(source, lines, s, s.get_ref().clone());
        let first = [&self.name, &self.expression, &self.action]
            .into_iter()
            .flatten()
            .map(|s| s.span().start)
            .min()
            .unwrap_or(0);
        let (line, column) = lines.line_col(source, first);
        let expression = self.expression.as_ref().map(|e| {
            let span = e.span();
            (
                e.get_ref().clone(),
                ExprMap::align_at(
                    source,
                    span.start,
                    span.end,
                    e.get_ref(),
                    lines.line_col(source, span.start),
                ),
            )
        });
        RawRule {
            line,
            column,
            name: self.name.as_ref().map(at),
            expression,
            action: self.action.as_ref().map(at),
            threshold: self
                .threshold
                .as_ref()
                .map(|t| locate(source, lines, t, t.get_ref().text())),
            description: self.description.as_ref().map(at),
            enabled: self
                .enabled
                .as_ref()
                .map(|e| locate(source, lines, e, e.get_ref().to_string())),
            mode: self.mode.as_ref().map(at),
            status: self
                .status
                .as_ref()
                .map(|s| locate(source, lines, s, s.get_ref().text())),
            body: self.body.as_ref().map(at),
            period: self.period.as_ref().map(at),
            key: self.key.as_ref().map(at),
            skip: self
                .skip
                .as_ref()
                .map(|s| locate(source, lines, s, s.get_ref().clone())),
        }
    }
}

fn locate<T, V>(source: &str, lines: &LineIndex, spanned: &Spanned<T>, value: V) -> Located<V> {
    let (line, column) = lines.line_col(source, spanned.span().start);
    Located {
        value,
        line,
        column,
    }
}
