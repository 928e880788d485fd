//! Stage 4: the custom WAF rules of `[waf]`, in file order, and the challenge endpoint.
//!
//! Per request the stage computes only the fields some rule reads (the body prefix, up to
//! `body_limit`, only when a rule reads a body field or a score; geo data only when a rule
//! reads a geo field; the managed-detection scores only when a rule reads one, and then
//! the verdict is handed to the managed stage), evaluates the rule set and applies the
//! verdict:
//!
//! - `block`: `403` (or the rule's status) with a short body naming the rule;
//! - `challenge`: the proof-of-work interstitial (JSON 403 for JSON clients), unless the
//!   client holds a valid clearance, in which case evaluation goes on past the rule;
//! - `rate_limit`: the rule's own limit, counted in the same store as `[[rate_limit]]`
//!   (memory or Redis), `429` over it;
//! - `log`, `allow`, `skip`: recorded; skipped phases are noted for later stages
//!   ([`crate::waf::phase_skipped`]).
//!
//! Every answer carries `palisade-mitigated: block|challenge|rate_limit`. Every match is a
//! `waf.rule` event (rate-limit matches only when over the limit) and is counted in
//! `palisade_waf_rule_matches_total{rule, action, outcome}`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use palisade_expr::{Action, LimitKey, Outcome, Rule, RuleSet, Scheme, Verdict};
use palisade_policy::ratelimit::{Algorithm, Quota, RateLimitStore};
use palisade_policy::upload::UploadConfig;
use palisade_waf::Engine;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::rate_limit::{ip_key, retry_after_secs, too_many_requests};
use super::upload::normalise;
use crate::body::{self, GatewayBody};
use crate::config::Config;
use crate::error::{GatewayError, short_page};
use crate::events::Event;
use crate::metrics::Metrics;
use crate::pipeline::{
    GatewayRequest, Outcome as Decision, RequestContext, RequestStage, Verdict as StageVerdict,
};
use crate::services::Services;
use crate::waf::challenge::{CHALLENGE_PATH, Challenge, NotCleared};
use crate::waf::fields::{GatewayFields, inspect_body, reads_headers, request_info};
use crate::waf::managed::{Inspection, LazyVerdict, reads_body};
use crate::waf::report::{ChallengeEvent, RuleEvent, redacted};
use crate::waf::{GeoDatabases, SCORE_FIELDS, skip_phase};

/// The WAF rules stage.
#[derive(Debug)]
pub struct Waf {
    rules: Arc<RuleSet>,
    /// The managed detection, when some rule reads a `waf.score*` field.
    engine: Option<Arc<Engine>>,
    geo: GeoDatabases,
    body_limit: usize,
    /// The `[[upload]]` rules: bodies declared as media on their paths are theirs.
    uploads: Arc<UploadConfig>,
    needs_body: bool,
    needs_headers: bool,
    /// Present when some rule challenges.
    challenge: Option<Challenge>,
    limits: Arc<dyn RateLimitStore>,
    metrics: Arc<Metrics>,
}

/// Whether the client's clearance was looked at, and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clearance {
    /// No challenge rule matched.
    NotAsked,
    /// A valid clearance let the client past the challenge rules.
    Held,
    /// A challenge rule matched and the client holds no valid clearance.
    Lacking(NotCleared),
}

/// A rate limit a matching rule asks for, owned so it can cross an await.
struct LimitCheck<'r> {
    rule: &'r Rule,
    quota: Quota,
    key: String,
    enforce: bool,
    /// The rule's deciding fields, redacted, for the event if the limit refuses.
    decided: Vec<(String, String)>,
}

