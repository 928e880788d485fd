//! The evaluator: compiled nodes run against one request's fields.
//!
//! Fields come from a [`FieldProvider`] on first use and are cached in the [`Context`] for
//! the rest of the request, so a field read by many rules is computed once and a field no
//! rule reads is never computed. Evaluation is total: a missing field or map key makes every
//! comparison on it false, and no input can make it panic. Recursion depth equals the
//! expression's nesting, which the parser bounds.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;

use ipnet::IpNet;
use memchr::memmem;
use regex::bytes::Regex;

use crate::funcs::Func;
use crate::memo::MemoSlot;
use crate::scheme::{FieldDef, FieldId, Scheme};
use crate::types::Value;

/// Supplies field values for one request. Called at most once per field per [`Context`].
///
/// Return `None` when the value does not exist for this request (comparisons on it are then
/// false). A value whose type differs from [`FieldDef::ty`] is treated as missing.
pub trait FieldProvider {
    /// The value of `field` for this request.
    fn value(&self, field: &FieldDef) -> Option<Value>;

    /// One entry of the map field `field`, without computing the whole map: lets a rule set
    /// that reads `http.request.headers["x-api-key"]` skip building the map of every header.
    /// The default says [`KeyLookup::Unsupported`], and the whole map is computed instead.
    fn lookup(&self, field: &FieldDef, key: &[u8]) -> KeyLookup {
        let _ = (field, key);
        KeyLookup::Unsupported
    }
}

/// The answer of [`FieldProvider::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLookup {
    /// The map holds `key` with this value.
    Found(Value),
    /// The map does not hold `key`.
    Missing,
    /// The provider cannot look up single keys of this field.
    Unsupported,
}

/// One request's evaluation state: the provider and the cache of fields computed so far.
pub struct Context<'a> {
    scheme: &'a Scheme,
    provider: &'a dyn FieldProvider,
    /// One slot per field of the scheme, then the memo slots of the rule set `set` (results
    /// of calls shared between its rules, see `memo`); one allocation per request.
    slots: Box<[OnceCell<Option<Value>>]>,
    set: u64,
}

impl<'a> Context<'a> {
    /// A fresh context: no field computed yet.
    pub fn new(scheme: &'a Scheme, provider: &'a dyn FieldProvider) -> Context<'a> {
        Context::with_memo(scheme, provider, 0, 0)
    }

    /// A context with `memo` memo slots for the rule set `set`.
    pub(crate) fn with_memo(
        scheme: &'a Scheme,
        provider: &'a dyn FieldProvider,
        set: u64,
        memo: usize,
    ) -> Context<'a> {
        let slots = (0..scheme.len() + memo).map(|_| OnceCell::new()).collect();
        Context {
            scheme,
            provider,
            slots,
            set,
        }
    }

    /// The memo slot for `slot`, if this context belongs to the slot's rule set.
    fn memo(&self, slot: Option<MemoSlot>) -> Option<&OnceCell<Option<Value>>> {
        let slot = slot?;
        if slot.set != self.set {
            return None;
        }
        let index = usize::try_from(slot.index).ok()?;
        self.slots.get(self.scheme.len() + index)
    }

    /// Whether the context was made by the rule set `set` (see `RuleSet::context`).
    pub(crate) fn belongs_to(&self, set: u64) -> bool {
        self.set == set
    }

    /// The provider fields come from.
    pub(crate) fn provider(&self) -> &'a dyn FieldProvider {
        self.provider
    }

    /// The scheme fields are looked up in.
    pub fn scheme(&self) -> &Scheme {
        self.scheme
    }

    /// The value of a field, computing it on first use.
    pub fn field(&self, id: FieldId) -> Option<&Value> {
        // Ids past the scheme belong to another scheme; past it lie the memo slots.
        if id.index() >= self.scheme.len() {
            return None;
        }
        let slot = self.slots.get(id.index())?;
        slot.get_or_init(|| {
            let def = self.scheme.field(id);
            self.provider.value(def).filter(|v| v.has_type(def.ty()))
        })
        .as_ref()
    }

    /// Whether a field has been computed already (for tests and diagnostics).
    pub fn is_computed(&self, id: FieldId) -> bool {
        self.slots
            .get(id.index())
            .is_some_and(|slot| slot.get().is_some())
    }
}

