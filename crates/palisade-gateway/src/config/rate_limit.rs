//! The `[[rate_limit]]` tables: which requests a limit applies to, what it counts by, and
//! how many requests it allows.
//!
//! With no `rate_limit` key in the file, [`default_rules`] apply (10 requests per 10 s per
//! IP, looser for static assets); tables replace the defaults; `rate_limit = []` turns rate
//! limiting off. Rules are checked in order and every matching rule counts the request.

use std::time::Duration;

use http::{HeaderName, Method};
use palisade_policy::ratelimit::{Algorithm, Quota};
use palisade_policy::units::HumanDuration;
use serde::{Deserialize, Deserializer};

use super::server::Cidr;

/// One validated `[[rate_limit]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct RateLimitRule {
    /// Unique name, used in keys, logs and metrics.
    pub name: String,
    /// Path prefix the rule applies to. Default `/` (every path).
    pub path: String,
    /// Methods the rule applies to; empty means every method.
    pub methods: Vec<Method>,
    /// What requests are counted by.
    pub key: KeySpec,
    /// Which static-asset requests the rule sees.
    pub static_assets: AssetFilter,
    /// The counting algorithm, limit and window.
    pub quota: Quota,
    /// Whether a request over the limit is refused or only logged.
    pub mode: Mode,
    /// Clients never limited by this rule.
    pub allow: Vec<Cidr>,
}

/// What a rule counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// The client IP (IPv6 addresses by their /64 network).
    Ip,
    /// The value of a request header (requests without it are counted by IP).
    Header(HeaderName),
    /// The rule's path prefix: one counter for every client.
    Route,
    /// One counter for every request the rule matches.
    Global,
    /// The authenticated user (session or JWT); the client IP for anonymous requests.
    User,
}

/// Which requests a rule sees with respect to static assets: `GET`/`HEAD` of common asset
/// paths (`/static/`, `/assets/`, `/_next/static/`, ...) and file extensions (`.css`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetFilter {
    /// Every request (default).
    Include,
    /// Every request except static assets.
    Exclude,
    /// Static assets only.
    Only,
}

/// Whether a rule refuses or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Over the limit: 429.
    Enforce,
    /// Over the limit: an event and a metric, the request goes on.
    Log,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default = "root_path")]
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default = "ip_key")]
    key: String,
    #[serde(default = "include_assets")]
    static_assets: AssetFilter,
    #[serde(default = "sliding")]
    algorithm: AlgorithmName,
    limit: u64,
    window: HumanDuration,
    #[serde(default = "enforce")]
    mode: Mode,
    #[serde(default)]
    allow: Vec<Cidr>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AlgorithmName {
    SlidingWindow,
    FixedWindow,
    TokenBucket,
}

impl TryFrom<RawRule> for RateLimitRule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, Self::Error> {
        let name = &raw.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "invalid rate_limit name {name:?} (expected letters, digits, '-', '_' or '.')"
            ));
        }
        if !raw.path.starts_with('/') {
            return Err(format!(
                "rate_limit {name:?}: invalid path {:?} (expected a prefix starting with '/')",
                raw.path
            ));
        }
        if raw.limit == 0 {
            return Err(format!(
                "rate_limit {name:?}: limit must be at least 1 (use rate_limit = [] to turn \
                 limits off)"
            ));
        }
        // Up to these, `limit × window` in milliseconds stays an exact integer in the Redis
        // scripts' arithmetic, so both stores decide alike (`Quota::validate`).
        if raw.limit > Quota::MAX_LIMIT {
            return Err(format!(
                "rate_limit {name:?}: limit must be at most {} (got {}): counts are kept \
                 exact up to that",
                Quota::MAX_LIMIT,
                raw.limit
            ));
        }
        if raw.window.0 < Duration::from_millis(1) {
            return Err(format!("rate_limit {name:?}: window must be at least 1ms"));
        }
        if raw.window.0 > Quota::MAX_WINDOW {
            return Err(format!(
                "rate_limit {name:?}: window must be at most 30d (got {}s)",
                raw.window.0.as_secs()
            ));
        }
        let methods = raw
            .methods
            .iter()
            .map(|m| parse_method(name, m))
            .collect::<Result<_, _>>()?;
        let key = parse_key(name, &raw.key)?;
        let algorithm = match raw.algorithm {
            AlgorithmName::SlidingWindow => Algorithm::SlidingWindow,
            AlgorithmName::FixedWindow => Algorithm::FixedWindow,
            AlgorithmName::TokenBucket => Algorithm::TokenBucket,
        };
        Ok(Self {
            quota: Quota {
                algorithm,
                limit: raw.limit,
                window: raw.window.0,
            },
            name: raw.name,
            path: raw.path,
            methods,
            key,
            static_assets: raw.static_assets,
            mode: raw.mode,
            allow: raw.allow,
        })
    }
}

