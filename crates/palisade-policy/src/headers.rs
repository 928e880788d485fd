//! Security headers added to every response, and hardening of the upstream's cookies.
//!
//! [`HeadersConfig`] is the `[headers]` section of `palisade.toml`; its defaults are the
//! strict set of the design. [`HeaderPolicy::from_config`] validates it once into ready-made
//! header values, and [`HeaderPolicy::apply`] edits a response's headers for a request path.
//! Nothing here does I/O or reads a clock.
//!
//! By default palisade's value replaces the upstream's for every security header; the
//! operator may list headers in `upstream_wins` (typically `content-security-policy`, for an
//! application that builds its own policy with nonces) to keep the upstream's value.

mod cookie;
mod csp;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::cookie::CookieHardening;
use self::csp::Csp;

/// The design's Content-Security-Policy.
pub const DEFAULT_CSP: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; \
                               base-uri 'self'; form-action 'self'; upgrade-insecure-requests";
/// The design's Strict-Transport-Security: two years, subdomains, preload list.
pub const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains; preload";
/// The design's X-Frame-Options.
pub const DEFAULT_X_FRAME_OPTIONS: &str = "DENY";
/// The design's X-Content-Type-Options.
pub const DEFAULT_X_CONTENT_TYPE_OPTIONS: &str = "nosniff";
/// The design's X-XSS-Protection (`"0"` is what current guidance prefers; both are allowed).
pub const DEFAULT_X_XSS_PROTECTION: &str = "1; mode=block";
/// The design's Referrer-Policy.
pub const DEFAULT_REFERRER_POLICY: &str = "strict-origin-when-cross-origin";
/// The design's Permissions-Policy.
pub const DEFAULT_PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), interest-cohort=()";

const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// One header's setting: a value, or `false` in the file to leave the header alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSetting {
    /// Palisade does not add this header (an upstream value passes unchanged).
    Off,
    /// Palisade sends this value.
    Value(String),
}

/// The security headers palisade manages, named as on the wire (for `upstream_wins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityHeader {
    /// `Content-Security-Policy` (or `-Report-Only`).
    ContentSecurityPolicy,
    /// `Strict-Transport-Security`.
    StrictTransportSecurity,
    /// `X-Frame-Options`.
    XFrameOptions,
    /// `X-Content-Type-Options`.
    XContentTypeOptions,
    /// `X-XSS-Protection`.
    XXssProtection,
    /// `Referrer-Policy`.
    ReferrerPolicy,
    /// `Permissions-Policy`.
    PermissionsPolicy,
}

/// The `[headers]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Adds security headers and hardens cookies at all (default `true`).
    pub enabled: bool,
    /// `Content-Security-Policy` (default [`DEFAULT_CSP`]).
    pub content_security_policy: HeaderSetting,
    /// Sends the policy as `Content-Security-Policy-Report-Only` (default `false`).
    pub csp_report_only: bool,
    /// Sources appended per directive, e.g. `{ "script-src" = ["https://cdn.example.com"] }`.
    pub csp_sources: BTreeMap<String, Vec<String>>,
    /// `Strict-Transport-Security`, sent on TLS only (default [`DEFAULT_HSTS`]).
    pub strict_transport_security: HeaderSetting,
    /// `X-Frame-Options` (default `DENY`).
    pub x_frame_options: HeaderSetting,
    /// `X-Content-Type-Options` (default `nosniff`).
    pub x_content_type_options: HeaderSetting,
    /// `X-XSS-Protection` (default `1; mode=block`; `"0"` allowed).
    pub x_xss_protection: HeaderSetting,
    /// `Referrer-Policy` (default `strict-origin-when-cross-origin`).
    pub referrer_policy: HeaderSetting,
    /// `Permissions-Policy` (default [`DEFAULT_PERMISSIONS_POLICY`]).
    pub permissions_policy: HeaderSetting,
    /// Headers for which an upstream's own value is kept (default: none).
    pub upstream_wins: Vec<SecurityHeader>,
    /// Adds `HttpOnly`, `Secure` (on TLS) and `SameSite=Lax` to upstream cookies (default `true`).
    pub harden_cookies: bool,
    /// Cookie names that must stay readable by scripts, so get no `HttpOnly` (default: none).
    pub httponly_exempt_cookies: Vec<String>,
    /// Overrides for path prefixes; the longest matching prefix applies.
    pub paths: Vec<PathOverride>,
}

