//! An SQL tokenizer that accepts the union of the common dialects (MySQL, PostgreSQL, MSSQL,
//! Oracle, SQLite) and never fails: any byte becomes some token. Words are classified by
//! what they do in a statement, which is what the grammar in the parent module reasons on.

/// What a word does in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// `union`.
    Union,
    /// Starts a statement: `select`, `insert`, `drop`, `exec`, ...
    Statement,
    /// `and`, `or`, `xor`, `not`, `div`.
    Logic,
    /// Comparison by keyword: `like`, `regexp`, `glob`, `between`, `is`, `in`, ...
    Compare,
    /// Clause keywords: `from`, `where`, `order`, `having`, `into`, `collate`, ...
    Clause,
    /// Literal keywords: `null`, `true`, `false`.
    Literal,
    /// Anything else: a name.
    Plain,
}

/// Token kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Quoted string; false when the input ended inside it.
    Str(bool),
    /// Number (decimal, hex, binary, float, `1.e`).
    Num,
    /// A word followed by `(`: a function call.
    Call,
    /// A classified word.
    Word(Word),
    /// `@var`, `@@global`.
    Var,
    /// Comparison operator: `=`, `<`, `>`, `<=`, `>=`, `!=`, `<>`, `<=>`, `==`.
    CompareOp,
    /// `&&`, `||`, `!`.
    LogicOp,
    /// Arithmetic, bitwise, JSON and cast operators.
    Op,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `,`.
    Comma,
    /// `;`.
    Semi,
    /// `.`.
    Dot,
    /// `--`, `#` or `/* */` comment.
    Comment,
    /// MySQL executable comment `/*!`.
    Conditional,
    /// Any other character.
    Other,
}

/// One token: its kind and byte span in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Kind.
    pub kind: Kind,
    /// Start offset.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
}

/// Tokens kept per context; later ones are ignored.
pub const MAX_TOKENS: usize = 256;

/// Tokenizes `src[from..]`.
pub fn tokenize(src: &str, from: usize, out: &mut Vec<Token>) {
    let b = src.as_bytes();
    let mut i = from;
    while i < b.len() && out.len() < MAX_TOKENS {
        let c = b[i];
        if c.is_ascii_whitespace() || c == 0x0b || c == 0xa0 {
            i += 1;
            continue;
        }
        let (kind, end) = match c {
            b'\'' | b'"' => string(b, i),
            b'`' => (Kind::Word(Word::Plain), close_at(b, i + 1, b'`')),
            b'-' if b.get(i + 1) == Some(&b'-') => (Kind::Comment, line_end(b, i)),
            b'#' => (Kind::Comment, line_end(b, i)),
            b'/' if b.get(i + 1) == Some(&b'*') => block_comment(b, i),
            b'*' if b.get(i + 1) == Some(&b'/') => (Kind::Comment, i + 2),
            b'0'..=b'9' => (Kind::Num, number(b, i)),
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => (Kind::Num, number(b, i)),
            b'@' => (
                Kind::Var,
                word_end(b, i + 1 + usize::from(b.get(i + 1) == Some(&b'@'))),
            ),
            b'(' => (Kind::Open, i + 1),
            b')' => (Kind::Close, i + 1),
            b',' => (Kind::Comma, i + 1),
            b';' => (Kind::Semi, i + 1),
            b'.' => (Kind::Dot, i + 1),
            _ if is_word_start(c) => word(src, i),
            _ => operator(b, i),
        };
        let end = end.max(i + 1).min(b.len());
        out.push(Token {
            kind,
            start: i,
            end,
        });
        i = end;
    }
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn word_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() && is_word_byte(b[i]) {
        i += 1;
    }
    i
}

fn word(src: &str, i: usize) -> (Kind, usize) {
    let b = src.as_bytes();
    let end = word_end(b, i);
    let text = &src[i..end];
    let role = classify(text);
    // `or(`, `in (`, `values(` stay keywords: only names and statements are called.
    if followed_by_open(b, end) && matches!(role, Word::Plain | Word::Statement) {
        return (Kind::Call, end);
    }
    (Kind::Word(role), end)
}

/// Whether `(` follows, possibly after spaces and comments (`sleep /**/ (5)`).
fn followed_by_open(b: &[u8], mut i: usize) -> bool {
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'*') {
            i = block_comment(b, i).1;
            continue;
        }
        return b.get(i) == Some(&b'(');
    }
}

