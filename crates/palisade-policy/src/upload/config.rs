//! The `[[upload]]` and `[scanner]` sections of `palisade.toml`: the raw serde shapes as
//! written, and the validated rules the rest of the upload code reads. Validation happens
//! once, here; nothing downstream re-checks a setting.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::sniff::FileType;
use crate::units::{ByteSize, HumanDuration};

/// One `[[upload]]` table as written in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSection {
    /// Path prefix of the requests this table applies to (`/upload`).
    pub path: String,
    /// Methods inspected; default `["POST", "PUT"]`.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Largest file accepted; default `5MB`.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Most files in one request; default 10.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
    /// Largest request body; default `max_files × max_file_size + 1MB`.
    #[serde(default)]
    pub max_body_size: Option<ByteSize>,
    /// Most parts (files and fields) in one multipart body; default 64.
    #[serde(default = "default_max_parts")]
    pub max_parts: u32,
    /// Largest non-file form field; default `64KB`.
    #[serde(default = "default_max_field_size")]
    pub max_field_size: ByteSize,
    /// Media types accepted, judged by bytes; default JPEG, PNG and WebP.
    #[serde(default = "default_allowed_types")]
    pub allowed_types: Vec<String>,
    /// Most pixels (width × height) an image may claim; default 50 megapixels. Written as a
    /// number (`50000000`) or with a suffix (`"50MP"`).
    #[serde(default)]
    pub max_pixels: Option<PixelCount>,
    /// Remove EXIF, XMP and GPS metadata from JPEG, PNG and WebP before forwarding; default
    /// false.
    #[serde(default)]
    pub strip_metadata: bool,
    /// Scan files with the virus scanner; default true when `[scanner]` is configured.
    #[serde(default)]
    pub scan: Option<bool>,
    /// What a scanner failure (down, slow, error) means; default `reject`.
    #[serde(default)]
    pub on_scanner_error: OnScannerError,
    /// Where refused files are kept with a JSON note for review; default: not kept.
    #[serde(default)]
    pub quarantine_dir: Option<PathBuf>,
    /// Longest wait for the next piece of the body; a client that stalls longer is answered
    /// 408 and nothing is forwarded. Default `10s`.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: HumanDuration,
}

impl UploadSection {
    /// A table for `path` with every other key at its default, as if written
    /// `[[upload]] path = "..."`.
    pub fn with_path(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            methods: default_methods(),
            max_file_size: default_max_file_size(),
            max_files: default_max_files(),
            max_body_size: None,
            max_parts: default_max_parts(),
            max_field_size: default_max_field_size(),
            allowed_types: default_allowed_types(),
            max_pixels: None,
            strip_metadata: false,
            scan: None,
            on_scanner_error: OnScannerError::Reject,
            quarantine_dir: None,
            body_read_timeout: default_body_read_timeout(),
        }
    }
}

/// The `[scanner]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSection {
    /// `tcp://HOST:PORT` or `unix:///path/to/clamd.ctl`.
    pub clamd: String,
    /// How long any one exchange with clamd may take; default `10s`.
    #[serde(default = "default_scanner_timeout")]
    pub timeout: HumanDuration,
}

/// What to do when the scanner cannot give a verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnScannerError {
    /// Refuse the upload with 503 (the default).
    #[default]
    Reject,
    /// Let the file through unscanned; weakens protection and is logged at `warn`.
    Allow,
}

/// A number of pixels, written as an integer or with a `MP` (megapixel) suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelCount(pub u64);

impl<'de> Deserialize<'de> for PixelCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Count(n) => return Ok(Self(n)),
            Raw::Text(text) => text,
        };
        let trimmed = text.trim();
        let digits = trimmed
            .strip_suffix("MP")
            .or_else(|| trimmed.strip_suffix("mp"))
            .map(str::trim);
        digits
            .and_then(|d| d.parse::<u64>().ok())
            .and_then(|n| n.checked_mul(1_000_000))
            .map(Self)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid pixel count {text:?}: expected a number or megapixels such as \"50MP\""
                ))
            })
    }
}

fn default_methods() -> Vec<String> {
    vec!["POST".into(), "PUT".into()]
}
fn default_max_file_size() -> ByteSize {
    ByteSize(5 << 20)
}
fn default_max_files() -> u32 {
    10
}
fn default_max_parts() -> u32 {
    64
}
fn default_max_field_size() -> ByteSize {
    ByteSize(64 << 10)
}
fn default_allowed_types() -> Vec<String> {
    ["image/jpeg", "image/png", "image/webp"]
        .map(String::from)
        .to_vec()
}
fn default_body_read_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_scanner_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