/// Settings for responses to one path prefix. Unset fields keep the `[headers]` value;
/// `csp_sources` are added to the section's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathOverride {
    /// Path prefix, matched on segment boundaries (`/embed` matches `/embed/x`, not `/embedded`).
    pub prefix: String,
    /// See [`HeadersConfig::content_security_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_security_policy: Option<HeaderSetting>,
    /// See [`HeadersConfig::csp_report_only`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csp_report_only: Option<bool>,
    /// Sources added to the section's `csp_sources` for this prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub csp_sources: BTreeMap<String, Vec<String>>,
    /// See [`HeadersConfig::strict_transport_security`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_transport_security: Option<HeaderSetting>,
    /// See [`HeadersConfig::x_frame_options`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_frame_options: Option<HeaderSetting>,
    /// See [`HeadersConfig::x_content_type_options`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_content_type_options: Option<HeaderSetting>,
    /// See [`HeadersConfig::x_xss_protection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_xss_protection: Option<HeaderSetting>,
    /// See [`HeadersConfig::referrer_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_policy: Option<HeaderSetting>,
    /// See [`HeadersConfig::permissions_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_policy: Option<HeaderSetting>,
    /// Replaces the section's `upstream_wins` for this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_wins: Option<Vec<SecurityHeader>>,
    /// See [`HeadersConfig::harden_cookies`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harden_cookies: Option<bool>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        let value = |text: &str| HeaderSetting::Value(text.to_owned());
        Self {
            enabled: true,
            content_security_policy: value(DEFAULT_CSP),
            csp_report_only: false,
            csp_sources: BTreeMap::new(),
            strict_transport_security: value(DEFAULT_HSTS),
            x_frame_options: value(DEFAULT_X_FRAME_OPTIONS),
            x_content_type_options: value(DEFAULT_X_CONTENT_TYPE_OPTIONS),
            x_xss_protection: value(DEFAULT_X_XSS_PROTECTION),
            referrer_policy: value(DEFAULT_REFERRER_POLICY),
            permissions_policy: value(DEFAULT_PERMISSIONS_POLICY),
            upstream_wins: Vec::new(),
            harden_cookies: true,
            httponly_exempt_cookies: Vec::new(),
            paths: Vec::new(),
        }
    }
}

/// A `[headers]` setting that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("headers.{field}: {message}")]
pub struct HeadersError {
    /// The offending key, e.g. `x_xss_protection` or `paths[0].prefix`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// One header ready to send.
#[derive(Debug, Clone)]
struct Managed {
    name: HeaderName,
    value: HeaderValue,
    upstream_wins: bool,
    /// RFC 6797 §7.2: HSTS must not be sent over plain HTTP.
    tls_only: bool,
}

/// Everything sent for one path prefix.
#[derive(Debug, Clone)]
struct HeaderSet {
    headers: Vec<Managed>,
    cookies: Option<CookieHardening>,
    /// `headers` as HTTP/1.1 field lines, for a connection without TLS and one with it
    /// ([`HeaderPolicy::apply_as_lines`]).
    lines: [Arc<[u8]>; 2],
    /// The lengths of `headers`' names, as bits ([`name_length_bit`]): most of an answer's
    /// names have a length none of them has, and skip the comparisons with every one.
    name_lengths: u64,
}

/// A name's bit in [`HeaderSet::name_lengths`]: its length, names of 63 bytes and more
/// sharing the last bit.
fn name_length_bit(name: &HeaderName) -> u64 {
    1 << name.as_str().len().min(63)
}

/// The validated header policy.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    enabled: bool,
    base: HeaderSet,
    /// Longest prefix first, so the first match is the most specific.
    paths: Vec<(String, HeaderSet)>,
}

