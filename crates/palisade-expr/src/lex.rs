//! The lexer: expression text to tokens with byte spans. It never allocates more than the
//! input's size and never recurses; limits on length are enforced by the parser's caller.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ExprError, Span};

/// One token of the language.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A field name, function name or word operator (`and`, `contains`, ...).
    Ident(String),
    /// A string literal, escapes already applied.
    Str(Vec<u8>),
    /// An integer literal.
    Int(i64),
    /// An IP address literal.
    Ip(IpAddr),
    /// A CIDR literal (`10.0.0.0/8`).
    Cidr(IpNet),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Star,
    DotDot,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Tilde,
    Bang,
    AndAnd,
    OrOr,
    XorXor,
    Eof,
}

impl Tok {
    /// How the token is named in "found ..." messages.
    pub(crate) fn describe(&self, text: &str) -> String {
        match self {
            Tok::Eof => "the end of the expression".to_owned(),
            Tok::Ident(_) | Tok::Int(_) | Tok::Ip(_) | Tok::Cidr(_) | Tok::Str(_) => truncate(text),
            _ => format!("'{}'", truncate(text)),
        }
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}...")
}

/// A token and where it is.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `source` into tokens, ending with `Tok::Eof`.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer {
        src: source,
        pos: 0,
        out: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.out)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    out: Vec<Token>,
}

impl<'s> Lexer<'s> {
    fn run(&mut self) -> Result<(), ExprError> {
        loop {
            self.skip_space();
            let start = self.pos;
            let Some(c) = self.peek() else {
                self.push(Tok::Eof, start);
                return Ok(());
            };
            let tok = self.token(c)?;
            self.push(tok, start);
        }
    }

