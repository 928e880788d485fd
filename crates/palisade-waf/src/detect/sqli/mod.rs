//! SQL injection: the input is tokenized as SQL in each quoting context an application might
//! paste it into (bare, inside `'...'`, inside `"..."`), and the token sequence is read for
//! the shapes an injection needs: breaking out of the string and continuing with an
//! operator, a tautology, a second statement, `UNION SELECT`, a time-delay or exfiltration
//! function, or the system catalogue. Prose has words but not these shapes; where a shape is
//! made of words only (`union select` in a sentence), the score stays below the default
//! threshold unless an evasion (mixed case, inline comments) gives it away.

mod lexer;
mod shapes;

pub use lexer::{Kind, Token, Word, classify, tokenize};

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
    let mut tokens = Vec::with_capacity(32);
    tokenize(text, 0, &mut tokens);
    let mut best = shapes::assess(text, &tokens, Context::Bare);
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

#[cfg(test)]
mod tests;
