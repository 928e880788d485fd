//! A loaded set of rules and their evaluation, in file order, with the semantics of each
//! action: `block` and `challenge` end evaluation, `allow` ends it letting the request through,
//! `log` records and goes on, `skip` skips named later rules or phases, `rate_limit` asks the
//! gateway's limiter, and rules in `mode: log` are recorded without acting.

use std::sync::Arc;

use super::build::{load_tables, load_yaml};
use super::{
    Action, LimitKey, LoadError, LoadErrors, Mode, Phase, Rule, RuleTable, SkipTarget, Threshold,
};
use crate::eval::{Context, Decided, FieldProvider};
use crate::memo;
use crate::scheme::{FieldSet, Scheme};

/// Compiled rules, ready to evaluate; cheap to share behind an `Arc` and swap on reload.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    scheme: Arc<Scheme>,
    fields: FieldSet,
    /// Identifies this set's memo slots; `memo_slots` is how many there are.
    id: u64,
    memo_slots: usize,
}

/// The end result of evaluating the rules for one request.
#[derive(Clone, Debug)]
pub enum Verdict<'r> {
    /// No rule ended evaluation: go on with the next phases.
    Continue,
    /// An `allow` rule ended evaluation: skip the remaining rules, go on with later phases.
    Allow(&'r Rule),
    /// Answer `status` with `body` (or a small default body naming the rule).
    Block {
        /// The rule that blocked.
        rule: &'r Rule,
        /// HTTP status.
        status: u16,
        /// The rule's body, if it set one.
        body: Option<&'r str>,
    },
    /// Answer with the challenge unless the client holds clearance.
    Challenge(&'r Rule),
}

impl<'r> Verdict<'r> {
    /// `continue`, `allow`, `block` or `challenge`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Continue => "continue",
            Verdict::Allow(_) => "allow",
            Verdict::Block { .. } => "block",
            Verdict::Challenge(_) => "challenge",
        }
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&'r Rule> {
        match self {
            Verdict::Continue => None,
            Verdict::Allow(rule) | Verdict::Challenge(rule) | Verdict::Block { rule, .. } => {
                Some(rule)
            }
        }
    }
}

/// One rule that matched.
#[derive(Clone, Debug)]
pub struct RuleMatch<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// Its index in [`RuleSet::rules`] (for per-rule metrics).
    pub index: usize,
    /// `false` when the rule is in `mode: log`: recorded, not acted on.
    pub enforced: bool,
    /// The operands that made the expression true, with their values (for events).
    pub decided: Vec<Decided>,
}

/// A rate_limit rule matched: the gateway counts the request under this rule's limit.
#[derive(Clone, Debug)]
pub struct RateLimitRequest<'r> {
    /// The rule (its name keys the counter).
    pub rule: &'r Rule,
    /// Its index in [`RuleSet::rules`].
    pub index: usize,
    /// The limit.
    pub threshold: Threshold,
    /// What to count by.
    pub key: &'r LimitKey,
    /// `false` in `mode: log`: count and record, but never answer 429.
    pub enforce: bool,
}

/// Everything evaluation found for one request.
#[derive(Clone, Debug)]
pub struct Outcome<'r> {
    /// Every rule that matched, in file order, including log actions and log-mode rules.
    pub matches: Vec<RuleMatch<'r>>,
    /// The end result.
    pub verdict: Verdict<'r>,
    /// Rate limits to apply, in file order. Apply them unless the verdict is `Block` or
    /// `Challenge`; the first one over its limit answers 429.
    pub rate_limits: Vec<RateLimitRequest<'r>>,
    /// Phases a skip rule turned off for this request.
    pub skipped_phases: Vec<Phase>,
}

impl RuleSet {
    /// A rule set from rules compiled against `scheme`. Checks that names are unique and
    /// that every `skip` names a later rule or a phase.
    pub fn new(mut rules: Vec<Rule>, scheme: Arc<Scheme>) -> Result<RuleSet, LoadErrors> {
        let mut errors = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rules[..i].iter().any(|r| r.name == rule.name) {
                errors.push(error_at(
                    rule,
                    rule.origin.line,
                    rule.origin.column,
                    "another rule has the same name; names must be unique",
                ));
            }
        }
        for i in 0..rules.len() {
            let targets = resolve_skip(&rules, i, &mut errors);
            if let Action::Skip(list) = &mut rules[i].action {
                *list = targets;
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut fields = FieldSet::default();
        for rule in rules.iter().filter(|r| r.enabled) {
            fields.union_with(rule.expression.fields());
        }
        let id = memo::next_set_id();
        let roots = rules
            .iter_mut()
            .filter(|r| r.enabled)
            .map(|r| r.expression.root_mut());
        let memo_slots = memo::assign(id, roots);
        Ok(RuleSet {
            rules,
            scheme,
            fields,
            id,
            memo_slots,
        })
    }

    /// Loads a YAML rules file (`file` names it in errors).
    pub fn from_yaml(file: &str, text: &str, scheme: Arc<Scheme>) -> Result<RuleSet, LoadErrors> {
        let rules = load_yaml(file, text, &scheme)?;
        RuleSet::new(rules, scheme)
    }

    /// Loads `[[waf.rule]]` tables deserialized from the TOML text `source` of `file`.
    pub fn from_tables(
        file: &str,
        source: &str,
        tables: &[RuleTable],
        scheme: Arc<Scheme>,
    ) -> Result<RuleSet, LoadErrors> {
        let rules = load_tables(file, source, tables, &scheme)?;
        RuleSet::new(rules, scheme)
    }

    /// An empty rule set (no custom rules).
    pub fn empty(scheme: Arc<Scheme>) -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            scheme,
            fields: FieldSet::default(),
            id: memo::next_set_id(),
            memo_slots: 0,
        }
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The scheme the rules were compiled against.
    pub fn scheme(&self) -> &Arc<Scheme> {
        &self.scheme
    }

