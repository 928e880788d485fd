//! `palisade.toml`, parsed once into validated types.
//!
//! Every section is a typed struct with `deny_unknown_fields` and a safe default, so an
//! absent file means a protected gateway and a typo is an error rather than a silently
//! ignored setting. Errors carry the file, line and column of the offending value
//! ([`Diagnostic`]); `palisade check` and a refused SIGHUP reload print the same messages.
//!
//! Secrets never come from this file: the Redis password rides in `PALISADE_REDIS_URL`, the
//! admin token in `PALISADE_ADMIN_TOKEN`, the CSRF secret in `PALISADE_CSRF_SECRET` (or a
//! file), the JWT secret in the variable `[identity.jwt] secret_env` names.
//!
//! A later capability adds its section as one field of [`Config`] (with `#[serde(default)]`
//! and its own `deny_unknown_fields` type), then reads it where its stage is built in
//! `pipeline::Pipeline::build`.

mod diagnostic;
pub mod file;
mod paths;
pub mod rate_limit;
mod regions;
pub mod restart;
pub mod server;
pub mod sessions;
pub mod upload;
mod validate;
pub mod waf;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use diagnostic::{ConfigError, Diagnostic, line_and_column};
pub use palisade_policy::headers::HeadersConfig;
pub use palisade_store::ratelimit::StateConfig;
pub use rate_limit::RateLimitRule;
pub use server::{
    AdminConfig, LogConfig, ServerConfig, UpstreamConfig, UpstreamProtocol, UpstreamUrl,
};
pub use sessions::{CsrfSection, IdentitySection, SessionSection};
pub use upload::SpoolConfig;
pub use waf::WafConfig;

/// Environment variable holding the Redis URL (it may carry a password).
pub const REDIS_URL_ENV: &str = "PALISADE_REDIS_URL";

/// The whole configuration. Each capability owns one section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the public listener, client limits and timeouts, TLS.
    pub server: ServerConfig,
    /// `[upstream]`: the protected application.
    pub upstream: UpstreamConfig,
    /// `[admin]`: health, readiness and metrics.
    pub admin: AdminConfig,
    /// `[log]`: the security event log.
    pub log: LogConfig,
    /// `[state]`: where counters live (defined with the stores in `palisade-store`).
    pub state: StateConfig,
    /// `[headers]`: security headers and cookie flags (defined in `palisade-policy`).
    pub headers: HeadersConfig,
    /// `[[rate_limit]]`: the limits in force. Absent: [`rate_limit::default_rules`];
    /// `rate_limit = []`: none.
    #[serde(deserialize_with = "rate_limit::rules")]
    pub rate_limit: Option<Vec<RateLimitRule>>,
    /// `[session]`: gateway-issued sessions (defined in `palisade-policy`).
    pub session: SessionSection,
    /// `[csrf]`: CSRF tokens on unsafe cookie-authenticated requests.
    pub csrf: CsrfSection,
    /// `[identity]`: identity from bearer JWTs (`[identity.jwt]`).
    pub identity: IdentitySection,
    /// `[waf]`: custom rules, geo databases, the challenge.
    pub waf: WafConfig,
    // Later sections plug in here, one field each.
    /// `[[upload]]`: which requests are uploads and how their files are checked, as written;
    /// read [`Config::uploads`] instead.
    pub upload: Vec<palisade_policy::upload::UploadSection>,
    /// `[scanner]`: the clamd uploads are scanned with, as written.
    pub scanner: Option<palisade_policy::upload::ScannerSection>,
    /// `[spool]`: where upload bodies wait while they are inspected.
    pub spool: SpoolConfig,
    /// `[[upload]]` and `[scanner]` validated together (filled in by [`Config::from_toml`]).
    #[serde(skip)]
    pub uploads: palisade_policy::upload::UploadConfig,
}

/// Values given on the command line; they win over the file, on start-up and on reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--upstream`.
    pub upstream: Option<UpstreamUrl>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
}

/// Where a configuration came from, so a reload reads the same place.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The TOML file, if any (defaults otherwise).
    pub file: Option<PathBuf>,
    /// Command-line values applied over the file.
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads, validates and completes the configuration: file, then flags, then secrets from
    /// the environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply(&self.overrides);
        config.check_upstream_tls(self.file.as_deref())?;
        config.read_environment(self.file.as_deref())?;
        Ok(config)
    }
}

