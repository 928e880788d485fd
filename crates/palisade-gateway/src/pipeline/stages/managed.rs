//! Stage 4b: managed attack detection (`palisade_waf`), after the custom rules.
//!
//! It runs unless a rule already answered (a block or challenge ends the pipeline before
//! it) or a rule's `skip` names the `managed` phase. The verdict is the one a rule reading
//! `waf.score*` already computed, if any, so a request is inspected at most once. Then:
//!
//! - enforce mode, score at or below the paranoia threshold: `403` (JSON or HTML by
//!   `Accept`, like a rule block) with `palisade-mitigated: block`, and a `waf.managed`
//!   event with `waf.outcome = "blocked"`;
//! - log mode, same score: the request goes on; the event says `waf.outcome = "logged"`;
//! - otherwise the request goes on.
//!
//! Decisions are counted in `palisade_waf_managed_total{class, action}`; requests inspected
//! only in part (body past `body_limit`, input limits) in
//! `palisade_waf_managed_incomplete_total{reason}`.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Response, StatusCode};
use palisade_expr::Phase;
use palisade_policy::upload::UploadConfig;
use palisade_waf::{Action, Engine, Verdict};

use crate::body::GatewayBody;
use crate::config::Config;
use crate::error::{GatewayError, short_page};
use crate::events::Event;
use crate::metrics::Metrics;
use crate::pipeline::{GatewayRequest, Outcome, RequestContext, RequestStage, Verdict as Next};
use crate::services::Services;
use crate::waf::managed::{Inspection, read_body, reads_body};
use crate::waf::phase_skipped;
use crate::waf::report::ManagedEvent;

/// The managed-detection stage.
#[derive(Debug)]
pub struct ManagedDetection {
    engine: Arc<Engine>,
    body_limit: usize,
    /// The `[[upload]]` rules: bodies declared as media on their paths are theirs.
    uploads: Arc<UploadConfig>,
    metrics: Arc<Metrics>,
}

impl ManagedDetection {
    /// The stage for `config`, or `None` when `[waf] managed = false`.
    pub fn new(config: &Config, services: &Services) -> Option<Self> {
        let engine = Arc::clone(config.waf.compiled.engine.as_ref()?);
        Some(Self {
            engine,
            body_limit: usize::try_from(config.waf.body_limit.0).unwrap_or(usize::MAX),
            uploads: Arc::new(config.uploads.clone()),
            metrics: Arc::clone(&services.metrics),
        })
    }
}

impl RequestStage for ManagedDetection {
    fn name(&self) -> &'static str {
        "waf_managed"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Next, GatewayError> {
        if phase_skipped(ctx, Phase::Managed) {
            ctx.managed_verdict = None;
            self.metrics.waf_managed.inc(&["none", "skipped"]);
            return Ok(Next::Continue);
        }
        let verdict = match ctx.managed_verdict.take() {
            Some(verdict) => *verdict,
            None => self.inspect(request, ctx).await?,
        };
        for reason in &verdict.incomplete {
            self.metrics.waf_managed_incomplete.inc(&[reason.name()]);
        }
        let answer = match verdict.action {
            Action::Allow => return Ok(Next::Continue),
            Action::Block => Some(blocked(&request.head.headers)),
            Action::Log => None,
        };
        self.report(&verdict, answer.as_ref(), request, ctx);
        Ok(match answer {
            Some(answer) => {
                ctx.outcome = Outcome::Blocked;
                Next::Respond(answer)
            }
            None => {
                if ctx.outcome == Outcome::Allowed {
                    ctx.outcome = Outcome::Logged;
                }
                Next::Continue
            }
        })
    }
}

impl ManagedDetection {
    /// Reads the body prefix when there is a body, and inspects.
    async fn inspect(
        &self,
        request: &mut GatewayRequest,
        ctx: &RequestContext,
    ) -> Result<Verdict, GatewayError> {
        let (len, body_truncated) = if reads_body(request, &self.uploads) {
            read_body(request, self.body_limit).await?
        } else {
            (0, false)
        };
        Ok(Inspection {
            engine: &self.engine,
            head: &request.head,
            body: &request.body.buffered()[..len],
            body_truncated,
            local_addr: ctx.local_addr,
        }
        .run())
    }

    /// The event and metric of a block or a log-mode match.
    fn report(
        &self,
        verdict: &Verdict,
        answer: Option<&Response<GatewayBody>>,
        request: &GatewayRequest,
        ctx: &RequestContext,
    ) {
        let Some(finding) = verdict.decisive() else {
            return;
        };
        let outcome = if answer.is_some() {
            "blocked"
        } else {
            "logged"
        };
        self.metrics
            .waf_managed
            .inc(&[finding.class.name(), outcome]);
        ctx.publish(Event::WafManaged(Box::new(ManagedEvent {
            request: ctx.request_info(&request.head),
            outcome,
            finding: finding.clone(),
            scores: verdict.scores,
            threshold: verdict.threshold,
            paranoia: self.engine.settings().paranoia.level(),
            incomplete: verdict.incomplete.iter().map(|r| r.name()).collect(),
            findings: verdict.findings.len(),
            status: answer.map(|a| a.status().as_u16()),
        })));
    }
}

/// The answer to a blocked request: the same short page a rule block gives, naming no
/// detector (the event does that; the client learns nothing about what to change).
fn blocked(request_headers: &http::HeaderMap) -> Response<GatewayBody> {
    let mut response = short_page(
        StatusCode::FORBIDDEN,
        "This request was blocked by the web application firewall.",
        request_headers,
    );
    response.headers_mut().insert(
        HeaderName::from_static("palisade-mitigated"),
        HeaderValue::from_static("block"),
    );
    response
}