    fn token(&mut self, c: char) -> Result<Tok, ExprError> {
        let start = self.pos;
        if c == 'r' && matches!(self.peek_at(1), Some('"' | '#')) {
            return self.raw_string();
        }
        if c.is_ascii_alphabetic() || c == '_' {
            return self.word();
        }
        if c.is_ascii_digit() || (c == ':' && self.peek_at(1) == Some(':')) {
            return self.number_or_address(start);
        }
        if c == '-' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
            self.pos += 1;
            let digits = self.take_while(|d| d.is_ascii_digit());
            return self.int(start, &format!("-{digits}"));
        }
        if c == '"' {
            return self.string();
        }
        self.punct(c)
    }

    fn punct(&mut self, c: char) -> Result<Tok, ExprError> {
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('!', Some('=')) => (Tok::NotEq, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('^', Some('^')) => (Tok::XorXor, 2),
            ('.', Some('.')) => (Tok::DotDot, 2),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('!', _) => (Tok::Bang, 1),
            ('~', _) => (Tok::Tilde, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (',', _) => (Tok::Comma, 1),
            ('*', _) => (Tok::Star, 1),
            ('=', _) => return Err(self.error(self.pos, "unexpected '=': write '==' or 'eq'")),
            ('&', _) => return Err(self.error(self.pos, "unexpected '&': write '&&' or 'and'")),
            ('|', _) => return Err(self.error(self.pos, "unexpected '|': write '||' or 'or'")),
            ('^', _) => return Err(self.error(self.pos, "unexpected '^': write '^^' or 'xor'")),
            _ => return Err(self.error(self.pos, format!("unexpected character '{c}'"))),
        };
        self.pos += len;
        Ok(tok)
    }

    /// A field name, function or keyword; or an IPv6 address that starts with hex letters.
    fn word(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let hex = word.chars().all(|c| c.is_ascii_hexdigit());
        if hex && self.peek() == Some(':') {
            self.pos = start;
            return self.number_or_address(start);
        }
        Ok(Tok::Ident(word.to_owned()))
    }

    /// An integer, IPv4/IPv6 address or CIDR. Stops before `..` so `1..100` is a range.
    fn number_or_address(&mut self, start: usize) -> Result<Tok, ExprError> {
        while let Some(c) = self.peek() {
            let is_range = c == '.' && self.peek_at(1) == Some('.');
            if is_range || !(c.is_ascii_hexdigit() || c == '.' || c == ':') {
                break;
            }
            self.pos += 1;
        }
        let src = self.src;
        let text = &src[start..self.pos];
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return self.int(start, text);
        }
        let Ok(addr) = text.parse::<IpAddr>() else {
            return Err(self.error(
                start,
                format!("'{text}' is neither a number nor an IP address"),
            ));
        };
        if self.peek() != Some('/') {
            return Ok(Tok::Ip(addr));
        }
        self.pos += 1;
        let bits = self.take_while(|c| c.is_ascii_digit());
        let net = bits
            .parse::<u8>()
            .ok()
            .and_then(|b| IpNet::new(addr, b).ok());
        match net {
            Some(net) => Ok(Tok::Cidr(net)),
            None => Err(self.error(start, format!("'{text}/{bits}' is not a valid CIDR"))),
        }
    }

    fn int(&self, start: usize, text: &str) -> Result<Tok, ExprError> {
        text.parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| self.error(start, format!("integer '{text}' is out of range")))
    }

    /// A quoted string with `\"`, `\\`, `\xHH`, `\n`, `\r`, `\t` escapes.
    fn string(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "unterminated string: add a closing '\"'"));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(Tok::Str(out)),
                '\\' => out.push(self.escape(at)?),
                _ => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    fn escape(&mut self, at: usize) -> Result<u8, ExprError> {
        let Some(c) = self.peek() else {
            return Err(self.error(at, "unterminated string: add a closing '\"'"));
        };
        self.pos += c.len_utf8();
        match c {
            '"' => Ok(b'"'),
            '\\' => Ok(b'\\'),
            'n' => Ok(b'\n'),
            'r' => Ok(b'\r'),
            't' => Ok(b'\t'),
            'x' => {
                let hex = self.src.get(self.pos..self.pos + 2).unwrap_or("");
                let byte = u8::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 2);
                let Some(byte) = byte else {
                    return Err(self.error(at, "'\\x' must be followed by two hex digits"));
                };
                self.pos += 2;
                Ok(byte)
            }
            other => Err(self.error(
                at,
                format!(
                    "unknown escape '\\{other}' in a string: write '\\\\' for a backslash, \
                     or use a raw string r\"...\""
                ),
            )),
        }
    }

    /// `r"..."` or `r#"..."#` (any number of `#`): no escapes at all.
    fn raw_string(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let hashes = self.take_while(|c| c == '#').len();
        if self.peek() != Some('"') {
            return Err(self.error(start, "expected '\"' to open the raw string"));
        }
        self.pos += 1;
        let closing = format!("\"{}", "#".repeat(hashes));
        let Some(len) = self.src[self.pos..].find(&closing) else {
            return Err(self.error(
                start,
                format!("unterminated raw string: close it with {closing}"),
            ));
        };
        let body = self.src.as_bytes()[self.pos..self.pos + len].to_vec();
        self.pos += len + closing.len();
        Ok(Tok::Str(body))
    }

    fn skip_space(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !pred(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ExprError {
        ExprError::at(self.src, offset, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn ranges_are_not_mistaken_for_addresses() {
        assert_eq!(
            toks("1..100"),
            vec![Tok::Int(1), Tok::DotDot, Tok::Int(100), Tok::Eof]
        );
    }

    #[test]
    fn ipv6_addresses_starting_with_letters_are_addresses() {
        let addr: IpAddr = "fe80::1".parse().expect("addr");
        assert_eq!(toks("fe80::1"), vec![Tok::Ip(addr), Tok::Eof]);
        let net: IpNet = "2001:db8::/32".parse().expect("net");
        assert_eq!(toks("2001:db8::/32"), vec![Tok::Cidr(net), Tok::Eof]);
        assert_eq!(toks("::1")[0], Tok::Ip("::1".parse().expect("addr")));
    }

    #[test]
    fn raw_strings_keep_backslashes_and_quotes() {
        assert_eq!(toks(r##"r#"a\d"b"#"##)[0], Tok::Str(br#"a\d"b"#.to_vec()));
        assert_eq!(toks(r#"r"\w+""#)[0], Tok::Str(br"\w+".to_vec()));
    }

    #[test]
    fn escapes_in_quoted_strings_are_applied() {
        assert_eq!(toks(r#""a\"b\\c\x41""#)[0], Tok::Str(b"a\"b\\cA".to_vec()));
    }

    #[test]
    fn unknown_escape_is_an_error_with_its_position() {
        let err = tokenize(r#"x == "\d""#).expect_err("bad escape");
        assert_eq!((err.line, err.column), (1, 7));
        assert!(err.message.contains("unknown escape"), "{}", err.message);
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(tokenize("\"abc").is_err());
        assert!(tokenize("r#\"abc\"").is_err());
    }

    #[test]
    fn negative_integers_lex_as_one_token() {
        assert_eq!(toks("-5")[0], Tok::Int(-5));
    }
}
