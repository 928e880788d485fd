//! The type checker and compiler: a syntax tree and a scheme to an [`Expression`].
//!
//! Every mistake a rule author can make in an expression is found here, before any request
//! is seen: unknown fields and functions, operators applied to the wrong types, literals of
//! the wrong type, regular expressions that do not compile or exceed the size limit.

use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};

use crate::ast::{CmpOp, Expr, ExprKind, Index, Literal, Rhs, SetItem};
use crate::error::{ExprError, Span};
use crate::eval::{Call, Compare, Context, Decided, FieldKey, IpSet, Node, Test};
use crate::funcs::{self, Func};
use crate::parse::parse;
use crate::scheme::{FieldSet, Scheme};
use crate::types::{Type, Value};

/// Largest compiled size of one regular expression (`matches`, `wildcard`,
/// `regex_replace`), in bytes. Larger patterns are refused at load.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Largest lazy-DFA cache of one regular expression, in bytes.
const REGEX_DFA_LIMIT: usize = 1024 * 1024;

/// A compiled, type-checked expression, ready to evaluate against requests.
#[derive(Debug)]
pub struct Expression {
    root: Node,
    fields: FieldSet,
    source: String,
}

impl Expression {
    /// Parses and type-checks `source` against `scheme`. The expression must be boolean.
    pub fn compile(source: &str, scheme: &Scheme) -> Result<Expression, ExprError> {
        let ast = parse(source)?;
        let mut compiler = Compiler {
            src: source,
            scheme,
            fields: FieldSet::default(),
        };
        let (root, typed) = compiler.expr(&ast)?;
        if typed.each {
            return Err(compiler.each_error(ast.span));
        }
        if typed.ty != Type::Bool {
            let message = format!(
                "expected a condition (a boolean expression), found {}",
                typed.ty.described()
            );
            return Err(compiler.error(ast.span, message));
        }
        let fields = compiler.fields;
        Ok(Expression {
            root,
            fields,
            source: source.to_owned(),
        })
    }

    /// The fields this expression reads (the only ones evaluation will ask the provider for).
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }

    /// The compiled tree, for rule sets that share call results between rules.
    pub(crate) fn root_mut(&mut self) -> &mut Node {
        &mut self.root
    }

    /// The source text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the request in `cx` matches.
    pub fn matches(&self, cx: &Context<'_>) -> bool {
        self.root.eval(cx).is_true()
    }

    /// The operands that made a matching expression true, with their values. Empty if the
    /// expression does not match.
    pub fn explain(&self, cx: &Context<'_>) -> Vec<Decided> {
        let mut out = Vec::new();
        if self.matches(cx) {
            self.root.explain(cx, &mut out);
        }
        out
    }
}

/// A type, and whether it is one value per element of a `[*]`.
#[derive(Clone, Debug, PartialEq)]
struct Typed {
    ty: Type,
    each: bool,
}

impl Typed {
    fn one(ty: Type) -> Typed {
        Typed { ty, each: false }
    }
}

struct Compiler<'s> {
    src: &'s str,
    scheme: &'s Scheme,
    fields: FieldSet,
}

type Compiled = Result<(Node, Typed), ExprError>;