/// The role of a word, case-insensitively.
pub fn classify(word: &str) -> Word {
    let mut buf = [0u8; 16];
    if word.len() > buf.len() {
        return Word::Plain;
    }
    for (dst, src) in buf.iter_mut().zip(word.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    match &buf[..word.len()] {
        b"union" | b"except" | b"intersect" => Word::Union,
        b"select" | b"insert" | b"update" | b"delete" | b"drop" | b"create" | b"alter"
        | b"exec" | b"execute" | b"declare" | b"truncate" | b"shutdown" | b"waitfor" | b"grant"
        | b"revoke" | b"rename" | b"merge" | b"handler" | b"call" | b"replace" | b"load"
        | b"attach" | b"pragma" | b"begin" | b"commit" | b"rollback" => Word::Statement,
        b"and" | b"or" | b"xor" | b"not" | b"div" => Word::Logic,
        b"like" | b"rlike" | b"regexp" | b"glob" | b"between" | b"is" | b"in" | b"sounds"
        | b"ilike" | b"similar" | b"match" | b"against" | b"notnull" | b"isnull" | b"escape"
        | b"all" | b"any" | b"some" | b"exists" => Word::Compare,
        b"from" | b"where" | b"order" | b"group" | b"by" | b"having" | b"limit" | b"offset"
        | b"into" | b"values" | b"set" | b"table" | b"as" | b"distinct" | b"case" | b"when"
        | b"then" | b"else" | b"end" | b"join" | b"on" | b"top" | b"procedure" | b"outfile"
        | b"dumpfile" | b"delay" | b"collate" | b"database" | b"distinctrow" | b"fetch"
        | b"using" | b"returning" | b"varchar" | b"char" | b"nvarchar" | b"int" | b"cast"
        | b"convert" | b"asc" | b"desc" | b"column" | b"schema" | b"index" | b"view" => {
            Word::Clause
        }
        b"null" | b"true" | b"false" => Word::Literal,
        _ => Word::Plain,
    }
}

fn string(b: &[u8], i: usize) -> (Kind, usize) {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return (Kind::Str(true), j + 1);
        }
        j += 1;
    }
    (Kind::Str(false), b.len())
}

fn close_at(b: &[u8], from: usize, q: u8) -> usize {
    memchr::memchr(q, &b[from.min(b.len())..]).map_or(b.len(), |at| from + at + 1)
}

fn line_end(b: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |at| i + at)
}

fn block_comment(b: &[u8], i: usize) -> (Kind, usize) {
    if b.get(i + 2) == Some(&b'!') {
        // `/*!50000select*/`: MySQL runs what is inside; skip only the marker and version.
        let mut j = i + 3;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        return (Kind::Conditional, j);
    }
    let end = memchr::memmem::find(&b[i + 2..], b"*/").map_or(b.len(), |at| i + 2 + at + 2);
    (Kind::Comment, end)
}

fn number(b: &[u8], i: usize) -> usize {
    let mut j = i;
    if b[j] == b'0' && matches!(b.get(j + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        j += 2;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        return j;
    }
    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
        j += 1;
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        j += 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    j
}

fn operator(b: &[u8], i: usize) -> (Kind, usize) {
    let rest = &b[i..];
    const THREE: [(&[u8], Kind); 3] = [
        (b"<=>", Kind::CompareOp),
        (b"->>", Kind::Op),
        (b"#>>", Kind::Op),
    ];
    const TWO: [(&[u8], Kind); 14] = [
        (b"<=", Kind::CompareOp),
        (b">=", Kind::CompareOp),
        (b"<>", Kind::CompareOp),
        (b"!=", Kind::CompareOp),
        (b"==", Kind::CompareOp),
        (b"||", Kind::LogicOp),
        (b"&&", Kind::LogicOp),
        (b"::", Kind::Op),
        (b"->", Kind::Op),
        (b"<<", Kind::Op),
        (b">>", Kind::Op),
        (b"@>", Kind::Op),
        (b"<@", Kind::Op),
        (b":=", Kind::Op),
    ];
    for (op, kind) in THREE {
        if rest.starts_with(op) {
            return (kind, i + 3);
        }
    }
    for (op, kind) in TWO {
        if rest.starts_with(op) {
            return (kind, i + 2);
        }
    }
    let kind = match b[i] {
        b'=' | b'<' | b'>' => Kind::CompareOp,
        b'!' => Kind::LogicOp,
        b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' | b'?' | b':' => Kind::Op,
        _ => Kind::Other,
    };
    (kind, i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        let mut out = Vec::new();
        tokenize(src, 0, &mut out);
        out.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn classifies_words_by_role() {
        use Kind::*;
        assert_eq!(
            kinds("1 UNION select x FROM t"),
            [
                Num,
                Word(self::Word::Union),
                Word(self::Word::Statement),
                Word(self::Word::Plain),
                Word(self::Word::Clause),
                Word(self::Word::Plain)
            ]
        );
    }

    #[test]
    fn a_word_before_parentheses_is_a_call_even_across_comments() {
        assert_eq!(kinds("sleep /**/ (5)")[0], Kind::Call);
    }

    #[test]
    fn strings_honour_doubled_and_backslashed_quotes() {
        assert_eq!(kinds(r"'it''s' 'a\'b'"), [Kind::Str(true), Kind::Str(true)]);
        assert_eq!(kinds("'open"), [Kind::Str(false)]);
    }

    #[test]
    fn comments_of_every_dialect_are_tokens() {
        assert_eq!(
            kinds("1-- x\n2# y\n/* z */"),
            [
                Kind::Num,
                Kind::Comment,
                Kind::Num,
                Kind::Comment,
                Kind::Comment
            ]
        );
        assert_eq!(kinds("/*!50000select*/")[0], Kind::Conditional);
    }

    #[test]
    fn multi_character_operators_are_one_token() {
        assert_eq!(
            kinds("<=> || ::")[..],
            [Kind::CompareOp, Kind::LogicOp, Kind::Op]
        );
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for s in ["\u{0}", "'", "/*", "0x", "@@", "é'ü", "`", "--"] {
            let _ = kinds(s);
        }
    }
}
