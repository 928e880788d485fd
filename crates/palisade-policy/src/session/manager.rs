//! The session service the gateway calls: once when a request arrives ([`Sessions::resolve`])
//! and once when the upstream's response comes back ([`Sessions::respond`]), plus the admin
//! operations and the sweeper.
//!
//! It owns the order of operations (read the cookie, look up the hash, judge the record,
//! rotate or touch, then apply the upstream's directives) and nothing else: time comes in as
//! `now`, persistence goes through a [`SessionStore`], and HTTP stays in the gateway.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::UnixMillis;

use super::config::SessionSettings;
use super::cookie::{
    SessionCookie, SetCookie, clear_session_cookie, read_session_cookie, session_cookie,
};
use super::directives::{DirectiveError, Directives, Login};
use super::record::{Assessment, SessionRecord, SessionRefusal};
use super::secret::{PublicId, RandomnessError, SecretHash, SessionSecret};
use super::store::{Rotation, SessionStore, SessionStoreError};
use super::user::{Roles, UserId};

/// Why a session operation failed. Either way the gateway answers 503: a request with a
/// cookie is never quietly downgraded to anonymous because a dependency failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] SessionStoreError),
    /// No randomness for a new secret.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// A valid session attached to the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The public id (the `Palisade-Session-Id` upstream header, CSRF binding, logs).
    pub public_id: PublicId,
    /// The user (the `Palisade-User-Id` upstream header).
    pub user_id: UserId,
    /// The roles (the `Palisade-User-Roles` upstream header).
    pub roles: Roles,
    /// Login time.
    pub created_at: UnixMillis,
    current_hash: SecretHash,
}

/// Why a session is being given a new secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationReason {
    /// The secret was older than `rotate_after`.
    Scheduled,
    /// The upstream asked for it (after a privilege change).
    Requested,
}

/// A session cookie that could not be used at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCookie {
    /// Not a well-formed secret (garbage, truncated, oversized).
    Malformed,
    /// Several different session cookies in one request.
    Ambiguous,
}

/// Something that happened to a session; the gateway publishes each as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A login created a session.
    Created {
        /// The new session.
        public_id: PublicId,
        /// Its user.
        user_id: UserId,
    },
    /// A session got a new secret.
    Rotated {
        /// The session.
        public_id: PublicId,
        /// Why.
        reason: RotationReason,
    },
    /// A session ended by logout, or was replaced by a new login in the same browser.
    LoggedOut {
        /// The ended session.
        public_id: PublicId,
    },
    /// A presented session was refused.
    Refused {
        /// Why.
        reason: SessionRefusal,
        /// The session, when the secret named one.
        public_id: Option<PublicId>,
    },
    /// The session cookie was unusable.
    BadCookie(BadCookie),
    /// An upstream directive was refused.
    DirectiveRefused(DirectiveError),
}

impl SessionEvent {
    /// A stable dotted name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "session.created",
            Self::Rotated { .. } => "session.rotated",
            Self::LoggedOut { .. } => "session.logged_out",
            Self::Refused { .. } => "session.refused",
            Self::BadCookie(_) => "session.bad_cookie",
            Self::DirectiveRefused(_) => "session.directive_refused",
        }
    }
}

/// The outcome of the request phase. Keep it with the request and hand it to
/// [`Sessions::respond`] when the upstream answers.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The valid session of this request, if any.
    pub session: Option<ActiveSession>,
    /// What happened, for the event bus.
    pub event: Option<SessionEvent>,
    set_cookie: Option<SetCookie>,
}

/// The outcome of the response phase.
#[derive(Debug, Default)]
pub struct Responded {
    /// The one session `Set-Cookie` to add to the response, if any.
    pub set_cookie: Option<SetCookie>,
    /// The session after this response (a new login's, or the request's if unchanged);
    /// `None` after a logout.
    pub session: Option<ActiveSession>,
    /// Whether a login or logout changed whose session this browser holds (the CSRF cookie
    /// must then be reissued or cleared).
    pub changed: bool,
    /// What happened, for the event bus.
    pub events: Vec<SessionEvent>,
}

/// One session as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The public id.
    pub public_id: PublicId,
    /// The user.
    pub user_id: UserId,
    /// The roles.
    pub roles: Roles,
    /// Login time, ms since the epoch.
    pub created_at: UnixMillis,
    /// Last recorded use, ms since the epoch.
    pub last_seen_at: UnixMillis,
    /// When the current secret was issued, ms since the epoch.
    pub rotated_at: UnixMillis,
    /// When the session ends if unused, ms since the epoch.
    pub expires_at: UnixMillis,
}