impl HeaderPolicy {
    /// Validates `config` and prepares every header value.
    pub fn from_config(config: &HeadersConfig) -> Result<Self, HeadersError> {
        let base = HeaderSet::build(config, "")?;
        let mut paths = Vec::with_capacity(config.paths.len());
        for (i, path) in config.paths.iter().enumerate() {
            let field = format!("paths[{i}].");
            check_prefix(&path.prefix, &field)?;
            let merged = path.apply_to(config);
            paths.push((path.prefix.clone(), HeaderSet::build(&merged, &field)?));
        }
        paths.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Self {
            enabled: config.enabled,
            base,
            paths,
        })
    }

    /// Adds the security headers to a response for a request to `path` and hardens its
    /// cookies. `tls` is true when the client's connection is TLS, directly or through a
    /// trusted proxy that terminated it.
    pub fn apply(&self, headers: &mut HeaderMap, path: &str, tls: bool) {
        if !self.enabled {
            return;
        }
        let set = self.set_for(path);
        // RFC 6797 §7.2: no HSTS over plain HTTP, the upstream's included (whether or not
        // palisade sends its own).
        if !tls {
            headers.remove(header::STRICT_TRANSPORT_SECURITY);
        }
        // Room for every header at once: the map grows once, not once per doubling.
        headers.reserve(set.headers.len());
        for managed in &set.headers {
            if managed.tls_only && !tls {
                continue;
            }
            if managed.upstream_wins && headers.contains_key(&managed.name) {
                continue;
            }
            headers.insert(managed.name.clone(), managed.value.clone());
        }
        if let Some(hardening) = &set.cookies {
            harden_cookies(headers, hardening, tls);
        }
    }

    /// [`Self::apply`] for a writer that appends the security headers to the answer's head
    /// itself: when the answer carries none of the managed fields (so none of its own is to
    /// keep or replace), its cookies are hardened and the fields come back as HTTP/1.1
    /// field lines, written once per configuration, instead of each going into the map.
    /// Otherwise this is `apply`, and `None` comes back.
    pub fn apply_as_lines(
        &self,
        headers: &mut HeaderMap,
        path: &str,
        tls: bool,
    ) -> Option<Arc<[u8]>> {
        if !self.enabled {
            return None;
        }
        let set = self.set_for(path);
        let mut cookies = false;
        for name in headers.keys() {
            if name == header::SET_COOKIE {
                cookies = true;
            } else if set.name_lengths & name_length_bit(name) != 0
                && (set.headers.iter().any(|m| m.name == name)
                    || (!tls && name == header::STRICT_TRANSPORT_SECURITY))
            {
                self.apply(headers, path, tls);
                return None;
            }
        }
        if let Some(hardening) = set.cookies.as_ref().filter(|_| cookies) {
            harden_cookies(headers, hardening, tls);
        }
        Some(Arc::clone(&set.lines[usize::from(tls)]))
    }

    fn set_for(&self, path: &str) -> &HeaderSet {
        // An unnormalised path could reach another resource upstream (`/embed/../admin`);
        // such paths get the section's settings, never a prefix's weaker ones. Without
        // per-path settings (the default) there is nothing to choose between.
        if self.paths.is_empty() || has_dot_segments(path) {
            return &self.base;
        }
        self.paths
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map_or(&self.base, |(_, set)| set)
    }
}

fn harden_cookies(headers: &mut HeaderMap, hardening: &CookieHardening, tls: bool) {
    let header::Entry::Occupied(mut cookies) = headers.entry(header::SET_COOKIE) else {
        return;
    };
    for value in cookies.iter_mut() {
        if let Some(hardened) = hardening.harden(value, tls) {
            *value = hardened;
        }
    }
}

/// `prefix` matches `path` on a segment boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
}