/// A compiled expression node. Types were checked at compile time.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Value),
    Field(FieldId),
    Key(Box<Node>, Vec<u8>),
    /// `field["key"]`: shared between a rule set's rules and looked up without the whole map
    /// when the provider can.
    FieldKey(Box<FieldKey>),
    Pos(Box<Node>, i64),
    Each(Box<Node>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Xor(Vec<Node>),
    /// `field OP literal`.
    FieldTest(FieldId, Test),
    /// Any other comparison.
    Cmp(Box<Compare>),
    Call(Box<Call>),
    Any(Box<Node>),
    All(Box<Node>),
}

/// A literal key of a map field.
#[derive(Debug)]
pub(crate) struct FieldKey {
    pub field: FieldId,
    pub key: Vec<u8>,
    pub memo: Option<MemoSlot>,
}

impl FieldKey {
    fn eval<'a>(&'a self, cx: &'a Context<'_>) -> Val<'a> {
        let whole = |cx: &'a Context<'_>| match cx.field(self.field) {
            Some(Value::Map(map)) => map.get(self.key.as_slice()),
            _ => None,
        };
        if cx.is_computed(self.field) {
            return whole(cx).map_or(Val::Missing, Val::of);
        }
        let Some(cell) = cx.memo(self.memo) else {
            return whole(cx).map_or(Val::Missing, Val::of);
        };
        let value = cell.get_or_init(|| {
            let def = cx.scheme().field(self.field);
            let element = def.ty().element();
            match cx.provider().lookup(def, &self.key) {
                KeyLookup::Found(v) => Some(v).filter(|v| element.is_some_and(|t| v.has_type(t))),
                KeyLookup::Missing => None,
                KeyLookup::Unsupported => whole(cx).cloned(),
            }
        });
        value.as_ref().map_or(Val::Missing, Val::of)
    }
}

/// `lhs OP literal`, with the literal prepared for fast testing.
#[derive(Debug)]
pub(crate) struct Compare {
    pub lhs: Node,
    pub test: Test,
    /// The left side's source text, for explanations.
    pub lhs_text: Box<str>,
}

/// A function call; `text` is the first argument's source text, for explanations.
#[derive(Debug)]
pub(crate) struct Call {
    pub func: Func,
    pub args: Vec<Node>,
    /// The first argument is a `[*]`: apply the function to each element.
    pub each: bool,
    pub text: Box<str>,
    /// Where a rule set shares this call's result between its rules.
    pub memo: Option<MemoSlot>,
}

impl Call {
    /// The call's result shared in the rule set, computed on first use; `None` when the
    /// context does not share results for this call.
    fn memoized<'a>(&'a self, cx: &'a Context<'_>) -> Option<&'a Option<Value>> {
        let cell = cx.memo(self.memo)?;
        Some(cell.get_or_init(|| self.func.call(&self.args, self.each, cx).into_value()))
    }
}

