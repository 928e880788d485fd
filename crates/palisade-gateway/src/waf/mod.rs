//! The WAF's moving parts in the gateway: the field scheme rules compile against, the
//! compiled configuration ([`CompiledWaf`]), the per-request field provider, the geo
//! databases and the proof-of-work challenge. The pipeline stage that uses them is
//! `pipeline::stages::waf`.
//!
//! Nothing here logs cookie values, `Authorization` headers or bodies: the deciding values of
//! a rule match pass through [`report::redacted`] before they become an event.

pub mod challenge;
pub mod fields;
pub mod geo;
pub mod managed;
pub mod report;

use std::sync::{Arc, OnceLock};

use palisade_expr::{Phase, RuleSet, Scheme, Type};
use palisade_policy::challenge::ChallengeKey;
use palisade_waf::{Engine, WafSettings};

pub use geo::GeoDatabases;

use crate::pipeline::RequestContext;

/// The managed-detection scores, as fields rules can read (`waf.score.sqli lt 20`).
pub const SCORE_FIELDS: [&str; 9] = [
    "waf.score",
    "waf.score.sqli",
    "waf.score.xss",
    "waf.score.rce",
    "waf.score.lfi",
    "waf.score.rfi",
    "waf.score.php",
    "waf.score.java",
    "waf.score.protocol",
];

/// The fields WAF rules may read: the standard request, IP, geo and identity fields, plus
/// the managed-detection scores. One scheme for loading, `palisade check` and `rules eval`.
pub fn scheme() -> Arc<Scheme> {
    static SCHEME: OnceLock<Arc<Scheme>> = OnceLock::new();
    Arc::clone(SCHEME.get_or_init(|| {
        let mut scheme = Scheme::standard();
        for name in SCORE_FIELDS {
            scheme
                .add_field(name, Type::Int)
                .expect("score field names are valid and distinct");
        }
        Arc::new(scheme)
    }))
}

/// What `config::waf::compile` built from `[waf]`: shared by clones of the configuration.
#[derive(Debug, Clone)]
pub struct CompiledWaf {
    /// The rules, file order then inline order.
    pub rules: Arc<RuleSet>,
    /// The geo databases, when configured.
    pub geo: GeoDatabases,
    /// The configured challenge secret; `None` means the process's random one.
    pub challenge_key: Option<ChallengeKey>,
    /// The managed detection, built once per load; `None` when `managed = false`.
    pub engine: Option<Arc<Engine>>,
}

impl Default for CompiledWaf {
    fn default() -> Self {
        Self {
            rules: Arc::new(RuleSet::empty(scheme())),
            geo: GeoDatabases::default(),
            challenge_key: None,
            engine: Some(Arc::new(Engine::new(WafSettings::default()))),
        }
    }
}

/// The annotation key under which skipped phases are noted for later stages.
const SKIP_ANNOTATION: &str = "waf.skip";

/// A phase's name as written in `skip:` lists.
pub fn phase_name(phase: Phase) -> &'static str {
    Phase::ALL
        .iter()
        .find(|(_, p)| *p == phase)
        .map_or("rules", |(name, _)| name)
}

/// Notes that a skip rule turned `phase` off for this request.
pub fn skip_phase(ctx: &mut RequestContext, phase: Phase) {
    if !phase_skipped(ctx, phase) {
        ctx.annotate(SKIP_ANNOTATION, phase_name(phase));
    }
}

/// Whether a WAF skip rule turned `phase` off for this request. Later stages (rate limits,
/// managed detection, CSRF) ask this before doing their work.
pub fn phase_skipped(ctx: &RequestContext, phase: Phase) -> bool {
    let name = phase_name(phase);
    ctx.annotations
        .iter()
        .any(|(key, value)| *key == SKIP_ANNOTATION && value == name)
}