/// True for paths with `.`/`..` segments, encoded dots or backslashes. Runs on every
/// response, so it reads the path in place rather than lower-casing a copy.
fn has_dot_segments(path: &str) -> bool {
    let encoded = |pattern: &[u8]| {
        path.as_bytes()
            .windows(pattern.len())
            .any(|window| window.eq_ignore_ascii_case(pattern))
    };
    encoded(b"%2e")
        || path.contains('\\')
        || encoded(b"%5c")
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

fn check_prefix(prefix: &str, field: &str) -> Result<(), HeadersError> {
    if prefix.starts_with('/') && !has_dot_segments(prefix) && !prefix.contains(['?', '#']) {
        return Ok(());
    }
    Err(HeadersError {
        field: format!("{field}prefix"),
        message: format!("{prefix:?} is not a path prefix: expected a path such as \"/embed/\""),
    })
}

impl HeaderSet {
    fn build(config: &HeadersConfig, field: &str) -> Result<Self, HeadersError> {
        let mut headers = Vec::new();
        let error = |key: &str, message: String| HeadersError {
            field: format!("{field}{key}"),
            message,
        };
        let wins = |h: SecurityHeader| config.upstream_wins.contains(&h);

        if let HeaderSetting::Value(text) = &config.content_security_policy {
            let mut policy = Csp::parse(text).map_err(|m| error("content_security_policy", m))?;
            policy
                .add_sources(&config.csp_sources)
                .map_err(|m| error("csp_sources", m))?;
            let name = if config.csp_report_only {
                header::CONTENT_SECURITY_POLICY_REPORT_ONLY
            } else {
                header::CONTENT_SECURITY_POLICY
            };
            let value = header_value(&policy.to_string())
                .map_err(|m| error("content_security_policy", m))?;
            headers.push(Managed {
                name,
                value,
                upstream_wins: wins(SecurityHeader::ContentSecurityPolicy),
                tls_only: false,
            });
        }

        for (key, setting, header) in simple_headers(config) {
            let HeaderSetting::Value(text) = setting else {
                continue;
            };
            check_simple(header, text).map_err(|m| error(key, m))?;
            headers.push(Managed {
                name: header_name(header),
                value: header_value(text).map_err(|m| error(key, m))?,
                upstream_wins: wins(header),
                tls_only: header == SecurityHeader::StrictTransportSecurity,
            });
        }

        let cookies = config.harden_cookies.then(|| CookieHardening {
            httponly_exempt: config.httponly_exempt_cookies.clone(),
        });
        let lines = [false, true].map(|tls| {
            let mut lines = Vec::new();
            for managed in headers.iter().filter(|m| tls || !m.tls_only) {
                lines.extend_from_slice(managed.name.as_str().as_bytes());
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(managed.value.as_bytes());
                lines.extend_from_slice(b"\r\n");
            }
            Arc::from(lines)
        });
        // HSTS's length always: an upstream's HSTS over plain HTTP is removed even where
        // palisade sends none.
        let name_lengths = headers.iter().fold(
            name_length_bit(&header::STRICT_TRANSPORT_SECURITY),
            |bits, managed| bits | name_length_bit(&managed.name),
        );
        Ok(Self {
            headers,
            cookies,
            lines,
            name_lengths,
        })
    }
}

/// Every managed header but the CSP, with its config key.
fn simple_headers(config: &HeadersConfig) -> [(&'static str, &HeaderSetting, SecurityHeader); 6] {
    use SecurityHeader::*;
    [
        (
            "strict_transport_security",
            &config.strict_transport_security,
            StrictTransportSecurity,
        ),
        ("x_frame_options", &config.x_frame_options, XFrameOptions),
        (
            "x_content_type_options",
            &config.x_content_type_options,
            XContentTypeOptions,
        ),
        ("x_xss_protection", &config.x_xss_protection, XXssProtection),
        ("referrer_policy", &config.referrer_policy, ReferrerPolicy),
        (
            "permissions_policy",
            &config.permissions_policy,
            PermissionsPolicy,
        ),
    ]
}

fn header_name(header: SecurityHeader) -> HeaderName {
    match header {
        SecurityHeader::ContentSecurityPolicy => header::CONTENT_SECURITY_POLICY,
        SecurityHeader::StrictTransportSecurity => header::STRICT_TRANSPORT_SECURITY,
        SecurityHeader::XFrameOptions => header::X_FRAME_OPTIONS,
        SecurityHeader::XContentTypeOptions => header::X_CONTENT_TYPE_OPTIONS,
        SecurityHeader::XXssProtection => header::X_XSS_PROTECTION,
        SecurityHeader::ReferrerPolicy => header::REFERRER_POLICY,
        SecurityHeader::PermissionsPolicy => PERMISSIONS_POLICY,
    }
}

/// Values whose meaning is a small fixed set are checked, so a typo does not silently send
/// a header browsers ignore.
fn check_simple(header: SecurityHeader, text: &str) -> Result<(), String> {
    let allowed: &[&str] = match header {
        SecurityHeader::XFrameOptions => &["DENY", "SAMEORIGIN"],
        SecurityHeader::XContentTypeOptions => &["nosniff"],
        SecurityHeader::XXssProtection => &["0", "1", "1; mode=block"],
        SecurityHeader::StrictTransportSecurity => {
            return hsts_has_max_age(text).then_some(()).ok_or_else(|| {
                format!("{text:?} has no max-age: expected e.g. \"{DEFAULT_HSTS}\"")
            });
        }
        _ => return Ok(()),
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(text.trim())) {
        return Ok(());
    }
    Err(format!(
        "{text:?} is not understood by browsers: expected one of {allowed:?}, or false"
    ))
}

fn hsts_has_max_age(text: &str) -> bool {
    text.split(';').any(|directive| {
        let Some((name, value)) = directive.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("max-age")
            && !value.trim().is_empty()
            && value.trim().bytes().all(|b| b.is_ascii_digit())
    })
}

fn header_value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| {
        format!(
            "{text:?} cannot be sent as a header value: expected printable ASCII, no line breaks"
        )
    })
}

