//! The `challenge` action in HTTP: the interstitial (or a JSON 403), the answer endpoint
//! `POST /.palisade/challenge`, and the clearance cookie that lets a client through.
//!
//! The flow: a challenge rule matches a client without a valid clearance, so palisade answers
//! 403 with a page holding a signed puzzle. The page's script solves it and posts the token,
//! the nonce and the path it came from to [`CHALLENGE_PATH`]. Palisade checks the work, marks
//! the puzzle used (in the rate-limit store, so a puzzle is good once across every instance
//! sharing Redis), sets the clearance cookie and redirects (303) back to the path, which must
//! be a same-origin path: the endpoint never redirects elsewhere.
//!
//! The cryptography is `palisade_policy::challenge`; this module only adapts it to HTTP. The
//! clearance value is never logged.

pub mod page;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use palisade_policy::challenge::{ChallengeKey, ClearanceRefusal, ClientBinding, SolvedPuzzle};
use palisade_policy::clock::Clock;
use palisade_policy::ratelimit::{Algorithm, Quota, RateLimitStore};

use crate::body::{self, GatewayBody};
use crate::config::waf::ChallengeConfig;
use crate::error::{GatewayError, short_page, wants_json};
use crate::pipeline::{GatewayRequest, RequestContext};

use page::PageContent;

/// Where the challenge page posts its answer.
pub const CHALLENGE_PATH: &str = "/.palisade/challenge";
/// The clearance cookie.
pub const CLEARANCE_COOKIE: &str = "palisade_clearance";
/// The largest answer read: a token, a nonce and a path.
const MAX_ANSWER_BYTES: usize = 8 * 1024;
/// The longest return path kept; a longer one returns to `/`.
const MAX_RETURN_PATH: usize = 2048;
/// Cookie headers examined for a clearance (a client may send several).
const MAX_CLEARANCE_COOKIES: usize = 4;

/// The challenge as one configuration sets it up.
#[derive(Debug)]
pub struct Challenge {
    key: ChallengeKey,
    difficulty: u8,
    clearance_ttl: Duration,
    puzzle_ttl: Duration,
    clock: Arc<dyn Clock>,
    /// Where solved puzzles are recorded so that each is good once.
    used: Arc<dyn RateLimitStore>,
}

/// Why a request did not count as cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCleared {
    /// No clearance cookie.
    Missing,
    /// A clearance cookie that failed its check.
    Refused(ClearanceRefusal),
}

impl NotCleared {
    /// A short stable name for events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Refused(refusal) => refusal.as_str(),
        }
    }
}

/// What the answer endpoint decided.
#[derive(Debug)]
pub struct Answer {
    /// The response to send.
    pub response: Response<GatewayBody>,
    /// `None` when a clearance was issued, else why not.
    pub refused: Option<&'static str>,
}

impl Challenge {
    /// The challenge with `config`'s settings, signing with `key`, timing with `clock` and
    /// recording used puzzles in `used`.
    pub fn new(
        config: &ChallengeConfig,
        key: ChallengeKey,
        clock: Arc<dyn Clock>,
        used: Arc<dyn RateLimitStore>,
    ) -> Self {
        Self {
            key,
            difficulty: config.difficulty,
            clearance_ttl: config.clearance_ttl.0,
            puzzle_ttl: config.puzzle_ttl.0,
            clock,
            used,
        }
    }

    /// Whether the request carries a clearance valid for this client now.
    pub fn check_clearance(
        &self,
        headers: &HeaderMap,
        ctx: &RequestContext,
    ) -> Result<(), NotCleared> {
        let binding = binding(headers, ctx);
        let now = self.clock.now_ms();
        let mut result = Err(NotCleared::Missing);
        for value in clearance_cookies(headers).take(MAX_CLEARANCE_COOKIES) {
            match self.key.check_clearance(value, &binding, now) {
                Ok(()) => return Ok(()),
                Err(refusal) => result = Err(NotCleared::Refused(refusal)),
            }
        }
        result
    }

