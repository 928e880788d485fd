//! Stage 1: the real client address, and whether the client's own connection is TLS.
//!
//! Every later decision (bans, geo, rate-limit keys, logs) uses `ctx.client_ip`; it is set
//! here and nowhere else. A trusted proxy's `X-Forwarded-Proto: https` also marks the
//! request secure, so cookies get `Secure` behind a TLS-terminating load balancer.
//!
//! Here too, before any stage reads the request, go the headers a client may not write
//! ([`crate::forwarding::strip_client_claims`]): path overrides (`X-Original-URL`), method
//! overrides on safe methods, and, unless the peer is a trusted proxy, the headers proxies
//! use to speak for clients (`X-Real-IP`, `True-Client-IP`, `X-Forwarded-Prefix`, ...).

use crate::client_ip::ClientIpResolver;
use crate::config::ServerConfig;
use crate::error::GatewayError;
use crate::pipeline::{GatewayRequest, RequestContext, RequestStage, Verdict};

/// The client-IP stage.
#[derive(Debug)]
pub struct ClientIp {
    resolver: ClientIpResolver,
}

impl ClientIp {
    /// The stage with the server's trusted proxies.
    pub fn new(server: &ServerConfig) -> Self {
        Self {
            resolver: ClientIpResolver::new(
                server.trusted_proxies.clone(),
                server.client_ip_header.clone(),
            ),
        }
    }
}

impl RequestStage for ClientIp {
    fn name(&self) -> &'static str {
        "client_ip"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        let peer = crate::client_ip::canonical(ctx.peer.ip());
        ctx.peer_trusted = self.resolver.is_trusted(peer);
        ctx.client_ip = self.resolver.resolve(peer, &request.head.headers);
        let head = &mut request.head;
        let removed = crate::forwarding::strip_client_claims(
            &mut head.headers,
            &head.method,
            ctx.peer_trusted,
        );
        if !removed.is_empty() {
            // A client's doing: debug, so that it cannot flood the log.
            tracing::debug!(request.id = %ctx.id, headers.removed = ?removed,
                            "client-sent override and proxy headers removed");
        }
        if ctx.peer_trusted {
            let proto = request
                .head
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok());
            // The first item of a list (`https, http`), the one passed on upstream.
            let first = proto.map(crate::forwarding::first_item);
            if first.is_some_and(|p| p.eq_ignore_ascii_case("https")) {
                ctx.secure = true;
            }
        }
        Ok(Verdict::Continue)
    }
}
