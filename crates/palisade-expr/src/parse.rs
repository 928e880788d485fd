//! The parser: tokens to a syntax tree, with Cloudflare's precedence
//! (`not` binds tightest, then `and`, `xor`, `or`).
//!
//! Hostile input cannot exhaust the stack: the text is capped at [`MAX_EXPRESSION_BYTES`] and
//! nesting (parentheses, `not`, calls, indexes) at [`MAX_DEPTH`]; chains of `and`/`or` are
//! parsed in loops into flat lists, so a long chain costs no depth.

use crate::ast::{CmpOp, Expr, ExprKind, Index, Literal, Rhs, SetItem};
use crate::error::{ExprError, Span};
use crate::lex::{Tok, Token, tokenize};

/// Longest expression accepted, in bytes (Cloudflare allows 4,096 characters).
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;

/// Deepest nesting of parentheses, `not`, function calls and indexes accepted.
pub const MAX_DEPTH: usize = 64;

/// Parses `source` into a syntax tree without checking field names or types.
pub fn parse(source: &str) -> Result<Expr, ExprError> {
    if source.len() > MAX_EXPRESSION_BYTES {
        let message = format!(
            "expression is {} bytes long; the limit is {MAX_EXPRESSION_BYTES}",
            source.len()
        );
        return Err(ExprError::at(source, 0, message));
    }
    let toks = tokenize(source)?;
    let mut parser = Parser {
        src: source,
        toks,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(parser.error_here("unmatched ')'")),
        _ => Err(parser.expected("'and', 'or', 'xor' or the end of the expression")),
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<Expr, ExprError> {
        self.chain(
            Parser::xor,
            |t| is_word(t, "or") || *t == Tok::OrOr,
            ExprKind::Or,
        )
    }

    fn xor(&mut self) -> Result<Expr, ExprError> {
        self.chain(
            Parser::and,
            |t| is_word(t, "xor") || *t == Tok::XorXor,
            ExprKind::Xor,
        )
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.chain(
            Parser::unary,
            |t| is_word(t, "and") || *t == Tok::AndAnd,
            ExprKind::And,
        )
    }

    /// `item (sep item)*` as one flat node, or the single item.
    fn chain(
        &mut self,
        item: fn(&mut Self) -> Result<Expr, ExprError>,
        is_sep: fn(&Tok) -> bool,
        build: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<Expr, ExprError> {
        let first = item(self)?;
        if !is_sep(self.peek()) {
            return Ok(first);
        }
        let mut items = vec![first];
        while is_sep(self.peek()) {
            self.pos += 1;
            items.push(item(self)?);
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        Ok(Expr {
            kind: build(items),
            span,
        })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if !(is_word(self.peek(), "not") || *self.peek() == Tok::Bang) {
            return self.comparison();
        }
        let start = self.span().start;
        self.pos += 1;
        self.enter()?;
        let inner = self.unary()?;
        self.depth -= 1;
        let span = Span::new(start, inner.span.end);
        Ok(Expr {
            kind: ExprKind::Not(Box::new(inner)),
            span,
        })
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.postfix()?;
        let op_start = self.pos;
        let Some(op) = self.cmp_op() else {
            return Ok(lhs);
        };
        let op_span = self.toks[op_start].span.to(self.toks[self.pos - 1].span);
        let op_text = &self.src[op_span.start..op_span.end];
        let rhs = if op == CmpOp::In {
            self.set(op_text)?
        } else {
            self.rhs_literal(op, op_text)?
        };
        let rhs_end = match &rhs {
            Rhs::Lit(_, s) | Rhs::Set(_, s) => s.end,
        };
        let span = Span::new(lhs.span.start, rhs_end);
        let kind = ExprKind::Compare {
            lhs: Box::new(lhs),
            op,
            op_span,
            rhs,
        };
        Ok(Expr { kind, span })
    }

    fn cmp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Tok::EqEq => CmpOp::Eq,
            Tok::NotEq => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Tilde => CmpOp::Matches,
            Tok::Ident(w) => match w.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "contains" => CmpOp::Contains,
                "matches" => CmpOp::Matches,
                "wildcard" => CmpOp::Wildcard,
                "in" => CmpOp::In,
                "strict" if is_word(&self.toks[self.pos + 1].tok, "wildcard") => {
                    self.pos += 1;
                    CmpOp::StrictWildcard
                }
                _ => return None,
            },
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn rhs_literal(&mut self, op: CmpOp, op_text: &str) -> Result<Rhs, ExprError> {
        let span = self.span();
        if let Some(lit) = self.literal() {
            return Ok(Rhs::Lit(lit, span));
        }
        let what = match op {
            CmpOp::Contains | CmpOp::Matches | CmpOp::Wildcard | CmpOp::StrictWildcard => {
                "a string"
            }
            _ => "a value",
        };
        Err(self.expected(&format!("{what} after '{op_text}'")))
    }

    /// `{ item item ... }` where items are literals or ranges.
    fn set(&mut self, op_text: &str) -> Result<Rhs, ExprError> {
        let start = self.span().start;
        // TODO: named lists (`in $office_ips`); rule authors must write the set inline.
        if *self.peek() != Tok::LBrace {
            return Err(self.expected(&format!("'{{' to open a set after '{op_text}'")));
        }
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Tok::RBrace if !items.is_empty() => break,
                Tok::Comma if !items.is_empty() => self.pos += 1,
                _ => {
                    let start = self.span().start;
                    let item = self.set_item()?;
                    let end = self.toks[self.pos - 1].span.end;
                    items.push((item, Span::new(start, end)));
                }
            }
        }
        let end = self.span().end;
        self.pos += 1;
        Ok(Rhs::Set(items, Span::new(start, end)))
    }

    fn set_item(&mut self) -> Result<SetItem, ExprError> {
        let item_at = self.pos;
        let Some(lit) = self.literal() else {
            return Err(self.expected("a value or '}' in the set"));
        };
        if *self.peek() != Tok::DotDot {
            return Ok(SetItem::Lit(lit));
        }
        self.pos += 1;
        let upper = self.literal();
        let item = match (lit, upper) {
            (Literal::Int(a), Some(Literal::Int(b))) if a <= b => SetItem::IntRange(a, b),
            (Literal::Ip(a), Some(Literal::Ip(b))) if a.is_ipv4() == b.is_ipv4() && a <= b => {
                SetItem::IpRange(a, b)
            }
            _ => {
                let at = self.toks[item_at].span.start;
                let message = "a range needs two integers or two IP addresses of one family, \
                               the lower first (1..100, 10.0.0.1..10.0.0.9)";
                return Err(ExprError::at(self.src, at, message));
            }
        };
        Ok(item)
    }

    /// A literal token, consumed; `None` (nothing consumed) if the next token is not one.
    fn literal(&mut self) -> Option<Literal> {
        let lit = match self.peek().clone() {
            Tok::Str(s) => Literal::Bytes(s),
            Tok::Int(n) => Literal::Int(n),
            Tok::Ip(ip) => Literal::Ip(ip),
            Tok::Cidr(net) => Literal::Cidr(net),
            Tok::Ident(w) if w == "true" => Literal::Bool(true),
            Tok::Ident(w) if w == "false" => Literal::Bool(false),
            _ => return None,
        };
        self.pos += 1;
        Some(lit)
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut expr = self.primary()?;
        while *self.peek() == Tok::LBracket {
            self.pos += 1;
            self.enter()?;
            let index = match self.peek().clone() {
                Tok::Str(key) => Index::Key(key),
                Tok::Int(n) => Index::Pos(n),
                Tok::Star => Index::Each,
                _ => return Err(self.expected("a \"key\", a position or '*' inside '[ ]'")),
            };
            self.pos += 1;
            if *self.peek() != Tok::RBracket {
                return Err(self.expected("']'"));
            }
            let end = self.span().end;
            self.pos += 1;
            self.depth -= 1;
            let span = Span::new(expr.span.start, end);
            expr = Expr {
                kind: ExprKind::Index {
                    base: Box::new(expr),
                    index,
                },
                span,
            };
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let span = self.span();
        match self.peek().clone() {
            Tok::LParen => {
                self.pos += 1;
                self.enter()?;
                let inner = self.or()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.expected("')'"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Ident(name) if *self.peek_at(1) == Tok::LParen => self.call(name, span),
            Tok::Ident(name) if !is_reserved(&name) => {
                self.pos += 1;
                Ok(Expr {
                    kind: ExprKind::Field(name),
                    span,
                })
            }
            _ => match self.literal() {
                Some(lit) => Ok(Expr {
                    kind: ExprKind::Lit(lit),
                    span,
                }),
                None => Err(self.expected("a field, a function call or '('")),
            },
        }
    }

    fn call(&mut self, name: String, name_span: Span) -> Result<Expr, ExprError> {
        self.pos += 2;
        self.enter()?;
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                args.push(self.or()?);
                match self.peek() {
                    Tok::Comma => self.pos += 1,
                    Tok::RParen => break,
                    _ => return Err(self.expected(&format!("',' or ')' in the call to {name}"))),
                }
            }
        }
        let end = self.span().end;
        self.pos += 1;
        self.depth -= 1;
        let kind = ExprKind::Call {
            name,
            name_span,
            args,
        };
        Ok(Expr {
            kind,
            span: Span::new(name_span.start, end),
        })
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let message = format!("expression is nested deeper than {MAX_DEPTH} levels");
            return Err(self.error_here(&message));
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[(self.pos + n).min(last)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.pos].span
    }

    /// "expected X, found Y" at the current token.
    fn expected(&self, what: &str) -> ExprError {
        let span = self.span();
        let found = self.peek().describe(&self.src[span.start..span.end]);
        self.error_here(&format!("expected {what}, found {found}"))
    }

    fn error_here(&self, message: &str) -> ExprError {
        ExprError::at(self.src, self.span().start, message)
    }
}

fn is_word(tok: &Tok, word: &str) -> bool {
    matches!(tok, Tok::Ident(w) if w == word)
}

/// Words that are operators and so can never be field names.
fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "and"
            | "or"
            | "xor"
            | "not"
            | "eq"
            | "ne"
            | "lt"
            | "le"
            | "gt"
            | "ge"
            | "contains"
            | "matches"
            | "wildcard"
            | "strict"
            | "in"
            | "true"
            | "false"
    )
}