    /// The answer to a request a challenge rule matched: the interstitial for browsers, a
    /// JSON 403 for clients that asked for JSON. Both carry `palisade-mitigated: challenge`.
    pub fn challenge(
        &self,
        head: &http::request::Parts,
        ctx: &RequestContext,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let return_to = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut response = if wants_json(&head.headers) {
            challenge_json()
        } else {
            self.page(&head.headers, ctx, safe_return_path(return_to), None)?
        };
        mark_mitigated(response.headers_mut());
        Ok(response)
    }

    fn page(
        &self,
        headers: &HeaderMap,
        ctx: &RequestContext,
        return_to: &str,
        notice: Option<&str>,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|err| GatewayError::Internal(format!("no randomness for a puzzle: {err}")))?;
        let puzzle = self.key.puzzle(
            &binding(headers, ctx),
            self.difficulty,
            self.clock.now_ms(),
            id,
        );
        let request_id = ctx.id.to_string();
        let content = PageContent {
            token: &puzzle.token,
            difficulty: puzzle.difficulty,
            action: CHALLENGE_PATH,
            return_to,
            notice,
            request_id: &request_id,
        };
        Ok(page::render(StatusCode::FORBIDDEN, &content))
    }

    /// Handles a request to [`CHALLENGE_PATH`]: checks the answer and, if the work is right
    /// and the puzzle unused, sets the clearance and redirects back.
    pub async fn answer(
        &self,
        request: &mut GatewayRequest,
        ctx: &RequestContext,
    ) -> Result<Answer, GatewayError> {
        let headers = &request.head.headers;
        if request.head.method != Method::POST {
            let mut response = short_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This address only accepts the answer to a browser check.",
                headers,
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            return Ok(refused(response, "method"));
        }
        let headers = headers.clone();
        let body = request.body.prefix(MAX_ANSWER_BYTES + 1).await?;
        if body.len() > MAX_ANSWER_BYTES {
            let response = short_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The answer to the browser check is too large.",
                &headers,
            );
            return Ok(refused(response, "malformed"));
        }
        let form = AnswerForm::parse(body);
        let return_to = safe_return_path(&form.return_to).to_owned();
        let verdict = self.verify(&form, &headers, ctx).await?;
        match verdict {
            Ok(()) => Ok(Answer {
                response: self.cleared(&headers, ctx, &return_to),
                refused: None,
            }),
            Err(reason) => {
                let mut response = if wants_json(&headers) {
                    challenge_json()
                } else {
                    let notice = "The previous check did not succeed, so your browser is \
                                  trying again.";
                    self.page(&headers, ctx, &return_to, Some(notice))?
                };
                mark_mitigated(response.headers_mut());
                Ok(refused(response, reason))
            }
        }
    }

    /// `Ok` when the work is right and the puzzle had not been used; else why not.
    async fn verify(
        &self,
        form: &AnswerForm,
        headers: &HeaderMap,
        ctx: &RequestContext,
    ) -> Result<Result<(), &'static str>, GatewayError> {
        let binding = binding(headers, ctx);
        let now = self.clock.now_ms();
        let solved =
            match self
                .key
                .check_solution(&form.token, &form.nonce, &binding, now, self.puzzle_ttl)
            {
                Ok(solved) => solved,
                Err(refusal) => return Ok(Err(refusal.as_str())),
            };
        if self.first_use(&solved).await? {
            Ok(Ok(()))
        } else {
            Ok(Err("replayed"))
        }
    }

    /// Records the puzzle as used; `false` if it already was. A token bucket of one token
    /// that refills over the puzzle's lifetime: the first answer takes the token, and by
    /// the time another could be taken the puzzle has expired.
    async fn first_use(&self, solved: &SolvedPuzzle) -> Result<bool, GatewayError> {
        let quota = Quota {
            algorithm: Algorithm::TokenBucket,
            limit: 1,
            window: self.puzzle_ttl,
        };
        let key = format!("challenge:puzzle:{}", solved.id);
        let decision = self
            .used
            .check(&key, &quota)
            .await
            .map_err(|_| GatewayError::StateUnavailable)?;
        Ok(decision.allowed)
    }

    /// The 303 back to `return_to`, setting the clearance cookie.
    fn cleared(
        &self,
        headers: &HeaderMap,
        ctx: &RequestContext,
        return_to: &str,
    ) -> Response<GatewayBody> {
        let clearance = self.key.clearance(
            &binding(headers, ctx),
            self.clock.now_ms(),
            self.clearance_ttl,
        );
        let secure = if ctx.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{CLEARANCE_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            clearance.value,
            self.clearance_ttl.as_secs()
        );
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::SEE_OTHER;
        let out = response.headers_mut();
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            out.insert(SET_COOKIE, cookie);
        }
        if let Ok(location) = HeaderValue::from_str(return_to) {
            out.insert(LOCATION, location);
        }
        out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn refused(response: Response<GatewayBody>, reason: &'static str) -> Answer {
    Answer {
        response,
        refused: Some(reason),
    }
}

