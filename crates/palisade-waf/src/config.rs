//! Settings of the managed detection, as operators write them under `[waf]` in
//! `palisade.toml`, validated once when parsed. Nothing here reads files.
//!
//! ```toml
//! [waf]
//! paranoia = 1            # 1..4; higher blocks less certain findings too
//! mode = "enforce"        # or "log": decide and report, never block
//! body_limit = "64KB"     # body bytes inspected; the rest passes uninspected (and is reported)
//!
//! [[waf.exclusion]]       # every WAF needs a way out for a noisy field
//! detectors = ["sqli"]    # classes (sqli, xss, rce, lfi, rfi, php, java, protocol)
//! path_prefix = "/search" #   or detectors (shell, traversal, scanner, ...); needs one of
//! args = ["q"]            #   path_prefix / args; both given means both must match
//! ```

use palisade_policy::units::ByteSize;
use serde::Deserialize;

use crate::class::{AttackClass, DetectorKind};

/// The `[waf]` keys of the managed detection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafSettings {
    /// How suspicious a request must be to block: 1 (default) blocks only near-certain attacks.
    pub paranoia: Paranoia,
    /// Enforce (block) or only log what would have been blocked.
    pub mode: Mode,
    /// How many body bytes the gateway hands to detection (default 64 KB).
    pub body_limit: ByteSize,
    /// Detectors switched off for some paths or argument names.
    #[serde(rename = "exclusion")]
    pub exclusions: Vec<Exclusion>,
}

impl Default for WafSettings {
    fn default() -> Self {
        Self {
            paranoia: Paranoia::default(),
            mode: Mode::Enforce,
            body_limit: ByteSize(64 * 1024),
            exclusions: Vec::new(),
        }
    }
}

/// Paranoia level 1..=4: each level also blocks the less certain findings of the level below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u8")]
pub struct Paranoia(u8);

impl Paranoia {
    /// The level, 1..=4.
    pub fn level(self) -> u8 {
        self.0
    }

    /// The highest score (1 = certain attack, 99 = clean) that this level blocks.
    pub fn threshold(self) -> u8 {
        match self.0 {
            1 => 20,
            2 => 35,
            3 => 50,
            _ => 65,
        }
    }
}

impl Default for Paranoia {
    fn default() -> Self {
        Self(1)
    }
}

impl TryFrom<u8> for Paranoia {
    type Error = String;

    fn try_from(level: u8) -> Result<Self, Self::Error> {
        match level {
            1..=4 => Ok(Self(level)),
            _ => Err(format!(
                "invalid paranoia level {level}: expected 1, 2, 3 or 4 (1 blocks only near-certain attacks)"
            )),
        }
    }
}

/// Whether a decision to block is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Block requests that reach the threshold.
    Enforce,
    /// Report them, let them through.
    Log,
}

/// Turns detectors off where an application legitimately sends what they look for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawExclusion")]
pub struct Exclusion {
    /// What is switched off.
    pub targets: Vec<ExclusionTarget>,
    /// Only under this path prefix (matched on the decoded path).
    pub path_prefix: Option<String>,
    /// Only for inputs with these names (query, form, JSON keys' last segment, cookies).
    pub args: Vec<String>,
}

/// A class or a single detector named in an exclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExclusionTarget {
    /// Every detector reporting this class.
    Class(AttackClass),
    /// One detector.
    Detector(DetectorKind),
}

/// Whether `path` is `prefix` or below it, a whole segment at a time: `/api/search` covers
/// `/api/search` and `/api/search/x`, not `/api/searchx`. An exclusion switches inspection
/// off, so it must not reach paths its author did not name.
fn under_prefix(path: &str, prefix: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
}

