//! Warnings about a valid configuration that probably does not do what its writer wants: a
//! Redis URL nothing uses, rate-limit tables that leave most requests unlimited, WAF rules
//! reading geo fields without a database, challenges without a lasting secret. `serve` logs
//! them at start-up (and the WAF ones on each reload); `palisade check` prints them beside
//! its verdict, so they are seen before deploying.

use palisade_expr::rules::{Action, RuleSet};
use palisade_policy::session::StoreKind;
use palisade_store::ratelimit::BackendKind;

use crate::config::rate_limit::{AssetFilter, Mode};
use crate::config::{Config, RateLimitRule};

/// The rate-limit and state warnings for `config`.
pub fn rate_limits(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.state.backend == BackendKind::Memory
        && config.state.redis_url.is_some()
        && config.session.file.store != StoreKind::Redis
    {
        warnings.push(
            "[state] names a Redis URL (redis_url or PALISADE_REDIS_URL) but backend = \
             \"memory\": rate limits are counted per instance, not shared; set backend = \
             \"redis\" in [state] to share them"
                .to_owned(),
        );
    }
    let tables = config.rate_limit_rules();
    if !tables.is_empty() && !tables.iter().any(limits_every_request) {
        let whose = match tables.len() {
            1 => "the table's path".to_owned(),
            n => format!("the {n} tables' paths"),
        };
        warnings.push(format!(
            "no [[rate_limit]] table limits every request (path \"/\", every method, mode \
             \"enforce\"): requests outside {whose} are not limited, since tables replace the \
             built-in limits (docs/config.md shows them written out)"
        ));
    }
    if tables.is_empty() {
        let waf_limits = config
            .waf
            .compiled
            .rules
            .rules()
            .iter()
            .filter(|rule| matches!(rule.action, Action::RateLimit { .. }))
            .count();
        warnings.push(if waf_limits == 0 {
            "rate limiting is off (rate_limit = [])".to_owned()
        } else {
            format!(
                "no [[rate_limit]] tables (rate_limit = []): only the WAF rules with action \
                 rate_limit limit requests ({waf_limits} such rules)"
            )
        });
    }
    warnings
}

/// The WAF rule warnings for `config`: geo fields read without a database, a challenge
/// without a secret that outlives the process.
pub fn waf_rules(config: &Config) -> Vec<String> {
    let waf = &config.waf;
    let rules: &RuleSet = &waf.compiled.rules;
    let mut warnings = Vec::new();
    let any_enabled = rules.rules().iter().any(|rule| rule.enabled);
    let reads = |name: &str| any_enabled && rules.fields().contains_name(rules.scheme(), name);
    if reads("ip.src.country") && !waf.compiled.geo.has_country() {
        warnings.push(
            "a WAF rule reads ip.src.country (ip.geoip.country) but [waf] geoip_country_db is \
             not set: the field is empty for every request"
                .to_owned(),
        );
    }
    if reads("ip.src.asnum") && !waf.compiled.geo.has_asn() {
        warnings.push(
            "a WAF rule reads ip.src.asnum (ip.geoip.asnum) but [waf] geoip_asn_db is not set: \
             the field is 0 for every request"
                .to_owned(),
        );
    }
    if crate::pipeline::stages::waf::has_challenge(rules) && waf.compiled.challenge_key.is_none() {
        warnings.push(
            "no challenge secret (PALISADE_CHALLENGE_SECRET or [waf.challenge] secret_file): \
             clearances are signed with a random key made at start-up (kept across reloads), \
             so they end when palisade restarts and are not shared between instances"
                .to_owned(),
        );
    }
    warnings
}

/// Whether `rule` counts every request but static assets: the role of the built-in
/// `default` limit.
fn limits_every_request(rule: &RateLimitRule) -> bool {
    rule.path == "/"
        && rule.methods.is_empty()
        && rule.mode == Mode::Enforce
        && rule.static_assets != AssetFilter::Only
}