/// The right side of a comparison, compiled.
#[derive(Debug)]
pub(crate) enum Test {
    Eq(Value),
    Ne(Value),
    Lt(Value),
    Le(Value),
    Gt(Value),
    Ge(Value),
    Contains(Box<memmem::Finder<'static>>),
    Regex(Regex),
    /// Sorted and deduplicated: a binary search costs a few comparisons, no hashing.
    InBytes(Vec<Vec<u8>>),
    InInt(Vec<(i64, i64)>),
    InIp(Box<IpSet>),
}

/// The members of an `in {...}` set of addresses.
#[derive(Debug, Default)]
pub(crate) struct IpSet {
    pub nets: Vec<IpNet>,
    /// Single addresses are ranges of one.
    pub ranges: Vec<(IpAddr, IpAddr)>,
}

/// A value during evaluation: borrowed from the field cache where possible.
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    Missing,
    Bool(bool),
    Int(i64),
    Bytes(Cow<'a, [u8]>),
    Ip(IpAddr),
    /// An array or map borrowed from a field.
    Ref(&'a Value),
    /// A list computed during evaluation (`[*]`, `concat` of arrays).
    List(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    pub fn of(value: &'a Value) -> Val<'a> {
        match value {
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(n) => Val::Int(*n),
            Value::Bytes(b) => Val::Bytes(Cow::Borrowed(b)),
            Value::Ip(ip) => Val::Ip(*ip),
            Value::Array(_) | Value::Map(_) => Val::Ref(value),
        }
    }

    fn owned(value: &Value) -> Val<'a> {
        match value {
            Value::Bytes(b) => Val::Bytes(Cow::Owned(b.clone())),
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(n) => Val::Int(*n),
            Value::Ip(ip) => Val::Ip(*ip),
            Value::Array(items) => Val::List(items.iter().map(Val::owned).collect()),
            Value::Map(items) => Val::List(items.values().map(Val::owned).collect()),
        }
    }

    /// Elements of an array, values of a map; nothing for anything else.
    pub fn elements(self) -> Vec<Val<'a>> {
        match self {
            Val::Ref(Value::Array(items)) => items.iter().map(Val::of).collect(),
            Val::Ref(Value::Map(items)) => items.values().map(Val::of).collect(),
            Val::List(items) => items,
            _ => Vec::new(),
        }
    }

    pub fn is_true(&self) -> bool {
        matches!(self, Val::Bool(true))
    }
}

impl Node {
    pub fn eval<'a>(&'a self, cx: &'a Context<'_>) -> Val<'a> {
        match self {
            Node::Lit(v) => Val::of(v),
            Node::Field(id) => cx.field(*id).map_or(Val::Missing, Val::of),
            Node::FieldKey(fk) => fk.eval(cx),
            Node::Key(base, key) => match base.eval(cx) {
                Val::Ref(Value::Map(map)) => map.get(key.as_slice()).map_or(Val::Missing, Val::of),
                _ => Val::Missing,
            },
            Node::Pos(base, pos) => position(base.eval(cx), *pos),
            Node::Each(base) => Val::List(base.eval(cx).elements()),
            Node::Not(inner) => map_bools(inner.eval(cx), |b| !b),
            Node::And(items) => Val::Bool(items.iter().all(|n| n.eval(cx).is_true())),
            Node::Or(items) => Val::Bool(items.iter().any(|n| n.eval(cx).is_true())),
            Node::Xor(items) => {
                Val::Bool(items.iter().filter(|n| n.eval(cx).is_true()).count() % 2 == 1)
            }
            // The common case, a field compared with a literal, reads the cached value in place.
            Node::FieldTest(id, test) => {
                Val::Bool(cx.field(*id).is_some_and(|v| test.run_value(v)))
            }
            Node::Cmp(cmp) => match cmp.lhs.eval(cx) {
                Val::List(items) => {
                    Val::List(items.iter().map(|v| Val::Bool(cmp.test.run(v))).collect())
                }
                lhs => Val::Bool(cmp.test.run(&lhs)),
            },
            Node::Call(call) => match call.memoized(cx) {
                // A shared `f(x[*])` is stored as an array; it still means one value per element.
                Some(Some(value)) if call.each => Val::List(Val::of(value).elements()),
                Some(Some(value)) => Val::of(value),
                Some(None) => Val::Missing,
                None => call.func.call(&call.args, call.each, cx),
            },
            Node::Any(inner) => Val::Bool(inner.quantify(cx, true)),
            Node::All(inner) => Val::Bool(inner.quantify(cx, false)),
        }
    }
}

