//! Stage 5: rate limits from `[[rate_limit]]` (or the zero-config defaults).
//!
//! Every rule whose path, methods and static-asset filter match counts the request, in file
//! order. The first enforcing rule that refuses answers 429 with `Retry-After`,
//! `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
//! `palisade-mitigated: rate_limit`; a `log`-mode refusal is an event and a metric only.
//! Allowed responses carry the `RateLimit-*` headers of the tightest matching rule.
//!
//! Keys are `<rule>:<kind>:<value>`. IPv6 clients are keyed by their /64, since one host
//! usually owns a whole /64 and could otherwise rotate addresses to escape the limit.
//! Header values are hashed (SHA-256) so API keys never sit in Redis in clear.
//!
//! Paths are matched as an upstream might read them ([`match_path`]): `/api//login`,
//! `/x/../api/login`, `/%61pi/login` and `/API/login` count against a limit on
//! `/api/login`, and `/static/../api/items` or `/api/items;.css` are not static assets.
//! A limit that a different spelling of the path escapes is no limit.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use palisade_policy::ratelimit::{Decision, RateLimitStore};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::config::rate_limit::{AssetFilter, KeySpec, Mode, RateLimitRule};
use crate::error::{GatewayError, short_page};
use crate::events::Event;
use crate::metrics::{Metrics, SeriesCache};
use crate::pipeline::{GatewayRequest, Outcome, RequestContext, RequestStage, Verdict};
use crate::services::Services;

/// The rate-limit stage.
#[derive(Debug)]
pub struct RateLimit {
    rules: Vec<RateLimitRule>,
    store: Arc<dyn RateLimitStore>,
    metrics: Arc<Metrics>,
    /// Each rule's `allowed` and `logged` decision series, in rule order: counted on most
    /// requests, so looked up once.
    series: Vec<[SeriesCache; 2]>,
    /// Each rule's name as the events carry it, in rule order.
    names: Vec<Arc<str>>,
}

impl RateLimit {
    /// The stage for `config`'s rules, or `None` when rate limiting is off.
    pub fn new(config: &Config, services: &Services) -> Option<Self> {
        let rules = config.rate_limit_rules();
        if rules.is_empty() {
            return None;
        }
        Some(Self {
            series: rules.iter().map(|_| Default::default()).collect(),
            names: rules
                .iter()
                .map(|rule| Arc::from(rule.name.as_str()))
                .collect(),
            rules,
            store: Arc::clone(&services.rate_limits),
            metrics: Arc::clone(&services.metrics),
        })
    }
}

/// The decision of one rule, kept to pick the headers to send.
struct Checked<'a> {
    rule: &'a RateLimitRule,
    decision: Decision,
}

impl RequestStage for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    async fn on_request(
        &self,
        request: &mut GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Result<Verdict, GatewayError> {
        // A WAF `skip` rule may have turned this phase off for the request.
        if crate::waf::phase_skipped(ctx, palisade_expr::Phase::RateLimit) {
            return Ok(Verdict::Continue);
        }
        let head = &request.head;
        let path = match_path(head.uri.path());
        let is_asset = is_static_asset(&head.method, &path);
        let mut tightest: Option<Checked<'_>> = None;
        for ((rule, series), name) in self
            .rules
            .iter()
            .zip(&self.series)
            .zip(&self.names)
            .filter(|((r, _), _)| matches(r, head, &path, is_asset))
        {
            if rule.allow.iter().any(|net| net.contains(ctx.client_ip)) {
                self.metrics
                    .rate_limit_decisions
                    .inc(&[&rule.name, "skipped"]);
                continue;
            }
            let key = rate_limit_key(rule, ctx, &head.headers);
            let decision = match self.store.check_ready(&key, &rule.quota) {
                Some(decision) => decision,
                None => match self.store.check(&key, &rule.quota).await {
                    Ok(decision) => decision,
                    // A rule in `log` mode only reports: its store failing (with
                    // `on_error = "deny"`) refuses nothing. The store counted the failure.
                    Err(_) if rule.mode == Mode::Log => continue,
                    Err(_) => return Err(GatewayError::StateUnavailable),
                },
            };
            if !decision.allowed {
                let checked = Checked { rule, decision };
                if let Some(answer) = self.refused(&checked, &series[1], name, request, ctx) {
                    return Ok(answer);
                }
                continue;
            }
            self.metrics
                .rate_limit_decisions
                .inc_cached(&series[0], &[&rule.name, "allowed"]);
            // A request let through uncounted (`on_error = "allow"`) has no quota to show.
            if decision.counted
                && tightest
                    .as_ref()
                    .is_none_or(|t| decision.remaining < t.decision.remaining)
            {
                tightest = Some(Checked { rule, decision });
            }
        }
        if let Some(checked) = tightest {
            ctx.quota = Some(checked.decision);
        }
        Ok(Verdict::Continue)
    }
}