/// Default `max_pixels`: 50 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// Size and count limits of one upload rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest file, in bytes.
    pub max_file_size: u64,
    /// Most files per request.
    pub max_files: u32,
    /// Largest body, in bytes.
    pub max_body_size: u64,
    /// Most multipart parts.
    pub max_parts: u32,
    /// Largest non-file field, in bytes.
    pub max_field_size: u64,
}

/// A validated `[[upload]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRule {
    /// Path prefix matched against the normalised request path.
    pub path_prefix: String,
    /// Upper-case methods inspected.
    pub methods: Vec<String>,
    /// Size and count limits.
    pub limits: UploadLimits,
    /// Types accepted.
    pub allowed_types: Vec<FileType>,
    /// Most pixels an image may claim.
    pub max_pixels: u64,
    /// Whether EXIF/XMP/GPS metadata is removed before forwarding.
    pub strip_metadata: bool,
    /// Whether files go to the virus scanner.
    pub scan: bool,
    /// What a scanner failure means.
    pub on_scanner_error: OnScannerError,
    /// Where refused files are kept, if anywhere.
    pub quarantine_dir: Option<PathBuf>,
    /// Longest wait for the next piece of the body.
    pub body_read_timeout: Duration,
}

impl UploadRule {
    /// Whether a request with this method and (normalised) path is an upload under this rule.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Whether files of this type are accepted.
    pub fn allows(&self, file_type: FileType) -> bool {
        self.allowed_types.contains(&file_type)
    }
}

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    /// `host:port` of a TCP listener.
    Tcp(String),
    /// Path of a Unix socket.
    Unix(PathBuf),
}

impl fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl std::str::FromStr for ClamdAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(addr) = text.strip_prefix("tcp://") {
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!(
                    "invalid clamd address {text:?}: expected tcp://HOST:PORT such as \
                     \"tcp://127.0.0.1:3310\""
                ));
            }
            return Ok(Self::Tcp(addr.to_owned()));
        }
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "invalid clamd address {text:?}: a unix socket path must be absolute, \
                     such as \"unix:///run/clamav/clamd.ctl\""
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        Err(format!(
            "invalid clamd address {text:?}: expected tcp://HOST:PORT or unix:///PATH"
        ))
    }
}

/// The validated `[scanner]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerConfig {
    /// Where clamd listens.
    pub address: ClamdAddress,
    /// Limit on each exchange with clamd (connect, each write, the verdict).
    pub timeout: Duration,
}

/// All upload rules and the scanner, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadConfig {
    /// The rules in file order.
    pub rules: Vec<UploadRule>,
    /// The virus scanner, if configured.
    pub scanner: Option<ScannerConfig>,
}

/// A configuration mistake, naming the key and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct UploadConfigError {
    /// The key at fault, like `upload[0].allowed_types` or `scanner.clamd`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl UploadConfig {
    /// Validates the sections as parsed from TOML.
    pub fn from_sections(
        uploads: &[UploadSection],
        scanner: Option<&ScannerSection>,
    ) -> Result<Self, UploadConfigError> {
        let scanner = scanner.map(validate_scanner).transpose()?;
        let rules = uploads
            .iter()
            .enumerate()
            .map(|(i, section)| validate_rule(i, section, scanner.is_some()))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules, scanner })
    }

    /// The rule for a request: the longest matching path prefix, the first in file order on a
    /// tie. `path` must be the normalised path (percent-decoded, dot segments resolved), so
    /// that `/%75pload` cannot slip past a rule for `/upload`.
    pub fn rule_for(&self, method: &str, path: &str) -> Option<&UploadRule> {
        self.rules.iter().filter(|r| r.matches(method, path)).fold(
            None,
            |best: Option<&UploadRule>, r| match best {
                Some(b) if b.path_prefix.len() >= r.path_prefix.len() => Some(b),
                _ => Some(r),
            },
        )
    }
}

fn validate_scanner(section: &ScannerSection) -> Result<ScannerConfig, UploadConfigError> {
    let err = |key: &str, message: String| UploadConfigError {
        key: format!("scanner.{key}"),
        message,
    };
    let address = section.clamd.parse().map_err(|m| err("clamd", m))?;
    if section.timeout.0.is_zero() {
        return Err(err(
            "timeout",
            "must be more than zero, such as \"10s\"".into(),
        ));
    }
    Ok(ScannerConfig {
        address,
        timeout: section.timeout.0,
    })
}

