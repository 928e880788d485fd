//! The rule language: Cloudflare's rules (firewall expression) language, parsed, type-checked
//! and compiled to a fast evaluator, plus palisade's WAF rules file and the standard HTTP
//! fields computed from a plain request description.
//!
//! No I/O happens here: the gateway reads files and sockets and hands text and field values
//! in. Every input is bounded (expression length, nesting depth, regex size, file size) so a
//! hostile rules file or request cannot exhaust the stack or run in more than linear time.
//!
//! The usual path:
//! 1. build a [`Scheme`] ([`Scheme::standard`] plus any [`Scheme::add_field`]);
//! 2. load rules with [`RuleSet::from_yaml`] or [`RuleSet::from_tables`];
//! 3. per request, implement [`FieldProvider`] (or use [`request::RequestFields`]) and call
//!    [`RuleSet::evaluate`]; [`RuleSet::fields`] says which fields can ever be asked for.

mod ast;
mod compile;
mod error;
mod eval;
mod funcs;
mod lex;
mod memo;
pub mod normal;
mod parse;
pub mod request;
pub mod rules;
mod scheme;
mod types;

pub use ast::{CmpOp, Expr, ExprKind, Index, Literal, Rhs, SetItem};
pub use compile::{Expression, REGEX_SIZE_LIMIT};
pub use error::{ExprError, Span};
pub use eval::{Context, Decided, FieldProvider, KeyLookup};
pub use parse::{MAX_DEPTH, MAX_EXPRESSION_BYTES, parse};
pub use rules::{
    Action, LimitKey, LoadError, LoadErrors, Mode, Outcome, Phase, RateLimitRequest, Rule,
    RuleMatch, RuleSet, RuleTable, SkipTarget, Threshold, Verdict,
};
pub use scheme::{FieldDef, FieldId, FieldSet, Scheme, SchemeError, StandardField};
pub use types::{Type, Value};
