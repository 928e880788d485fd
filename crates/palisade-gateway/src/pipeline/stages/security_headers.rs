//! Stage 9a: the security headers and `Set-Cookie` hardening of `[headers]`, on every
//! response: the upstream's, a stage's answer (429) and palisade's error pages alike.
//!
//! The policy itself (`palisade_policy::headers`) decides values per path prefix; this stage
//! only tells it the path and whether the client's connection is TLS (directly, or behind a
//! trusted TLS-terminating proxy), which gates HSTS and the cookies' `Secure` flag.

use palisade_policy::headers::{HeaderPolicy, HeadersConfig};

use crate::pipeline::{RequestContext, ResponseStage};

/// Put in a response's extensions by a page of palisade's own that brings a narrower
/// `Content-Security-Policy` than the configured one (the challenge page, whose inline
/// script the policy allows by hash): that header is kept, every other header applies.
#[derive(Debug, Clone, Copy)]
pub struct OwnContentSecurityPolicy;

/// The security-headers stage.
#[derive(Debug)]
pub struct SecurityHeaders {
    policy: HeaderPolicy,
}

impl SecurityHeaders {
    /// The stage for `[headers]`, which `Config::from_toml` has already validated.
    pub fn new(config: &HeadersConfig) -> Self {
        let policy = HeaderPolicy::from_config(config)
            .expect("[headers] is validated when the configuration is loaded");
        Self { policy }
    }
}

impl ResponseStage for SecurityHeaders {
    fn name(&self) -> &'static str {
        "security_headers"
    }

    async fn on_response(
        &self,
        request: &http::request::Parts,
        response: &mut http::response::Parts,
        ctx: &mut RequestContext,
    ) {
        let own = response
            .extensions
            .get::<OwnContentSecurityPolicy>()
            .is_some();
        if ctx.own_loop && !own {
            let path = request.uri.path();
            ctx.head_lines = self
                .policy
                .apply_as_lines(&mut response.headers, path, ctx.secure);
            return;
        }
        let own_csp = own
            .then(|| {
                response
                    .headers
                    .remove(http::header::CONTENT_SECURITY_POLICY)
            })
            .flatten();
        self.policy
            .apply(&mut response.headers, request.uri.path(), ctx.secure);
        if let Some(csp) = own_csp {
            response
                .headers
                .insert(http::header::CONTENT_SECURITY_POLICY, csp);
        }
    }
}