    /// Every field an enabled rule reads: compute only these.
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }

    /// Whether some enabled rule reads a body field (so the gateway must buffer a prefix).
    pub fn needs_body(&self) -> bool {
        self.fields.needs_body(&self.scheme)
    }

    /// Evaluates every rule for one request, asking `provider` for fields on first use.
    pub fn evaluate(&self, provider: &dyn FieldProvider) -> Outcome<'_> {
        let cx = self.context(provider);
        self.evaluate_in(&cx)
    }

    /// A context for one request, with room for the call results this set's rules share.
    pub fn context<'a>(&'a self, provider: &'a dyn FieldProvider) -> Context<'a> {
        Context::with_memo(&self.scheme, provider, self.id, self.memo_slots)
    }

    /// Like [`RuleSet::evaluate`] with a caller-held context from [`RuleSet::context`], so
    /// fields computed here stay cached for the caller. Given any other context, it evaluates
    /// in a fresh one from the same provider.
    pub fn evaluate_in(&self, cx: &Context<'_>) -> Outcome<'_> {
        self.run(cx, false)
    }

    /// Like [`RuleSet::evaluate_in`] for a client that holds a valid challenge clearance:
    /// a matching `challenge` rule is recorded in [`Outcome::matches`] and evaluation goes
    /// on to the next rule, as if the challenge had been passed.
    pub fn evaluate_cleared_in(&self, cx: &Context<'_>) -> Outcome<'_> {
        self.run(cx, true)
    }

    fn run(&self, cx: &Context<'_>, cleared: bool) -> Outcome<'_> {
        if !cx.belongs_to(self.id) {
            // A context of another set may number fields differently: start afresh.
            let fresh = self.context(cx.provider());
            return self.run(&fresh, cleared);
        }
        let mut outcome = Outcome {
            matches: Vec::new(),
            verdict: Verdict::Continue,
            rate_limits: Vec::new(),
            skipped_phases: Vec::new(),
        };
        let mut skipped: Vec<usize> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.enabled || skipped.contains(&index) || !rule.expression.matches(cx) {
                continue;
            }
            let enforced = rule.mode == Mode::Enforce;
            let decided = rule.expression.explain(cx);
            outcome.matches.push(RuleMatch {
                rule,
                index,
                enforced,
                decided,
            });
            if let Action::RateLimit { threshold, key } = &rule.action {
                outcome.rate_limits.push(RateLimitRequest {
                    rule,
                    index,
                    threshold: *threshold,
                    key,
                    enforce: enforced,
                });
            }
            if !enforced {
                continue;
            }
            match &rule.action {
                Action::Block { status, body } => {
                    outcome.verdict = Verdict::Block {
                        rule,
                        status: *status,
                        body: body.as_deref(),
                    };
                    break;
                }
                Action::Challenge if cleared => {}
                Action::Challenge => {
                    outcome.verdict = Verdict::Challenge(rule);
                    break;
                }
                Action::Allow => {
                    outcome.verdict = Verdict::Allow(rule);
                    break;
                }
                Action::Skip(targets) => {
                    if apply_skip(targets, &mut skipped, &mut outcome.skipped_phases) {
                        break;
                    }
                }
                Action::Log | Action::RateLimit { .. } => {}
            }
        }
        outcome
    }
}

/// Marks skip targets; returns true when the rest of the rules are skipped.
fn apply_skip(targets: &[SkipTarget], skipped: &mut Vec<usize>, phases: &mut Vec<Phase>) -> bool {
    let mut rest = false;
    for target in targets {
        match target {
            SkipTarget::Rule { index, .. } => skipped.push(*index),
            SkipTarget::Phase(Phase::Rules) => rest = true,
            SkipTarget::Phase(phase) if !phases.contains(phase) => phases.push(*phase),
            SkipTarget::Phase(_) => {}
        }
    }
    rest
}

fn resolve_skip(rules: &[Rule], i: usize, errors: &mut Vec<LoadError>) -> Vec<SkipTarget> {
    let Some((names, line, column)) = &rules[i].skip_names else {
        return Vec::new();
    };
    let mut targets = Vec::new();
    for name in names {
        if let Some(index) = rules.iter().position(|r| &r.name == name) {
            if index <= i {
                let message = format!(
                    "skip names '{name}', which runs before this rule; only later rules can be skipped"
                );
                errors.push(error_at(&rules[i], *line, *column, &message));
            }
            targets.push(SkipTarget::Rule {
                index,
                name: name.clone(),
            });
        } else if let Some((_, phase)) = Phase::ALL.iter().find(|(n, _)| n == name) {
            targets.push(SkipTarget::Phase(*phase));
        } else {
            let phases: Vec<&str> = Phase::ALL.iter().map(|(n, _)| *n).collect();
            let message = format!(
                "skip names '{name}', which is neither a rule in this file nor a phase ({})",
                phases.join(", ")
            );
            errors.push(error_at(&rules[i], *line, *column, &message));
        }
    }
    targets
}

fn error_at(rule: &Rule, line: usize, column: usize, message: &str) -> LoadError {
    LoadError {
        file: rule.origin.file.clone(),
        line,
        column,
        rule: Some(rule.name.clone()),
        message: message.to_owned(),
    }
}