impl Node {
    /// `any` (`want_any`) or `all` over a `[*]` condition. A comparison of `x[*]` with a
    /// literal walks the field's elements in place and stops at the first decisive one.
    fn quantify(&self, cx: &Context<'_>, want_any: bool) -> bool {
        if let Node::Cmp(cmp) = self
            && let Node::Each(base) = &cmp.lhs
        {
            let test = &cmp.test;
            return match base.eval(cx) {
                Val::Ref(Value::Array(items)) => {
                    decide(want_any, items.iter().map(|v| test.run_value(v)))
                }
                Val::Ref(Value::Map(items)) => {
                    decide(want_any, items.values().map(|v| test.run_value(v)))
                }
                _ => !want_any,
            };
        }
        // `f(x[*]) OP literal` with f's results shared in the rule set: test them in place.
        if let Node::Cmp(cmp) = self
            && let Node::Call(call) = &cmp.lhs
            && let Some(shared) = call.memoized(cx)
        {
            return match shared {
                Some(Value::Array(items)) => {
                    decide(want_any, items.iter().map(|v| cmp.test.run_value(v)))
                }
                _ => !want_any,
            };
        }
        // `f(x[*], ...) OP literal`: apply f to each element as it is tested.
        if let Node::Cmp(cmp) = self
            && let Node::Call(call) = &cmp.lhs
            && call.each
            && let Some(Node::Each(base)) = call.args.first()
        {
            let second = call.args.get(1).map(|a| a.eval(cx));
            let test = |v: &'_ Value| cmp.test.run(&call.func.apply(Val::of(v), second.as_ref()));
            return match base.eval(cx) {
                Val::Ref(Value::Array(items)) => decide(want_any, items.iter().map(test)),
                Val::Ref(Value::Map(items)) => decide(want_any, items.values().map(test)),
                _ => !want_any,
            };
        }
        let items = self.eval(cx).elements();
        decide(want_any, items.iter().map(Val::is_true))
    }
}

/// `any` or `all` of the tests, stopping at the first decisive one.
fn decide(want_any: bool, mut hits: impl Iterator<Item = bool>) -> bool {
    if want_any {
        hits.any(|b| b)
    } else {
        hits.all(|b| b)
    }
}

fn position(base: Val<'_>, pos: i64) -> Val<'_> {
    let Ok(pos) = usize::try_from(pos) else {
        return Val::Missing;
    };
    match base {
        Val::Ref(Value::Array(items)) => items.get(pos).map_or(Val::Missing, Val::of),
        Val::List(mut items) if pos < items.len() => items.swap_remove(pos),
        _ => Val::Missing,
    }
}

/// Applies `f` to a boolean, or to each boolean of a `[*]` list.
fn map_bools<'a>(v: Val<'a>, f: impl Fn(bool) -> bool) -> Val<'a> {
    match v {
        Val::Bool(b) => Val::Bool(f(b)),
        Val::List(items) => Val::List(
            items
                .into_iter()
                .map(|v| Val::Bool(matches!(v, Val::Bool(b) if f(b))))
                .collect(),
        ),
        other => other,
    }
}

impl Test {
    /// Whether `v` passes. Missing values (and mismatched types) never pass.
    pub fn run(&self, v: &Val<'_>) -> bool {
        let scalar = match v {
            Val::Bool(b) => Scalar::Bool(*b),
            Val::Int(n) => Scalar::Int(*n),
            Val::Bytes(b) => Scalar::Bytes(b),
            Val::Ip(ip) => Scalar::Ip(*ip),
            _ => return false,
        };
        self.run_scalar(scalar)
    }

    /// Like [`Test::run`], on a field's value.
    pub fn run_value(&self, v: &Value) -> bool {
        let scalar = match v {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int(n) => Scalar::Int(*n),
            Value::Bytes(b) => Scalar::Bytes(b),
            Value::Ip(ip) => Scalar::Ip(*ip),
            _ => return false,
        };
        self.run_scalar(scalar)
    }

    fn run_scalar(&self, v: Scalar<'_>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Test::Eq(lit) => same(v, lit) == Some(true),
            Test::Ne(lit) => same(v, lit) == Some(false),
            Test::Lt(lit) => order(v, lit) == Some(Less),
            Test::Le(lit) => matches!(order(v, lit), Some(Less | Equal)),
            Test::Gt(lit) => order(v, lit) == Some(Greater),
            Test::Ge(lit) => matches!(order(v, lit), Some(Greater | Equal)),
            Test::Contains(finder) => bytes(v).is_some_and(|b| finder.find(b).is_some()),
            Test::Regex(re) => bytes(v).is_some_and(|b| re.is_match(b)),
            Test::InBytes(set) => {
                bytes(v).is_some_and(|b| set.binary_search_by(|p| p.as_slice().cmp(b)).is_ok())
            }
            Test::InInt(ranges) => match v {
                Scalar::Int(n) => ranges.iter().any(|(lo, hi)| *lo <= n && n <= *hi),
                _ => false,
            },
            Test::InIp(sets) => match v {
                Scalar::Ip(ip) => {
                    sets.nets.iter().any(|net| net.contains(&ip))
                        || sets.ranges.iter().any(|(lo, hi)| *lo <= ip && ip <= *hi)
                }
                _ => false,
            },
        }
    }
}

