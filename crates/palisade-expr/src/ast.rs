//! The syntax tree produced by the parser, and its canonical printer.
//!
//! Printing a tree and parsing the text again gives the same tree (a property test holds us to
//! it); the printer uses the symbolic operators and parenthesises every nested logical group.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Span;

/// An expression with the place it came from.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it is in the source text.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// `a or b or c`.
    Or(Vec<Expr>),
    /// `a xor b xor c`.
    Xor(Vec<Expr>),
    /// `a and b and c`.
    And(Vec<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `lhs OP rhs`, the right side always a literal or a set.
    Compare {
        /// The value compared.
        lhs: Box<Expr>,
        /// The operator.
        op: CmpOp,
        /// Where the operator is.
        op_span: Span,
        /// The literal or set on the right.
        rhs: Rhs,
    },
    /// A field, e.g. `http.request.uri.path`.
    Field(String),
    /// `base[...]`.
    Index {
        /// The array or map indexed.
        base: Box<Expr>,
        /// The key.
        index: Index,
    },
    /// `name(args...)`.
    Call {
        /// The function name.
        name: String,
        /// Where the name is.
        name_span: Span,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// A literal used as an operand or argument.
    Lit(Literal),
}

/// What goes between brackets after an array or map.
#[derive(Clone, Debug, PartialEq)]
pub enum Index {
    /// `["name"]`: a map key.
    Key(Vec<u8>),
    /// `[0]`: an array position.
    Pos(i64),
    /// `[*]`: every element.
    Each,
}

/// Comparison operators. Each has a word and (for most) a symbol spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`, `==`.
    Eq,
    /// `ne`, `!=`.
    Ne,
    /// `lt`, `<`.
    Lt,
    /// `le`, `<=`.
    Le,
    /// `gt`, `>`.
    Gt,
    /// `ge`, `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `matches`, `~`.
    Matches,
    /// `wildcard` (case-insensitive).
    Wildcard,
    /// `strict wildcard` (case-sensitive).
    StrictWildcard,
    /// `in {...}`.
    In,
}

impl CmpOp {
    /// The word spelling, used in messages.
    pub fn word(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Contains => "contains",
            CmpOp::Matches => "matches",
            CmpOp::Wildcard => "wildcard",
            CmpOp::StrictWildcard => "strict wildcard",
            CmpOp::In => "in",
        }
    }

    fn printed(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Matches => "~",
            other => other.word(),
        }
    }
}

/// The right side of a comparison.
#[derive(Clone, Debug)]
pub enum Rhs {
    /// A single literal.
    Lit(Literal, Span),
    /// `{ ... }` for `in`, each item with its place.
    Set(Vec<(SetItem, Span)>, Span),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// `42`.
    Int(i64),
    /// `"text"` or a raw string.
    Bytes(Vec<u8>),
    /// `1.2.3.4`, `::1`.
    Ip(IpAddr),
    /// `10.0.0.0/8` (only meaningful inside sets).
    Cidr(IpNet),
}

/// One member of an `in { ... }` set.
#[derive(Clone, Debug, PartialEq)]
pub enum SetItem {
    /// A single literal.
    Lit(Literal),
    /// `1..100` (inclusive).
    IntRange(i64, i64),
    /// `10.0.0.1..10.0.0.9` (inclusive).
    IpRange(IpAddr, IpAddr),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Or(items) => join(f, items, " || "),
            ExprKind::Xor(items) => join(f, items, " ^^ "),
            ExprKind::And(items) => join(f, items, " && "),
            // `not` binds tighter than every logical operator and looser than comparisons,
            // so only a logical group under it needs parentheses.
            ExprKind::Not(inner) => match inner.kind {
                ExprKind::Or(_) | ExprKind::Xor(_) | ExprKind::And(_) => write!(f, "not ({inner})"),
                _ => write!(f, "not {inner}"),
            },
            ExprKind::Compare { lhs, op, rhs, .. } => {
                grouped(f, lhs)?;
                write!(f, " {} {rhs}", op.printed())
            }
            ExprKind::Field(name) => f.write_str(name),
            ExprKind::Index { base, index } => {
                grouped(f, base)?;
                match index {
                    Index::Key(key) => write!(f, "[{}]", StrLit(key)),
                    Index::Pos(n) => write!(f, "[{n}]"),
                    Index::Each => f.write_str("[*]"),
                }
            }
            ExprKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_char(')')
            }
            ExprKind::Lit(lit) => write!(f, "{lit}"),
        }
    }
}

/// Prints `e`, in parentheses unless it is an atom (field, call, literal, index).
fn grouped(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
    match e.kind {
        ExprKind::Field(_) | ExprKind::Call { .. } | ExprKind::Lit(_) | ExprKind::Index { .. } => {
            write!(f, "{e}")
        }
        _ => write!(f, "({e})"),
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        grouped(f, item)?;
    }
    Ok(())
}

impl fmt::Display for Rhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rhs::Lit(lit, _) => write!(f, "{lit}"),
            Rhs::Set(items, _) => {
                f.write_char('{')?;
                for (i, (item, _)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(' ')?;
                    }
                    match item {
                        SetItem::Lit(lit) => write!(f, "{lit}")?,
                        SetItem::IntRange(a, b) => write!(f, "{a}..{b}")?,
                        SetItem::IpRange(a, b) => write!(f, "{a}..{b}")?,
                    }
                }
                f.write_char('}')
            }
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Bytes(b) => write!(f, "{}", StrLit(b)),
            Literal::Ip(ip) => write!(f, "{ip}"),
            Literal::Cidr(net) => write!(f, "{net}"),
        }
    }
}

/// Bytes printed as a quoted string literal that lexes back to the same bytes.
pub(crate) struct StrLit<'a>(pub &'a [u8]);

impl fmt::Display for StrLit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() && c.is_ascii() => write!(f, "\\x{:02x}", c as u32)?,
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_char('"')
    }
}
