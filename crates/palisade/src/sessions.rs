//! `palisade sessions`: list and revoke sessions through a running palisade's admin API.
//!
//! `list --user ID` calls `GET /v1/users/{id}/sessions`, `revoke --session ID` calls
//! `DELETE /v1/sessions/{id}` and `revoke --user ID` calls `DELETE /v1/users/{id}/sessions`.
//! The bearer token comes from `PALISADE_ADMIN_TOKEN` (never from the command line, where
//! other users could read it in the process list).

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The admin API answers within this, or the command gives up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `palisade sessions ...`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    command: SessionsCommand,
    /// The admin API of the palisade to ask (its `[admin] listen` address).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9090",
        value_name = "URL"
    )]
    admin: String,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List a user's live sessions.
    List(ListArgs),
    /// End one session (--session) or every session of a user (--user).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The user id, as the upstream sent it in Palisade-Session-Login.
    #[arg(long, value_name = "ID")]
    user: String,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["session", "user"])))]
struct RevokeArgs {
    /// The session's public id (32 hex digits, as `list` shows it).
    #[arg(long, value_name = "PUBLIC_ID")]
    session: Option<String>,
    /// Log this user out everywhere (after a password change, say).
    #[arg(long, value_name = "ID")]
    user: Option<String>,
}

/// Runs the subcommand and prints its result.
pub async fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(&args.admin)?;
    match args.command {
        SessionsCommand::List(list) => {
            let path = format!("/v1/users/{}/sessions", encode_segment(&list.user));
            let answer = api.call(Method::GET, &path).await?;
            if list.json {
                println!("{answer}");
            } else {
                print!("{}", table(&list.user, &answer));
            }
        }
        SessionsCommand::Revoke(RevokeArgs {
            session: Some(id), ..
        }) => {
            let path = format!("/v1/sessions/{}", encode_segment(&id));
            api.call(Method::DELETE, &path).await?;
            println!("revoked session {id}");
        }
        SessionsCommand::Revoke(RevokeArgs {
            user: Some(user), ..
        }) => {
            let path = format!("/v1/users/{}/sessions", encode_segment(&user));
            let answer = api.call(Method::DELETE, &path).await?;
            let count = answer["revoked"].as_u64().unwrap_or(0);
            println!("revoked {count} session(s) of user {user}");
        }
        SessionsCommand::Revoke(_) => bail!("give --session PUBLIC_ID or --user ID"),
    }
    Ok(())
}

/// A client of one palisade's admin API.
struct AdminApi {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl AdminApi {
    fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!("--admin must be an http:// URL such as http://127.0.0.1:9090");
        }
        Ok(Self {
            base: base.to_owned(),
            token: std::env::var(palisade_gateway::admin::ADMIN_TOKEN_ENV).ok(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// One call; the JSON answer of a 2xx, else an error saying what went wrong.
    async fn call(&self, method: Method, path: &str) -> anyhow::Result<Value> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("invalid --admin URL {}", self.base))?;
        let unreachable = || format!("cannot reach the admin API at {}", self.base);
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow!("no answer within {TIMEOUT:?}"))
            .with_context(unreachable)?
            .with_context(unreachable)?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status {
            s if s.is_success() => Ok(answer),
            StatusCode::UNAUTHORIZED if self.token.is_none() => bail!(
                "the admin API refused the request: set PALISADE_ADMIN_TOKEN to palisade's \
                 admin token"
            ),
            StatusCode::UNAUTHORIZED => bail!(
                "the admin API refused the request: PALISADE_ADMIN_TOKEN is not the token \
                 palisade was started with"
            ),
            _ => {
                let message = answer["message"].as_str().unwrap_or("unexpected answer");
                bail!("the admin API answered {status}: {message}")
            }
        }
    }
}

/// The sessions of `user` as a table, times in UTC.
fn table(user: &str, answer: &Value) -> String {
    let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
    let mut out = format!("{} live session(s) of user {user}\n", sessions.len());
    if sessions.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "{:<32}  {:<19}  {:<19}  {:<19}  ROLES\n",
        "PUBLIC ID", "CREATED (UTC)", "LAST SEEN (UTC)", "EXPIRES (UTC)"
    ));
    for s in &sessions {
        let time = |key: &str| utc(s[key].as_u64().unwrap_or(0));
        let roles: Vec<&str> = s["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<32}  {}  {}  {}  {}\n",
            s["public_id"].as_str().unwrap_or("?"),
            time("created_at"),
            time("last_seen_at"),
            time("expires_at"),
            roles.join(",")
        ));
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC (proleptic Gregorian; the
/// days-to-civil conversion of Howard Hinnant's date algorithms).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_407_066_000), "2026-12-04 17:57:46");
    }

    #[test]
    fn user_ids_are_percent_encoded_as_one_segment() {
        assert_eq!(encode_segment("alice"), "alice");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
