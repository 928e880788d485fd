//! The shapes of SQL injection, read from a token sequence. Each shape yields a score
//! (1 = certain, 99 = clean); the lowest wins and evasions lower it further.

use super::Context;
use super::lexer::{Kind, Token, Word};
use super::words::{ATTACK_CALLS, CAST_TYPES, PROBE_CALLS, SQL_CALLS, in_catalogue};
use crate::detect::Hit;

/// What `drop`, `create`, `alter` and `truncate` act on in a statement.
const SCHEMA_OBJECTS: [&str; 7] = [
    "table",
    "database",
    "user",
    "procedure",
    "function",
    "view",
    "schema",
];

struct Reader<'a> {
    src: &'a str,
    all: &'a [Token],
    /// Tokens other than comments.
    toks: Vec<Token>,
    comments: usize,
    ctx: Context,
    /// Letters, digits, spaces and sentence punctuation only.
    prose: bool,
}

/// Scores `tokens` (from `src`) read in context `ctx`.
pub(super) fn assess(src: &str, tokens: &[Token], ctx: Context) -> Option<Hit> {
    let toks: Vec<Token> = tokens
        .iter()
        .copied()
        .filter(|t| t.kind != Kind::Comment)
        .collect();
    let comments = tokens.len() - toks.len();
    let skip = usize::from(ctx == Context::Quoted);
    let plain_only = toks.iter().enumerate().skip(skip).all(|(i, t)| {
        let text = &src[t.start..t.end];
        let dotted_name = t.kind == Kind::Dot
            && i > 0
            && toks
                .get(i + 1)
                .is_some_and(|n| in_catalogue(&src[toks[i - 1].start..n.end]));
        match t.kind {
            Kind::Word(Word::Plain) => !in_catalogue(text),
            Kind::Num => !text.ends_with(['e', 'E']),
            Kind::Dot => !dotted_name,
            Kind::Word(Word::Logic) | Kind::Comma | Kind::Other => true,
            _ => false,
        }
    });
    // Words and numbers alone cannot form any shape below (the catalogue was checked).
    if plain_only
        && comments == 0
        && (ctx == Context::Bare || toks.len() <= 1 || toks[1].kind != Kind::Word(Word::Logic))
    {
        return None;
    }
    let mut r = Reader {
        src,
        all: tokens,
        comments,
        toks,
        ctx,
        prose: false,
    };
    r.prose = r.compute_prose();
    let mut best = None;
    for shape in [
        Reader::union_select,
        Reader::stacked,
        Reader::calls,
        Reader::catalogue,
        Reader::quote_break,
        Reader::tautology,
        Reader::statement,
        Reader::leading_logic,
        Reader::conditional_comment,
        Reader::literal_comparison,
        Reader::clauses,
        Reader::casts,
        Reader::mixed_case_keywords,
    ] {
        best = Hit::better(best, shape(&r));
    }
    let hit = best?;
    Some(r.evasions(hit))
}

