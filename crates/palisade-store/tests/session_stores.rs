//! One behaviour suite for every session store: memory, SQLite (a real file) and Redis (the
//! server on 127.0.0.1:6379, under a unique key prefix per test; start it with
//! `scripts/services up`). Time is injected: each case moves `now` by hand, nothing sleeps.

mod support;

use std::sync::Arc;

use palisade_policy::session::PublicId;
use palisade_policy::session::directives::Login;
use palisade_policy::session::manager::{BadCookie, RotationReason};
use palisade_policy::session::record::SessionRefusal;
use palisade_policy::session::store::Rotation;
use palisade_policy::session::{
    Directives, Resolved, Roles, SessionEvent, SessionRecord, SessionSecret, SessionSettings,
    SessionStore, Sessions, UserId,
};

use support::Harness;

const T0: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn service(store: Arc<dyn SessionStore>) -> Sessions {
    Sessions::new(SessionSettings::defaults(), store)
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid user id")
}

/// Logs `name` in at `now`; returns the `Cookie` header value that carries the session.
async fn login(sessions: &Sessions, name: &str, now: u64) -> (String, PublicId) {
    let login = Login {
        user_id: user(name),
        roles: Roles::parse_list("member").expect("roles"),
    };
    let directives = Directives {
        login: Some(login),
        ..Default::default()
    };
    let done = sessions
        .respond(Resolved::default(), directives, Vec::new(), now)
        .await
        .expect("login");
    let cookie = done.set_cookie.expect("login sets a cookie");
    let id = done.session.expect("login yields a session").public_id;
    (cookie_pair(cookie.as_str()), id)
}

/// `name=value` from a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

async fn resolve(sessions: &Sessions, cookie: &str, now: u64) -> Resolved {
    sessions
        .resolve([cookie.as_bytes()], now)
        .await
        .expect("store answers")
}

fn refusal(resolved: &Resolved) -> Option<SessionRefusal> {
    match resolved.event {
        Some(SessionEvent::Refused { reason, .. }) => Some(reason),
        _ => None,
    }
}

mod cases {
    use super::*;

    pub async fn a_login_cookie_opens_its_session(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (cookie, id) = login(&sessions, "alice", T0).await;
        let resolved = resolve(&sessions, &cookie, T0 + MINUTE).await;
        let session = resolved.session.clone().expect("valid session");
        assert_eq!(session.public_id, id);
        assert_eq!(session.user_id.as_str(), "alice");
        assert_eq!(session.roles.to_header_value(), "member");
        assert!(
            resolved.pending_cookie().is_none(),
            "no cookie change within a day"
        );
    }

    pub async fn an_unknown_secret_is_refused_and_its_cookie_cleared(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let stranger = SessionSecret::from_bytes([42; 32]).encode();
        let cookie = format!("__Host-palisade_session={}", &*stranger);
        let resolved = resolve(&sessions, &cookie, T0).await;
        assert!(resolved.session.is_none());
        assert_eq!(refusal(&resolved), Some(SessionRefusal::Unknown));
        let clear = resolved
            .pending_cookie()
            .expect("clears the cookie")
            .as_str()
            .to_owned();
        assert!(clear.contains("Max-Age=0"), "{clear}");
    }

    pub async fn a_session_unused_for_the_idle_timeout_ends(store: Arc<dyn SessionStore>) {
        let sessions = service(Arc::clone(&store));
        let (cookie, id) = login(&sessions, "alice", T0).await;
        let used = resolve(&sessions, &cookie, T0 + 7 * DAY - 1).await;
        assert!(used.session.is_some());
        // That use counted (and rotated the day-old secret): the idle clock restarted.
        let cookie = cookie_pair(used.pending_cookie().expect("rotated").as_str());
        assert!(
            resolve(&sessions, &cookie, T0 + 14 * DAY - 2)
                .await
                .session
                .is_some()
        );
        let late = resolve(&sessions, &cookie, T0 + 21 * DAY).await;
        assert_eq!(refusal(&late), Some(SessionRefusal::IdleExpired));
        assert!(
            !sessions.revoke(&id).await.expect("store answers"),
            "deleted on expiry"
        );
    }