impl Config {
    /// Reads and parses one file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = file::read_text(path).map_err(|err| {
            ConfigError::single(Diagnostic::whole_file(
                path,
                format!(
                    "cannot read the configuration file: {}",
                    file::describe(&err)
                ),
            ))
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses `text`, the contents of `path`. Every problem found is reported, in file order:
    /// one per table that serde cannot read, then those of the checks serde cannot make,
    /// among them every file or directory named that serve could not use. Relative paths
    /// come out resolved against the directory of `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let in_file_order = |mut error: ConfigError| {
            error.sort_for(path);
            error
        };
        let (mut config, mut diagnostics) =
            Self::deserialize_all(path, text).map_err(in_file_order)?;
        diagnostics.extend(validate::sections(&config, path, text));
        diagnostics.extend(paths::check(&config, path, text));
        diagnostics.extend(waf::compile(&mut config.waf, path, text));
        paths::resolve(&mut config, path.parent().unwrap_or(Path::new("")));
        match upload::validate(&config, path, text) {
            Ok(uploads) => config.uploads = uploads,
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
        if diagnostics.is_empty() {
            Ok(config)
        } else {
            Err(in_file_order(ConfigError { diagnostics }))
        }
    }

    /// serde's part: the configuration read from the tables that are readable, and one
    /// diagnostic per table that is not. A syntax error stops everything (nothing after it
    /// can be trusted), so it is the only error then.
    fn deserialize_all(path: &Path, text: &str) -> Result<(Self, Vec<Diagnostic>), ConfigError> {
        if let Err(err) = toml::de::DeTable::parse(text) {
            return Err(ConfigError::single(syntax_or_value_error(path, text, &err)));
        }
        if let Ok(config) = toml::from_str::<Config>(text) {
            return Ok((config, Vec::new()));
        }
        let (mut diagnostics, readable) =
            regions::read_each::<Config>(path, text, &regions::split(text));
        match toml::from_str::<Config>(&readable) {
            Ok(config) => Ok((config, diagnostics)),
            // What is left fails only when several regions are read together (the same key
            // given in two tables); that error joins the others.
            Err(err) => {
                diagnostics.push(syntax_or_value_error(path, &readable, &err));
                Err(ConfigError { diagnostics })
            }
        }
    }

    /// The rate-limit rules in force: the file's, or the defaults when it has none.
    pub fn rate_limit_rules(&self) -> Vec<RateLimitRule> {
        self.rate_limit
            .clone()
            .unwrap_or_else(rate_limit::default_rules)
    }

    /// Applies command-line values over the file's.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = overrides.listen {
            self.server.listen = listen;
        }
        if let Some(url) = &overrides.upstream {
            self.upstream.url = Some(url.clone());
        }
        if let Some(admin) = overrides.admin_listen {
            self.admin.listen = admin;
        }
    }

    /// Refuses `[upstream] ca_file` or a client certificate beside an `http://` URL given by
    /// `--upstream` (the file's own URL is checked with the file).
    fn check_upstream_tls(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let keys = self.upstream.tls_without_https();
        if keys.is_empty() {
            return Ok(());
        }
        let origin = file.unwrap_or(Path::new("--upstream"));
        // The file's own URL passed its check: the http:// one is the flag's.
        let diagnostics = keys
            .into_iter()
            .map(|key| {
                let message = format!(
                    "upstream.{key}: is set but --upstream (which replaces [upstream] url) is \
                     http:// (plain text): write https:// for TLS, or remove {key}"
                );
                Diagnostic::whole_file(origin, message)
            })
            .collect();
        Err(ConfigError { diagnostics })
    }

    /// Reads secrets from the environment: `PALISADE_REDIS_URL` replaces `[state] redis_url`.
    fn read_environment(&mut self, file: Option<&Path>) -> Result<(), ConfigError> {
        // `var_os`, as the file's check sees the variable: one not UTF-8 read as unset
        // would leave `backend = "redis"` without a URL, which serves from memory.
        let Some(value) = std::env::var_os(REDIS_URL_ENV) else {
            return Ok(());
        };
        let checked = match value.into_string() {
            Ok(url) => self.use_redis_url(url),
            Err(_) => Err(format!(
                "{REDIS_URL_ENV}: not valid UTF-8 (write other bytes of a password \
                 percent-encoded, as %XX)"
            )),
        };
        checked.map_err(|message| {
            let origin = file.unwrap_or(Path::new(REDIS_URL_ENV));
            ConfigError::single(Diagnostic::whole_file(origin, message))
        })
    }

    /// Takes `url`, the value of `PALISADE_REDIS_URL`, as `[state] redis_url`, and checks it
    /// for every store that reaches it: rate limits with `backend = "redis"`, sessions with
    /// `store = "redis"` (which use it with any backend). A fault of the URL names the
    /// variable, not the file's key, and never repeats the URL, which may hold a password.
    fn use_redis_url(&mut self, url: String) -> Result<(), String> {
        self.state.redis_url = Some(palisade_store::ratelimit::RedisUrl(url));
        let (field, message) = match self.state.validate() {
            Err(err) => (err.field, err.message),
            Ok(()) => match validate::session_redis(self) {
                Some((field, message)) => (field, message.to_owned()),
                None => return Ok(()),
            },
        };
        Err(match field {
            "redis_url" => format!("{REDIS_URL_ENV}: {message}"),
            "redis_ca_file" | "redis_client_cert" => format!(
                "state.{field}: is set but {REDIS_URL_ENV} is redis:// (plain text): write \
                 rediss:// for TLS"
            ),
            _ => format!("state.{field}: {message}"),
        })
    }
}