impl<'a> Reader<'a> {
    fn text(&self, t: Token) -> &'a str {
        &self.src[t.start..t.end]
    }

    fn lower_is(&self, t: Token, word: &str) -> bool {
        self.text(t).eq_ignore_ascii_case(word)
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn hit(&self, score: u8, reason: &'static str, from: usize) -> Option<Hit> {
        let start = self.toks.get(from).map_or(0, |t| t.start);
        let end = self.toks.last().map_or(self.src.len(), |t| t.end);
        Some(Hit::new(score, reason, start, end.max(start)))
    }

    /// Letters, digits, spaces and sentence punctuation only: reads like prose.
    fn prose(&self) -> bool {
        self.prose
    }

    fn compute_prose(&self) -> bool {
        self.ctx == Context::Bare
            && self.comments == 0
            && self.toks.iter().all(|t| match t.kind {
                Kind::Word(_) | Kind::Num | Kind::Comma | Kind::Dot => true,
                Kind::Other | Kind::LogicOp => matches!(self.text(*t), "!" | "?" | ":"),
                Kind::Str(_) => self.apostrophe(*t),
                _ => false,
            })
    }

    /// A single quote between two letters (`It's`, `O'Brien`, `parents'd`): an apostrophe
    /// in a word of prose, which the SQL lexer reads as the start of a string.
    fn apostrophe(&self, t: Token) -> bool {
        let b = self.src.as_bytes();
        b.get(t.start) == Some(&b'\'')
            && t.start > 0
            && b[t.start - 1].is_ascii_alphabetic()
            && b.get(t.start + 1).is_some_and(u8::is_ascii_alphabetic)
    }

    /// A keyword quoted as a word of prose: `what's 'select'?`, `the word "union"`,
    /// `she said 'delete it' and left`. The opening quote follows a space, a bracket or the
    /// start; at most three words of letters follow, then the same quote and no word
    /// character. A break-out never has this form: its quote closes the application's
    /// string after a value (`x' union`), and what follows it is SQL, not a closing quote.
    fn mentioned(&self, t: Token) -> bool {
        let b = self.src.as_bytes();
        let Some(open) = t.start.checked_sub(1) else {
            return false;
        };
        let quote = b[open];
        if !matches!(quote, b'\'' | b'"' | b'`') {
            return false;
        }
        if open > 0 && (b[open - 1].is_ascii_alphanumeric() || b[open - 1] == quote) {
            return false;
        }
        let rest = &b[t.start..];
        let Some(len) = rest.iter().take(32).position(|&c| c == quote) else {
            return false;
        };
        let inner = &rest[..len];
        let words = inner
            .split(|&c| c == b' ')
            .filter(|w| !w.is_empty())
            .count();
        inner.iter().all(|c| c.is_ascii_alphabetic() || *c == b' ')
            && words <= 3
            && !inner.ends_with(b" ")
            && !rest
                .get(len + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == quote)
    }

    /// A word that SQL cannot read where it stands: a plain identifier that is not a
    /// catalogue name. After a complete expression it is a syntax error (or an alias, which
    /// a condition cannot have), so a shape followed by one reads as prose (`1=1 math`).
    fn plain_word(&self, i: usize) -> bool {
        self.kind(i) == Some(Kind::Word(Word::Plain)) && !in_catalogue(self.text(self.toks[i]))
    }

    fn is_value(&self, i: usize) -> bool {
        matches!(
            self.kind(i),
            Some(
                Kind::Num
                    | Kind::Str(_)
                    | Kind::Var
                    | Kind::Call
                    | Kind::Open
                    | Kind::Word(Word::Plain | Word::Literal)
            )
        )
    }

    fn is_literal(&self, i: usize) -> bool {
        matches!(self.kind(i), Some(Kind::Num | Kind::Str(_) | Kind::Var))
            || self.kind(i) == Some(Kind::Word(Word::Literal))
    }

    fn is_compare(&self, i: usize) -> bool {
        matches!(
            self.kind(i),
            Some(Kind::CompareOp | Kind::Word(Word::Compare))
        )
    }

    fn is_logic(&self, i: usize) -> bool {
        match self.kind(i) {
            Some(Kind::Word(Word::Logic)) => true,
            Some(Kind::LogicOp) => self.text(self.toks[i]) != "!",
            _ => false,
        }
    }

    fn call_in(&self, t: Token, names: &[&str]) -> bool {
        let name = self.text(t);
        let name = name.rsplit('.').next().unwrap_or(name);
        names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// `UNION [ALL|DISTINCT] SELECT`.
    fn union_select(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            if t.kind != Kind::Word(Word::Union) {
                continue;
            }
            let mut j = i + 1;
            while matches!(self.kind(j), Some(Kind::Open | Kind::Conditional))
                || self.toks.get(j).is_some_and(|t| {
                    ["all", "distinct", "distinctrow"]
                        .iter()
                        .any(|w| self.lower_is(*t, w))
                })
            {
                j += 1;
            }
            let Some(next) = self.toks.get(j) else {
                continue;
            };
            if matches!(next.kind, Kind::Word(Word::Statement) | Kind::Call)
                && self.lower_is(*next, "select")
            {
                let after = &self.toks[j + 1..self.toks.len().min(j + 8)];
                let from = after.iter().any(|t| self.lower_is(*t, "from"));
                let column_list = after.iter().any(|t| {
                    matches!(
                        t.kind,
                        Kind::Comma | Kind::Num | Kind::Call | Kind::Word(Word::Literal)
                    ) || self.text(*t) == "*"
                });
                let score = match (self.prose() && !column_list, from) {
                    (false, _) => 6,
                    (true, true) => 26,
                    (true, false) => 30,
                };
                return self.hit(score, "union select", i);
            }
        }
        None
    }

    /// `; SELECT`, `; DROP`, `; DECLARE @x`, `; WAITFOR`.
    fn stacked(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            if t.kind != Kind::Semi {
                continue;
            }
            let Some(next) = self.toks.get(i + 1) else {
                continue;
            };
            let statement = next.kind == Kind::Word(Word::Statement)
                || (next.kind == Kind::Call && self.lower_is(*next, "select"))
                || (self.lower_is(*next, "set") && self.kind(i + 2) == Some(Kind::Var));
            if statement
                && !self.lower_is(*next, "begin")
                && !self.lower_is(*next, "load")
                && (i == 0 || self.statement_follows(i + 1))
            {
                let score = if self.prose() { 40 } else { 8 };
                return self.hit(score, "stacked query", i);
            }
        }
        None
    }

    /// Whether the statement word at `i` goes on as SQL does: `DROP TABLE`, `DELETE FROM`,
    /// `INSERT INTO`, `UPDATE .. SET`, `SELECT .. FROM` or `SELECT 1`. A sentence after a
    /// semicolon (`; drop me a line`, `; select one`) does not. Input that starts with the
    /// semicolon is no sentence, so there the statement word alone is enough.
    fn statement_follows(&self, i: usize) -> bool {
        let Some(word) = self.toks.get(i) else {
            return false;
        };
        let window = &self.toks[i + 1..self.toks.len().min(i + 14)];
        let next_is = |w: &str| window.first().is_some_and(|n| self.lower_is(*n, w));
        let has = |w: &str| window.iter().any(|n| self.lower_is(*n, w));
        match self.text(*word).to_ascii_lowercase().as_str() {
            "drop" | "create" | "alter" | "truncate" => {
                SCHEMA_OBJECTS.iter().chain(&["index"]).any(|o| next_is(o))
            }
            "delete" => next_is("from"),
            "insert" | "replace" => next_is("into"),
            "update" => has("set"),
            "select" => {
                has("from")
                    || window.first().is_some_and(|n| {
                        matches!(n.kind, Kind::Call | Kind::Var | Kind::Num | Kind::Str(_))
                            || self.text(*n) == "*"
                    })
            }
            _ => true,
        }
    }

    /// Delay, exfiltration and probe functions.
    fn calls(&self) -> Option<Hit> {
        let mut best = None;
        for (i, t) in self.toks.iter().enumerate() {
            if t.kind != Kind::Call {
                continue;
            }
            let args = self.kind(i + 2);
            if self.call_in(*t, ATTACK_CALLS) {
                let numeric = matches!(args, Some(Kind::Num | Kind::Open | Kind::Call | Kind::Op))
                    || self.kind(i + 3) == Some(Kind::Comma);
                let score = if self.call_in_prose(i) {
                    30
                } else if numeric || !self.prose() {
                    8
                } else {
                    30
                };
                best = Hit::better(best, self.hit(score, "sql attack function", i));
            } else if self.call_in(*t, &["if", "iif"])
                && self.is_literal(i + 2)
                && self.is_compare(i + 3)
            {
                best = Hit::better(best, self.hit(16, "sql conditional probe", i));
            } else if self.call_in(*t, PROBE_CALLS) {
                let empty = self.kind(i + 2) == Some(Kind::Close) || self.kind(i + 2).is_none();
                let score = if empty { 15 } else { 40 };
                best = Hit::better(best, self.hit(score, "sql probe function", i));
            }
        }
        best
    }

    /// A call standing between words of a sentence (`the sleep(8) song`): after a plain word,
    /// or followed by one once its brackets close. SQL reads neither (no identifier can
    /// precede a call, and a condition takes no alias after it), so it is prose.
    fn call_in_prose(&self, call: usize) -> bool {
        if self.comments > 0 {
            return false;
        }
        if call > 0 && self.plain_word(call - 1) {
            return true;
        }
        let mut depth = 0usize;
        for j in call + 1..self.toks.len() {
            match self.kind(j) {
                Some(Kind::Open) => depth += 1,
                Some(Kind::Close) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return self.plain_word(j + 1);
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// System catalogue, dangerous procedures, `INTO OUTFILE`, `WAITFOR DELAY`.
    fn catalogue(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            let text = self.text(*t);
            let dotted = self.kind(i + 1) == Some(Kind::Dot)
                && self
                    .toks
                    .get(i + 2)
                    .is_some_and(|n| in_catalogue(&self.src[t.start..n.end]));
            let named = matches!(t.kind, Kind::Word(_) | Kind::Call)
                && in_catalogue(text.trim_matches('`'));
            if named || dotted {
                return self.hit(12, "sql catalogue", i);
            }
            let next = self.toks.get(i + 1).copied();
            let pair = |a: &str, b: &str| {
                self.lower_is(*t, a) && next.is_some_and(|n| self.lower_is(n, b))
            };
            if pair("into", "outfile") || pair("into", "dumpfile") {
                return self.hit(8, "sql file write", i);
            }
            if pair("waitfor", "delay") || pair("waitfor", "time") {
                return self.hit(8, "sql delay", i);
            }
        }
        None
    }

    /// Inside a string: close it, then continue with SQL.
    fn quote_break(&self) -> Option<Hit> {
        if self.ctx != Context::Quoted {
            return None;
        }
        let mut i = 1;
        while self.kind(i) == Some(Kind::Close) {
            i += 1;
        }
        let closes = i - 1;
        let first = self.toks.get(i).copied();
        let Some(first) = first else {
            return self.trailing_comment_break();
        };
        let after = i + 1;
        let operator = matches!(
            first.kind,
            Kind::Op | Kind::CompareOp | Kind::LogicOp | Kind::Word(Word::Compare | Word::Logic)
        );
        if operator && self.ends_with_line_comment() {
            return self.hit(10, "string break commented out", i);
        }
        match first.kind {
            Kind::Word(Word::Logic) | Kind::LogicOp if self.is_logic(i) => {
                self.logic_after_break(i, after)
            }
            Kind::Word(Word::Union | Word::Statement | Word::Clause) if self.mentioned(first) => {
                None
            }
            Kind::Word(Word::Statement) if !self.statement_follows(i) && self.prose_tail(i) => {
                self.hit(36, "string break statement", i)
            }
            Kind::Word(Word::Union | Word::Statement) => self.hit(6, "string break statement", i),
            Kind::Semi => {
                let score = if self.kind(after).is_none() { 18 } else { 10 };
                self.hit(score, "string break semicolon", i)
            }
            Kind::CompareOp | Kind::Word(Word::Compare) if self.is_value(after) => {
                let score = if self.kind(after) == Some(Kind::Call) || closes > 0 {
                    8
                } else {
                    14
                };
                self.hit(score, "string break comparison", i)
            }
            Kind::Op | Kind::LogicOp
                if matches!(self.kind(after), Some(Kind::Call | Kind::Open))
                    || self.kind(after) == Some(Kind::Word(Word::Statement)) =>
            {
                self.hit(8, "string break expression", i)
            }
            Kind::Word(Word::Clause) if self.clause_break(first) => {
                let score = if self.prose_tail(i) { 36 } else { 10 };
                self.hit(score, "string break clause", i)
            }
            Kind::Call if self.is_compare(after) || closes > 0 => {
                self.hit(12, "string break call", i)
            }
            _ => None,
        }
    }

    /// What follows the token at `i` is a sentence: words, numbers and sentence punctuation
    /// only (`is`, `in` and `like` read as words), four words or more, two of them plain
    /// (`1' into the box and got an error`, `1 = 1 is always true in math`). SQL there
    /// needs operators, calls, strings or a comment to end it.
    fn prose_tail(&self, i: usize) -> bool {
        let tail = &self.toks[i + 1..];
        self.comments == 0
            && tail
                .iter()
                .filter(|t| t.kind == Kind::Word(Word::Plain))
                .count()
                >= 2
            && tail
                .iter()
                .filter(|t| matches!(t.kind, Kind::Word(_)))
                .count()
                >= 4
            && tail.iter().all(|t| match t.kind {
                Kind::Word(Word::Plain | Word::Logic | Word::Literal)
                | Kind::Num
                | Kind::Comma
                | Kind::Dot => !in_catalogue(self.text(*t)),
                Kind::Other => matches!(self.text(*t), "!" | "?" | ":"),
                Kind::Word(Word::Compare) => {
                    ["is", "in", "like"].iter().any(|w| self.lower_is(*t, w))
                }
                _ => false,
            })
    }

    /// `' OR 1=1`, `' AND sleep(5)`, `' OR 'a'='a`, `' or true--`.
    fn logic_after_break(&self, logic: usize, next: usize) -> Option<Hit> {
        let mut v = next;
        while self.kind(v) == Some(Kind::Open) {
            v += 1;
        }
        if self.is_value(v) && self.is_compare(v + 1) {
            return self.hit(5, "string break tautology", logic);
        }
        match self.kind(v) {
            Some(Kind::Call | Kind::Word(Word::Statement)) => {
                self.hit(6, "string break logic", logic)
            }
            Some(Kind::Num | Kind::Str(_) | Kind::Var | Kind::Word(Word::Literal)) => {
                let score = if self.kind(v + 1).is_none() || self.has_comment_after(v) {
                    10
                } else {
                    16
                };
                self.hit(score, "string break logic", logic)
            }
            Some(Kind::Word(Word::Plain)) if self.has_comment_after(v) => {
                self.hit(14, "string break logic", logic)
            }
            Some(Kind::Word(Word::Plain)) => self.hit(36, "string break logic", logic),
            _ => None,
        }
    }

    fn ends_with_line_comment(&self) -> bool {
        self.all.last().is_some_and(|t| {
            t.kind == Kind::Comment && !self.text(*t).starts_with("/*") && t.start > self.all[0].end
        })
    }

    /// `'--`, `'#`, `')--`: a string closed and the rest of the query commented away.
    fn trailing_comment_break(&self) -> Option<Hit> {
        let closing = self.all.iter().position(|t| t.kind == Kind::Comment)?;
        let before_comment = &self.all[..closing];
        if before_comment.len() > 3 {
            return None;
        }
        let text = self.text(self.all[closing]);
        if text.starts_with("/*") && !text.ends_with("*/") {
            return None;
        }
        self.hit(16, "string break comment", 0)
    }

    fn clause_break(&self, first: Token) -> bool {
        [
            "order",
            "group",
            "having",
            "limit",
            "into",
            "procedure",
            "collate",
            "where",
            "from",
        ]
        .iter()
        .any(|w| self.lower_is(first, w))
    }

    fn has_comment_after(&self, i: usize) -> bool {
        let Some(t) = self.toks.get(i) else {
            return false;
        };
        self.all
            .iter()
            .any(|c| c.kind == Kind::Comment && c.start >= t.end)
    }

    /// `1 OR 1=1`, `x' or 'a'='a` read bare, `1) or (1=1`.
    fn tautology(&self) -> Option<Hit> {
        for i in 0..self.toks.len() {
            if !self.is_logic(i) {
                continue;
            }
            let mut v = i + 1;
            while self.kind(v) == Some(Kind::Open) {
                v += 1;
            }
            // `1 OR TRUE`, `1 AND 1`: a number, then logic with a constant, and nothing else.
            let after_number = i > 0 && self.kind(i - 1) == Some(Kind::Num);
            let constant =
                self.kind(v) == Some(Kind::Word(Word::Literal)) || self.kind(v) == Some(Kind::Num);
            if after_number && constant && self.kind(v + 1).is_none() && i == 1 {
                return self.hit(16, "tautology", i);
            }
            if !(self.is_value(v) && self.is_compare(v + 1)) {
                continue;
            }
            let mut w = v + 2;
            while self.kind(w) == Some(Kind::Open) {
                w += 1;
            }
            // `IS` takes `NULL`, `TRUE`, `FALSE`, `UNKNOWN` or `NOT`; `so is "select"` is prose.
            let is_word = self
                .toks
                .get(v + 1)
                .is_some_and(|t| self.lower_is(*t, "is"));
            if is_word
                && !(self.kind(w) == Some(Kind::Word(Word::Literal))
                    || self.toks.get(w).is_some_and(|t| self.lower_is(*t, "not")))
            {
                continue;
            }
            let cut_short = w > v + 2 && self.kind(w).is_none();
            if !self.is_value(w) && !cut_short {
                continue;
            }
            let before_literal =
                i > 0 && (self.is_literal(i - 1) || self.kind(i - 1) == Some(Kind::Close));
            let literals = self.is_literal(v) || self.is_literal(w);
            if self.filter_conjunction(i, v, w) {
                return self.hit(30, "tautology", i);
            }
            let score = match (before_literal, literals) {
                (true, true) => 8,
                (false, true) => 16,
                _ => 38,
            };
            return self.hit(score, "tautology", i);
        }
        None
    }

    /// `price < 100 and rating > 4`, `a=1 and b=2`: two comparisons of a named thing with a
    /// number, joined by logic. That is a search filter or arithmetic written out; an
    /// injection starts from the application's value (`1 and rating > 4`) and needs a
    /// comparison it controls both sides of to be always true.
    fn filter_conjunction(&self, logic: usize, v: usize, w: usize) -> bool {
        self.ctx == Context::Bare
            && self.comments == 0
            && logic >= 3
            && self.plain_word(logic - 3)
            && self.is_compare(logic - 2)
            && self.kind(logic - 1) == Some(Kind::Num)
            && self.plain_word(v)
            && w == v + 2
            && self.kind(w) == Some(Kind::Num)
    }

    /// Whole statements: `SELECT .. FROM`, `INSERT INTO`, `DROP TABLE`, `DECLARE @x`.
    fn statement(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            if !matches!(t.kind, Kind::Word(Word::Statement) | Kind::Call) || self.mentioned(*t) {
                continue;
            }
            let window = &self.toks[i + 1..self.toks.len().min(i + 14)];
            let has = |w: &str| window.iter().any(|n| self.lower_is(*n, w));
            let next_is = |w: &str| window.first().is_some_and(|n| self.lower_is(*n, w));
            let clauses = window
                .iter()
                .filter(|n| n.kind == Kind::Word(Word::Clause) && !self.lower_is(**n, "as"))
                .count();
            let nested = i > 0 && self.kind(i - 1) == Some(Kind::Open);
            let sqlish = nested
                || clauses >= 3
                || window.iter().any(|n| self.lower_is(*n, "case"))
                || window.iter().any(|n| {
                    matches!(
                        n.kind,
                        Kind::Call | Kind::Comma | Kind::Num | Kind::Str(_) | Kind::Var
                    ) || self.text(*n) == "*"
                        || self.text(*n).starts_with('`')
                });
            let word = self.text(*t).to_ascii_lowercase();
            let shape = match word.as_str() {
                "select" => {
                    has("from")
                        || window.first().is_some_and(|n| {
                            matches!(n.kind, Kind::Call | Kind::Var | Kind::Num | Kind::Str(_))
                                || self.text(*n) == "*"
                                || self.call_in(*n, ATTACK_CALLS)
                                || (n.kind == Kind::Open
                                    && window.get(1).is_some_and(|m| self.lower_is(*m, "case")))
                        })
                }
                "insert" | "replace" => next_is("into"),
                "delete" => next_is("from"),
                "update" => window.get(1).is_some_and(|n| self.lower_is(*n, "set")),
                "drop" | "create" | "alter" | "truncate" => {
                    SCHEMA_OBJECTS.iter().any(|w| next_is(w))
                }
                "exec" | "execute" => window.first().is_some_and(|n| {
                    matches!(n.kind, Kind::Var)
                        || self.lower_is(*n, "master")
                        || self.lower_is(*n, "immediate")
                        || self.text(*n).starts_with("xp_")
                        || self.text(*n).starts_with("sp_")
                }),
                "declare" => window.first().is_some_and(|n| n.kind == Kind::Var),
                "shutdown" => i == 0 || self.kind(i - 1) == Some(Kind::Semi),
                _ => false,
            };
            let attack_target = matches!(word.as_str(), "exec" | "execute")
                || window
                    .first()
                    .is_some_and(|n| self.call_in(*n, ATTACK_CALLS));
            if shape {
                let score = if attack_target {
                    10
                } else if sqlish && !self.prose() {
                    14
                } else {
                    42
                };
                return self.hit(score, "sql statement", i);
            }
        }
        None
    }

    /// Input that starts with `OR`/`AND` and an expression: the tail of an injected clause.
    fn leading_logic(&self) -> Option<Hit> {
        if self.ctx != Context::Bare || !self.is_logic(0) {
            return None;
        }
        let mut v = 1;
        while self.kind(v) == Some(Kind::Open) {
            v += 1;
        }
        let value = self.is_literal(v) || self.kind(v) == Some(Kind::Call);
        let op = matches!(
            self.kind(v + 1),
            Some(Kind::CompareOp | Kind::Op | Kind::Word(Word::Compare))
        );
        (value && op)
            .then(|| self.hit(12, "leading logic", 0))
            .flatten()
    }

    /// `1=1`, `'a'='a'`, `2>1`, `1 is not 2`: a comparison of literals that is always true.
    fn literal_comparison(&self) -> Option<Hit> {
        for i in 0..self.toks.len().saturating_sub(2) {
            let (a, op, b) = (self.toks[i], self.toks[i + 1], self.toks[i + 2]);
            if !(self.is_literal(i) && self.is_literal(i + 2))
                || a.kind == Kind::Var
                || b.kind == Kind::Var
            {
                continue;
            }
            let (op_text, b) = if self.lower_is(op, "is")
                && self
                    .toks
                    .get(i + 2)
                    .is_some_and(|t| self.lower_is(*t, "not"))
            {
                match self.toks.get(i + 3) {
                    Some(t) if matches!(t.kind, Kind::Num | Kind::Str(_)) => ("!=", *t),
                    _ => continue,
                }
            } else if op.kind == Kind::CompareOp || self.lower_is(op, "like") {
                (self.text(op), b)
            } else {
                continue;
            };
            if literal_truth(self.literal(a), op_text, self.literal(b)) {
                let start_of_value = i == 0 || self.kind(i - 1) == Some(Kind::Comma);
                let score = if self.plain_word(i + 3) || self.prose_tail(i + 2) {
                    36
                } else if start_of_value {
                    16
                } else {
                    22
                };
                return self.hit(score, "always-true comparison", i);
            }
        }
        None
    }

    fn literal(&self, t: Token) -> &'a str {
        let text = self.text(t);
        match t.kind {
            Kind::Str(_) => text.trim_matches(|c| c == '\'' || c == '"'),
            _ => text,
        }
    }

    /// Clause sequences: `FROM t WHERE`, `GROUP BY`, `HAVING COUNT(`, `CASE WHEN`,
    /// `WHEN x THEN`, `PROCEDURE ANALYSE(`, `VALUES ('a', ...`.
    fn clauses(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            if !matches!(t.kind, Kind::Word(Word::Clause | Word::Compare)) {
                continue;
            }
            let next = self.toks.get(i + 1).copied();
            let next_is = |w: &str| next.is_some_and(|n| self.lower_is(n, w));
            let word = |w: &str| self.lower_is(*t, w);
            if word("having")
                && (self.kind(i + 1) == Some(Kind::Call)
                    || self.is_literal(i + 1) && self.is_compare(i + 2))
            {
                return self.hit(16, "sql having clause", i);
            }
            if word("case") && next_is("when") {
                // `case when it rains` is a sentence; `CASE WHEN x THEN` is SQL.
                let then = self.toks[i + 1..]
                    .iter()
                    .take(8)
                    .any(|n| self.lower_is(*n, "then"));
                let score = if self.prose() && !then { 32 } else { 16 };
                return self.hit(score, "sql case expression", i);
            }
            if word("when")
                && self.toks[i + 1..]
                    .iter()
                    .take(6)
                    .any(|n| self.lower_is(*n, "then"))
                && !self.prose()
            {
                return self.hit(18, "sql case expression", i);
            }
            if word("procedure") && next.is_some_and(|n| n.kind == Kind::Call) {
                return self.hit(10, "sql procedure call", i);
            }
            if word("values")
                && self.kind(i + 1) == Some(Kind::Open)
                && self.is_literal(i + 2)
                && self.kind(i + 3) == Some(Kind::Comma)
            {
                return self.hit(16, "sql values list", i);
            }
            if word("from") && !self.prose() {
                let window = &self.toks[i + 1..self.toks.len().min(i + 8)];
                let follows = window.iter().any(|n| {
                    ["where", "limit", "join", "having"]
                        .iter()
                        .any(|w| self.lower_is(*n, w))
                });
                if follows {
                    return self.hit(16, "sql clause sequence", i);
                }
            }
            if (word("group") || word("order")) && next_is("by") {
                let score = if self.kind(i + 2) == Some(Kind::Num) {
                    12
                } else {
                    30
                };
                return self.hit(score, "sql ordering clause", i);
            }
        }
        None
    }

    /// `'{}'::jsonb`, `password::int`, `1.e(`: PostgreSQL casts and MySQL number tricks.
    fn casts(&self) -> Option<Hit> {
        for (i, t) in self.toks.iter().enumerate() {
            if t.kind == Kind::Op && self.text(*t) == "::" {
                let target = self
                    .toks
                    .get(i + 1)
                    .is_some_and(|n| CAST_TYPES.iter().any(|ty| self.lower_is(*n, ty)));
                let before = i > 0
                    && matches!(
                        self.kind(i - 1),
                        Some(Kind::Str(_) | Kind::Word(_) | Kind::Close | Kind::Num)
                    );
                if target && before && self.ctx == Context::Bare {
                    return self.hit(14, "sql type cast", i.saturating_sub(1));
                }
            }
            if t.kind == Kind::Num
                && self.text(*t).to_ascii_lowercase().ends_with(".e")
                && matches!(self.kind(i + 1), Some(Kind::Open | Kind::Dot | Kind::Call))
            {
                return self.hit(12, "sql number trick", i);
            }
        }
        None
    }

    /// `ORder BY`, `SeLeCt`: keywords in random case, which only filter evasion produces.
    fn mixed_case_keywords(&self) -> Option<Hit> {
        let at = self.toks.iter().position(|t| {
            matches!(
                t.kind,
                Kind::Word(Word::Statement | Word::Union | Word::Clause) | Kind::Call
            ) && mixed_case(self.text(*t))
                && (t.kind != Kind::Call
                    || self.call_in(*t, SQL_CALLS)
                    || self.call_in(*t, ATTACK_CALLS))
        })?;
        // A lone word in odd case (`uNiOn`, a user name or a shout) carries no statement.
        if self.toks.len() < 2 {
            return None;
        }
        self.hit(18, "sql keyword in mixed case", at)
    }

    /// MySQL `/*!...*/` executable comments around SQL words.
    fn conditional_comment(&self) -> Option<Hit> {
        let at = self.toks.iter().position(|t| t.kind == Kind::Conditional)?;
        let sql = self.toks.iter().any(|t| {
            matches!(
                t.kind,
                Kind::Word(Word::Statement | Word::Union | Word::Clause | Word::Logic)
            )
        });
        sql.then(|| self.hit(8, "mysql executable comment", at))
            .flatten()
    }

    /// Mixed-case keywords and comments used as spaces are evasions: more certain.
    fn evasions(&self, mut hit: Hit) -> Hit {
        let keyword = |t: &Token| {
            matches!(
                t.kind,
                Kind::Word(Word::Statement | Word::Union | Word::Logic | Word::Clause)
            ) || (t.kind == Kind::Call && self.call_in(*t, SQL_CALLS))
        };
        let mixed = self
            .toks
            .iter()
            .filter(|t| keyword(t))
            .any(|t| mixed_case(self.text(*t)));
        let inline_comments = self
            .all
            .windows(3)
            .any(|w| w[1].kind == Kind::Comment && keyword(&w[0]) && w[2].kind != Kind::Comment);
        if mixed {
            hit.score = hit.score.saturating_sub(12).max(5);
        }
        if inline_comments {
            hit.score = hit.score.saturating_sub(8).max(5);
        }
        hit
    }
}