impl RateLimit {
    /// Handles a refusal: publishes the event, and in enforce mode returns the 429.
    fn refused(
        &self,
        checked: &Checked<'_>,
        logged: &SeriesCache,
        name: &Arc<str>,
        request: &GatewayRequest,
        ctx: &mut RequestContext,
    ) -> Option<Verdict> {
        let Checked { rule, decision } = checked;
        let enforced = rule.mode == Mode::Enforce;
        let retry_after = retry_after_secs(decision);
        let decisions = &self.metrics.rate_limit_decisions;
        if enforced {
            decisions.inc(&[&rule.name, "limited"]);
        } else {
            decisions.inc_cached(logged, &[&rule.name, "logged"]);
        }
        ctx.publish(Event::RateLimited {
            request: ctx.request_info(&request.head),
            rule: Arc::clone(name),
            enforced,
            limit: decision.limit,
            retry_after_secs: retry_after,
        });
        if !enforced {
            if ctx.outcome == Outcome::Allowed {
                ctx.outcome = Outcome::Logged;
            }
            return None;
        }
        ctx.outcome = Outcome::RateLimited;
        Some(Verdict::Respond(too_many_requests(
            decision,
            retry_after,
            &request.head.headers,
        )))
    }
}

/// Whether `rule` applies to this request, whose path reads as `path` ([`match_path`]).
fn matches(rule: &RateLimitRule, head: &http::request::Parts, path: &str, is_asset: bool) -> bool {
    let filter_ok = match rule.static_assets {
        AssetFilter::Include => true,
        AssetFilter::Exclude => !is_asset,
        AssetFilter::Only => is_asset,
    };
    filter_ok
        && starts_with_ignoring_case(path, &rule.path)
        && (rule.methods.is_empty() || rule.methods.contains(&head.method))
}

/// The path limits are matched against: the request's own when nothing in it could be read
/// differently by an upstream, else the generous normalisation uploads use (decoded,
/// dot-segments resolved, empty segments and `;parameters` dropped, lower case). Matching
/// ignores case either way, so `/API/login` counts against a limit on `/api/login`.
pub fn match_path(raw: &str) -> Cow<'_, str> {
    let plain = !raw.contains(['%', '\\', ';']) && !raw.contains("//") && !raw.contains("/.");
    if plain {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(super::upload::normalise(raw))
    }
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The store key for this request under `rule`.
fn rate_limit_key(rule: &RateLimitRule, ctx: &RequestContext, headers: &HeaderMap) -> String {
    let name = &rule.name;
    match &rule.key {
        KeySpec::Ip => {
            let mut key = String::with_capacity(name.len() + 24);
            key.push_str(name);
            key.push_str(":ip:");
            push_ip_key(&mut key, ctx.client_ip);
            key
        }
        KeySpec::Route => format!("{name}:route:{}", rule.path),
        KeySpec::Global => format!("{name}:global"),
        // The identity stage (slot 3) ran before; anonymous requests count by IP, so
        // dropping the cookie does not escape the limit.
        KeySpec::User => match &ctx.identity {
            Some(identity) => format!("{name}:user:{}", hashed(identity.user.as_bytes())),
            None => format!("{name}:ip:{}", ip_key(ctx.client_ip)),
        },
        KeySpec::Header(header) => header_key(name, header, ctx, headers),
    }
}

fn header_key(
    rule: &str,
    header: &HeaderName,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> String {
    match headers.get(header) {
        Some(value) => format!("{rule}:header:{}", hashed(value.as_bytes())),
        // Without the header the request is counted by IP: omitting it must not escape.
        None => format!("{rule}:ip:{}", ip_key(ctx.client_ip)),
    }
}

/// The client address as a key: IPv4 as is, IPv6 by its /64 network.
pub fn ip_key(ip: IpAddr) -> String {
    let mut key = String::with_capacity(24);
    push_ip_key(&mut key, ip);
    key
}

/// Appends [`ip_key`] of `ip` to `out`.
fn push_ip_key(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(_) => crate::client_ip::push_ip(out, ip),
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let s = v6.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
        }
    }
}

fn hashed(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Common static asset locations: framework build output and conventional folders.
const ASSET_PREFIXES: &[&str] = &[
    "/_next/static/",
    // Next.js's image optimiser: a page with a dozen `next/image` pictures fetches each here.
    "/_next/image",
    "/_nuxt/",
    "/static/",
    "/assets/",
    "/public/",
    "/build/",
    "/dist/",
    "/css/",
    "/js/",
    "/img/",
    "/images/",
    "/fonts/",
];

/// File extensions of static assets.
const ASSET_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "woff",
    "woff2", "ttf", "otf", "eot", "mp4", "webm", "mp3", "wasm",
];