impl PathOverride {
    /// The section's settings with this override's applied on top.
    fn apply_to(&self, base: &HeadersConfig) -> HeadersConfig {
        let pick = |own: &Option<HeaderSetting>, base: &HeaderSetting| {
            own.clone().unwrap_or_else(|| base.clone())
        };
        let mut csp_sources = base.csp_sources.clone();
        for (directive, sources) in &self.csp_sources {
            csp_sources
                .entry(directive.clone())
                .or_default()
                .extend(sources.iter().cloned());
        }
        HeadersConfig {
            enabled: base.enabled,
            content_security_policy: pick(
                &self.content_security_policy,
                &base.content_security_policy,
            ),
            csp_report_only: self.csp_report_only.unwrap_or(base.csp_report_only),
            csp_sources,
            strict_transport_security: pick(
                &self.strict_transport_security,
                &base.strict_transport_security,
            ),
            x_frame_options: pick(&self.x_frame_options, &base.x_frame_options),
            x_content_type_options: pick(
                &self.x_content_type_options,
                &base.x_content_type_options,
            ),
            x_xss_protection: pick(&self.x_xss_protection, &base.x_xss_protection),
            referrer_policy: pick(&self.referrer_policy, &base.referrer_policy),
            permissions_policy: pick(&self.permissions_policy, &base.permissions_policy),
            upstream_wins: self
                .upstream_wins
                .clone()
                .unwrap_or_else(|| base.upstream_wins.clone()),
            harden_cookies: self.harden_cookies.unwrap_or(base.harden_cookies),
            httponly_exempt_cookies: base.httponly_exempt_cookies.clone(),
            paths: Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for HeaderSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SettingVisitor)
    }
}

struct SettingVisitor;

impl serde::de::Visitor<'_> for SettingVisitor {
    type Value = HeaderSetting;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header value string, or false to turn the header off")
    }

    fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<HeaderSetting, E> {
        if on {
            return Err(E::custom(
                "true is not a header value: expected a string, or false to turn the header off \
                 (leave the key out to keep the default)",
            ));
        }
        Ok(HeaderSetting::Off)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<HeaderSetting, E> {
        Ok(HeaderSetting::Value(text.to_owned()))
    }
}

impl Serialize for HeaderSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => serializer.serialize_bool(false),
            Self::Value(text) => serializer.serialize_str(text),
        }
    }
}

#[cfg(test)]
mod tests;
