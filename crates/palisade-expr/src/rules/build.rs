//! From the keys of one rule (read from YAML or TOML, with positions) to a validated [`Rule`].
//! Both file formats go through here, so a key means the same in both.

use std::time::Duration;

use super::position::{ExprMap, Position};
use super::table::RuleTable;
use super::yaml;
use super::{Action, LimitKey, LoadError, LoadErrors, Mode, Rule, Threshold};
use crate::compile::Expression;
use crate::scheme::Scheme;

/// Largest rules file accepted, in bytes.
pub const MAX_RULES_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Most rules one file (or one set of tables) may hold.
pub const MAX_RULES: usize = 10_000;

/// Longest period a threshold may have.
const MAX_PERIOD: Duration = Duration::from_secs(30 * 86_400);
/// The most requests a threshold may allow per period: what the gateway's limiters count
/// exactly (the Redis scripts' arithmetic is double precision).
const MAX_THRESHOLD: u64 = 1_000_000;

/// A value with the file position of its first character.
#[derive(Clone, Debug)]
pub(crate) struct Located<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

/// The keys of one rule as written, before validation.
#[derive(Debug, Default)]
pub(crate) struct RawRule {
    pub line: usize,
    pub column: usize,
    pub name: Option<Located<String>>,
    pub expression: Option<(String, ExprMap)>,
    pub action: Option<Located<String>>,
    pub threshold: Option<Located<String>>,
    pub description: Option<Located<String>>,
    pub enabled: Option<Located<String>>,
    pub mode: Option<Located<String>>,
    pub status: Option<Located<String>>,
    pub body: Option<Located<String>>,
    pub period: Option<Located<String>>,
    pub key: Option<Located<String>>,
    pub skip: Option<Located<Vec<String>>>,
}

/// Every key a rule may have.
pub(crate) const KEYS: &[&str] = &[
    "name",
    "expression",
    "action",
    "threshold",
    "description",
    "enabled",
    "mode",
    "status",
    "body",
    "period",
    "key",
    "skip",
];

/// Loads the rules of a YAML rules file (`rules:` list). `file` names it in errors.
pub fn load_yaml(file: &str, text: &str, scheme: &Scheme) -> Result<Vec<Rule>, LoadErrors> {
    let (raws, mut errors) = yaml::read_rules(file, text)?;
    match build_all(file, raws, scheme) {
        Ok(rules) if errors.is_empty() => Ok(rules),
        Ok(_) => Err(LoadErrors(errors)),
        Err(LoadErrors(more)) => {
            errors.extend(more);
            errors.sort_by_key(|e| (e.line, e.column));
            Err(LoadErrors(errors))
        }
    }
}

/// Loads `[[waf.rule]]` tables deserialized from the TOML file `file` whose text is
/// `source` (used to turn the tables' byte spans into lines and columns).
pub fn load_tables(
    file: &str,
    source: &str,
    tables: &[RuleTable],
    scheme: &Scheme,
) -> Result<Vec<Rule>, LoadErrors> {
    let lines = crate::error::LineIndex::new(source);
    let raws = tables.iter().map(|t| t.to_raw(source, &lines)).collect();
    build_all(file, raws, scheme)
}

fn build_all(file: &str, raws: Vec<RawRule>, scheme: &Scheme) -> Result<Vec<Rule>, LoadErrors> {
    if raws.len() > MAX_RULES {
        let message = format!("{} rules; the limit is {MAX_RULES}", raws.len());
        let error = LoadError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            rule: None,
            message,
        };
        return Err(LoadErrors(vec![error]));
    }
    let mut rules = Vec::with_capacity(raws.len());
    let mut errors = Vec::new();
    for raw in raws {
        match build(file, raw, scheme) {
            Ok(rule) => rules.push(rule),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Collects the errors of one rule.
struct Errors<'f> {
    file: &'f str,
    rule: Option<String>,
    list: Vec<LoadError>,
}

impl Errors<'_> {
    fn push(&mut self, line: usize, column: usize, message: impl Into<String>) {
        let (file, rule, message) = (self.file.to_owned(), self.rule.clone(), message.into());
        self.list.push(LoadError {
            file,
            line,
            column,
            rule,
            message,
        });
    }

    fn at<T>(&mut self, located: &Located<T>, message: impl Into<String>) {
        self.push(located.line, located.column, message);
    }
}