fn validate_rule(
    index: usize,
    s: &UploadSection,
    have_scanner: bool,
) -> Result<UploadRule, UploadConfigError> {
    let err = |key: &str, message: &str| UploadConfigError {
        key: format!("upload[{index}].{key}"),
        message: message.to_owned(),
    };
    if !s.path.starts_with('/') {
        return Err(err("path", "must start with '/', such as \"/upload\""));
    }
    let methods = validate_methods(&s.methods).map_err(|m| err("methods", &m))?;
    let limits = validate_limits(s).map_err(|(key, m)| err(key, m))?;
    let allowed_types = validate_types(&s.allowed_types).map_err(|m| err("allowed_types", &m))?;
    let max_pixels = s.max_pixels.map_or(DEFAULT_MAX_PIXELS, |p| p.0);
    if max_pixels == 0 {
        return Err(err(
            "max_pixels",
            "must be more than zero, such as \"50MP\"",
        ));
    }
    let scan = s.scan.unwrap_or(have_scanner);
    if scan && !have_scanner {
        return Err(err(
            "scan",
            "scanning needs a [scanner] section with clamd = \"tcp://HOST:PORT\"",
        ));
    }
    if s.quarantine_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(err("quarantine_dir", "must be a directory path"));
    }
    if s.body_read_timeout.0.is_zero() {
        return Err(err(
            "body_read_timeout",
            "must be more than zero, such as \"10s\"",
        ));
    }
    Ok(UploadRule {
        path_prefix: s.path.clone(),
        methods,
        limits,
        allowed_types,
        max_pixels,
        strip_metadata: s.strip_metadata,
        scan,
        on_scanner_error: s.on_scanner_error,
        quarantine_dir: s.quarantine_dir.clone(),
        body_read_timeout: s.body_read_timeout.0,
    })
}

fn validate_methods(methods: &[String]) -> Result<Vec<String>, String> {
    if methods.is_empty() {
        return Err("must name at least one method, such as [\"POST\"]".into());
    }
    methods
        .iter()
        .map(|m| {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!(
                    "invalid method {m:?}: expected a name such as \"POST\""
                ));
            }
            Ok(m.to_ascii_uppercase())
        })
        .collect()
}

fn validate_limits(s: &UploadSection) -> Result<UploadLimits, (&'static str, &'static str)> {
    let positive = |key, value: u64| {
        if value == 0 {
            Err((key, "must be more than zero"))
        } else {
            Ok(value)
        }
    };
    let max_file_size = positive("max_file_size", s.max_file_size.0)?;
    let max_files = positive("max_files", s.max_files.into())? as u32;
    let default_body = max_file_size
        .saturating_mul(max_files.into())
        .saturating_add(1 << 20);
    Ok(UploadLimits {
        max_file_size,
        max_files,
        max_body_size: positive(
            "max_body_size",
            s.max_body_size.map_or(default_body, |b| b.0),
        )?,
        max_parts: positive("max_parts", s.max_parts.into())? as u32,
        max_field_size: positive("max_field_size", s.max_field_size.0)?,
    })
}

