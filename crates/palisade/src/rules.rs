//! `palisade rules eval`: runs a rules file against one request described on the command
//! line and prints what matched and the verdict, without a server.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use palisade_expr::request::{RequestFields, RequestInfo};
use palisade_expr::{
    Action, FieldDef, FieldProvider, KeyLookup, LimitKey, Outcome, RuleSet, Verdict,
};
use palisade_gateway::config::Config;
use palisade_gateway::waf::GeoDatabases;
use palisade_gateway::waf::fields::GatewayFields;

/// `palisade rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Evaluate the rules against one request and print the matches and the verdict.
    Eval(EvalArgs),
}

/// `palisade rules eval`. The rules come from exactly one of `--rules` and `--config`; the
/// group makes a missing source name both flags in the usage error.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["rules", "config"])))]
pub struct EvalArgs {
    /// The rules file (YAML).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Or a palisade.toml: its [waf] rules file, inline rules and geo databases.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The request line, e.g. 'GET /search?q=union+select HTTP/1.1'.
    #[arg(long)]
    request: String,
    /// A request header 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The client address (default 127.0.0.1).
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The body: text, or @FILE to read it from a file.
    #[arg(long)]
    body: Option<String>,
    /// The client's country code, as a geo database would say (overrides --config's).
    #[arg(long)]
    country: Option<String>,
    /// The client's autonomous system number (overrides --config's).
    #[arg(long)]
    asn: Option<u32>,
    /// The authenticated user id (`palisade.user.id`).
    #[arg(long)]
    user: Option<String>,
}

/// Runs a `rules` subcommand.
pub fn run(command: RulesCommand) -> ExitCode {
    let RulesCommand::Eval(args) = command;
    match eval(&args) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn eval(args: &EvalArgs) -> Result<String, String> {
    let (rules, geo) = load(args)?;
    let request = describe(args)?;
    let fields = GatewayFields::new(&request, &geo);
    let provider = Overrides {
        fields,
        request: &request,
        args,
    };
    let outcome = rules.evaluate(&provider);
    Ok(report(&outcome))
}

/// The rule set (and geo databases, with `--config`).
fn load(args: &EvalArgs) -> Result<(Arc<RuleSet>, GeoDatabases), String> {
    if let Some(path) = &args.config {
        let config = Config::from_file(path).map_err(|err| err.to_string())?;
        let compiled = config.waf.compiled;
        return Ok((compiled.rules, compiled.geo));
    }
    let path = args.rules.as_deref().unwrap_or(Path::new("waf.yaml"));
    let text = palisade_gateway::config::file::read_text(path).map_err(|err| {
        let why = palisade_gateway::config::file::describe(&err);
        format!("{}: cannot read the rules file: {why}", path.display())
    })?;
    let name = path.display().to_string();
    let rules = RuleSet::from_yaml(&name, &text, palisade_gateway::waf::scheme())
        .map_err(|err| err.to_string())?;
    Ok((Arc::new(rules), GeoDatabases::default()))
}

fn describe(args: &EvalArgs) -> Result<RequestInfo, String> {
    let body = match args.body.as_deref() {
        None => None,
        Some(text) => Some(match text.strip_prefix('@') {
            Some(file) => {
                std::fs::read(file).map_err(|err| format!("{file}: cannot read the body: {err}"))?
            }
            None => text.as_bytes().to_vec(),
        }),
    };
    let headers: Vec<&str> = args.headers.iter().map(String::as_str).collect();
    let mut request = RequestInfo::from_cli(&args.request, &headers, body, args.ip)
        .map_err(|err| err.to_string())?;
    request.user_id = args.user.clone();
    Ok(request)
}

/// The gateway's fields, with `--country`, `--asn` standing in for a geo database.
struct Overrides<'a> {
    fields: GatewayFields<'a>,
    request: &'a RequestInfo,
    args: &'a EvalArgs,
}

impl FieldProvider for Overrides<'_> {
    fn value(&self, field: &FieldDef) -> Option<palisade_expr::Value> {
        use palisade_expr::{StandardField, Value};
        match (field.standard(), &self.args.country, self.args.asn) {
            (Some(StandardField::Country), Some(country), _) => Some(country.as_str().into()),
            (Some(StandardField::Asnum), _, Some(asn)) => Some(Value::Int(i64::from(asn))),
            _ => self.fields.value(field),
        }
    }

    fn lookup(&self, field: &FieldDef, key: &[u8]) -> KeyLookup {
        RequestFields::new(self.request).lookup(field, key)
    }
}

/// One line per match, then the verdict.
fn report(outcome: &Outcome<'_>) -> String {
    let mut out = String::new();
    if outcome.matches.is_empty() {
        out.push_str("no rule matched\n");
    }
    for found in &outcome.matches {
        let rule = found.rule;
        let _ = write!(
            out,
            "matched: {} -> {}",
            rule.name,
            describe_action(&rule.action)
        );
        if !found.enforced {
            out.push_str(" (mode: log, not enforced)");
        }
        out.push('\n');
        for decided in &found.decided {
            let _ = writeln!(out, "    {} = {}", decided.field, decided.value);
        }
    }
    for phase in &outcome.skipped_phases {
        let _ = writeln!(
            out,
            "skipped phase: {}",
            palisade_gateway::waf::phase_name(*phase)
        );
    }
    let _ = writeln!(out, "verdict: {}", describe_verdict(&outcome.verdict));
    if !outcome.rate_limits.is_empty() {
        out.push_str(
            "note: rate_limit rules count requests in the gateway; eval shows the match only\n",
        );
    }
    out
}

fn describe_action(action: &Action) -> String {
    match action {
        Action::Block { status, .. } => format!("block ({status})"),
        Action::RateLimit { threshold, key } => {
            let key = match key {
                LimitKey::Ip => "ip".to_owned(),
                LimitKey::Route => "route".to_owned(),
                LimitKey::User => "user".to_owned(),
                LimitKey::Header(name) => format!("header:{name}"),
            };
            format!("rate_limit {threshold} by {key}")
        }
        other => other.name().to_owned(),
    }
}

fn describe_verdict(verdict: &Verdict<'_>) -> String {
    match verdict {
        Verdict::Continue => "continue (no rule ended evaluation; the request goes on)".into(),
        Verdict::Allow(rule) => format!("allow (rule '{}'; later phases still apply)", rule.name),
        Verdict::Block { rule, status, .. } => format!("block {status} (rule '{}')", rule.name),
        Verdict::Challenge(rule) => format!("challenge (rule '{}')", rule.name),
    }
}