/// Validates one rule; returns all of its mistakes, not only the first.
pub(crate) fn build(file: &str, raw: RawRule, scheme: &Scheme) -> Result<Rule, Vec<LoadError>> {
    let rule_name = raw.name.as_ref().map(|n| n.value.clone());
    let mut errors = Errors {
        file,
        rule: rule_name,
        list: Vec::new(),
    };
    let name = check_name(&raw, &mut errors);
    let expression = compile_expression(file, &raw, scheme, &mut errors);
    let action = check_action(&raw, &mut errors);
    let mode = raw.mode.as_ref().and_then(|m| match m.value.as_str() {
        "enforce" => Some(Mode::Enforce),
        "log" => Some(Mode::Log),
        other => {
            errors.at(
                m,
                format!("expected 'enforce' or 'log' for mode, found '{other}'"),
            );
            None
        }
    });
    let enabled = raw.enabled.as_ref().and_then(|e| match e.value.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        other => {
            errors.at(
                e,
                format!("expected true or false for enabled, found '{other}'"),
            );
            None
        }
    });
    let (Some(name), Some((expression, origin)), Some(action)) = (name, expression, action) else {
        return Err(errors.list);
    };
    if !errors.list.is_empty() {
        return Err(errors.list);
    }
    Ok(Rule {
        name,
        description: raw.description.map(|d| d.value),
        enabled: enabled.unwrap_or(true),
        mode: mode.unwrap_or_default(),
        action,
        expression,
        origin,
        skip_names: raw.skip.map(|s| (s.value, s.line, s.column)),
    })
}

fn check_name(raw: &RawRule, errors: &mut Errors<'_>) -> Option<String> {
    let Some(name) = &raw.name else {
        errors.push(raw.line, raw.column, "rule has no 'name'");
        return None;
    };
    let value = name.value.trim();
    if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
        errors.at(name, "a rule name must be 1 to 200 printable characters");
        return None;
    }
    Some(value.to_owned())
}

fn compile_expression(
    file: &str,
    raw: &RawRule,
    scheme: &Scheme,
    errors: &mut Errors<'_>,
) -> Option<(Expression, Position)> {
    let Some((text, map)) = &raw.expression else {
        errors.push(raw.line, raw.column, "rule has no 'expression'");
        return None;
    };
    let (line, column) = map.start();
    match Expression::compile(text, scheme) {
        Ok(expr) => Some((
            expr,
            Position {
                file: file.to_owned(),
                line,
                column,
            },
        )),
        Err(e) => {
            let (line, column) = map.locate(e.offset);
            errors.push(line, column, e.message);
            None
        }
    }
}

fn check_action(raw: &RawRule, errors: &mut Errors<'_>) -> Option<Action> {
    let Some(action) = &raw.action else {
        let message = "rule has no 'action'; use block, challenge, rate_limit, log, skip or allow";
        errors.push(raw.line, raw.column, message);
        return None;
    };
    let kind = action.value.as_str();
    reject_misplaced(raw, kind, errors);
    match kind {
        "block" => block(raw, errors),
        "challenge" => Some(Action::Challenge),
        "rate_limit" => rate_limit(raw, action, errors),
        "log" => Some(Action::Log),
        "skip" => {
            if raw.skip.as_ref().is_none_or(|s| s.value.is_empty()) {
                errors.at(
                    action,
                    "action skip needs a 'skip' list of rule names or phases",
                );
                return None;
            }
            Some(Action::Skip(Vec::new()))
        }
        "allow" => Some(Action::Allow),
        other => {
            let message = format!(
                "unknown action '{other}'; use block, challenge, rate_limit, log, skip or allow"
            );
            errors.at(action, message);
            None
        }
    }
}

/// Keys that belong to another action are mistakes, not silently ignored settings.
fn reject_misplaced(raw: &RawRule, kind: &str, errors: &mut Errors<'_>) {
    let owned_by = [
        ("status", &raw.status, "block"),
        ("body", &raw.body, "block"),
        ("threshold", &raw.threshold, "rate_limit"),
        ("period", &raw.period, "rate_limit"),
        ("key", &raw.key, "rate_limit"),
    ];
    for (key, value, owner) in owned_by {
        if let Some(value) = value
            && kind != owner
        {
            errors.at(
                value,
                format!("'{key}' only applies to action {owner}, not {kind}"),
            );
        }
    }
    if let Some(skip) = &raw.skip
        && kind != "skip"
    {
        errors.at(
            skip,
            format!("'skip' only applies to action skip, not {kind}"),
        );
    }
}

fn block(raw: &RawRule, errors: &mut Errors<'_>) -> Option<Action> {
    let status = match &raw.status {
        None => 403,
        Some(s) => match s.value.parse::<u16>() {
            Ok(code @ 400..=599) => code,
            _ => {
                errors.at(
                    s,
                    format!(
                        "expected an HTTP status from 400 to 599, found '{}'",
                        s.value
                    ),
                );
                return None;
            }
        },
    };
    let body = raw.body.as_ref().map(|b| b.value.clone());
    Some(Action::Block { status, body })
}