/// The client a clearance is bound to: its network and its `User-Agent`.
fn binding(headers: &HeaderMap, ctx: &RequestContext) -> ClientBinding {
    let agent = headers.get(USER_AGENT).map_or(&b""[..], |v| v.as_bytes());
    ClientBinding::new(ctx.client_ip, agent)
}

/// Every `palisade_clearance=` value in the request's cookies.
fn clearance_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == CLEARANCE_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
}

/// `palisade-mitigated: challenge`.
fn mark_mitigated(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("palisade-mitigated"),
        HeaderValue::from_static("challenge"),
    );
}

/// The 403 for clients that do not take HTML.
fn challenge_json() -> Response<GatewayBody> {
    let json = serde_json::json!({
        "error": "Forbidden",
        "status": 403,
        "message": "A challenge is required: open this address in a web browser, which solves \
                    it and receives a clearance cookie.",
        "challenge": "proof_of_work",
    });
    let mut response = Response::new(body::full(Bytes::from(json.to_string())));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `path` if it is a path on this origin, else `/`. Refuses anything a browser could read
/// as another origin: `//host`, `/\host` (browsers treat `\` as `/`), schemes, control
/// characters, and over-long values.
pub fn safe_return_path(path: &str) -> &str {
    let bytes = path.as_bytes();
    let safe = path.len() <= MAX_RETURN_PATH
        && bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !bytes
            .iter()
            .any(|b| *b == b'\\' || b.is_ascii_control() || *b == b' ' || *b >= 0x80)
        && !path.starts_with(CHALLENGE_PATH);
    if safe { path } else { "/" }
}

/// The posted form: `token`, `nonce`, `return`.
#[derive(Debug, Default)]
struct AnswerForm {
    token: String,
    nonce: String,
    return_to: String,
}

impl AnswerForm {
    /// Reads `application/x-www-form-urlencoded` fields; unknown ones are ignored.
    fn parse(body: &[u8]) -> Self {
        let mut form = Self::default();
        for pair in body.split(|b| *b == b'&') {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let value = form_decode(value);
            match name {
                b"token" => form.token = value,
                b"nonce" => form.nonce = value,
                b"return" => form.return_to = value,
                _ => {}
            }
        }
        form
    }
}

/// Form decoding: `+` is a space, `%XX` a byte; malformed escapes stay as written. Bytes that
/// are not UTF-8 make the value invalid (empty), which every check then refuses.
fn form_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let byte = value[i];
        let hex = |at: usize| value.get(at).and_then(|b| (*b as char).to_digit(16));
        match byte {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(byte),
            },
            _ => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