/// The key of a `[[rate_limit]]` table that an error of `RateLimitRule::try_from` is about,
/// read from its message: serde places such an error at the whole table, and the message is
/// all it passes on, so this lets the diagnostic point at the key's value instead.
pub(super) fn key_of_error(message: &str) -> Option<&'static str> {
    if message.starts_with("invalid rate_limit name ") {
        return Some("name");
    }
    let (_, what) = message.strip_prefix("rate_limit \"")?.split_once("\": ")?;
    [
        ("invalid path ", "path"),
        ("limit must ", "limit"),
        ("window must ", "window"),
        ("invalid method ", "methods"),
        ("invalid key ", "key"),
        ("invalid header name in key ", "key"),
    ]
    .into_iter()
    .find_map(|(start, key)| what.starts_with(start).then_some(key))
}

/// Which `[[rate_limit]]` table (1-based) repeats an earlier one's name, read from the
/// error [`rules`] gives for it (serde places it at the whole array).
pub(super) fn repeating_table(message: &str) -> Option<usize> {
    let rest = message.strip_prefix("duplicate rate_limit name ")?;
    let (_, table) = rest.split_once("[[rate_limit]] table ")?;
    table.split_once(' ')?.0.parse().ok()
}

fn parse_method(rule: &str, text: &str) -> Result<Method, String> {
    let upper = text.to_ascii_uppercase();
    Method::from_bytes(upper.as_bytes()).map_err(|_| {
        format!("rate_limit {rule:?}: invalid method {text:?} (expected GET, POST, ...)")
    })
}

fn parse_key(rule: &str, text: &str) -> Result<KeySpec, String> {
    let expected = "(expected \"ip\", \"header:<name>\", \"route\", \"global\" or \"user\")";
    Ok(match text {
        "ip" => KeySpec::Ip,
        "route" => KeySpec::Route,
        "global" => KeySpec::Global,
        "user" => KeySpec::User,
        _ => {
            let Some(name) = text.strip_prefix("header:") else {
                return Err(format!(
                    "rate_limit {rule:?}: invalid key {text:?} {expected}"
                ));
            };
            let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    format!("rate_limit {rule:?}: invalid header name in key {text:?} {expected}")
                })?;
            KeySpec::Header(name)
        }
    })
}

/// The rules that apply when the file has no `rate_limit` key: 10 requests per 10 s per IP
/// (sliding window) for everything but static assets, which get 200 per 10 s per IP so a page
/// with dozens of assets loads without being limited.
pub fn default_rules() -> Vec<RateLimitRule> {
    let rule = |name: &str, static_assets, limit| RateLimitRule {
        name: name.into(),
        path: "/".into(),
        methods: Vec::new(),
        key: KeySpec::Ip,
        static_assets,
        quota: Quota {
            algorithm: Algorithm::SlidingWindow,
            limit,
            window: Duration::from_secs(10),
        },
        mode: Mode::Enforce,
        allow: Vec::new(),
    };
    vec![
        rule("static-assets", AssetFilter::Only, 200),
        rule("default", AssetFilter::Exclude, 10),
    ]
}

/// Reads the `rate_limit` array and refuses duplicate names, which would share counters.
pub(super) fn rules<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<RateLimitRule>>, D::Error> {
    let rules = Vec::<RateLimitRule>::deserialize(deserializer)?;
    for (i, rule) in rules.iter().enumerate() {
        // Serde places the error at the array; `repeating_table` reads which table it is.
        if let Some(earlier) = rules[..i].iter().position(|e| e.name == rule.name) {
            return Err(serde::de::Error::custom(format!(
                "duplicate rate_limit name {:?}: [[rate_limit]] table {} repeats the name of \
                 table {} (expected every rule to have its own name)",
                rule.name,
                i + 1,
                earlier + 1
            )));
        }
    }
    Ok(Some(rules))
}

fn root_path() -> String {
    "/".into()
}
fn ip_key() -> String {
    "ip".into()
}
fn include_assets() -> AssetFilter {
    AssetFilter::Include
}
fn sliding() -> AlgorithmName {
    AlgorithmName::SlidingWindow
}
fn enforce() -> Mode {
    Mode::Enforce
}