impl Compiler<'_> {
    fn expr(&mut self, e: &Expr) -> Compiled {
        match &e.kind {
            ExprKind::Or(items) => Ok((Node::Or(self.conditions(items, "or")?), bool_typed())),
            ExprKind::Xor(items) => Ok((Node::Xor(self.conditions(items, "xor")?), bool_typed())),
            ExprKind::And(items) => Ok((Node::And(self.conditions(items, "and")?), bool_typed())),
            ExprKind::Not(inner) => {
                let (node, typed) = self.expr(inner)?;
                if typed.ty != Type::Bool {
                    let found = typed.ty.described();
                    let message = format!("expected a condition after 'not', found {found}");
                    return Err(self.error(inner.span, message));
                }
                Ok((Node::Not(Box::new(node)), typed))
            }
            ExprKind::Compare {
                lhs,
                op,
                op_span,
                rhs,
            } => self.compare(lhs, *op, *op_span, rhs),
            ExprKind::Field(name) => self.field(name, e.span),
            ExprKind::Index { base, index } => self.index(base, index, e.span),
            ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args, e.span),
            ExprKind::Lit(lit) => self.literal_operand(lit, e.span),
        }
    }

    /// Operands of `and` / `or` / `xor`: each a single boolean.
    fn conditions(&mut self, items: &[Expr], op: &str) -> Result<Vec<Node>, ExprError> {
        let mut nodes = Vec::with_capacity(items.len());
        for item in items {
            let (node, typed) = self.expr(item)?;
            if typed.each {
                return Err(self.each_error(item.span));
            }
            if typed.ty != Type::Bool {
                let found = typed.ty.described();
                let message = format!("expected a condition on each side of '{op}', found {found}");
                return Err(self.error(item.span, message));
            }
            nodes.push(node);
        }
        Ok(nodes)
    }

    fn field(&mut self, name: &str, span: Span) -> Compiled {
        let Some(def) = self.scheme.lookup(name) else {
            let mut message = format!("unknown field '{name}'");
            if funcs::NAMES.contains(&name) {
                message = format!("'{name}' is a function: call it as {name}(...)");
            } else if let Some(near) = self.scheme.suggest(name) {
                message.push_str(&format!("; did you mean '{near}'?"));
            }
            return Err(self.error(span, message));
        };
        self.fields.insert(def.id());
        Ok((Node::Field(def.id()), Typed::one(def.ty().clone())))
    }

    fn index(&mut self, base: &Expr, index: &Index, span: Span) -> Compiled {
        let (node, typed) = self.expr(base)?;
        let text = self.text(base.span);
        let base_ty = typed.ty.described();
        if typed.each {
            let message = "only one [*] is allowed in a path; index before the [*]";
            return Err(self.error(span, message));
        }
        match (index, &typed.ty) {
            (Index::Key(key), Type::Map(value)) => Ok((
                match node {
                    Node::Field(field) => {
                        let key = key.clone();
                        Node::FieldKey(Box::new(FieldKey {
                            field,
                            key,
                            memo: None,
                        }))
                    }
                    node => Node::Key(Box::new(node), key.clone()),
                },
                Typed::one((**value).clone()),
            )),
            (Index::Pos(pos), Type::Array(elem)) => Ok((
                Node::Pos(Box::new(node), *pos),
                Typed::one((**elem).clone()),
            )),
            (Index::Each, Type::Array(elem) | Type::Map(elem)) => Ok((
                Node::Each(Box::new(node)),
                Typed {
                    ty: (**elem).clone(),
                    each: true,
                },
            )),
            (Index::Key(_), Type::Array(_)) => {
                let message = format!("{text} is {base_ty}: index it by position, like [0]");
                Err(self.error(span, message))
            }
            (Index::Pos(_), Type::Map(_)) => {
                let message = format!("{text} is {base_ty}: index it by name, like [\"name\"]");
                Err(self.error(span, message))
            }
            _ => {
                let message = format!("{text} is {base_ty}, which cannot be indexed");
                Err(self.error(span, message))
            }
        }
    }

    fn literal_operand(&mut self, lit: &Literal, span: Span) -> Compiled {
        let (value, ty) = match lit {
            Literal::Bool(b) => (Value::Bool(*b), Type::Bool),
            Literal::Int(n) => (Value::Int(*n), Type::Int),
            Literal::Bytes(b) => (Value::Bytes(b.clone()), Type::Bytes),
            Literal::Ip(ip) => (Value::Ip(*ip), Type::Ip),
            Literal::Cidr(_) => {
                let message = "a network is only allowed inside a set: ip.src in {10.0.0.0/8}";
                return Err(self.error(span, message));
            }
        };
        Ok((Node::Lit(value), Typed::one(ty)))
    }

    fn compare(&mut self, lhs: &Expr, op: CmpOp, op_span: Span, rhs: &Rhs) -> Compiled {
        let (node, typed) = self.expr(lhs)?;
        let op_text = self.text(op_span).to_owned();
        let lhs_text = self.text(lhs.span).to_owned();
        self.check_lhs(op, &op_text, &lhs_text, &typed, op_span)?;
        let test = match rhs {
            Rhs::Set(items, _) => self.set(&typed.ty, items)?,
            Rhs::Lit(lit, span) => self.test(op, &op_text, &typed.ty, lit, *span)?,
        };
        let node = match node {
            // The most common shape gets a node of its own: one pointer less to follow.
            Node::Field(id) => Node::FieldTest(id, test),
            lhs => Node::Cmp(Box::new(Compare {
                lhs,
                test,
                lhs_text: lhs_text.into_boxed_str(),
            })),
        };
        Ok((
            node,
            Typed {
                ty: Type::Bool,
                each: typed.each,
            },
        ))
    }

    /// Whether `op` can take a left side of this type.
    fn check_lhs(
        &self,
        op: CmpOp,
        op_text: &str,
        lhs_text: &str,
        typed: &Typed,
        op_span: Span,
    ) -> Result<(), ExprError> {
        let ty = &typed.ty;
        let ok = match op {
            CmpOp::Eq | CmpOp::Ne => matches!(ty, Type::Bool | Type::Int | Type::Bytes | Type::Ip),
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge | CmpOp::In => {
                matches!(ty, Type::Int | Type::Bytes | Type::Ip)
            }
            CmpOp::Contains | CmpOp::Matches | CmpOp::Wildcard | CmpOp::StrictWildcard => {
                *ty == Type::Bytes
            }
        };
        if ok {
            return Ok(());
        }
        let described = ty.described();
        let message = match (op, ty) {
            (_, Type::Array(_) | Type::Map(_)) => format!(
                "'{op_text}' cannot compare {lhs_text}, which is {described}: use [*] inside \
                 any(...) or all(...), or pick one element like [0]"
            ),
            (CmpOp::Contains | CmpOp::Matches | CmpOp::Wildcard | CmpOp::StrictWildcard, _) => {
                format!("'{op_text}' needs a string on its left, but {lhs_text} is {described}")
            }
            _ => format!("'{op_text}' cannot be used on {lhs_text}, which is {described}"),
        };
        Err(self.error(op_span, message))
    }

    fn test(
        &self,
        op: CmpOp,
        op_text: &str,
        ty: &Type,
        lit: &Literal,
        span: Span,
    ) -> Result<Test, ExprError> {
        let value = match (ty, lit) {
            (Type::Bool, Literal::Bool(b)) => Value::Bool(*b),
            (Type::Int, Literal::Int(n)) => Value::Int(*n),
            (Type::Bytes, Literal::Bytes(b)) => Value::Bytes(b.clone()),
            (Type::Ip, Literal::Ip(ip)) => Value::Ip(*ip),
            (Type::Ip, Literal::Cidr(_)) => {
                let message = format!(
                    "'{op_text}' compares single addresses; test a network with 'in', like \
                     ip.src in {{{lit}}}"
                );
                return Err(self.error(span, message));
            }
            _ => {
                let found = self.text(span);
                let message = format!(
                    "expected {} after '{op_text}', found {found}",
                    ty.described()
                );
                return Err(self.error(span, message));
            }
        };
        let Value::Bytes(bytes) = &value else {
            return Ok(ordered_test(op, value));
        };
        Ok(match op {
            CmpOp::Contains => Test::Contains(Box::new(memmem::Finder::new(bytes).into_owned())),
            CmpOp::Matches => Test::Regex(self.regex(bytes, span)?),
            CmpOp::Wildcard | CmpOp::StrictWildcard => {
                let pattern = wildcard_pattern(bytes, op == CmpOp::Wildcard)
                    .map_err(|message| self.error(span, message))?;
                Test::Regex(self.regex(pattern.as_bytes(), span)?)
            }
            _ => ordered_test(op, value),
        })
    }

    fn set(&self, ty: &Type, items: &[(SetItem, Span)]) -> Result<Test, ExprError> {
        let mut strings = Vec::new();
        let (mut ints, mut nets, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
        for (item, span) in items {
            match (ty, item) {
                (Type::Bytes, SetItem::Lit(Literal::Bytes(b))) => strings.push(b.clone()),
                (Type::Int, SetItem::Lit(Literal::Int(n))) => ints.push((*n, *n)),
                (Type::Int, SetItem::IntRange(a, b)) => ints.push((*a, *b)),
                (Type::Ip, SetItem::Lit(Literal::Ip(ip))) => ranges.push((*ip, *ip)),
                (Type::Ip, SetItem::Lit(Literal::Cidr(net))) => nets.push(net.trunc()),
                (Type::Ip, SetItem::IpRange(a, b)) => ranges.push((*a, *b)),
                _ => {
                    let wanted = match ty {
                        Type::Int => "an integer or a range like 1..100",
                        Type::Ip => "an IP address, a network or a range",
                        _ => "a string",
                    };
                    let found = self.text(*span);
                    let message = format!("expected {wanted} in the set, found {found}");
                    return Err(self.error(*span, message));
                }
            }
        }
        Ok(match ty {
            Type::Int => Test::InInt(ints),
            Type::Ip => Test::InIp(Box::new(IpSet { nets, ranges })),
            _ => {
                strings.sort();
                strings.dedup();
                Test::InBytes(strings)
            }
        })
    }

    fn regex(&self, pattern: &[u8], span: Span) -> Result<Regex, ExprError> {
        let Ok(pattern) = std::str::from_utf8(pattern) else {
            return Err(self.error(span, "a regular expression must be valid UTF-8"));
        };
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_LIMIT)
            .build()
            .map_err(|err| {
                let message = match err {
                    regex::Error::CompiledTooBig(_) => format!(
                        "regular expression is larger than {} KiB once compiled; simplify it",
                        REGEX_SIZE_LIMIT / 1024
                    ),
                    other => format!(
                        "invalid regular expression: {}",
                        one_line(&other.to_string())
                    ),
                };
                self.error(span, message)
            })
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Expr], span: Span) -> Compiled {
        let mut nodes = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for arg in args {
            let (node, typed) = self.expr(arg)?;
            nodes.push(node);
            types.push(typed);
        }
        let sig = Signature {
            compiler: self,
            name,
            name_span,
            span,
            args,
            types: &types,
        };
        let (func, result) = sig.check()?;
        let each = types.first().is_some_and(|t| t.each);
        let text = args.first().map_or("", |a| self.text(a.span)).into();
        let node = match func {
            Checked::Any => Node::Any(Box::new(nodes.remove(0))),
            Checked::All => Node::All(Box::new(nodes.remove(0))),
            Checked::Func(func) => Node::Call(Box::new(Call {
                func,
                args: nodes,
                each,
                text,
                memo: None,
            })),
        };
        Ok((node, result))
    }

    fn each_error(&self, span: Span) -> ExprError {
        let message = "a [*] comparison gives one result per element: wrap it in any(...) \
                       or all(...)";
        self.error(span, message)
    }

    fn text(&self, span: Span) -> &str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ExprError {
        ExprError::at(self.src, span.start, message)
    }
}