/// The session service.
#[derive(Debug, Clone)]
pub struct Sessions {
    settings: SessionSettings,
    store: Arc<dyn SessionStore>,
}

impl Sessions {
    /// A service over `store` with validated settings.
    pub fn new(settings: SessionSettings, store: Arc<dyn SessionStore>) -> Self {
        Self { settings, store }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// The store's short name, for logs.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Whether the store answers, for readiness probes.
    pub async fn store_reachable(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// Request phase: finds the session of the request's `Cookie` headers, rotating or
    /// touching it as due.
    pub async fn resolve<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
        now: UnixMillis,
    ) -> Result<Resolved, SessionError> {
        let secret = match read_session_cookie(cookie_headers, &self.settings) {
            SessionCookie::Absent => return Ok(Resolved::default()),
            SessionCookie::Present(secret) => secret,
            SessionCookie::Malformed => return Ok(self.bad_cookie(BadCookie::Malformed)),
            SessionCookie::Ambiguous => return Ok(self.bad_cookie(BadCookie::Ambiguous)),
        };
        let presented = secret.hash();
        drop(secret);
        let Some(record) = self.store.find_by_secret(&presented).await? else {
            return Ok(self.refused(SessionRefusal::Unknown, None));
        };
        match record.assess(&presented, now, &self.settings.lifetimes) {
            Assessment::Refused(reason) => {
                if reason.session_is_over() {
                    self.store.delete(&record.public_id).await?;
                }
                Ok(self.refused(reason, Some(record.public_id)))
            }
            Assessment::Valid { rotate: true, .. } => {
                self.rotate(&record, RotationReason::Scheduled, now).await
            }
            Assessment::Valid { touch, .. } => {
                if touch {
                    let mut touched = record.clone();
                    touched.last_seen_at = now;
                    let expires_at = touched.expires_at(&self.settings.lifetimes);
                    self.store.touch(&record.public_id, now, expires_at).await?;
                }
                Ok(Resolved {
                    session: Some(active(&record)),
                    ..Default::default()
                })
            }
        }
    }

    /// Response phase: applies the upstream's directives and decides the one session
    /// `Set-Cookie` of the response (a login's, a logout's, or the request phase's rotation).
    pub async fn respond(
        &self,
        resolved: Resolved,
        directives: Directives,
        errors: Vec<DirectiveError>,
        now: UnixMillis,
    ) -> Result<Responded, SessionError> {
        let mut out = Responded {
            events: errors
                .into_iter()
                .map(SessionEvent::DirectiveRefused)
                .collect(),
            ..Default::default()
        };
        let current = resolved.session;
        if let Some(login) = directives.login {
            self.end(current.as_ref(), &mut out).await?;
            return self.login(login, now, out).await;
        }
        if directives.logout {
            self.end(current.as_ref(), &mut out).await?;
            out.set_cookie = Some(clear_session_cookie(&self.settings));
            out.changed = true;
            return Ok(out);
        }
        if let (true, Some(session)) = (directives.rotate, &current) {
            let rotated = self.rotate_active(session, now).await?;
            out.events.extend(rotated.event);
            out.set_cookie = rotated.set_cookie.or(resolved.set_cookie);
            out.session = rotated.session.or(current);
            return Ok(out);
        }
        out.set_cookie = resolved.set_cookie;
        out.session = current;
        Ok(out)
    }

    /// Admin: the live sessions of a user.
    pub async fn sessions_of(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionSummary>, SessionError> {
        let records = self.store.list_by_user(user, now).await?;
        Ok(records.iter().map(|r| self.summary(r)).collect())
    }

    /// Admin: ends one session. False when it did not exist.
    pub async fn revoke(&self, id: &PublicId) -> Result<bool, SessionError> {
        Ok(self.store.delete(id).await?)
    }

    /// Admin: ends every session of a user ("log out everywhere"); returns how many.
    pub async fn revoke_user(&self, user: &UserId) -> Result<u64, SessionError> {
        Ok(self.store.delete_by_user(user).await?)
    }

    /// Deletes expired sessions; returns how many. Call periodically (every minute is
    /// plenty); Redis also expires keys by itself.
    pub async fn sweep(&self, now: UnixMillis) -> Result<u64, SessionError> {
        Ok(self.store.sweep(now).await?)
    }

    async fn login(
        &self,
        login: Login,
        now: UnixMillis,
        mut out: Responded,
    ) -> Result<Responded, SessionError> {
        let secret = SessionSecret::generate()?;
        let public_id = PublicId::generate()?;
        let record = SessionRecord::new(public_id, login.user_id, login.roles, secret.hash(), now);
        let lifetimes = &self.settings.lifetimes;
        self.store
            .create(&record, record.expires_at(lifetimes))
            .await?;
        out.set_cookie = Some(self.cookie(&secret, &record, now));
        out.events.push(SessionEvent::Created {
            public_id,
            user_id: record.user_id.clone(),
        });
        out.session = Some(active(&record));
        out.changed = true;
        Ok(out)
    }

    async fn end(
        &self,
        current: Option<&ActiveSession>,
        out: &mut Responded,
    ) -> Result<(), SessionError> {
        if let Some(session) = current {
            self.store.delete(&session.public_id).await?;
            out.events.push(SessionEvent::LoggedOut {
                public_id: session.public_id,
            });
        }
        Ok(())
    }

    async fn rotate_active(
        &self,
        session: &ActiveSession,
        now: UnixMillis,
    ) -> Result<Resolved, SessionError> {
        let Some(record) = self.store.find_by_secret(&session.current_hash).await? else {
            return Ok(Resolved::default());
        };
        self.rotate(&record, RotationReason::Requested, now).await
    }

    /// Gives `record` a new secret. When another request rotated it first, the session
    /// stays valid for this request (its secret is now in grace) and no cookie is sent: the
    /// other response carries the new one.
    async fn rotate(
        &self,
        record: &SessionRecord,
        reason: RotationReason,
        now: UnixMillis,
    ) -> Result<Resolved, SessionError> {
        let secret = SessionSecret::generate()?;
        let lifetimes = &self.settings.lifetimes;
        let rotated = record.rotated(secret.hash(), now, lifetimes);
        let rotation = Rotation {
            expected_current: record.secret_hash,
            new_hash: rotated.secret_hash,
            at: now,
            previous_valid_until: now.saturating_add(lifetimes.grace_ms),
            expires_at: rotated.expires_at(lifetimes),
        };
        if !self.store.rotate(&record.public_id, &rotation).await? {
            return Ok(Resolved {
                session: Some(active(record)),
                ..Default::default()
            });
        }
        Ok(Resolved {
            session: Some(active(&rotated)),
            event: Some(SessionEvent::Rotated {
                public_id: record.public_id,
                reason,
            }),
            set_cookie: Some(self.cookie(&secret, &rotated, now)),
        })
    }

    fn cookie(&self, secret: &SessionSecret, record: &SessionRecord, now: UnixMillis) -> SetCookie {
        let remaining_ms = record
            .absolute_end(&self.settings.lifetimes)
            .saturating_sub(now);
        session_cookie(&self.settings, secret, remaining_ms.div_ceil(1000))
    }

    fn refused(&self, reason: SessionRefusal, public_id: Option<PublicId>) -> Resolved {
        Resolved {
            session: None,
            event: Some(SessionEvent::Refused { reason, public_id }),
            set_cookie: Some(clear_session_cookie(&self.settings)),
        }
    }

    fn bad_cookie(&self, kind: BadCookie) -> Resolved {
        Resolved {
            session: None,
            event: Some(SessionEvent::BadCookie(kind)),
            set_cookie: Some(clear_session_cookie(&self.settings)),
        }
    }

    fn summary(&self, r: &SessionRecord) -> SessionSummary {
        SessionSummary {
            public_id: r.public_id,
            user_id: r.user_id.clone(),
            roles: r.roles.clone(),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            rotated_at: r.rotated_at,
            expires_at: r.expires_at(&self.settings.lifetimes),
        }
    }
}

impl Resolved {
    /// The `Set-Cookie` the request phase decided on (a rotation's new secret, or clearing
    /// an unusable cookie). [`Sessions::respond`] folds it into its answer; read it here only
    /// when the request never reaches the upstream (a refusal by palisade itself).
    pub fn pending_cookie(&self) -> Option<&SetCookie> {
        self.set_cookie.as_ref()
    }
}

fn active(record: &SessionRecord) -> ActiveSession {
    ActiveSession {
        public_id: record.public_id,
        user_id: record.user_id.clone(),
        roles: record.roles.clone(),
        created_at: record.created_at,
        current_hash: record.secret_hash,
    }
}
