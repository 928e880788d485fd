//! Shared results of pure function calls on fields, per request.
//!
//! Rule sets often apply the same transformation to the same field in many rules
//! (`lower(http.request.uri.path)`, `url_decode(http.request.uri.query)`). When a
//! [`crate::RuleSet`] is built, every such call gets a slot; the first rule to evaluate it
//! fills the slot in the request's [`crate::Context`] and later rules read it. A call of the
//! form `f(field[*])` memoizes the whole mapped array, and `field["key"]` the map entry
//! (looked up alone when the provider can, see `FieldProvider::lookup`). Slots are tagged with the rule set's
//! id, so an expression evaluated in a context of another set simply recomputes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::eval::{Call, Node, Val};
use crate::funcs::Func;
use crate::scheme::FieldId;
use crate::types::Value;

/// A memo slot of one rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemoSlot {
    pub set: u64,
    pub index: u32,
}

/// A fresh id for a rule set's slots.
pub(crate) fn next_set_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a slot holds: a function (with options) of a field, possibly per element; or (with
/// `func` 0) the entry `key` of a map field.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MemoKey {
    func: u8,
    field: FieldId,
    each: bool,
    key: Vec<u8>,
}

/// Assigns slots to every memoizable call in `roots`; returns how many slots there are.
pub(crate) fn assign<'n>(set: u64, roots: impl Iterator<Item = &'n mut Node>) -> usize {
    let mut keys: Vec<MemoKey> = Vec::new();
    let mut slot_of = |key: MemoKey| {
        let index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        Some(MemoSlot {
            set,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        })
    };
    for root in roots {
        visit(root, &mut |node| match node {
            Node::Call(call) => {
                if let Some(key) = key_of(call) {
                    call.memo = slot_of(key);
                }
            }
            Node::FieldKey(fk) => {
                let key = MemoKey {
                    func: 0,
                    field: fk.field,
                    each: false,
                    key: fk.key.clone(),
                };
                fk.memo = slot_of(key);
            }
            _ => {}
        });
    }
    keys.len()
}

fn key_of(call: &Call) -> Option<MemoKey> {
    let func = match call.func {
        Func::Lower => 1,
        Func::Upper => 2,
        Func::UrlDecode { recursive, unicode } => 3 + u8::from(recursive) + 2 * u8::from(unicode),
        Func::ToString => 7,
        _ => return None,
    };
    let (field, each) = match call.args.as_slice() {
        [Node::Field(id)] => (*id, false),
        [Node::Each(inner)] => match inner.as_ref() {
            Node::Field(id) => (*id, true),
            _ => return None,
        },
        _ => return None,
    };
    Some(MemoKey {
        func,
        field,
        each,
        key: Vec::new(),
    })
}

/// Calls `f` on every node below `node` (children first).
fn visit(node: &mut Node, f: &mut impl FnMut(&mut Node)) {
    match node {
        Node::Lit(_) | Node::Field(_) | Node::FieldTest(..) | Node::FieldKey(_) => {}
        Node::Key(inner, _) | Node::Pos(inner, _) | Node::Each(inner) | Node::Not(inner) => {
            visit(inner, f)
        }
        Node::Any(inner) | Node::All(inner) => visit(inner, f),
        Node::And(items) | Node::Or(items) | Node::Xor(items) => {
            items.iter_mut().for_each(|n| visit(n, f))
        }
        Node::Cmp(cmp) => visit(&mut cmp.lhs, f),
        Node::Call(call) => call.args.iter_mut().for_each(|n| visit(n, f)),
    }
    f(node);
}

impl Val<'_> {
    /// The owned value, for storing in a memo slot; `None` for a missing value.
    pub(crate) fn into_value(self) -> Option<Value> {
        Some(match self {
            Val::Missing => return None,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(n) => Value::Int(n),
            Val::Ip(ip) => Value::Ip(ip),
            Val::Bytes(b) => Value::Bytes(b.into_owned()),
            Val::Ref(v) => v.clone(),
            Val::List(items) => {
                Value::Array(items.into_iter().filter_map(Val::into_value).collect())
            }
        })
    }
}
