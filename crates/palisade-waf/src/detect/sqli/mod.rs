//! SQL injection: the input is tokenized as SQL in each quoting context an application might
//! paste it into (bare, inside `'...'`, inside `"..."`), and the token sequence is read for
//! the shapes an injection needs: breaking out of the string and continuing with an
//! operator, a tautology, a second statement, `UNION SELECT`, a time-delay or exfiltration
//! function, or the system catalogue. Prose has words but not these shapes; where a shape is
//! made of words only (`union select` in a sentence), the score stays below the default
//! threshold unless an evasion (mixed case, inline comments) gives it away.

mod lexer;
mod shapes;
pub(crate) mod words;

pub use lexer::{Kind, MAX_TOKENS, Token, Word, classify, tokenize};

use super::Hit;

/// How the input would sit in the application's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Pasted as is (numbers, identifiers).
    Bare,
    /// Inside a string literal opened by the application.
    Quoted,
}

/// Looks for SQL injection in `text`.
pub fn detect(text: &str) -> Option<Hit> {
    if text.len() < 2 {
        return None;
    }
    // Letters, digits and sentence punctuation can only be SQL through its keywords.
    let syntax = text
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b" .,!?_@".contains(&b) || b >= 0x80))
        || text
            .as_bytes()
            .windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && (w[2] | 0x20) == b'e');

    if !syntax && !KEYWORDS.is_match(text) {
        return None;
    }
    let mut tokens = Vec::with_capacity(32);
    tokenize(text, 0, &mut tokens);
    let mut best = Hit::better(nosql(text), shapes::assess(text, &tokens, Context::Bare));
    for quote in ['\'', '"', '`'] {
        let Some(at) = text.find(quote) else {
            continue;
        };
        tokens.clear();
        tokens.push(Token {
            kind: Kind::Str(true),
            start: 0,
            end: at + 1,
        });
        tokenize(text, at + 1, &mut tokens);
        best = Hit::better(best, shapes::assess(text, &tokens, Context::Quoted));
    }
    best
}

/// Words that make SQL out of plain text (ASCII case-insensitive).
static KEYWORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build([
            "or true",
            "or false",
            "and true",
            "union",
            "select",
            "insert",
            "update",
            "delete",
            "drop",
            "exec",
            "declare",
            "truncate",
            "shutdown",
            "waitfor",
            "sleep",
            "benchmark",
            "information_schema",
            "pg_",
            "sys",
            "xp_",
            "sp_",
            "mysql",
            "sqlite",
            "msdb",
            "tempdb",
            "northwind",
            "schema",
            "table_name",
            "column_name",
            "outfile",
            "dumpfile",
            "load_file",
            "utl_",
            "dbms_",
            "openrowset",
            "opendatasource",
            "order by",
            "group by",
            "having",
            "case",
            "when",
            "except",
            "intersect",
            "procedure",
            "like",
            "regexp",
            "glob",
            "is not",
            "notnull",
            "null",
            "varchar",
            "into",
            "values",
            "where",
            "from",
            "limit",
        ])
        .expect("static patterns build an automaton")
});

/// MongoDB query operators smuggled in as keys or bracketed names (`id[$ne]=1`,
/// `{"$where": ...}`): NoSQL injection, scored with SQL injection.
fn nosql(text: &str) -> Option<Hit> {
    const OPERATORS: &[&str] = &[
        "ne",
        "eq",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "regex",
        "where",
        "exists",
        "not",
        "nor",
        "or",
        "and",
        "elemmatch",
        "text",
        "expr",
        "jsonschema",
        "mod",
        "all",
        "size",
        "type",
        "function",
        "accumulator",
        "lookup",
    ];
    let b = text.as_bytes();
    for (at, _) in text.match_indices('$') {
        let bracketed = at > 0 && b[at - 1] == b'[';
        if !(bracketed || at == 0) {
            continue;
        }
        let name: String = text[at + 1..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        let end = at + 1 + name.len();
        let closed = if bracketed {
            b.get(end) == Some(&b']')
        } else {
            end == b.len()
        };
        if closed && OPERATORS.contains(&name.as_str()) {
            return Some(Hit::new(10, "nosql operator", at, end));
        }
    }
    None
}

#[cfg(test)]
mod tests;