fn bool_typed() -> Typed {
    Typed::one(Type::Bool)
}

fn ordered_test(op: CmpOp, value: Value) -> Test {
    match op {
        CmpOp::Ne => Test::Ne(value),
        CmpOp::Lt => Test::Lt(value),
        CmpOp::Le => Test::Le(value),
        CmpOp::Gt => Test::Gt(value),
        CmpOp::Ge => Test::Ge(value),
        _ => Test::Eq(value),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Translates a Cloudflare wildcard (`*` any run, `\*` and `\\` literal) into a regular
/// expression over bytes matching the whole value, case-insensitive (ASCII) unless `strict`.
/// Leading and trailing stars become an unanchored search, which lets the regex engine use
/// its literal prefilters instead of scanning with `.*`.
pub(crate) fn wildcard_pattern(glob: &[u8], case_insensitive: bool) -> Result<String, String> {
    let mut parts: Vec<Option<u8>> = Vec::with_capacity(glob.len());
    let mut bytes = glob.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'*' => parts.push(None),
            b'\\' => match bytes.next() {
                Some(&next) => parts.push(Some(next)),
                None => return Err("a wildcard pattern cannot end with a lone '\\'".to_owned()),
            },
            other => parts.push(Some(other)),
        }
    }
    let start = parts
        .iter()
        .position(Option::is_some)
        .unwrap_or(parts.len());
    let end = parts
        .iter()
        .rposition(Option::is_some)
        .map_or(start, |i| i + 1);
    let mut out = String::from(if case_insensitive {
        "(?s-u:(?i)"
    } else {
        "(?s-u:"
    });
    if start == 0 {
        out.push('^');
    }
    let mut last_was_star = false;
    for part in &parts[start..end] {
        match part {
            None if last_was_star => {}
            None => out.push_str(".*"),
            Some(b) if b.is_ascii_alphanumeric() => out.push(char::from(*b)),
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
        }
        last_was_star = part.is_none();
    }
    if end == parts.len() {
        out.push('$');
    }
    out.push(')');
    Ok(out)
}