impl Waf {
    /// The stage for `config`'s rules, or `None` when there are none.
    pub fn new(config: &Config, services: &Services) -> Option<Self> {
        let waf = &config.waf;
        let rules = Arc::clone(&waf.compiled.rules);
        if rules.rules().iter().all(|rule| !rule.enabled) {
            return None;
        }
        for warning in crate::advice::waf_rules(config) {
            warn!("{warning}");
        }
        let challenge = has_challenge(&rules).then(|| {
            let key = waf
                .compiled
                .challenge_key
                .clone()
                .unwrap_or_else(|| services.challenge_key.clone());
            Challenge::new(
                &waf.challenge,
                key,
                Arc::clone(&services.clock),
                Arc::clone(&services.rate_limits),
            )
        });
        waf.compiled.geo.watch(waf.geoip_reload_interval.0);
        let engine = waf
            .compiled
            .engine
            .as_ref()
            .filter(|_| reads_scores(&rules))
            .map(Arc::clone);
        Some(Self {
            engine,
            needs_body: rules.needs_body(),
            needs_headers: reads_headers(&rules),
            rules,
            geo: waf.compiled.geo.clone(),
            body_limit: usize::try_from(waf.body_limit.0).unwrap_or(usize::MAX),
            uploads: Arc::new(config.uploads.clone()),
            challenge,
            limits: Arc::clone(&services.rate_limits),
            metrics: Arc::clone(&services.metrics),
        })
    }
}

/// Whether some rule reads a managed-detection score.
fn reads_scores(rules: &RuleSet) -> bool {
    let scheme: &Scheme = rules.scheme();
    SCORE_FIELDS
        .iter()
        .any(|name| rules.fields().contains_name(scheme, name))
}

/// Whether an enabled rule challenges.
pub(crate) fn has_challenge(rules: &RuleSet) -> bool {
    rules
        .rules()
        .iter()
        .any(|rule| rule.enabled && rule.action == Action::Challenge)
}

impl RequestStage for Waf {
    fn name(&self) -> &'static str {
        "waf"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<StageVerdict, GatewayError> {
        // The answer endpoint comes before the rules: a rule that challenges this client
        // must not challenge the answer to its own challenge.
        if let Some(challenge) = &self.challenge {
            if request.head.uri.path() == CHALLENGE_PATH {
                return self.answer(challenge, request, ctx).await;
            }
        }
        // Scores inspect the body too, when there is one.
        let managed_body = self.engine.is_some() && reads_body(request, &self.uploads);
        let body = if self.needs_body || managed_body {
            Some(inspect_body(request, self.body_limit).await?)
        } else {
            None
        };
        let (outcome, clearance, verdict) = self.evaluate(&request.head, ctx, body, managed_body);
        ctx.managed_verdict = verdict.map(Box::new);
        for phase in &outcome.skipped_phases {
            skip_phase(ctx, *phase);
        }
        if let Some(answer) = self.apply_verdict(&outcome, clearance, request, ctx)? {
            return Ok(StageVerdict::Respond(answer));
        }
        let checks = self.limit_checks(&outcome, &request.head, ctx);
        drop(outcome);
        self.apply_limits(checks, request, ctx).await
    }
}

impl Waf {
    /// Evaluates the rules; a challenged client holding clearance is evaluated again past
    /// the challenge rules (fields already computed are reused). Returns the managed
    /// verdict too when a rule read a score (so the request is inspected once).
    fn evaluate(
        &self,
        head: &http::request::Parts,
        ctx: &RequestContext,
        body: Option<palisade_expr::request::Body>,
        managed_body: bool,
    ) -> (Outcome<'_>, Clearance, Option<palisade_waf::Verdict>) {
        let info = request_info(head, ctx, body, self.needs_headers);
        let scanned = info.body.as_ref().filter(|_| managed_body);
        let lazy = self.engine.as_deref().map(|engine| {
            LazyVerdict::new(Inspection {
                engine,
                head,
                body: scanned.map_or(&[][..], |b| &b.prefix),
                body_truncated: scanned.is_some_and(|b| b.truncated),
                local_addr: ctx.local_addr,
            })
        });
        let mut fields = GatewayFields::new(&info, &self.geo);
        if let Some(lazy) = &lazy {
            fields = fields.with_scores(lazy);
        }
        let cx = self.rules.context(&fields);
        let mut outcome = self.rules.evaluate_in(&cx);
        let mut clearance = Clearance::NotAsked;
        if let (Verdict::Challenge(_), Some(challenge)) = (&outcome.verdict, &self.challenge) {
            match challenge.check_clearance(&head.headers, ctx) {
                Ok(()) => {
                    outcome = self.rules.evaluate_cleared_in(&cx);
                    clearance = Clearance::Held;
                }
                Err(why) => clearance = Clearance::Lacking(why),
            }
        }
        drop(cx);
        (outcome, clearance, lazy.and_then(LazyVerdict::into_verdict))
    }

