//! What a rule match tells the event log: the operands that decided it, with the values of
//! anything that may carry a credential replaced by `(redacted)`.
//!
//! Cookies, `Authorization` and other auth headers, whole header maps, and bodies are never
//! logged: a rule on `http.cookie` records that the cookie decided, not what it was.

use palisade_expr::Decided;
use palisade_waf::{Finding, Scores};

use crate::events::{JsonObject, RequestInfo, key};

/// What is logged in place of a sensitive value.
pub const REDACTED: &str = "(redacted)";

/// Words that mark an operand whose value may be a credential or personal data.
const SENSITIVE: [&str; 10] = [
    "cookie", "auth", "token", "secret", "password", "passwd", "api-key", "api_key", "apikey",
    "session",
];

/// A WAF rule matched a request (event `waf.rule`).
#[derive(Debug, Clone)]
pub struct RuleEvent {
    /// The request.
    pub request: RequestInfo,
    /// The rule's name.
    pub rule: String,
    /// The rule's action: `block`, `challenge`, `rate_limit`, `log`, `skip`, `allow`.
    pub action: &'static str,
    /// What palisade did: `blocked`, `challenged`, `cleared` (clearance held), `rate_limited`,
    /// `logged`, `skipped`, `allowed`.
    pub outcome: &'static str,
    /// `false` for a rule in `mode: log` (and a rate limit in log mode).
    pub enforced: bool,
    /// The operands that made the expression true and their values, redacted.
    pub fields: Vec<(String, String)>,
    /// The status sent, when palisade answered.
    pub status: Option<u16>,
    /// For a challenge rule: why the client's clearance did not let it through (`missing`,
    /// `expired`, `bad_signature`, `malformed`), or `valid`.
    pub clearance: Option<&'static str>,
}

impl RuleEvent {
    /// The event's fields, after `event` and before the end of the object.
    pub fn write_fields(&self, out: &mut JsonObject<'_>) {
        self.request.write_fields(out);
        out.str(key!("rule.name"), &self.rule);
        out.str(key!("rule.action"), self.action);
        out.str(key!("rule.outcome"), self.outcome);
        out.bool(key!("rule.enforced"), self.enforced);
        out.pairs(key!("rule.fields"), &self.fields);
        if let Some(status) = self.status {
            out.num(key!("http.status"), u64::from(status));
        }
        if let Some(clearance) = self.clearance {
            out.str(key!("challenge.clearance"), clearance);
        }
    }
}

/// Managed detection blocked a request, or would have in `mode = "log"` (event
/// `waf.managed`): the deciding finding, every class score and whether inspection was
/// complete.
#[derive(Debug, Clone)]
pub struct ManagedEvent {
    /// The request.
    pub request: RequestInfo,
    /// `blocked`, or `logged` when log mode let the request through.
    pub outcome: &'static str,
    /// The deciding finding (the most certain one).
    pub finding: Finding,
    /// Every class score (1 = certain attack, 99 = clean).
    pub scores: Scores,
    /// The score at or below which the paranoia level blocks.
    pub threshold: u8,
    /// The paranoia level in force.
    pub paranoia: u8,
    /// Why inspection stopped early (`body_truncated`, `too_many_inputs`, ...); empty
    /// when the whole request was inspected.
    pub incomplete: Vec<&'static str>,
    /// How many findings there were (the event shows the first).
    pub findings: usize,
    /// The status sent, when palisade answered.
    pub status: Option<u16>,
}

impl ManagedEvent {
    /// The event's fields, after `event` and before the end of the object.
    pub fn write_fields(&self, out: &mut JsonObject<'_>) {
        self.request.write_fields(out);
        let finding = &self.finding;
        let location = finding.location.to_string();
        out.str(key!("waf.outcome"), self.outcome);
        out.str(key!("waf.class"), finding.class.name());
        out.str(key!("waf.detector"), finding.detector.name());
        out.str(key!("waf.reason"), finding.reason);
        // A fragment from a cookie or an input named like a credential may be one.
        let matched = if is_sensitive(&location) {
            REDACTED
        } else {
            finding.matched.as_str()
        };
        out.str(key!("waf.location"), &location);
        out.str(key!("waf.matched"), matched);
        out.bool(key!("waf.hidden"), finding.hidden);
        out.num(key!("waf.score"), u64::from(finding.score));
        for (class, score) in self.scores.iter() {
            out.num_named(&format!("waf.score.{class}"), u64::from(score));
        }
        out.num(key!("waf.threshold"), u64::from(self.threshold));
        out.num(key!("waf.paranoia"), u64::from(self.paranoia));
        out.num(key!("waf.findings"), self.findings as u64);
        out.bool(key!("waf.incomplete"), !self.incomplete.is_empty());
        if !self.incomplete.is_empty() {
            let reasons: Vec<String> = self.incomplete.iter().map(|r| r.to_string()).collect();
            out.strs(key!("waf.incomplete_reasons"), &reasons);
        }
        if let Some(status) = self.status {
            out.num(key!("http.status"), u64::from(status));
        }
    }
}

