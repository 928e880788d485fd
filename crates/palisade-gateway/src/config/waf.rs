//! The `[waf]` section: custom rules (a YAML file and/or inline `[[waf.rule]]` tables), how
//! much of a body rules may read, the geo databases and the challenge's settings.
//!
//! Parsing is serde's; [`compile`] then does what serde cannot: reads and compiles the rules
//! file, opens the geo databases and reads the challenge secret, reporting every problem as a
//! [`Diagnostic`] with the file, line and column of the mistake, so `palisade check` and a
//! refused reload say the same thing. The compiled result rides in [`WafConfig::compiled`].
//!
//! The managed detection (`managed`, `paranoia`, `mode`, `[[waf.exclusion]]`) has its keys
//! in [`WafConfig`] beside these and shares `body_limit`, so one body prefix serves both.
//! [`compile`] builds its `palisade_waf::Engine` once per load, so a reload swaps it whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_expr::{LoadErrors, RuleSet, RuleTable, rules};
use palisade_geo::{DatabaseKind, GeoSource};
use palisade_policy::challenge::{ChallengeKey, MAX_DIFFICULTY};
use palisade_policy::units::{ByteSize, HumanDuration};
use palisade_waf::{Engine, Exclusion, Mode, Paranoia, WafSettings};
use serde::Deserialize;

use super::Diagnostic;
use crate::waf::{CompiledWaf, GeoDatabases};

/// Environment variable holding the challenge signing secret (32 bytes or more).
pub const CHALLENGE_SECRET_ENV: &str = "PALISADE_CHALLENGE_SECRET";

/// The largest body prefix rules may read: bodies are held in memory while rules run.
const MAX_BODY_INSPECTION: u64 = 16 * 1024 * 1024;

/// `[waf]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafConfig {
    /// `rules = "waf.yaml"`: the rules file, relative to the configuration file.
    pub rules: Option<PathBuf>,
    /// `[[waf.rule]]`: rules written inline; they run after the file's.
    pub rule: Vec<RuleTable>,
    /// How much of a request body is inspected: what rules reading body fields see and what
    /// managed detection reads. Default `64KB`.
    pub body_limit: ByteSize,
    /// `managed = false` turns the managed attack detection off. Default on.
    pub managed: bool,
    /// How certain managed detection must be to block: 1 (default, near-certain attacks
    /// only) to 4.
    pub paranoia: Paranoia,
    /// `"enforce"` (default) blocks; `"log"` lets the request through and records that it
    /// would have been blocked.
    pub mode: Mode,
    /// `[[waf.exclusion]]`: managed detectors switched off for a path prefix or argument.
    #[serde(rename = "exclusion")]
    pub exclusions: Vec<Exclusion>,
    /// A MaxMind-format country database for `ip.src.country`.
    pub geoip_country_db: Option<PathBuf>,
    /// A MaxMind-format ASN database for `ip.src.asnum`.
    pub geoip_asn_db: Option<PathBuf>,
    /// How often the geo database files are checked for replacement. Default `60s`.
    pub geoip_reload_interval: HumanDuration,
    /// `[waf.challenge]`: the proof-of-work interstitial.
    pub challenge: ChallengeConfig,
    /// What [`compile`] built from the keys above (rules, databases, secret).
    #[serde(skip)]
    pub compiled: CompiledWaf,
}

impl Default for WafConfig {
    fn default() -> Self {
        Self {
            rules: None,
            rule: Vec::new(),
            body_limit: ByteSize(64 * 1024),
            managed: true,
            paranoia: Paranoia::default(),
            mode: Mode::Enforce,
            exclusions: Vec::new(),
            geoip_country_db: None,
            geoip_asn_db: None,
            geoip_reload_interval: HumanDuration(Duration::from_secs(60)),
            challenge: ChallengeConfig::default(),
            compiled: CompiledWaf::default(),
        }
    }
}

