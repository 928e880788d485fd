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

use std::time::{Duration, Instant};

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
///
/// Stages are called through [`AnyRequestStage`], an enum of every stage type, rather than
/// as trait objects: a trait object's `async fn` needs its future boxed, an allocation per
/// stage per request, where the enum's future holds the stage's future inline.
pub trait RequestStage: Send + Sync + std::fmt::Debug {
    /// A short stable name for logs and events (`rate_limit`).
    fn name(&self) -> &'static str;

    /// Looks at (and may edit) the request and context, and decides.
    fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Result<Verdict, GatewayError>> + Send;
}

/// A step of the response phase: edits the response head before it goes to the client.
pub trait ResponseStage: Send + Sync + std::fmt::Debug {
    /// A short stable name for logs.
    fn name(&self) -> &'static str;

    /// Edits the response head; `request` is the request's head as the upstream saw it.
    fn on_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = ()> + Send;
}

/// Declares an enum of stage types, one variant each, with `From` each stage type (what
/// [`Pipeline::build`] pushes), the stage's name, and `$method` calling the stage's with
/// `$args` (the names of `$params`; `self` is passed in as `$this` for macro hygiene).
macro_rules! stage_enum {
    (
        $(#[$doc:meta])*
        $enum:ident: $method:ident(&$this:tt, $($params:tt)*) $args:tt -> $out:ty {
            $($variant:ident($stage:ty),)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        #[allow(missing_docs)]
        // A handful of stages per configuration, built once: their size is no matter, and
        // a box would cost a pointer chase per request.
        #[allow(clippy::large_enum_variant)]
        pub enum $enum {
            $($variant($stage),)*
        }

        $(
            impl From<$stage> for $enum {
                fn from(stage: $stage) -> Self {
                    Self::$variant(stage)
                }
            }
        )*

        impl $enum {
            /// The stage's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(stage) => stage.name(),)*
                }
            }

            async fn $method(&$this, $($params)*) -> $out {
                match $this {
                    $(Self::$variant(stage) => stage.$method $args .await,)*
                }
            }
        }
    };
}

stage_enum!(
    /// Every request-phase stage type.
    AnyRequestStage: on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext
    ) (request, ctx) -> Result<Verdict, GatewayError> {
        Conformance(stages::conformance::Conformance),
        ClientIp(stages::client_ip::ClientIp),
        Identity(stages::identity::IdentityStage),
        Waf(stages::waf::Waf),
        Managed(stages::managed::ManagedDetection),
        RateLimit(stages::rate_limit::RateLimit),
        Csrf(stages::csrf::CsrfStage),
        Upload(stages::upload::Upload),
    }
);

stage_enum!(
    /// Every response-phase stage type.
    AnyResponseStage: on_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext
    ) (request, response, ctx) -> () {
        SessionCookies(stages::session_cookies::SessionCookies),
        SecurityHeaders(stages::security_headers::SecurityHeaders),
    }
);

/// The ordered stages for one configuration.
#[derive(Debug, Default)]
pub struct Pipeline {
    request: Vec<AnyRequestStage>,
    response: Vec<AnyResponseStage>,
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

    fn request(&mut self, stage: impl Into<AnyRequestStage>) {
        self.request.push(stage.into());
    }

    fn response(&mut self, stage: impl Into<AnyResponseStage>) {
        self.response.push(stage.into());
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
        self.run_request_with(request, ctx, None).await
    }

    /// Runs the request phase as [`Pipeline::run_request`] does, adding the time each stage
    /// took to `spent` (one slot per request stage, in order). For the per-stage cost
    /// measurement (`examples/pipeline_cost.rs`), not for serving.
    #[doc(hidden)]
    pub async fn run_request_timed(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
        spent: &mut [Duration],
    ) -> Result<Option<Response<GatewayBody>>, GatewayError> {
        self.run_request_with(request, ctx, Some(spent)).await
    }

    async fn run_request_with(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
        mut spent: Option<&mut [Duration]>,
    ) -> Result<Option<Response<GatewayBody>>, GatewayError> {
        for (i, stage) in self.request.iter().enumerate() {
            let start = spent.is_some().then(Instant::now);
            let verdict = stage.on_request(request, ctx).await;
            if let (Some(spent), Some(start)) = (spent.as_deref_mut(), start) {
                spent[i] += start.elapsed();
            }
            if let Verdict::Respond(response) = verdict? {
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
        self.run_response_with(request, response, ctx, None).await;
    }

    /// Runs the response phase as [`Pipeline::run_response`] does, timing each stage into
    /// `spent` (one slot per response stage). For `examples/pipeline_cost.rs`.
    #[doc(hidden)]
    pub async fn run_response_timed(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
        spent: &mut [Duration],
    ) {
        self.run_response_with(request, response, ctx, Some(spent))
            .await;
    }

    async fn run_response_with(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
        mut spent: Option<&mut [Duration]>,
    ) {
        for (i, stage) in self.response.iter().enumerate() {
            let start = spent.is_some().then(Instant::now);
            stage.on_response(request, response, ctx).await;
            if let (Some(spent), Some(start)) = (spent.as_deref_mut(), start) {
                spent[i] += start.elapsed();
            }
        }
    }

    /// The number of request-phase stages (the rest of [`Pipeline::stage_names`] are the
    /// response phase's).
    pub fn request_stage_count(&self) -> usize {
        self.request.len()
    }
}