/// Checks one call against its function's signature.
struct Signature<'c, 's> {
    compiler: &'c Compiler<'s>,
    name: &'c str,
    name_span: Span,
    span: Span,
    args: &'c [Expr],
    types: &'c [Typed],
}

enum Checked {
    Any,
    All,
    Func(Func),
}

impl Signature<'_, '_> {
    fn check(&self) -> Result<(Checked, Typed), ExprError> {
        let each = self.types.first().is_some_and(|t| t.each);
        let result = |ty: Type| Typed { ty, each };
        match self.name {
            "any" | "all" => {
                self.arity(1)?;
                if !(each && self.types[0].ty == Type::Bool) {
                    return Err(self.arg_error(
                        0,
                        "a [*] comparison, like any(http.request.headers.names[*] == \"x\")",
                    ));
                }
                let checked = if self.name == "any" {
                    Checked::Any
                } else {
                    Checked::All
                };
                Ok((checked, bool_typed()))
            }
            "lower" | "upper" => {
                self.arity(1)?;
                self.want(0, &Type::Bytes)?;
                let func = if self.name == "lower" {
                    Func::Lower
                } else {
                    Func::Upper
                };
                Ok((Checked::Func(func), result(Type::Bytes)))
            }
            "len" => {
                self.arity(1)?;
                let ty = &self.types[0].ty;
                if !matches!(ty, Type::Bytes | Type::Array(_) | Type::Map(_)) {
                    return Err(self.arg_error(0, "a string, an array or a map"));
                }
                Ok((Checked::Func(Func::Len), result(Type::Int)))
            }
            "starts_with" | "ends_with" => {
                self.arity(2)?;
                self.want(0, &Type::Bytes)?;
                self.want_single(1, &Type::Bytes)?;
                let func = if self.name == "starts_with" {
                    Func::StartsWith
                } else {
                    Func::EndsWith
                };
                Ok((Checked::Func(func), result(Type::Bool)))
            }
            "remove_bytes" => {
                self.arity(2)?;
                self.want(0, &Type::Bytes)?;
                self.want_single(1, &Type::Bytes)?;
                Ok((Checked::Func(Func::RemoveBytes), result(Type::Bytes)))
            }
            "to_string" => {
                self.arity(1)?;
                if !matches!(
                    self.types[0].ty,
                    Type::Bool | Type::Int | Type::Ip | Type::Bytes
                ) {
                    return Err(
                        self.arg_error(0, "a boolean, an integer, an IP address or a string")
                    );
                }
                Ok((Checked::Func(Func::ToString), result(Type::Bytes)))
            }
            "url_decode" => self.url_decode(each),
            "concat" => self.concat(),
            "cidr" => self.cidr(each),
            "regex_replace" => self.regex_replace(each),
            _ => {
                let message = format!(
                    "unknown function '{}'; the functions are {}",
                    self.name,
                    funcs::NAMES.join(", ")
                );
                Err(self.compiler.error(self.name_span, message))
            }
        }
    }