/// `[waf.challenge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeConfig {
    /// Leading zero bits the browser's SHA-256 must reach: about `2^difficulty` hashes, so
    /// each step doubles the work. Default 16 (well under a second in a current browser).
    pub difficulty: u8,
    /// How long a solved challenge lets the client through. Default `1h`.
    pub clearance_ttl: HumanDuration,
    /// How long a puzzle may take to solve and be sent back. Default `5m`.
    pub puzzle_ttl: HumanDuration,
    /// A file holding the signing secret (32+ bytes). `PALISADE_CHALLENGE_SECRET` wins over
    /// it; with neither, a random secret is made at start-up (with a warning).
    pub secret_file: Option<PathBuf>,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            difficulty: 16,
            clearance_ttl: HumanDuration(Duration::from_secs(3600)),
            puzzle_ttl: HumanDuration(Duration::from_secs(300)),
            secret_file: None,
        }
    }
}

/// Compiles `[waf]` of the configuration `text` read from `path` into `waf.compiled`; returns
/// every problem found (none: the section is ready to use).
pub fn compile(waf: &mut WafConfig, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = check_values(waf, path, text);
    diagnostics.extend(check_exclusions(waf, path, text));
    waf.compiled.engine = waf
        .managed
        .then(|| Arc::new(Engine::new(managed_settings(waf))));
    let base = path.parent().unwrap_or(Path::new(""));
    match load_rules(waf, base, path, text) {
        Ok(rules) => waf.compiled.rules = Arc::new(rules),
        Err(errors) => diagnostics.extend(errors.0.into_iter().map(located)),
    }
    let mut open = |db: &Option<PathBuf>, kind| {
        let db = db.as_ref()?;
        let at = super::validate::locate(text, "waf", key_of(kind));
        if let Err(why) = super::paths::readable_file(&base.join(db)) {
            let message = super::paths::unusable(&format!("waf.{}", key_of(kind)), db, base, &why);
            diagnostics.push(Diagnostic::at(path, text, at, message));
            return None;
        }
        GeoSource::open(&base.join(db), kind)
            .map(Arc::new)
            .map_err(|err| diagnostics.push(Diagnostic::at(path, text, at, err.to_string())))
            .ok()
    };
    let country = open(&waf.geoip_country_db, DatabaseKind::Country);
    let asn = open(&waf.geoip_asn_db, DatabaseKind::Asn);
    waf.compiled.geo = GeoDatabases::new(country, asn);
    match challenge_secret(&waf.challenge, base) {
        Ok(key) => waf.compiled.challenge_key = key,
        Err(message) => {
            let at = super::validate::locate(text, "waf.challenge", "secret_file");
            diagnostics.push(Diagnostic::at(path, text, at, message));
        }
    }
    diagnostics
}

/// The managed detection's settings from the `[waf]` keys they share with the rules.
fn managed_settings(waf: &WafConfig) -> WafSettings {
    WafSettings {
        paranoia: waf.paranoia,
        mode: waf.mode,
        body_limit: waf.body_limit,
        exclusions: waf.exclusions.clone(),
    }
}

fn key_of(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Country => "geoip_country_db",
        DatabaseKind::Asn => "geoip_asn_db",
    }
}

/// Ranges serde cannot check.
fn check_values(waf: &WafConfig, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut refuse = |section: &str, key: &str, message: String| {
        let at = super::validate::locate(text, section, key);
        diagnostics.push(Diagnostic::at(path, text, at, message));
    };
    let limit = waf.body_limit.0;
    if limit == 0 || limit > MAX_BODY_INSPECTION {
        refuse(
            "waf",
            "body_limit",
            format!("waf.body_limit must be between 1B and 16MB (found {limit} bytes)"),
        );
    }
    if waf.geoip_reload_interval.0 < Duration::from_secs(1) {
        refuse(
            "waf",
            "geoip_reload_interval",
            "waf.geoip_reload_interval must be at least 1s".into(),
        );
    }
    let challenge = &waf.challenge;
    if !(1..=MAX_DIFFICULTY).contains(&challenge.difficulty) {
        refuse(
            "waf.challenge",
            "difficulty",
            format!(
                "waf.challenge.difficulty must be between 1 and {MAX_DIFFICULTY} (found {}); \
                 each step doubles the work, 16 takes well under a second",
                challenge.difficulty
            ),
        );
    }
    for (key, ttl) in [
        ("clearance_ttl", challenge.clearance_ttl),
        ("puzzle_ttl", challenge.puzzle_ttl),
    ] {
        if ttl.0 < Duration::from_secs(1) {
            refuse(
                "waf.challenge",
                key,
                format!("waf.challenge.{key} must be at least 1s"),
            );
        }
    }
    diagnostics
}