/// A `toml` error as a diagnostic, with serde's terse wordings made plain: a duplicate
/// table names itself and where it was first written; a negative count says what fits.
fn syntax_or_value_error(path: &Path, text: &str, err: &toml::de::Error) -> Diagnostic {
    let mut message = err.message().trim_end().replace('\n', " ");
    if message == "duplicate key" {
        if let Some(span) = err.span() {
            message = diagnostic::explain_duplicate(text, span);
        }
    }
    for unsigned in ["usize", "u64", "u32", "u16", "u8"] {
        let terse = format!("expected {unsigned}");
        if message.ends_with(&terse) {
            message = message.replace(&terse, "expected a whole number, 0 or greater");
        }
    }
    // `missing field `limit``: the span is the table's; say what the table needs.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        message = format!(
            "missing field `{field}` (expected `{field} = ...` in this table: it has no default)"
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        if let Some(key) = err
            .span()
            .and_then(|span| key_of_value_at(text, span.start))
        {
            message = format!("{message} (key `{key}`)");
        }
    }
    // A `[[rate_limit]]` check that serde placed at the table: at the key's value instead.
    let span = match (err.span(), rate_limit::key_of_error(&message)) {
        (Some(table), Some(key)) => Some(value_in_table(text, table.start, key).unwrap_or(table)),
        // A repeated name, placed at the array: at the repeating table's name.
        (Some(array), None) => Some(
            rate_limit::repeating_table(&message)
                .and_then(|n| nth_array_table(text, "rate_limit", n))
                .and_then(|table| value_in_table(text, table, "name"))
                .unwrap_or(array),
        ),
        (None, _) => None,
    };
    Diagnostic::at(path, text, span, message)
}

/// Where the `n`th (1-based) `[[name]]` header of the file starts.
fn nth_array_table(text: &str, name: &str, n: usize) -> Option<usize> {
    let mut at = 0;
    let mut seen = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let header: String = line.split('#').next()?.split_whitespace().collect();
        if header.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) == Some(name) {
            seen += 1;
            if seen == n {
                return Some(start + (line.len() - line.trim_start().len()));
            }
        }
    }
    None
}

/// Where the value of `key = ...` is in the table whose header starts at byte `table`, when
/// the table writes it on a line of its own (not in an inline table).
fn value_in_table(text: &str, table: usize, key: &str) -> Option<std::ops::Range<usize>> {
    let body_start = table + text.get(table..)?.find('\n')? + 1;
    let mut at = body_start;
    for line in text.get(body_start..)?.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return None;
        }
        if validate::key_of(trimmed) == Some(key) {
            let (_, value) = trimmed.split_once('=')?;
            let value_start =
                start + (line.len() - value.len()) + (value.len() - value.trim_start().len());
            return Some(value_start..start + line.trim_end().len());
        }
    }
    None
}

/// The key of the `key = value` line whose value starts at byte `at`, when the line is one;
/// serde's type errors name the value, and a reader wants the key too.
fn key_of_value_at(text: &str, at: usize) -> Option<&str> {
    let at = at.min(text.len());
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text.get(line_start..at)?.split_once('=')?;
    let key = key.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    (!key.is_empty() && key.chars().all(plain)).then_some(key)
}

#[cfg(test)]
mod tests;
