//! The session stages with an injected clock: rotation, grace, idle and absolute expiry as
//! the gateway wires them (the lifetimes themselves are tested in `palisade-policy`).

use std::sync::Arc;

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response};
use palisade_policy::clock::ManualClock;

use crate::body::RequestBody;
use crate::pipeline::stages::identity::IdentityStage;
use crate::pipeline::stages::session_cookies::SessionCookies;
use crate::pipeline::{GatewayRequest, RequestContext, RequestStage, ResponseStage};
use crate::services::Services;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;
const NAME: &str = "__Host-palisade_session";

struct Gateway {
    clock: Arc<ManualClock>,
    services: Services,
    identity: IdentityStage,
    cookies: SessionCookies,
}

/// What one exchange showed: the user the upstream saw, the new session secret if any
/// (empty when cleared).
struct Seen {
    user: Option<String>,
    secret: Option<String>,
}

impl Gateway {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let services = Services::in_memory(clock.clone());
        Self {
            identity: IdentityStage::new(&services),
            cookies: SessionCookies::new(&services),
            clock,
            services,
        }
    }

    /// One request with the session `secret`, answered with the `directives` headers.
    async fn exchange(&self, secret: Option<&str>, directives: &[(&str, &str)]) -> Seen {
        let head = || {
            let mut request = Request::get("/").body(()).expect("request");
            if let Some(secret) = secret {
                let cookie = HeaderValue::from_str(&format!("{NAME}={secret}")).expect("ascii");
                request.headers_mut().insert(COOKIE, cookie);
            }
            request.into_parts().0
        };
        let peer = "192.0.2.7:4000".parse().expect("addr");
        let mut ctx = RequestContext::new(peer, true, self.services.events.clone());
        let mut request = GatewayRequest {
            head: head(),
            body: RequestBody::empty(),
        };
        self.identity
            .on_request(&mut request, &mut ctx)
            .await
            .expect("the memory store answers");
        let user = ctx.identity.as_ref().map(|i| i.user.clone());

        let mut response = Response::new(()).into_parts().0;
        for (name, value) in directives {
            let value = HeaderValue::from_str(value).expect("ascii");
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
            response.headers.insert(name, value);
        }
        self.cookies
            .on_response(&head(), &mut response, &mut ctx)
            .await;
        let secret = response.headers.get_all(SET_COOKIE).iter().find_map(|v| {
            let pair = v.to_str().ok()?.split(';').next()?;
            pair.strip_prefix(&format!("{NAME}=")).map(str::to_string)
        });
        Seen { user, secret }
    }

    fn events(&self, name: &str) -> u64 {
        self.services.metrics.events.value(&[name])
    }
}

#[tokio::test]
async fn sessions_rotate_daily_keep_a_grace_and_expire_after_a_week_idle() {
    let gateway = Gateway::new();
    let login = gateway
        .exchange(None, &[("palisade-session-login", "alice")])
        .await;
    let first = login.secret.expect("session cookie");

    gateway.clock.advance(23 * HOUR);
    let early = gateway.exchange(Some(&first), &[]).await;
    assert_eq!(early.user.as_deref(), Some("alice"));
    assert_eq!(early.secret, None, "not due for rotation yet");

    gateway.clock.advance(2 * HOUR);
    let rotated = gateway.exchange(Some(&first), &[]).await;
    assert_eq!(rotated.user.as_deref(), Some("alice"));
    let second = rotated.secret.expect("a new secret after 24h");
    assert_ne!(second, first);
    assert_eq!(gateway.events("session.rotated"), 1);

    let parallel = gateway.exchange(Some(&first), &[]).await;
    assert_eq!(
        parallel.user.as_deref(),
        Some("alice"),
        "the old secret within its grace"
    );
    gateway.clock.advance(61_000);
    let replayed = gateway.exchange(Some(&first), &[]).await;
    assert_eq!(replayed.user, None, "the old secret after its grace");
    assert_eq!(
        replayed.secret.as_deref(),
        Some(""),
        "and the browser is told to drop it"
    );
    assert_eq!(gateway.events("session.refused"), 1);

    assert_eq!(
        gateway.exchange(Some(&second), &[]).await.user.as_deref(),
        Some("alice")
    );
    gateway.clock.advance(7 * DAY + 1);
    assert_eq!(gateway.exchange(Some(&second), &[]).await.user, None);
    assert_eq!(gateway.events("session.expired"), 1);
}

#[tokio::test]
async fn a_session_in_daily_use_still_ends_after_thirty_days() {
    let gateway = Gateway::new();
    let login = gateway
        .exchange(None, &[("palisade-session-login", "bob")])
        .await;
    let mut secret = login.secret.expect("session cookie");
    for _ in 0..29 {
        gateway.clock.advance(DAY + 1);
        let seen = gateway.exchange(Some(&secret), &[]).await;
        assert_eq!(seen.user.as_deref(), Some("bob"));
        secret = seen.secret.unwrap_or(secret);
    }
    gateway.clock.advance(DAY);
    let ended = gateway.exchange(Some(&secret), &[]).await;
    assert_eq!(ended.user, None);
    assert_eq!(gateway.events("session.expired"), 1);
}

#[tokio::test]
async fn a_requested_rotation_and_a_logout_take_effect_at_once() {
    let gateway = Gateway::new();
    let login = gateway
        .exchange(None, &[("palisade-session-login", "carol")])
        .await;
    let first = login.secret.expect("session cookie");
    let rotated = gateway
        .exchange(Some(&first), &[("palisade-session-rotate", "1")])
        .await;
    let second = rotated.secret.expect("rotated now");
    assert_ne!(second, first);
    let logout = gateway
        .exchange(Some(&second), &[("palisade-session-logout", "true")])
        .await;
    assert_eq!(logout.secret.as_deref(), Some(""));
    assert_eq!(gateway.exchange(Some(&second), &[]).await.user, None);
    assert_eq!(gateway.events("session.logged_out"), 1);
}

#[test]
fn session_events_carry_ids_and_reasons_but_no_secrets() {
    use palisade_policy::session::{PublicId, SessionEvent, SessionRefusal, UserId};

    let request = crate::events::RequestInfo {
        id: crate::pipeline::RequestId::new(1, 1),
        client_ip: "192.0.2.1".parse().expect("ip"),
        method: http::Method::GET,
        path: "/".into(),
        user_id: None,
    };
    let created = SessionEvent::Created {
        public_id: PublicId::from_bytes([0xab; 16]),
        user_id: UserId::parse("alice").expect("user"),
    };
    let json = super::session_event(&created, Some(request.clone())).to_json();
    assert_eq!(json["event"], "session.created");
    assert_eq!(json["session.id"], "ab".repeat(16));
    assert_eq!(json["user.id"], "alice");
    assert_eq!(json["url.path"], "/");

    let expired = SessionEvent::Refused {
        reason: SessionRefusal::AbsoluteExpired,
        public_id: None,
    };
    let json = super::session_event(&expired, Some(request)).to_json();
    assert_eq!(json["event"], "session.expired");
    assert_eq!(json["reason"], "absolute_expired");

    let revoked = crate::events::Event::SessionsRevoked {
        session_id: None,
        user_id: Some("bob".into()),
        count: 3,
    };
    let json = revoked.to_json();
    assert_eq!(json["event"], "session.revoked");
    assert_eq!(json["user.id"], "bob");
    assert_eq!(json["session.count"], 3);
}