/// Exclusion paths are matched against the decoded path, which always starts with `/`: a
/// prefix without one would silently never match.
fn check_exclusions(waf: &WafConfig, path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for exclusion in &waf.exclusions {
        if let Some(prefix) = exclusion.path_prefix.as_deref() {
            if !prefix.starts_with('/') {
                let at = locate_value(text, "path_prefix", prefix);
                diagnostics.push(Diagnostic::at(
                    path,
                    text,
                    at,
                    format!(
                        "waf.exclusion.path_prefix {prefix:?} must start with '/': it is \
                         matched against the decoded request path"
                    ),
                ));
            }
        }
    }
    diagnostics
}

/// The line `key = "value"` (the first one holding that value), for settings written in
/// repeated tables where [`super::validate::locate`] would find the first table's key.
fn locate_value(text: &str, key: &str, value: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_key = trimmed
            .split_once('=')
            .is_some_and(|(k, v)| k.trim().trim_matches('"') == key && v.contains(value));
        if is_key {
            return Some(offset + indent..offset + line.trim_end().len());
        }
        offset += line.len();
    }
    None
}

/// The rules file's rules, then the inline ones, as one set.
fn load_rules(
    waf: &WafConfig,
    base: &Path,
    config_path: &Path,
    text: &str,
) -> Result<RuleSet, LoadErrors> {
    let scheme = crate::waf::scheme();
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    if let Some(written) = &waf.rules {
        let file = base.join(written);
        let name = file.display().to_string();
        match super::file::read_text(&file) {
            Ok(yaml) => match rules::load_yaml(&name, &yaml, &scheme) {
                Ok(rules) => loaded.extend(rules),
                Err(e) => errors.extend(e.0),
            },
            Err(err) => {
                let at = super::validate::locate(text, "waf", "rules");
                let (line, column) = at.map_or((0, 0), |at| super::line_and_column(text, at.start));
                let why = format!(
                    "cannot read the rules file: {}",
                    super::file::describe(&err)
                );
                errors.push(rules::LoadError {
                    file: config_path.display().to_string(),
                    line,
                    column,
                    rule: None,
                    message: super::paths::unusable("waf.rules", written, base, &why),
                });
            }
        }
    }
    if !waf.rule.is_empty() {
        let name = config_path.display().to_string();
        match rules::load_tables(&name, text, &waf.rule, &scheme) {
            Ok(rules) => loaded.extend(rules),
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    RuleSet::new(loaded, scheme)
}

/// A rules-file error as a configuration diagnostic (same `FILE:LINE:COL: message` form).
fn located(error: rules::LoadError) -> Diagnostic {
    let message = match &error.rule {
        Some(rule) => format!("{} (rule '{rule}')", error.message),
        None => error.message,
    };
    Diagnostic {
        file: PathBuf::from(error.file),
        line: error.line,
        column: error.column,
        message,
    }
}

/// The configured secret: the environment variable, else the file, else none (the process
/// then uses the random one of its services).
fn challenge_secret(
    challenge: &ChallengeConfig,
    base: &Path,
) -> Result<Option<ChallengeKey>, String> {
    if let Ok(secret) = std::env::var(CHALLENGE_SECRET_ENV) {
        return ChallengeKey::from_secret(secret.trim().as_bytes())
            .map(Some)
            .map_err(|err| format!("{CHALLENGE_SECRET_ENV}: {err}"));
    }
    let Some(file) = &challenge.secret_file else {
        return Ok(None);
    };
    let written = file;
    let file = base.join(written);
    let read = super::file::read_bounded(&file, super::file::MAX_SECRET_FILE);
    let secret = zeroize::Zeroizing::new(read.map_err(|err| {
        let why = super::file::describe(&err);
        super::paths::unusable("waf.challenge.secret_file", written, base, &why)
    })?);
    ChallengeKey::from_secret(secret.trim_ascii())
        .map(Some)
        .map_err(|err| format!("waf.challenge.secret_file {}: {err}", file.display()))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use tempfile::TempDir;

    use super::super::{Config, ConfigError};

    /// A directory holding `palisade.toml` with `toml` and each `(name, contents)` file.
    fn load(toml: &str, files: &[(&str, &[u8])]) -> (Result<Config, ConfigError>, TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write");
        }
        let path = dir.path().join("palisade.toml");
        (Config::from_toml(&path, toml), dir)
    }

    fn messages(result: Result<Config, ConfigError>) -> Vec<String> {
        let err = result.expect_err("refused");
        err.diagnostics.iter().map(ToString::to_string).collect()
    }

    fn geo_fixture(name: &str) -> PathBuf {
        let shared = std::env::var_os("PALISADE_SHARED").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            PathBuf::from,
        );
        shared.join("fixtures/geoip").join(name)
    }

    const RULE: &[u8] = b"rules:\n  - name: A\n    expression: ssl\n    action: log\n";

    #[test]
    fn the_rules_file_is_found_beside_the_config_and_inline_rules_follow_it() {
        let toml = "[waf]\nrules = \"waf.yaml\"\n[[waf.rule]]\nname = \"B\"\n\
                    expression = 'http.host eq \"x\"'\naction = \"block\"\n";
        let (result, _) = load(toml, &[("waf.yaml", RULE)]);
        let config = result.expect("valid");
        let names: Vec<&str> = config
            .waf
            .compiled
            .rules
            .rules()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn a_missing_rules_file_is_an_error_at_its_key_naming_it() {
        let (result, dir) = load("[waf]\nrules = \"nope.yaml\"\n", &[]);
        let errors = messages(result);
        let expected = format!(
            "{}:2:1: waf.rules: {}: cannot read the rules file: no such file or directory \
             (the relative path \"nope.yaml\" is read from the configuration file's directory)",
            dir.path().join("palisade.toml").display(),
            dir.path().join("nope.yaml").display()
        );
        assert_eq!(errors, [expected]);
    }

    #[test]
    fn rule_names_must_be_unique_across_the_file_and_the_inline_tables() {
        let toml = "[waf]\nrules = \"waf.yaml\"\n[[waf.rule]]\nname = \"A\"\n\
                    expression = 'ssl'\naction = \"log\"\n";
        let (result, _) = load(toml, &[("waf.yaml", RULE)]);
        let errors = messages(result);
        assert!(errors[0].contains("palisade.toml:5:"), "{errors:?}");
        assert!(errors[0].contains("same name"), "{errors:?}");
    }

    #[test]
    fn inline_rule_mistakes_point_into_the_toml_file() {
        let toml = "[[waf.rule]]\nname = \"X\"\nexpression = 'ip.src contains \"x\"'\n\
                    action = \"block\"\n";
        let (result, _) = load(toml, &[]);
        let errors = messages(result);
        assert!(errors[0].contains("palisade.toml:3:"), "{errors:?}");
        assert!(errors[0].contains("(rule 'X')"), "{errors:?}");
    }

    #[test]
    fn unknown_waf_keys_are_refused() {
        let (result, _) = load("[waf]\nrulez = \"waf.yaml\"\n", &[]);
        assert!(messages(result)[0].contains("unknown field `rulez`"));
    }

    #[test]
    fn missing_and_corrupt_geo_databases_are_errors_naming_the_file_and_key() {
        let (result, dir) = load("[waf]\ngeoip_country_db = \"missing.mmdb\"\n", &[]);
        let errors = messages(result);
        assert!(errors[0].contains("palisade.toml:2:1:"), "{errors:?}");
        assert!(errors[0].contains(&dir.path().join("missing.mmdb").display().to_string()));

        let toml = "[waf]\ngeoip_asn_db = \"bad.mmdb\"\n";
        let (result, _) = load(toml, &[("bad.mmdb", b"not a database")]);
        let errors = messages(result);
        assert!(
            errors[0].contains("bad.mmdb: not a readable MaxMind"),
            "{errors:?}"
        );
    }

    #[test]
    fn geo_databases_open_and_answer() {
        let toml = format!(
            "[waf]\ngeoip_country_db = \"{}\"\ngeoip_asn_db = \"{}\"\n",
            geo_fixture("GeoLite2-Country-Test.mmdb").display(),
            geo_fixture("GeoLite2-ASN-Test.mmdb").display()
        );
        let (result, _) = load(&toml, &[]);
        let geo = result.expect("valid").waf.compiled.geo;
        let ip = "111.235.160.1".parse().expect("ip");
        assert_eq!(geo.country(ip).as_deref(), Some("CN"));
        assert_eq!(geo.asn("1.0.0.1".parse().expect("ip")), Some(15169));
    }

    #[test]
    fn challenge_settings_out_of_range_are_refused() {
        let toml = "[waf.challenge]\ndifficulty = 31\nclearance_ttl = \"0s\"\n";
        let errors = messages(load(toml, &[]).0);
        assert!(
            errors[0].contains("palisade.toml:2:1: waf.challenge.difficulty"),
            "{errors:?}"
        );
        assert!(errors[1].contains("palisade.toml:3:1: waf.challenge.clearance_ttl"));
        let errors = messages(load("[waf]\nbody_limit = \"32MB\"\n", &[]).0);
        assert!(errors[0].contains("body_limit"), "{errors:?}");
    }

    #[test]
    fn the_challenge_secret_file_must_hold_32_bytes() {
        let toml = "[waf.challenge]\nsecret_file = \"key\"\n";
        let errors = messages(load(toml, &[("key", b"short\n")]).0);
        assert!(errors[0].contains("secret_file"), "{errors:?}");
        assert!(errors[0].contains("5 bytes long"), "{errors:?}");
        let (result, _) = load(toml, &[("key", &[b'k'; 40])]);
        assert!(result.expect("valid").waf.compiled.challenge_key.is_some());
    }

    #[test]
    fn managed_detection_is_on_by_default_at_paranoia_one() {
        let config = load("", &[]).0.expect("valid");
        let engine = config.waf.compiled.engine.expect("managed detection on");
        assert_eq!(engine.settings().paranoia.level(), 1);
        assert_eq!(engine.settings().mode, palisade_waf::Mode::Enforce);
        let config = load("[waf]\nmanaged = false\n", &[]).0.expect("valid");
        assert!(config.waf.compiled.engine.is_none());
    }

    #[test]
    fn managed_settings_reach_the_engine() {
        let toml = "[waf]\nparanoia = 3\nmode = \"log\"\nbody_limit = \"8KB\"\n\
                    [[waf.exclusion]]\ndetectors = [\"xss\"]\nargs = [\"html\"]\n";
        let config = load(toml, &[]).0.expect("valid");
        let engine = config.waf.compiled.engine.expect("managed detection on");
        let settings = engine.settings();
        assert_eq!(settings.paranoia.level(), 3);
        assert_eq!(settings.mode, palisade_waf::Mode::Log);
        assert_eq!(settings.body_limit.0, 8 * 1024);
        assert_eq!(settings.exclusions.len(), 1);
    }

    #[test]
    fn a_paranoia_level_out_of_range_is_refused_at_its_line() {
        let errors = messages(load("[waf]\nparanoia = 5\n", &[]).0);
        assert!(errors[0].contains("palisade.toml:2:"), "{errors:?}");
        assert!(errors[0].contains("expected 1, 2, 3 or 4"), "{errors:?}");
        let errors = messages(load("[waf]\nmode = \"block\"\n", &[]).0);
        assert!(errors[0].contains("palisade.toml:2:"), "{errors:?}");
    }

    #[test]
    fn bad_exclusions_are_refused_at_their_table() {
        let toml = "[waf]\n\n[[waf.exclusion]]\ndetectors = [\"sqly\"]\nargs = [\"q\"]\n";
        let errors = messages(load(toml, &[]).0);
        assert!(errors[0].contains("palisade.toml:"), "{errors:?}");
        assert!(
            errors[0].contains("unknown waf detector \"sqly\""),
            "{errors:?}"
        );
        let toml = "[[waf.exclusion]]\ndetectors = [\"sqli\"]\n";
        let errors = messages(load(toml, &[]).0);
        assert!(
            errors[0].contains("needs path_prefix or args"),
            "{errors:?}"
        );
    }

    #[test]
    fn an_exclusion_path_without_a_leading_slash_is_refused_on_its_line() {
        let toml = "[[waf.exclusion]]\ndetectors = [\"sqli\"]\npath_prefix = \"/ok\"\n\
                    [[waf.exclusion]]\ndetectors = [\"xss\"]\npath_prefix = \"cms\"\n";
        let errors = messages(load(toml, &[]).0);
        assert!(
            errors[0].contains("palisade.toml:6:1: waf.exclusion.path_prefix \"cms\""),
            "{errors:?}"
        );
    }
}