    fn url_decode(&self, each: bool) -> Result<(Checked, Typed), ExprError> {
        if !(1..=2).contains(&self.args.len()) {
            return Err(self.arity_error("1 or 2"));
        }
        self.want(0, &Type::Bytes)?;
        let options = if self.args.len() == 2 {
            self.literal_bytes(1, "options like \"r\" or \"ur\"")?
        } else {
            Vec::new()
        };
        if let Some(bad) = options.iter().find(|b| !matches!(b, b'r' | b'u')) {
            let message = format!(
                "unknown url_decode option '{}': use \"r\" (recursive) and/or \"u\" (%uXXXX)",
                char::from(*bad)
            );
            return Err(self.compiler.error(self.args[1].span, message));
        }
        let func = Func::UrlDecode {
            recursive: options.contains(&b'r'),
            unicode: options.contains(&b'u'),
        };
        Ok((
            Checked::Func(func),
            Typed {
                ty: Type::Bytes,
                each,
            },
        ))
    }

    fn concat(&self) -> Result<(Checked, Typed), ExprError> {
        if self.args.is_empty() {
            return Err(self.arity_error("at least 1"));
        }
        let first = &self.types[0].ty;
        if !matches!(first, Type::Bytes | Type::Array(_)) {
            return Err(self.arg_error(0, "a string or an array"));
        }
        for i in 0..self.args.len() {
            self.want_single(i, first)?;
        }
        Ok((Checked::Func(Func::Concat), Typed::one(first.clone())))
    }

