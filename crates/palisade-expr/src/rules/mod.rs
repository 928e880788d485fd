//! palisade's WAF rules: the rules file (YAML, or `[[waf.rule]]` TOML tables), validated into
//! [`Rule`]s, and the [`RuleSet`] that evaluates them in file order.
//!
//! Loading refuses anything doubtful with an error naming the file, line and column: unknown
//! keys, a missing action, a bad threshold, an expression that does not compile. Nothing here
//! reads files: callers pass the text and the name to report.

mod build;
mod position;
mod ruleset;
mod table;
mod yaml;

use std::fmt;
use std::time::Duration;

use crate::compile::Expression;

pub use build::{MAX_RULES, MAX_RULES_FILE_BYTES, load_tables, load_yaml};
pub use position::Position;
pub use ruleset::{Outcome, RateLimitRequest, RuleMatch, RuleSet, Verdict};
pub use table::{RuleTable, TableValue};

/// One validated, compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule's name, unique in its rule set.
    pub name: String,
    /// What the rule is for, if given.
    pub description: Option<String>,
    /// A disabled rule is validated but never evaluated.
    pub enabled: bool,
    /// Whether a match acts (`enforce`) or is only recorded (`log`).
    pub mode: Mode,
    /// What happens when the expression matches.
    pub action: Action,
    /// The compiled expression.
    pub expression: Expression,
    /// Where the rule's expression is in its file.
    pub origin: Position,
    /// `skip:` names with their position, resolved by [`RuleSet::new`].
    pub(crate) skip_names: Option<(Vec<String>, usize, usize)>,
}

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer with `status` (403 unless set) and a small body naming the rule (or `body`).
    Block {
        /// HTTP status, 400-599.
        status: u16,
        /// The response body, if the rule sets one.
        body: Option<String>,
    },
    /// Answer with the proof-of-work challenge unless the client holds clearance.
    Challenge,
    /// Count the request against this rule's own limit; over it, answer 429.
    RateLimit {
        /// How many requests per period.
        threshold: Threshold,
        /// What the requests are counted by.
        key: LimitKey,
    },
    /// Record the match and go on.
    Log,
    /// Skip the named later rules or phases for this request.
    Skip(Vec<SkipTarget>),
    /// End rule evaluation and let the request through (later phases still apply).
    Allow,
}

impl Action {
    /// The action's name as written in rules files: `block`, `rate_limit`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Action::Block { .. } => "block",
            Action::Challenge => "challenge",
            Action::RateLimit { .. } => "rate_limit",
            Action::Log => "log",
            Action::Skip(_) => "skip",
            Action::Allow => "allow",
        }
    }
}

/// Whether a rule acts on a match or only records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Act on the match.
    #[default]
    Enforce,
    /// Record what would have happened and let the request through.
    Log,
}

/// `limit` requests per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// Requests allowed per period (at least 1).
    pub limit: u64,
    /// The window.
    pub period: Duration,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        match secs {
            1 => write!(f, "{}/second", self.limit),
            60 => write!(f, "{}/minute", self.limit),
            3600 => write!(f, "{}/hour", self.limit),
            86400 => write!(f, "{}/day", self.limit),
            _ => write!(f, "{}/{secs}s", self.limit),
        }
    }
}

/// What a rate_limit rule counts requests by.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LimitKey {
    /// The client address.
    #[default]
    Ip,
    /// The value of a request header (lower-case name).
    Header(String),
    /// The route (request path).
    Route,
    /// The authenticated user.
    User,
}

/// What a skip rule skips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipTarget {
    /// A later rule of the same set, by index into [`RuleSet::rules`] and name.
    Rule {
        /// Index in the rule set.
        index: usize,
        /// Its name.
        name: String,
    },
    /// A whole phase.
    Phase(Phase),
}

/// Phases a skip rule can skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `rules`: every remaining custom rule.
    Rules,
    /// `managed`: the managed detection (attack scores).
    Managed,
    /// `rate_limit`: the `[[rate_limit]]` tables.
    RateLimit,
    /// `csrf`: the CSRF check.
    Csrf,
}

impl Phase {
    /// Every phase with its name in rules files.
    pub const ALL: [(&'static str, Phase); 4] = [
        ("rules", Phase::Rules),
        ("managed", Phase::Managed),
        ("rate_limit", Phase::RateLimit),
        ("csrf", Phase::Csrf),
    ];
}

/// One mistake in a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file name as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// The rule's name, when the mistake is inside a named rule.
    pub rule: Option<String>,
    /// What was expected and found.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(rule) = &self.rule {
            write!(f, " (rule '{rule}')")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Every mistake found in a rules file (at least one), in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