    /// Records every match but rate limits (those are recorded when counted), and returns
    /// the answer of a `block` or `challenge` verdict.
    fn apply_verdict(
        &self,
        outcome: &Outcome<'_>,
        clearance: Clearance,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Option<Response<GatewayBody>>, GatewayError> {
        let answer = match &outcome.verdict {
            Verdict::Block { rule, status, body } => {
                Some(block(rule, *status, *body, &request.head.headers))
            }
            Verdict::Challenge(_) => match &self.challenge {
                Some(challenge) => Some(challenge.challenge(&request.head, ctx)?),
                None => None,
            },
            Verdict::Continue | Verdict::Allow(_) => None,
        };
        let status = answer.as_ref().map(|a| a.status().as_u16());
        for found in &outcome.matches {
            if matches!(found.rule.action, Action::RateLimit { .. }) {
                continue;
            }
            let decides = outcome
                .verdict
                .rule()
                .is_some_and(|rule| std::ptr::eq(rule, found.rule));
            if !found.enforced && refuses(&found.rule.action) && ctx.outcome == Decision::Allowed {
                ctx.outcome = Decision::Logged;
            }
            let mut event = self.event(found.rule, found.enforced, request, ctx);
            event.outcome = match_label(&found.rule.action, found.enforced, decides);
            event.fields = redacted(&found.decided);
            event.status = if decides { status } else { None };
            event.clearance = (found.rule.action == Action::Challenge && found.enforced)
                .then(|| clearance_label(clearance));
            self.publish(event, ctx);
        }
        if answer.is_some() {
            ctx.outcome = Decision::Blocked;
        }
        Ok(answer)
    }

    /// The rate limits matching rules ask for, unless a block or challenge answered.
    fn limit_checks<'r>(
        &self,
        outcome: &Outcome<'r>,
        head: &http::request::Parts,
        ctx: &RequestContext,
    ) -> Vec<LimitCheck<'r>> {
        outcome
            .rate_limits
            .iter()
            .map(|limit| LimitCheck {
                rule: limit.rule,
                quota: Quota {
                    algorithm: Algorithm::SlidingWindow,
                    limit: limit.threshold.limit,
                    window: limit.threshold.period,
                },
                key: limit_key(&limit.rule.name, limit.key, head, ctx),
                enforce: limit.enforce,
                decided: redacted(
                    &outcome
                        .matches
                        .iter()
                        .find(|m| m.index == limit.index)
                        .map(|m| m.decided.clone())
                        .unwrap_or_default(),
                ),
            })
            .collect()
    }

    /// Counts the request under each rate-limit rule, in order; the first enforcing one over
    /// its limit answers 429.
    async fn apply_limits(
        &self,
        checks: Vec<LimitCheck<'_>>,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<StageVerdict, GatewayError> {
        for check in checks {
            let decision = self
                .limits
                .check(&check.key, &check.quota)
                .await
                .map_err(|_| GatewayError::StateUnavailable)?;
            if decision.allowed {
                self.count(check.rule, "counted");
                continue;
            }
            let mut event = self.event(check.rule, check.enforce, request, ctx);
            event.fields = check.decided;
            if !check.enforce {
                event.outcome = "logged";
                self.publish(event, ctx);
                if ctx.outcome == Decision::Allowed {
                    ctx.outcome = Decision::Logged;
                }
                continue;
            }
            let answer = too_many_requests(
                &decision,
                retry_after_secs(&decision),
                &request.head.headers,
            );
            event.outcome = "rate_limited";
            event.status = Some(answer.status().as_u16());
            self.publish(event, ctx);
            ctx.outcome = Decision::RateLimited;
            return Ok(StageVerdict::Respond(answer));
        }
        Ok(StageVerdict::Continue)
    }

    /// Serves `/.palisade/challenge` and records the result.
    async fn answer(
        &self,
        challenge: &Challenge,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<StageVerdict, GatewayError> {
        let answer = challenge.answer(request, ctx).await?;
        ctx.publish(Event::Challenge(ChallengeEvent {
            request: ctx.request_info(&request.head),
            passed: answer.refused.is_none(),
            reason: answer.refused.unwrap_or(""),
        }));
        if answer.refused.is_some() {
            ctx.outcome = Decision::Blocked;
        }
        Ok(StageVerdict::Respond(answer.response))
    }

    /// An event for a match of `rule`, to be completed by the caller.
    fn event(
        &self,
        rule: &Rule,
        enforced: bool,
        request: &GatewayRequest,
        ctx: &RequestContext,
    ) -> RuleEvent {
        RuleEvent {
            request: ctx.request_info(&request.head),
            rule: rule.name.clone(),
            action: rule.action.name(),
            outcome: "logged",
            enforced,
            fields: Vec::new(),
            status: None,
            clearance: None,
        }
    }

    fn publish(&self, event: RuleEvent, ctx: &RequestContext) {
        self.metrics
            .waf_rule_matches
            .inc(&[&event.rule, event.action, event.outcome]);
        ctx.publish(Event::WafRule(Box::new(event)));
    }

    fn count(&self, rule: &Rule, outcome: &str) {
        self.metrics
            .waf_rule_matches
            .inc(&[&rule.name, rule.action.name(), outcome]);
    }
}