impl Exclusion {
    /// Whether this exclusion silences a finding of `detector` in input `arg` under `path`.
    pub fn covers(&self, detector: DetectorKind, path: &str, arg: Option<&str>) -> bool {
        let target_hit = self.targets.iter().any(|t| match t {
            ExclusionTarget::Class(class) => detector.class() == *class,
            ExclusionTarget::Detector(kind) => *kind == detector,
        });
        let path_hit = self
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| under_prefix(path, prefix));
        let arg_hit = self.args.is_empty()
            || arg.is_some_and(|name| self.args.iter().any(|a| a.eq_ignore_ascii_case(name)));
        target_hit && path_hit && arg_hit
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclusion {
    detectors: Vec<String>,
    path_prefix: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

impl TryFrom<RawExclusion> for Exclusion {
    type Error = String;

    fn try_from(raw: RawExclusion) -> Result<Self, Self::Error> {
        if raw.detectors.is_empty() {
            return Err(
                "waf exclusion names no detectors: list classes or detectors, \
                        e.g. detectors = [\"sqli\"]"
                    .into(),
            );
        }
        if raw.path_prefix.is_none() && raw.args.is_empty() {
            return Err(
                "waf exclusion needs path_prefix or args: to switch a detector off \
                        everywhere, lower the paranoia level or use mode = \"log\""
                    .into(),
            );
        }
        let targets = raw
            .detectors
            .iter()
            .map(|name| parse_target(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            targets,
            path_prefix: raw.path_prefix,
            args: raw.args,
        })
    }
}

fn parse_target(name: &str) -> Result<ExclusionTarget, String> {
    if let Some(class) = AttackClass::from_name(name) {
        return Ok(ExclusionTarget::Class(class));
    }
    if let Some(kind) = DetectorKind::from_name(name) {
        return Ok(ExclusionTarget::Detector(kind));
    }
    Err(format!(
        "unknown waf detector {name:?}: expected a class ({}) or a detector ({})",
        AttackClass::ALL.map(|c| c.name()).join(", "),
        DetectorKind::ALL.map(|d| d.name()).join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<WafSettings, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_paranoia_one_enforce_and_64kb() {
        let s = parse("{}").expect("empty settings are valid");
        assert_eq!(s.paranoia.level(), 1);
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(s.body_limit, ByteSize(65536));
    }

    #[test]
    fn rejects_paranoia_outside_one_to_four() {
        let err = parse(r#"{"paranoia": 5}"#).expect_err("5 is out of range");
        assert!(err.contains("paranoia"), "{err}");
        assert!(parse(r#"{"paranoia": 0}"#).is_err());
    }

    #[test]
    fn reads_log_mode_and_human_sizes() {
        let s = parse(r#"{"mode": "log", "body_limit": "1MB"}"#).expect("valid");
        assert_eq!(s.mode, Mode::Log);
        assert_eq!(s.body_limit, ByteSize(1 << 20));
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(parse(r#"{"paranoya": 2}"#).is_err());
    }

    #[test]
    fn exclusion_needs_a_scope() {
        let err = parse(r#"{"exclusion": [{"detectors": ["sqli"]}]}"#).expect_err("no scope");
        assert!(err.contains("path_prefix"), "{err}");
    }

    #[test]
    fn exclusion_rejects_unknown_detector_names() {
        let err =
            parse(r#"{"exclusion": [{"detectors": ["sqly"], "args": ["q"]}]}"#).expect_err("typo");
        assert!(err.contains("sqly"), "{err}");
    }

    #[test]
    fn exclusion_by_class_covers_its_detectors_only_under_its_scope() {
        let s = parse(r#"{"exclusion": [{"detectors": ["rce"], "path_prefix": "/admin"}]}"#)
            .expect("valid");
        let ex = &s.exclusions[0];
        assert!(ex.covers(DetectorKind::Shell, "/admin/run", Some("cmd")));
        assert!(!ex.covers(DetectorKind::Shell, "/public", Some("cmd")));
        assert!(!ex.covers(DetectorKind::Sqli, "/admin/run", Some("cmd")));
    }

    #[test]
    fn an_exclusion_path_prefix_covers_whole_segments_only() {
        assert!(under_prefix("/api/search", "/api/search"));
        assert!(under_prefix("/api/search/deep", "/api/search"));
        assert!(!under_prefix("/api/searchx", "/api/search"));
        assert!(!under_prefix("/api/search-admin/run", "/api/search"));
        assert!(under_prefix("/api/search/x", "/api/search/"));
        assert!(!under_prefix("/api/search", "/api/search/"));
        assert!(under_prefix("/anything", "/"));
    }

    #[test]
    fn exclusion_by_arg_matches_names_case_insensitively() {
        let s =
            parse(r#"{"exclusion": [{"detectors": ["xss"], "args": ["Body"]}]}"#).expect("valid");
        let ex = &s.exclusions[0];
        assert!(ex.covers(DetectorKind::Xss, "/post", Some("body")));
        assert!(!ex.covers(DetectorKind::Xss, "/post", Some("title")));
        assert!(!ex.covers(DetectorKind::Xss, "/post", None));
    }
}