/// A single value under test, borrowed.
#[derive(Clone, Copy)]
enum Scalar<'v> {
    Bool(bool),
    Int(i64),
    Bytes(&'v [u8]),
    Ip(IpAddr),
}

fn bytes(v: Scalar<'_>) -> Option<&[u8]> {
    match v {
        Scalar::Bytes(b) => Some(b),
        _ => None,
    }
}

/// Equality without ordering: slices of different lengths differ without a `memcmp`.
fn same(v: Scalar<'_>, lit: &Value) -> Option<bool> {
    match (v, lit) {
        (Scalar::Bytes(a), Value::Bytes(b)) => Some(a == b.as_slice()),
        (Scalar::Bool(a), Value::Bool(b)) => Some(a == *b),
        (Scalar::Int(a), Value::Int(b)) => Some(a == *b),
        (Scalar::Ip(a), Value::Ip(b)) => Some(a == *b),
        _ => None,
    }
}

fn order(v: Scalar<'_>, lit: &Value) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Scalar::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Scalar::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Scalar::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b.as_slice())),
        (Scalar::Ip(a), Value::Ip(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// A part of a matched expression that made it true: the operand read and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The operand as written in the rule, e.g. `http.request.uri.query` or
    /// `http.request.headers["user-agent"][0]`.
    pub field: String,
    /// Its value for this request, printable and cut to [`Decided::MAX_VALUE`] bytes.
    pub value: String,
}

impl Decided {
    /// Longest value kept, in bytes of the source value.
    pub const MAX_VALUE: usize = 256;
}

impl Node {
    /// Records what made this (true) node true.
    pub fn explain(&self, cx: &Context<'_>, out: &mut Vec<Decided>) {
        match self {
            Node::And(items) => items.iter().for_each(|n| n.explain(cx, out)),
            Node::Or(items) => {
                if let Some(n) = items.iter().find(|n| n.eval(cx).is_true()) {
                    n.explain(cx, out);
                }
            }
            Node::Xor(items) => items
                .iter()
                .filter(|n| n.eval(cx).is_true())
                .for_each(|n| n.explain(cx, out)),
            Node::Not(inner) | Node::Any(inner) | Node::All(inner) => inner.explain(cx, out),
            Node::Cmp(cmp) => push(out, &cmp.lhs_text, &cmp.lhs.eval(cx)),
            Node::FieldTest(id, _) => {
                let value = cx.field(*id).map_or(Val::Missing, Val::of);
                push(out, cx.scheme().field(*id).name(), &value);
            }
            Node::Field(id) => {
                let value = cx.field(*id).map_or(Val::Missing, Val::of);
                push(out, cx.scheme().field(*id).name(), &value);
            }
            Node::Call(call) => {
                if let Some(first) = call.args.first() {
                    push(out, &call.text, &first.eval(cx));
                }
            }
            Node::Lit(_) | Node::Key(..) | Node::FieldKey(_) | Node::Pos(..) | Node::Each(_) => {}
        }
    }
}

fn push(out: &mut Vec<Decided>, field: &str, value: &Val<'_>) {
    if out.iter().any(|d| d.field == field) {
        return;
    }
    let mut text = String::new();
    render(value, &mut text);
    out.push(Decided {
        field: field.to_owned(),
        value: text,
    });
}

fn render(v: &Val<'_>, out: &mut String) {
    if out.len() > Decided::MAX_VALUE {
        return;
    }
    match v {
        Val::Missing => out.push_str("(missing)"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(n) => out.push_str(&n.to_string()),
        Val::Ip(ip) => out.push_str(&ip.to_string()),
        Val::Bytes(b) => {
            let cut = &b[..b.len().min(Decided::MAX_VALUE)];
            out.push_str(&String::from_utf8_lossy(cut).escape_debug().to_string());
            if cut.len() < b.len() {
                out.push_str("...");
            }
        }
        Val::Ref(value) => render_list(&Val::owned(value).elements(), out),
        Val::List(items) => render_list(items, out),
    }
}

fn render_list(items: &[Val<'_>], out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        render(item, out);
    }
    out.push(']');
}