/// Whether an action would refuse the request when enforced.
fn refuses(action: &Action) -> bool {
    matches!(action, Action::Block { .. } | Action::Challenge)
}

/// What was done about one (non rate-limit) match.
fn match_label(action: &Action, enforced: bool, decides: bool) -> &'static str {
    match (action, enforced) {
        (_, false) => "logged",
        (Action::Block { .. }, true) if decides => "blocked",
        (Action::Challenge, true) if decides => "challenged",
        (Action::Challenge, true) => "cleared",
        (Action::Allow, true) => "allowed",
        (Action::Skip(_), true) => "skipped",
        _ => "logged",
    }
}

fn clearance_label(clearance: Clearance) -> &'static str {
    match clearance {
        Clearance::Held | Clearance::NotAsked => "valid",
        Clearance::Lacking(why) => why.as_str(),
    }
}

/// The answer of a block rule: its status (403 by default) and its body, or a short page
/// naming the rule.
fn block(
    rule: &Rule,
    status: u16,
    body: Option<&str>,
    request_headers: &http::HeaderMap,
) -> Response<GatewayBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = match body {
        Some(text) => {
            let mut response = Response::new(body::full(Bytes::from(text.to_owned())));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None => short_page(
            status,
            &format!("This request was blocked by the rule '{}'.", rule.name),
            request_headers,
        ),
    };
    response.headers_mut().insert(
        HeaderName::from_static("palisade-mitigated"),
        HeaderValue::from_static("block"),
    );
    response
}

/// The store key of a WAF rate limit: `waf:<rule>:<kind>:<value>`. IPv6 clients count by
/// their /64; header values and user ids are hashed so they never sit in Redis in clear.
fn limit_key(
    rule: &str,
    key: &LimitKey,
    head: &http::request::Parts,
    ctx: &RequestContext,
) -> String {
    let by_ip = || format!("waf:{rule}:ip:{}", ip_key(ctx.client_ip));
    match key {
        LimitKey::Ip => by_ip(),
        // The path as an upstream may read it: `/api//x`, `/api/./x`, `/%61pi/x` and
        // `/api/x;a` are one route, not a fresh quota each.
        LimitKey::Route => format!("waf:{rule}:route:{}", normalise(head.uri.path())),
        // Without identity (or the header) the request counts by IP: leaving it out must
        // not escape the limit.
        LimitKey::User => match &ctx.identity {
            Some(identity) => format!("waf:{rule}:user:{}", hashed(identity.user.as_bytes())),
            None => by_ip(),
        },
        LimitKey::Header(name) => match head.headers.get(name.as_str()) {
            Some(value) => format!("waf:{rule}:header:{}", hashed(value.as_bytes())),
            None => by_ip(),
        },
    }
}

fn hashed(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