fn rate_limit(raw: &RawRule, action: &Located<String>, errors: &mut Errors<'_>) -> Option<Action> {
    let Some(threshold) = &raw.threshold else {
        errors.at(
            action,
            "action rate_limit needs a 'threshold' like 100/minute",
        );
        return None;
    };
    let parsed = parse_threshold(
        &threshold.value,
        raw.period.as_ref().map(|p| p.value.as_str()),
    );
    let key = match &raw.key {
        None => Some(LimitKey::Ip),
        Some(k) => parse_key(&k.value).or_else(|| {
            let message = format!(
                "expected ip, route, user or header:<name> for key, found '{}'",
                k.value
            );
            errors.at(k, message);
            None
        }),
    };
    match parsed {
        Ok(threshold) => key.map(|key| Action::RateLimit { threshold, key }),
        Err(message) => {
            let at = if message.contains("period") {
                raw.period.as_ref()
            } else {
                None
            };
            errors.at(at.unwrap_or(threshold), message);
            None
        }
    }
}

fn parse_key(text: &str) -> Option<LimitKey> {
    match text {
        "ip" => Some(LimitKey::Ip),
        "route" => Some(LimitKey::Route),
        "user" => Some(LimitKey::User),
        _ => {
            let name = text.strip_prefix("header:")?.trim();
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            valid.then(|| LimitKey::Header(name.to_ascii_lowercase()))
        }
    }
}

/// `100/minute`, `10/second`, `1000/hour`, `5/day`, `20/10s`; or `100` with `period: 1m`.
pub(crate) fn parse_threshold(text: &str, period: Option<&str>) -> Result<Threshold, String> {
    let (count, unit) = match (text.split_once('/'), period) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "threshold '{text}' already has a period; drop 'period' or write the threshold as a number"
            ));
        }
        (Some((count, unit)), None) => (count, unit),
        (None, Some(period)) => (text, period),
        (None, None) => {
            return Err(format!(
                "threshold '{text}' has no period; write it like 100/minute"
            ));
        }
    };
    let limit = match count.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_THRESHOLD).contains(&n) => n,
        _ => {
            return Err(format!(
                "threshold '{text}' must start with a whole number of requests from 1 to {MAX_THRESHOLD}"
            ));
        }
    };
    let Some(period) = parse_period(unit.trim()) else {
        return Err(format!(
            "unknown period '{}' in threshold '{text}'; use second, minute, hour, day or a duration like 10s",
            unit.trim()
        ));
    };
    if period.is_zero() || period > MAX_PERIOD {
        return Err(format!(
            "the period of threshold '{text}' must be between 1s and 30d"
        ));
    }
    Ok(Threshold { limit, period })
}

fn parse_period(unit: &str) -> Option<Duration> {
    let named = match unit {
        "s" | "sec" | "second" => Some(1),
        "m" | "min" | "minute" => Some(60),
        "h" | "hour" => Some(3600),
        "d" | "day" => Some(86_400),
        _ => None,
    };
    if let Some(secs) = named {
        return Some(Duration::from_secs(secs));
    }
    let split = unit.find(|c: char| !c.is_ascii_digit())?;
    let (number, suffix) = unit.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale = match suffix {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(scale)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_in_every_documented_form() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            parse_threshold("100/minute", None),
            Ok(Threshold {
                limit: 100,
                period: minute
            })
        );
        assert_eq!(
            parse_threshold("10/second", None).map(|t| t.period),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            parse_threshold("1000/hour", None).map(|t| t.period),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_threshold("5/10s", None).map(|t| t.period),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            parse_threshold("100", Some("1m")),
            Ok(Threshold {
                limit: 100,
                period: minute
            })
        );
    }

    #[test]
    fn thresholds_with_unknown_periods_are_refused() {
        let err = parse_threshold("100/fortnight", None).expect_err("fortnight");
        assert!(err.contains("unknown period 'fortnight'"), "{err}");
        assert!(parse_threshold("0/minute", None).is_err());
        assert!(parse_threshold("100", None).is_err());
        assert!(parse_threshold("100/minute", Some("1m")).is_err());
        assert!(parse_threshold("1/99999d", None).is_err());
    }

    #[test]
    fn limit_keys_accept_headers_by_name() {
        assert_eq!(
            parse_key("header:X-Api-Key"),
            Some(LimitKey::Header("x-api-key".into()))
        );
        assert_eq!(parse_key("header:"), None);
        assert_eq!(parse_key("cookie"), None);
    }
}