    pub async fn a_session_ends_at_the_absolute_timeout_however_often_used(
        store: Arc<dyn SessionStore>,
    ) {
        let sessions = service(store);
        let (mut cookie, _) = login(&sessions, "alice", T0).await;
        for day in 1..30 {
            let resolved = resolve(&sessions, &cookie, T0 + day * DAY).await;
            assert!(resolved.session.is_some(), "day {day}");
            if let Some(set) = resolved.pending_cookie() {
                cookie = cookie_pair(set.as_str());
            }
        }
        let end = resolve(&sessions, &cookie, T0 + 30 * DAY).await;
        assert_eq!(refusal(&end), Some(SessionRefusal::AbsoluteExpired));
    }

    pub async fn a_day_old_secret_is_rotated_and_the_old_one_works_only_during_grace(
        store: Arc<dyn SessionStore>,
    ) {
        let sessions = service(store);
        let (old, id) = login(&sessions, "alice", T0).await;
        let at = T0 + DAY;
        let rotated = resolve(&sessions, &old, at).await;
        let event = SessionEvent::Rotated {
            public_id: id,
            reason: RotationReason::Scheduled,
        };
        assert_eq!(rotated.event, Some(event));
        let set = rotated
            .pending_cookie()
            .expect("new cookie")
            .as_str()
            .to_owned();
        assert!(set.contains("Secure; HttpOnly; SameSite=Lax"), "{set}");
        assert!(
            set.contains(&format!("Max-Age={}", 29 * DAY / 1000)),
            "{set}"
        );
        let new = cookie_pair(&set);
        assert_ne!(new, old);

        let parallel = resolve(&sessions, &old, at + 59_999).await;
        assert_eq!(parallel.session.as_ref().map(|s| s.public_id), Some(id));
        assert!(parallel.pending_cookie().is_none(), "no second rotation");
        let replay = resolve(&sessions, &old, at + MINUTE).await;
        assert_eq!(refusal(&replay), Some(SessionRefusal::RotatedOut));
        assert!(
            resolve(&sessions, &new, at + MINUTE)
                .await
                .session
                .is_some()
        );
    }

    pub async fn two_requests_racing_to_rotate_produce_one_new_secret(
        store: Arc<dyn SessionStore>,
    ) {
        let sessions = service(store);
        let (old, _) = login(&sessions, "alice", T0).await;
        let at = T0 + DAY;
        let (a, b) = tokio::join!(resolve(&sessions, &old, at), resolve(&sessions, &old, at));
        let cookies = [a.pending_cookie(), b.pending_cookie()];
        assert_eq!(
            cookies.iter().flatten().count(),
            1,
            "exactly one rotation wins"
        );
        assert!(
            a.session.is_some() && b.session.is_some(),
            "both requests proceed"
        );
    }

    pub async fn logout_ends_the_session_and_clears_the_cookie(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (cookie, id) = login(&sessions, "alice", T0).await;
        let resolved = resolve(&sessions, &cookie, T0 + 1).await;
        let logout = Directives {
            logout: true,
            ..Default::default()
        };
        let done = sessions
            .respond(resolved, logout, Vec::new(), T0 + 1)
            .await
            .expect("logout");
        assert!(done.changed && done.session.is_none());
        assert_eq!(done.events, vec![SessionEvent::LoggedOut { public_id: id }]);
        let clear = done.set_cookie.expect("clearing cookie");
        assert!(
            clear
                .as_str()
                .starts_with("__Host-palisade_session=; Path=/; Max-Age=0")
        );
        let after = resolve(&sessions, &cookie, T0 + 2).await;
        assert_eq!(refusal(&after), Some(SessionRefusal::Unknown));
    }

    pub async fn a_rotate_directive_issues_a_new_secret_now(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (old, id) = login(&sessions, "alice", T0).await;
        let resolved = resolve(&sessions, &old, T0 + HOUR).await;
        let rotate = Directives {
            rotate: true,
            ..Default::default()
        };
        let done = sessions
            .respond(resolved, rotate, Vec::new(), T0 + HOUR)
            .await
            .expect("rotate");
        let event = SessionEvent::Rotated {
            public_id: id,
            reason: RotationReason::Requested,
        };
        assert_eq!(done.events, vec![event]);
        let new = cookie_pair(done.set_cookie.expect("new cookie").as_str());
        assert!(
            resolve(&sessions, &new, T0 + HOUR + 1)
                .await
                .session
                .is_some()
        );
        let stale = resolve(&sessions, &old, T0 + HOUR + MINUTE).await;
        assert_eq!(refusal(&stale), Some(SessionRefusal::RotatedOut));
    }

