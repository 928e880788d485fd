//! Sessions, CSRF and identity as gateway services: the session store chosen by
//! `[session] store`, the CSRF signing key, the JWT verifier, the sweeper task, and the
//! per-request state the pipeline stages hand each other.
//!
//! Built once at start-up (they survive configuration reloads, like the other stores).
//! This is the only place that reads their key material: the CSRF secret from
//! `[csrf] secret_file` or `PALISADE_CSRF_SECRET`, the JWT secret from the variable
//! `[identity.jwt] secret_env` names, JWKS from `[identity.jwt] jwks_file`. Keys never reach
//! a log line; what is weakened (insecure cookies, a generated CSRF secret) is a warning.
//!
//! The stages that use them: `pipeline::stages::identity` (slot 3), `csrf` (slot 6) and
//! `session_cookies` (slot 9); the admin routes are in [`admin`].

pub mod admin;
mod store;

use std::sync::{Arc, Weak};
use std::time::Duration;

use palisade_policy::clock::Clock;
use palisade_policy::csrf::{CSRF_SECRET_ENV, Csrf, CsrfKey};
use palisade_policy::identity::{Identity, IdentitySource, JwtVerifier, KeySet, KeySource};
use palisade_policy::session::manager::{BadCookie, RotationReason};
use palisade_policy::session::{Resolved, SessionEvent, SessionRefusal, Sessions};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::events::{Event, RequestInfo, SessionInfo};
use crate::metrics::Metrics;
use crate::services::ServicesError;

/// How often expired sessions are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The session, CSRF and identity services.
#[derive(Debug)]
pub struct SessionService {
    /// The session lifecycle over the configured store.
    pub sessions: Sessions,
    /// CSRF tokens and checks (with the key, whatever `[csrf] enabled` says).
    pub csrf: Csrf,
    /// The JWT verifier, when `[identity.jwt]` is set.
    pub jwt: Option<JwtVerifier>,
}

impl SessionService {
    /// Opens the store, reads the keys, and starts the sweeper.
    pub async fn start(
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ServicesError> {
        let session = &config.session;
        if session.settings.insecure_cookies {
            warn!(
                "[session] insecure_cookies = true: session and CSRF cookies are sent without \
                 Secure and the __Host- prefix; use this only for development over plain HTTP"
            );
        }
        let store = store::open(config).await?;
        let csrf = Csrf::new(config.csrf.settings_for(session), csrf_key(config)?);
        let jwt = match &config.identity.jwt {
            Some(settings) => Some(JwtVerifier::new(
                settings.clone(),
                jwt_keys(&settings.keys)?,
            )),
            None => None,
        };
        let service = Arc::new(Self {
            sessions: Sessions::new(session.settings.clone(), store),
            csrf,
            jwt,
        });
        info!(
            session.store = service.sessions.backend(),
            csrf.enabled = service.csrf.settings().enabled,
            identity.jwt = service.jwt.is_some(),
            "sessions ready"
        );
        tokio::spawn(sweep(Arc::downgrade(&service), clock, metrics));
        Ok(service)
    }

    /// Services for tests and tools: memory store, default settings, a random CSRF key.
    pub fn in_memory() -> Arc<Self> {
        let config = Config::default();
        let store = Arc::new(palisade_store::session::MemorySessionStore::new());
        let key = CsrfKey::generate().expect("the operating system provides randomness");
        Arc::new(Self {
            sessions: Sessions::new(config.session.settings.clone(), store),
            csrf: Csrf::new(config.csrf.settings_for(&config.session), key),
            jwt: None,
        })
    }
}

/// The CSRF key: `[csrf] secret_file`, else `PALISADE_CSRF_SECRET`, else a random key of
/// this process (with a warning: tokens then die with the process and are not shared).
fn csrf_key(config: &Config) -> Result<CsrfKey, ServicesError> {
    let problem = |detail: String| ServicesError::Secret {
        what: "[csrf] secret",
        detail,
    };
    if let Some(path) = &config.csrf.file.secret_file {
        return csrf_key_from_file(path).map_err(problem);
    }
    let text =
        std::env::var_os(CSRF_SECRET_ENV).map(|v| zeroize::Zeroizing::new(v.into_encoded_bytes()));
    match text {
        Some(text) => CsrfKey::from_text(&text).map_err(|err| problem(err.to_string())),
        None => {
            warn!(
                "no CSRF secret configured ({CSRF_SECRET_ENV} or [csrf] secret_file): signing \
                 with a random key of this process; CSRF tokens will not survive a restart \
                 nor work across instances"
            );
            CsrfKey::generate().map_err(|err| problem(err.to_string()))
        }
    }
}

/// The CSRF key held in `path` (`[csrf] secret_file`), as serve and `palisade check` read
/// it. The message names the file, never its contents.
pub(crate) fn csrf_key_from_file(path: &std::path::Path) -> Result<CsrfKey, String> {
    let text = crate::config::file::read_bounded(path, crate::config::file::MAX_SECRET_FILE)
        .map(zeroize::Zeroizing::new)
        .map_err(|err| format!("cannot read secret_file {}: {err}", path.display()))?;
    CsrfKey::from_text(&text).map_err(|err| err.to_string())
}

/// The public keys of the JWKS file `path` (`[identity.jwt] jwks_file`), as serve and
/// `palisade check` read them.
pub(crate) fn jwks_from_file(path: &std::path::Path) -> Result<KeySet, String> {
    let json = crate::config::file::read_text(path)
        .map_err(|err| format!("cannot read jwks_file {}: {err}", path.display()))?;
    KeySet::from_jwks(&json).map_err(|err| err.to_string())
}

/// The JWT verification keys named by `[identity.jwt]`.
fn jwt_keys(source: &KeySource) -> Result<KeySet, ServicesError> {
    let problem = |detail: String| ServicesError::Secret {
        what: "[identity.jwt] keys",
        detail,
    };
    match source {
        KeySource::SecretEnv(var) => {
            let secret = std::env::var_os(var)
                .map(|v| zeroize::Zeroizing::new(v.into_encoded_bytes()))
                .ok_or_else(|| {
                    problem(format!(
                        "secret_env names the environment variable {var}, which is not set"
                    ))
                })?;
            KeySet::hs256(&secret).map_err(|err| problem(err.to_string()))
        }
        KeySource::JwksFile(path) => jwks_from_file(path).map_err(problem),
    }
}

/// Deletes expired sessions every minute, until the service is dropped.
async fn sweep(service: Weak<SessionService>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let backend = service.sessions.backend();
        match service.sessions.sweep(clock.now_ms()).await {
            Ok(swept) => {
                metrics.sessions_swept.add(&[backend], swept);
                debug!(session.store = backend, swept, "expired sessions swept");
            }
            Err(err) => warn!(session.store = backend, error = %err, "session sweep failed"),
        }
    }
}

