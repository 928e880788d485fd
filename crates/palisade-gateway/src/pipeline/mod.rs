//! The request pipeline: one ordered list of stages, declared in [`Pipeline::build`].
//!
//! A request passes every [`RequestStage`] in order. A stage may let it continue
//! ([`Verdict::Continue`]), answer it itself ([`Verdict::Respond`], and no later stage or
//! the upstream sees it), or annotate the [`RequestContext`] for the stages after it. Then
//! the request is forwarded upstream, and every [`ResponseStage`] edits the response head,
//! whether it came from the upstream, from a stage, or from an error.
//!
//! The order mirrors `docs/pipeline.md`; each stage sits where it is for a reason given
//! beside it in [`Pipeline::build`]. Stages never do blocking I/O; async work (a Redis
//! round trip) is awaited.

mod context;
pub mod stages;

use std::sync::Arc;

use http::Response;

pub use context::{GatewayRequest, Identity, Outcome, RequestContext, RequestId, Who};

use crate::body::GatewayBody;
use crate::config::Config;
use crate::error::GatewayError;
use crate::services::Services;

/// What a request stage decided.
#[derive(Debug)]
pub enum Verdict {
    /// Go on to the next stage.
    Continue,
    /// Answer the client with this response; the upstream never sees the request.
    Respond(Response<GatewayBody>),
}

/// A step of the request phase.
#[async_trait::async_trait]
pub trait RequestStage: Send + Sync + std::fmt::Debug {
    /// A short stable name for logs and events (`rate_limit`).
    fn name(&self) -> &'static str;

    /// Looks at (and may edit) the request and context, and decides.
    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError>;
}

/// A step of the response phase: edits the response head before it goes to the client.
#[async_trait::async_trait]
pub trait ResponseStage: Send + Sync + std::fmt::Debug {
    /// A short stable name for logs.
    fn name(&self) -> &'static str;

    /// Edits the response head; `request` is the request's head as the upstream saw it.
    async fn on_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
    );
}

/// The ordered stages for one configuration.
#[derive(Debug, Default)]
pub struct Pipeline {
    request: Vec<Arc<dyn RequestStage>>,
    response: Vec<Arc<dyn ResponseStage>>,
}

impl Pipeline {
    /// Builds the stages for `config`, in order. This is the one place the order lives.
    pub fn build(config: &Config, services: &Services) -> Self {
        let mut pipeline = Self::default();

        // 0. HTTP conformance first: nothing should read a request that HTTP itself forbids
        //    (smuggling shapes, over-long URIs, declared bodies over the limit).
        pipeline.request(stages::conformance::Conformance::new(&config.server));
        // 1. Client IP: every later decision keys on it, and only trusted proxies may set it.
        pipeline.request(stages::client_ip::ClientIp::new(&config.server));
        // 1b. Ban list (detection and response): refuse known-bad clients before any work.
        //     Slot: `stages::ban::BanCheck`, reading `services` for the ban store.
        // 2. Geo lookup and normalisation: they feed the WAF and rate-limit expressions.
        //     Slot: `stages::geo::GeoLookup` (annotates `ip.geoip.*`).
        // 3. Identity: client-sent identity headers stripped; session cookie (validated,
        //    rotated when due) or bearer JWT sets `ctx.identity`, so that WAF rules and
        //    `key = "user"` limits can see the user.
        pipeline.request(stages::identity::IdentityStage::new(services));
        // 4. WAF rules: after the client IP, geo and identity they read, before rate limits
        //    (a blocked attack spends no quota); reads a bounded body prefix only when a rule
        //    needs it.
        if let Some(stage) = stages::waf::Waf::new(config, services) {
            pipeline.request(stage);
        }
        // 4b. Managed attack detection: after the rules, so a rule can skip it (`skip:
        //     [managed]`) or answer first, and its verdict, if a rule read a `waf.score*`
        //     field, is reused rather than computed again.
        if let Some(stage) = stages::managed::ManagedDetection::new(config, services) {
            pipeline.request(stage);
        }
        // 5. Rate limits: after identity (per-user keys) and after the WAF (blocked attacks
        //    need not spend quota), before anything touches the application.
        if let Some(stage) = stages::rate_limit::RateLimit::new(config, services) {
            pipeline.request(stage);
        }
        // 6. CSRF on unsafe cookie-authenticated methods (and `GET /.palisade/csrf`): needs
        //    the identity, and runs only for requests that would reach the application.
        if let Some(stage) = stages::csrf::CsrfStage::new(services) {
            pipeline.request(stage);
        }
        // 7. Body checks while streaming: `max_body_size` is enforced by `RequestBody` as
        //    bytes pass. Uploads are inspected as they stream (spooled, not held in memory)
        //    and forwarded only once every file passed; last, so refused requests cost no
        //    disk or clamd time.
        if let Some(stage) = stages::upload::Upload::new(config, services) {
            pipeline.request(stage);
        }
        // 8. Forward upstream (`proxy::forward`), identity headers set by palisade only.

        // 9. Response phase, in order. Session directives become cookies (and are stripped)
        //    first, so that the cookie flags stage hardens them too.
        pipeline.response(stages::session_cookies::SessionCookies::new(services));
        // 9a. Security headers and cookie flags on every response, including palisade's own.
        //     The `palisade_csrf` cookie keeps script access: pages read it to send the token.
        let mut headers = config.headers.clone();
        let csrf_cookie = &services.sessions.csrf.settings().cookie_name;
        headers.httponly_exempt_cookies.push(csrf_cookie.clone());
        pipeline.response(stages::security_headers::SecurityHeaders::new(&headers));
        // 9b. Events from status codes (a 401 on the login route is a failed login). Slot.
        pipeline
    }

    fn request(&mut self, stage: impl RequestStage + 'static) {
        self.request.push(Arc::new(stage));
    }

    fn response(&mut self, stage: impl ResponseStage + 'static) {
        self.response.push(Arc::new(stage));
    }

    /// The names of the stages, in order: request phase, then response phase.
    pub fn stage_names(&self) -> Vec<&'static str> {
        let request = self.request.iter().map(|s| s.name());
        request
            .chain(self.response.iter().map(|s| s.name()))
            .collect()
    }

    /// Runs the request phase; `Some` is a stage's answer.
    pub async fn run_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Option<Response<GatewayBody>>, GatewayError> {
        for stage in &self.request {
            if let Verdict::Respond(response) = stage.on_request(request, ctx).await? {
                return Ok(Some(response));
            }
        }
        Ok(None)
    }

    /// Runs the response phase over `response`.
    pub async fn run_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
    ) {
        for stage in &self.response {
            stage.on_response(request, response, ctx).await;
        }
    }
}