    pub async fn a_login_replaces_the_session_the_browser_already_had(
        store: Arc<dyn SessionStore>,
    ) {
        let sessions = service(store);
        let (first, first_id) = login(&sessions, "alice", T0).await;
        let resolved = resolve(&sessions, &first, T0 + 1).await;
        let login = Login {
            user_id: user("bob"),
            roles: Roles::none(),
        };
        let directives = Directives {
            login: Some(login),
            ..Default::default()
        };
        let done = sessions
            .respond(resolved, directives, Vec::new(), T0 + 1)
            .await
            .expect("login");
        assert_eq!(
            done.events[0],
            SessionEvent::LoggedOut {
                public_id: first_id
            }
        );
        assert!(matches!(done.events[1], SessionEvent::Created { .. }));
        let gone = resolve(&sessions, &first, T0 + 2).await;
        assert_eq!(refusal(&gone), Some(SessionRefusal::Unknown));
        let second = cookie_pair(done.set_cookie.expect("cookie").as_str());
        let now_bob = resolve(&sessions, &second, T0 + 2)
            .await
            .session
            .expect("bob's session");
        assert_eq!(now_bob.user_id.as_str(), "bob");
    }

    pub async fn admins_list_and_revoke_sessions_per_user(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (a1, a1_id) = login(&sessions, "alice", T0).await;
        let (a2, a2_id) = login(&sessions, "alice", T0 + 1).await;
        let (b, _) = login(&sessions, "bob", T0 + 2).await;

        let listed = sessions
            .sessions_of(&user("alice"), T0 + 3)
            .await
            .expect("list");
        let ids: Vec<PublicId> = listed.iter().map(|s| s.public_id).collect();
        assert_eq!(ids, vec![a1_id, a2_id]);
        assert_eq!(listed[0].expires_at, T0 + 7 * DAY);

        assert!(sessions.revoke(&a1_id).await.expect("revoke"));
        assert!(!sessions.revoke(&a1_id).await.expect("revoke again"));
        assert!(resolve(&sessions, &a1, T0 + 4).await.session.is_none());
        assert!(resolve(&sessions, &a2, T0 + 4).await.session.is_some());

        assert_eq!(
            sessions
                .revoke_user(&user("alice"))
                .await
                .expect("revoke all"),
            1
        );
        assert!(resolve(&sessions, &a2, T0 + 5).await.session.is_none());
        assert!(
            resolve(&sessions, &b, T0 + 5).await.session.is_some(),
            "bob untouched"
        );
        assert!(
            sessions
                .sessions_of(&user("alice"), T0 + 5)
                .await
                .expect("list")
                .is_empty()
        );
    }

    pub async fn sweeping_removes_exactly_the_expired_sessions(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (_, old_id) = login(&sessions, "alice", T0).await;
        let (fresh, fresh_id) = login(&sessions, "alice", T0 + 3 * DAY).await;
        assert_eq!(sessions.sweep(T0 + 7 * DAY).await.expect("sweep"), 1);
        assert!(
            !sessions.revoke(&old_id).await.expect("revoke"),
            "already swept"
        );
        let listed = sessions
            .sessions_of(&user("alice"), T0 + 7 * DAY)
            .await
            .expect("list");
        assert_eq!(
            listed.iter().map(|s| s.public_id).collect::<Vec<_>>(),
            vec![fresh_id]
        );
        assert!(
            resolve(&sessions, &fresh, T0 + 7 * DAY)
                .await
                .session
                .is_some()
        );
        assert_eq!(sessions.sweep(T0 + 7 * DAY).await.expect("sweep"), 0);
    }

    pub async fn garbled_or_duplicated_cookies_never_open_a_session(store: Arc<dyn SessionStore>) {
        let sessions = service(store);
        let (alice, _) = login(&sessions, "alice", T0).await;
        let (bob, _) = login(&sessions, "bob", T0).await;
        let both = format!("{alice}; {bob}");
        let mixed = resolve(&sessions, &both, T0 + 1).await;
        assert!(
            mixed.session.is_none(),
            "two sessions in one request: neither is used"
        );
        assert_eq!(
            mixed.event,
            Some(SessionEvent::BadCookie(BadCookie::Ambiguous))
        );
        let same_twice = format!("{alice}; {alice}");
        assert!(
            resolve(&sessions, &same_twice, T0 + 1)
                .await
                .session
                .is_some()
        );
        for garbage in [
            "__Host-palisade_session=%00%ff",
            "__Host-palisade_session=\"",
            ";;;=;",
        ] {
            let resolved = resolve(&sessions, garbage, T0 + 1).await;
            assert!(resolved.session.is_none(), "{garbage}");
        }
        let long = format!("__Host-palisade_session={}", "A".repeat(10_000));
        let oversized = resolve(&sessions, &long, T0 + 1).await;
        assert_eq!(
            oversized.event,
            Some(SessionEvent::BadCookie(BadCookie::Malformed))
        );
    }