/// An answer to the challenge was checked (events `challenge.passed`, `challenge.failed`).
#[derive(Debug, Clone)]
pub struct ChallengeEvent {
    /// The request that carried the answer.
    pub request: RequestInfo,
    /// Whether a clearance was issued.
    pub passed: bool,
    /// Why not: `malformed`, `bad_signature`, `expired`, `insufficient_work`, `replayed`.
    pub reason: &'static str,
}

impl ChallengeEvent {
    /// `challenge.passed` or `challenge.failed`.
    pub fn name(&self) -> &'static str {
        if self.passed {
            "challenge.passed"
        } else {
            "challenge.failed"
        }
    }

    /// The event's fields.
    pub fn write_fields(&self, out: &mut JsonObject<'_>) {
        self.request.write_fields(out);
        if !self.passed {
            out.str(key!("challenge.reason"), self.reason);
        }
    }
}

/// The deciding operands and values of a match, safe to log.
pub fn redacted(decided: &[Decided]) -> Vec<(String, String)> {
    decided
        .iter()
        .map(|d| {
            let value = if is_sensitive(&d.field) {
                REDACTED.to_owned()
            } else {
                d.value.clone()
            };
            (d.field.clone(), value)
        })
        .collect()
}

/// Whether the value of `operand` (as written in the rule) must not be logged.
pub fn is_sensitive(operand: &str) -> bool {
    let lower = operand.to_ascii_lowercase();
    if SENSITIVE.iter().any(|word| lower.contains(word)) || lower.contains("http.request.body") {
        return true;
    }
    // Every header value at once (the map, `[*]` over it, `.values`) may hold any of the
    // above; one named header (`["user-agent"]`) and the names alone are fine.
    lower.contains("http.request.headers")
        && !lower.contains("http.request.headers.names")
        && !lower.contains("[\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(field: &str, value: &str) -> Decided {
        Decided {
            field: field.into(),
            value: value.into(),
        }
    }

    #[test]
    fn credentials_and_bodies_are_redacted() {
        for operand in [
            "http.cookie",
            "http.request.cookies[\"sid\"][0]",
            "lower(http.request.headers[\"authorization\"][0])",
            "http.request.headers[\"proxy-authorization\"][0]",
            "http.request.headers[\"x-api-key\"][0]",
            "http.request.headers.values[*]",
            "http.request.headers[*][0]",
            "http.request.body.raw",
            "http.request.body.form[\"password\"][0]",
            "http.request.uri.args[\"token\"][0]",
        ] {
            let out = redacted(&[decided(operand, "s3cret")]);
            assert_eq!(out[0].1, REDACTED, "{operand}");
        }
    }

    #[test]
    fn ordinary_request_data_is_kept() {
        for operand in [
            "http.request.uri.query",
            "http.request.uri.path",
            "http.user_agent",
            "http.request.headers[\"user-agent\"][0]",
            "http.request.headers.names[*]",
            "ip.src.country",
            "ip.src",
        ] {
            let out = redacted(&[decided(operand, "value")]);
            assert_eq!(out[0].1, "value", "{operand}");
        }
    }
}

#[cfg(test)]
mod event_tests {
    use serde_json::Value;

    use super::*;
    use crate::events::Event;

    fn request() -> RequestInfo {
        RequestInfo {
            id: crate::pipeline::RequestId::new(1, 1),
            client_ip: "111.235.160.9".parse().expect("ip"),
            method: http::Method::GET,
            path: "/account".into(),
            user_id: None,
        }
    }

    #[test]
    fn rule_events_have_stable_dotted_fields() {
        let event = Event::WafRule(Box::new(RuleEvent {
            request: request(),
            rule: "Geo-blocking (if needed)".into(),
            action: "challenge",
            outcome: "challenged",
            enforced: true,
            fields: vec![("ip.src.country".into(), "CN".into())],
            status: Some(403),
            clearance: Some("expired"),
        }));
        let json = Value::Object(event.to_json());
        assert_eq!(json["event"], "waf.rule");
        assert_eq!(json["client.ip"], "111.235.160.9");
        assert_eq!(json["rule.name"], "Geo-blocking (if needed)");
        assert_eq!(json["rule.action"], "challenge");
        assert_eq!(json["rule.outcome"], "challenged");
        assert_eq!(json["rule.enforced"], true);
        assert_eq!(json["rule.fields"]["ip.src.country"], "CN");
        assert_eq!(json["http.status"], 403);
        assert_eq!(json["challenge.clearance"], "expired");
    }

    #[test]
    fn challenge_events_are_named_by_their_result() {
        let failed = Event::Challenge(ChallengeEvent {
            request: request(),
            passed: false,
            reason: "replayed",
        });
        assert_eq!(failed.name(), "challenge.failed");
        assert_eq!(
            Value::Object(failed.to_json())["challenge.reason"],
            "replayed"
        );
        let passed = Event::Challenge(ChallengeEvent {
            request: request(),
            passed: true,
            reason: "",
        });
        assert_eq!(passed.name(), "challenge.passed");
    }
}