/// Whether `a op b` holds for two literals (numbers compared as numbers).
fn literal_truth(a: &str, op: &str, b: &str) -> bool {
    let numbers = (a.parse::<f64>(), b.parse::<f64>());
    if let (Ok(x), Ok(y)) = numbers {
        return match op {
            "=" | "==" | "<=>" => x == y,
            "!=" | "<>" => x != y,
            // Orderings (`123<456`) are ordinary comparisons in prose and prices.
            _ => op.eq_ignore_ascii_case("like") && x == y,
        };
    }
    match op {
        "=" | "==" | "<=>" => a == b,
        "!=" | "<>" => a != b,
        _ => op.eq_ignore_ascii_case("like") && a == b,
    }
}

/// `SeLeCt`, `uNiOn`: neither lower, upper nor capitalised.
fn mixed_case(word: &str) -> bool {
    let letters: Vec<char> = word.chars().filter(char::is_ascii_alphabetic).collect();
    if letters.len() < 3 {
        return false;
    }
    let all_lower = letters.iter().all(char::is_ascii_lowercase);
    let all_upper = letters.iter().all(char::is_ascii_uppercase);
    let capitalised =
        letters[0].is_ascii_uppercase() && letters[1..].iter().all(char::is_ascii_lowercase);
    !(all_lower || all_upper || capitalised)
}