    pub async fn a_refused_login_directive_is_an_event_and_not_a_session(
        store: Arc<dyn SessionStore>,
    ) {
        let sessions = service(store);
        let names = sessions.settings().headers.clone();
        let headers = [
            ("Palisade-Session-Login", &b""[..]),
            ("Palisade-Session-Roles", b"x"),
        ];
        let (directives, errors) = Directives::from_headers(&names, headers);
        let done = sessions
            .respond(Resolved::default(), directives, errors, T0)
            .await
            .expect("respond");
        assert!(done.set_cookie.is_none() && done.session.is_none() && !done.changed);
        assert!(matches!(
            done.events[..],
            [SessionEvent::DirectiveRefused(_)]
        ));
        assert!(
            sessions
                .sessions_of(&user("x"), T0)
                .await
                .expect("list")
                .is_empty()
        );
    }

    pub async fn rotation_is_a_compare_and_swap(store: Arc<dyn SessionStore>) {
        let secret = SessionSecret::from_bytes([1; 32]).hash();
        let id = PublicId::from_bytes([7; 16]);
        let record = SessionRecord::new(id, user("carol"), Roles::none(), secret, T0);
        store.create(&record, T0 + DAY).await.expect("create");
        let new = SessionSecret::from_bytes([2; 32]).hash();
        let stale = Rotation {
            expected_current: new,
            new_hash: SessionSecret::from_bytes([3; 32]).hash(),
            at: T0 + 1,
            previous_valid_until: T0 + 1 + MINUTE,
            expires_at: T0 + DAY,
        };
        assert!(
            !store.rotate(&id, &stale).await.expect("rotate"),
            "wrong expected hash"
        );
        let good = Rotation {
            expected_current: secret,
            new_hash: new,
            ..stale
        };
        assert!(store.rotate(&id, &good).await.expect("rotate"));
        let by_old = store
            .find_by_secret(&secret)
            .await
            .expect("find")
            .expect("grace");
        assert_eq!(by_old.secret_hash, new);
        assert_eq!(
            by_old.previous.map(|p| p.valid_until),
            Some(T0 + 1 + MINUTE)
        );
        assert_eq!(
            store.find_by_secret(&new).await.expect("find"),
            Some(by_old)
        );
        assert!(
            !store
                .touch(&PublicId::from_bytes([8; 16]), T0, T0 + DAY)
                .await
                .expect("touch")
        );
        store.delete(&id).await.expect("delete");
        assert_eq!(store.find_by_secret(&new).await.expect("find"), None);
        assert_eq!(store.find_by_secret(&secret).await.expect("find"), None);
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                let harness = super::Harness::memory();
                super::cases::$case(harness.store()).await;
                harness.finish().await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let harness = super::Harness::sqlite(stringify!($case));
                super::cases::$case(harness.store()).await;
                harness.finish().await;
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $case() {
                let harness = super::Harness::redis(stringify!($case)).await;
                super::cases::$case(harness.store()).await;
                harness.finish().await;
            })*
        }
    };
}

suite!(
    a_login_cookie_opens_its_session,
    an_unknown_secret_is_refused_and_its_cookie_cleared,
    a_session_unused_for_the_idle_timeout_ends,
    a_session_ends_at_the_absolute_timeout_however_often_used,
    a_day_old_secret_is_rotated_and_the_old_one_works_only_during_grace,
    two_requests_racing_to_rotate_produce_one_new_secret,
    logout_ends_the_session_and_clears_the_cookie,
    a_rotate_directive_issues_a_new_secret_now,
    a_login_replaces_the_session_the_browser_already_had,
    admins_list_and_revoke_sessions_per_user,
    sweeping_removes_exactly_the_expired_sessions,
    rotation_is_a_compare_and_swap,
    garbled_or_duplicated_cookies_never_open_a_session,
    a_refused_login_directive_is_an_event_and_not_a_session,
);