    fn cidr(&self, each: bool) -> Result<(Checked, Typed), ExprError> {
        self.arity(3)?;
        self.want(0, &Type::Ip)?;
        let v4 = self.literal_bits(1, 32)?;
        let v6 = self.literal_bits(2, 128)?;
        Ok((
            Checked::Func(Func::Cidr { v4, v6 }),
            Typed { ty: Type::Ip, each },
        ))
    }

    fn regex_replace(&self, each: bool) -> Result<(Checked, Typed), ExprError> {
        self.arity(3)?;
        self.want(0, &Type::Bytes)?;
        let pattern = self.literal_bytes(1, "a regular expression string")?;
        let regex = self.compiler.regex(&pattern, self.args[1].span)?;
        let replacement = self.literal_bytes(2, "a replacement string")?;
        let func = Func::RegexReplace { regex, replacement };
        Ok((
            Checked::Func(func),
            Typed {
                ty: Type::Bytes,
                each,
            },
        ))
    }

    fn literal_bits(&self, i: usize, max: u8) -> Result<u8, ExprError> {
        match &self.args[i].kind {
            ExprKind::Lit(Literal::Int(n)) if (1..=i64::from(max)).contains(n) => {
                Ok(u8::try_from(*n).unwrap_or(max))
            }
            _ => Err(self.arg_error(i, &format!("a number of bits from 1 to {max}"))),
        }
    }

    fn literal_bytes(&self, i: usize, what: &str) -> Result<Vec<u8>, ExprError> {
        match &self.args[i].kind {
            ExprKind::Lit(Literal::Bytes(b)) => Ok(b.clone()),
            _ => Err(self.arg_error(i, &format!("{what} (a literal)"))),
        }
    }

    fn arity(&self, n: usize) -> Result<(), ExprError> {
        if self.args.len() == n {
            return Ok(());
        }
        Err(self.arity_error(&n.to_string()))
    }

    fn arity_error(&self, wanted: &str) -> ExprError {
        let plural = if wanted == "1" { "" } else { "s" };
        let message = format!(
            "{}(...) takes {wanted} argument{plural}, found {}",
            self.name,
            self.args.len()
        );
        self.compiler.error(self.span, message)
    }

    /// Argument `i` has type `ty`; the first argument may be a `[*]`.
    fn want(&self, i: usize, ty: &Type) -> Result<(), ExprError> {
        if self.types[i].ty == *ty {
            return Ok(());
        }
        Err(self.arg_error(i, &ty.described()))
    }

    /// Argument `i` has type `ty` and is a single value.
    fn want_single(&self, i: usize, ty: &Type) -> Result<(), ExprError> {
        if self.types[i].each {
            let message = format!("only the first argument of {}(...) may use [*]", self.name);
            return Err(self.compiler.error(self.args[i].span, message));
        }
        self.want(i, ty)
    }

    fn arg_error(&self, i: usize, wanted: &str) -> ExprError {
        let found = match &self.args[i].kind {
            ExprKind::Lit(_) => self.compiler.text(self.args[i].span).to_owned(),
            _ => {
                let t = &self.types[i];
                let each = if t.each { " per [*] element" } else { "" };
                format!(
                    "{} ({}{each})",
                    self.compiler.text(self.args[i].span),
                    t.ty.described()
                )
            }
        };
        let ordinal = ["first", "second", "third"]
            .get(i)
            .copied()
            .unwrap_or("next");
        let message = format!(
            "expected {wanted} as the {ordinal} argument of {}(...), found {found}",
            self.name
        );
        self.compiler.error(self.args[i].span, message)
    }
}