fn validate_types(names: &[String]) -> Result<Vec<FileType>, String> {
    if names.is_empty() {
        return Err("must allow at least one type, such as [\"image/png\"]".into());
    }
    let mut types = Vec::new();
    for name in names {
        let Some(t) = FileType::from_mime(name) else {
            let known: Vec<_> = FileType::ALL.iter().map(|t| t.mime()).collect();
            return Err(format!(
                "unknown type {name:?}; known types: {}",
                known.join(", ")
            ));
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(path: &str) -> UploadSection {
        UploadSection::with_path(path)
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let config = UploadConfig::from_sections(&[section("/upload")], None).expect("valid");
        let rule = &config.rules[0];
        assert_eq!(rule.limits.max_file_size, 5 * 1024 * 1024);
        assert_eq!(rule.methods, ["POST", "PUT"]);
        assert_eq!(
            rule.allowed_types,
            [FileType::Jpeg, FileType::Png, FileType::Webp]
        );
        assert_eq!(rule.max_pixels, 50_000_000);
        assert!(!rule.scan, "no scanner configured, so no scan by default");
        assert_eq!(rule.on_scanner_error, OnScannerError::Reject);
    }

    #[test]
    fn scanning_defaults_on_when_a_scanner_is_configured() {
        let scanner = ScannerSection {
            clamd: "unix:///run/clamav/clamd.ctl".into(),
            timeout: default_scanner_timeout(),
        };
        let config =
            UploadConfig::from_sections(&[section("/upload")], Some(&scanner)).expect("valid");
        assert!(config.rules[0].scan);
        assert_eq!(
            config.scanner.map(|s| s.address),
            Some(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        let mut bad = section("/upload");
        bad.allowed_types = vec!["image/jpeg".into(), "image/nonsense".into()];
        let err = UploadConfig::from_sections(&[bad], None).expect_err("unknown type");
        assert_eq!(err.key, "upload[0].allowed_types");
        assert!(err.message.contains("image/png"), "{err}");

        let mut bad = section("/upload");
        bad.scan = Some(true);
        let err = UploadConfig::from_sections(&[bad], None).expect_err("no scanner");
        assert_eq!(err.key, "upload[0].scan");

        for clamd in ["127.0.0.1:3310", "tcp://127.0.0.1", "unix://relative.sock"] {
            let scanner = ScannerSection {
                clamd: clamd.into(),
                timeout: default_scanner_timeout(),
            };
            let err = UploadConfig::from_sections(&[], Some(&scanner)).expect_err(clamd);
            assert_eq!(err.key, "scanner.clamd");
        }
    }

    /// The shape the gateway's configuration file gives these sections.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        upload: Vec<UploadSection>,
        scanner: Option<ScannerSection>,
    }

    fn from_toml(text: &str) -> Result<UploadConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        UploadConfig::from_sections(&file.upload, file.scanner.as_ref()).map_err(|e| e.to_string())
    }

    #[test]
    fn toml_sections_parse_with_units_and_defaults() {
        let config = from_toml(
            r#"
            [[upload]]
            path = "/api/avatar"
            max_file_size = "2MB"
            max_pixels = "12MP"
            allowed_types = ["image/png", "image/jpg"]
            strip_metadata = true
            quarantine_dir = "/var/lib/palisade/quarantine"
            body_read_timeout = "30s"

            [[upload]]
            path = "/api/docs"
            methods = ["put"]
            allowed_types = ["application/pdf"]
            scan = true
            on_scanner_error = "allow"

            [scanner]
            clamd = "tcp://127.0.0.1:3310"
            timeout = "3s"
            "#,
        )
        .expect("valid");
        let avatar = &config.rules[0];
        assert_eq!(avatar.limits.max_file_size, 2 << 20);
        assert_eq!(avatar.max_pixels, 12_000_000);
        assert_eq!(avatar.allowed_types, [FileType::Png, FileType::Jpeg]);
        assert!(avatar.scan && avatar.strip_metadata);
        assert_eq!(avatar.body_read_timeout, Duration::from_secs(30));
        let docs = &config.rules[1];
        assert_eq!(docs.methods, ["PUT"]);
        assert_eq!(docs.on_scanner_error, OnScannerError::Allow);
        let scanner = config.scanner.expect("scanner");
        assert_eq!(scanner.timeout, Duration::from_secs(3));
        assert_eq!(scanner.address, ClamdAddress::Tcp("127.0.0.1:3310".into()));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for bad in [
            "[[upload]]\npath = \"/u\"\nmax_file_sise = \"5MB\"",
            "[[upload]]\npath = \"/u\"\non_scanner_error = \"ignore\"",
            "[[upload]]\npath = \"/u\"\nmax_pixels = \"lots\"",
            "[[upload]]\npath = \"/u\"\nbody_read_timeout = \"0s\"",
            "[scanner]\nclamd = \"tcp://127.0.0.1:3310\"\nretries = 3",
        ] {
            assert!(from_toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_longest_matching_prefix_wins() {
        let mut avatars = section("/upload/avatar");
        avatars.max_file_size = ByteSize(1 << 20);
        let config =
            UploadConfig::from_sections(&[section("/upload"), avatars], None).expect("valid");
        let rule = config
            .rule_for("POST", "/upload/avatar/me")
            .expect("matches");
        assert_eq!(rule.path_prefix, "/upload/avatar");
        assert_eq!(
            config
                .rule_for("post", "/upload/x")
                .map(|r| r.path_prefix.as_str()),
            Some("/upload")
        );
        assert!(config.rule_for("GET", "/upload/x").is_none());
        assert!(config.rule_for("POST", "/other").is_none());
    }
}