/// Whether a request fetches a static asset: `GET` or `HEAD` of a known asset folder or
/// file extension. `path` is the [`match_path`] of the request: an asset's looser limit is a
/// hole, so a path that decodes to control characters or `?`/`#` (`/api/items%00.js`, which
/// some upstreams cut at the NUL) is never an asset.
pub fn is_static_asset(method: &Method, path: &str) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // Read as bytes (this runs on every GET): only a path that holds a byte outside ASCII,
    // a decoded one, has its characters looked at for Unicode's control characters.
    let bytes = path.as_bytes();
    let odd = |b: &u8| b.is_ascii_control() || matches!(b, b'?' | b'#');
    if bytes.iter().any(odd) || (!path.is_ascii() && path.chars().any(char::is_control)) {
        return false;
    }
    if ASSET_PREFIXES
        .iter()
        .any(|prefix| starts_with_ignoring_case(path, prefix))
    {
        return true;
    }
    let file = bytes.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let dot = file.iter().rposition(|&b| b == b'.');
    dot.is_some_and(|at| {
        let ext = &file[at + 1..];
        ASSET_EXTENSIONS
            .iter()
            .any(|known| known.as_bytes().eq_ignore_ascii_case(ext))
    })
}

/// Whole seconds, rounded up: a client told "0" would retry at once.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

pub(crate) fn retry_after_secs(decision: &Decision) -> u64 {
    ceil_secs(decision.retry_after.unwrap_or(decision.reset_after)).max(1)
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, in that order.
const QUOTA_FIELDS: [&str; 3] = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"];
/// [`QUOTA_FIELDS`] as names, made at compile time (`from_static` checks its text).
const QUOTA_NAMES: [HeaderName; 3] = [
    HeaderName::from_static(QUOTA_FIELDS[0]),
    HeaderName::from_static(QUOTA_FIELDS[1]),
    HeaderName::from_static(QUOTA_FIELDS[2]),
];

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds), on a
/// response that may carry the application's own: an answer with any of the three keeps
/// its own and gets none of palisade's, since the three describe one limit together (the
/// application's limit beside palisade's remaining count would describe neither).
pub(crate) fn quota_headers(decision: &Decision, headers: &mut HeaderMap) {
    // One pass over the answer's few names rather than a hashed look-up per field.
    if headers
        .keys()
        .any(|name| QUOTA_FIELDS.contains(&name.as_str()))
    {
        return;
    }
    let values = [
        decision.limit,
        decision.remaining,
        ceil_secs(decision.reset_after),
    ];
    for (name, value) in QUOTA_NAMES.into_iter().zip(values) {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// The 429 answer.
pub(crate) fn too_many_requests(
    decision: &Decision,
    retry_after: u64,
    request_headers: &HeaderMap,
) -> http::Response<crate::body::GatewayBody> {
    let mut response = short_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests. Please wait before trying again.",
        request_headers,
    );
    let headers = response.headers_mut();
    quota_headers(decision, headers);
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
    headers.insert(
        HeaderName::from_static("palisade-mitigated"),
        HeaderValue::from_static("rate_limit"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_assets_are_recognised_by_folder_and_extension() {
        assert!(is_static_asset(&Method::GET, "/_next/static/chunks/app.js"));
        assert!(is_static_asset(&Method::GET, "/_next/image"));
        assert!(!is_static_asset(&Method::POST, "/_next/image"));
        assert!(is_static_asset(&Method::HEAD, "/logo.PNG"));
        assert!(is_static_asset(&Method::GET, "/static/anything"));
        assert!(!is_static_asset(&Method::POST, "/static/upload.js"));
        assert!(!is_static_asset(&Method::GET, "/api/users"));
        assert!(!is_static_asset(&Method::GET, "/login"));
        // Spellings that are not plainly one file, decoded or not, are not assets.
        for path in [
            "/app.js?x",
            "/app.js#x",
            "/api\u{7f}.js",
            "/api\t.js",
            "/api\u{85}.js",
            "/app.",
            "/.js/api",
        ] {
            assert!(!is_static_asset(&Method::GET, path), "{path:?}");
        }
        assert!(is_static_asset(&Method::GET, "/caf\u{e9}/logo.svg"));
        assert!(is_static_asset(&Method::GET, "/.well/a.b.CSS"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_eq!(ip_key(a), "2001:db8:1:2::/64");
        assert_eq!(ip_key("192.0.2.1".parse().expect("ip")), "192.0.2.1");
    }

    #[test]
    fn retry_after_is_rounded_up_and_never_zero() {
        let decision = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_after: Duration::from_millis(4001),
            retry_after: Some(Duration::from_millis(1)),
            counted: true,
        };
        assert_eq!(retry_after_secs(&decision), 1);
        let mut headers = HeaderMap::new();
        quota_headers(&decision, &mut headers);
        assert_eq!(headers["ratelimit-reset"], "5");
    }

    #[test]
    fn an_answer_with_its_own_quota_fields_keeps_them_all_and_gets_none_of_palisades() {
        let decision = Decision {
            allowed: true,
            limit: 10,
            remaining: 7,
            reset_after: Duration::from_secs(3),
            retry_after: None,
            counted: true,
        };
        for own in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(own), HeaderValue::from_static("99"));
            quota_headers(&decision, &mut headers);
            assert_eq!(headers.len(), 1, "{own}: {headers:?}");
            assert_eq!(headers[own], "99");
        }
        let mut headers = HeaderMap::new();
        quota_headers(&decision, &mut headers);
        assert_eq!(headers["ratelimit-limit"], "10");
        assert_eq!(headers["ratelimit-remaining"], "7");
        assert_eq!(headers["ratelimit-reset"], "3");
    }
}