/// What the identity stage learned about a request, for the CSRF stage and the response
/// phase.
#[derive(Debug, Default)]
pub struct RequestSession {
    /// The session lookup; handed to `Sessions::respond` when the response comes back.
    pub resolved: Resolved,
    /// The request's identity (session or JWT), if any.
    pub identity: Option<Identity>,
}

impl RequestSession {
    /// The CSRF binding of the request's cookie credential (`None`: anonymous or bearer).
    pub fn csrf_binding(&self) -> Option<String> {
        self.identity.as_ref().and_then(Identity::csrf_binding)
    }

    /// The binding of a JWT that came in a cookie (no palisade session).
    pub fn jwt_cookie_binding(&self) -> Option<String> {
        match &self.identity.as_ref()?.source {
            IdentitySource::Cookie { binding } => Some(binding.clone()),
            _ => None,
        }
    }
}

/// The event for something that happened to a session during a request.
pub fn session_event(event: &SessionEvent, request: Option<RequestInfo>) -> Event {
    let mut info = SessionInfo::default();
    let name = match event {
        SessionEvent::Created { public_id, user_id } => {
            info.session_id = Some(public_id.to_string());
            info.user_id = Some(user_id.to_string());
            "session.created"
        }
        SessionEvent::Rotated { public_id, reason } => {
            info.session_id = Some(public_id.to_string());
            info.reason = Some(match reason {
                RotationReason::Scheduled => "scheduled",
                RotationReason::Requested => "requested",
            });
            "session.rotated"
        }
        SessionEvent::LoggedOut { public_id } => {
            info.session_id = Some(public_id.to_string());
            "session.logged_out"
        }
        SessionEvent::Refused { reason, public_id } => {
            info.session_id = public_id.map(|id| id.to_string());
            info.reason = Some(reason.as_str());
            match reason {
                SessionRefusal::IdleExpired | SessionRefusal::AbsoluteExpired => "session.expired",
                SessionRefusal::Unknown | SessionRefusal::RotatedOut => "session.refused",
            }
        }
        SessionEvent::BadCookie(kind) => {
            info.reason = Some(match kind {
                BadCookie::Malformed => "malformed",
                BadCookie::Ambiguous => "ambiguous",
            });
            "session.bad_cookie"
        }
        SessionEvent::DirectiveRefused(err) => {
            info.reason = Some(err.as_str());
            "session.directive_refused"
        }
    };
    Event::Session {
        name,
        request,
        session: info,
    }
}

#[cfg(test)]
mod tests;
