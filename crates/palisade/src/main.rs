//! The `palisade` command line: thin wiring over the gateway crate, one subcommand per job.
//!
//! Operational logs go to stderr; the JSON-lines security log goes where `[log] security`
//! says (stdout by default), so the two can be collected apart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use palisade_gateway::config::{ConfigSource, Overrides, UpstreamUrl};

mod demo;
mod rules;
mod sessions;
mod upload;

// A proxy allocates and frees many small buffers per request; mimalloc's thread-local
// free lists cost far less than glibc malloc's arenas under that load (`palisade_alloc`
// says how it asks mimalloc).
#[global_allocator]
static ALLOCATOR: palisade_alloc::Allocator = palisade_alloc::Allocator;

/// What `--version` prints: scripts/rustc-pgo sets `palisade_pgo` when it builds the binary
/// with the committed profile, so that a benchmark's figures say which build they are of.
const VERSION: &str = if cfg!(palisade_pgo) {
    concat!(env!("CARGO_PKG_VERSION"), " (profile-guided build)")
} else {
    env!("CARGO_PKG_VERSION")
};

/// A security gateway: put it in front of any web app for rate limits, security headers and
/// more.
#[derive(Debug, Parser)]
#[command(name = "palisade", version = VERSION, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Protect an application: proxy every request to the upstream through the pipeline.
    Serve(ServeArgs),
    /// Start a built-in sample app behind palisade on 127.0.0.1:8080 and show what to try.
    Demo(DemoArgs),
    /// Validate a configuration file (and the rules file it names); exit 1 and print
    /// FILE:LINE:COL for each problem.
    Check(CheckArgs),
    /// Work with WAF rules files.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// List or revoke sessions through a running palisade's admin API
    /// (token from PALISADE_ADMIN_TOKEN).
    Sessions(sessions::SessionsArgs),
    /// Run the upload checks on local files: `palisade upload check FILE...`.
    Upload {
        #[command(subcommand)]
        command: upload::UploadCommand,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The application to protect, e.g. http://127.0.0.1:3000 or https://app.internal
    /// (overrides [upstream] url).
    #[arg(long)]
    upstream: Option<UpstreamUrl>,
    /// Address to listen on (overrides [server] listen; default 0.0.0.0:8080).
    #[arg(long, value_parser = listen_address)]
    listen: Option<SocketAddr>,
    /// Admin listener for /healthz, /readyz, /metrics (default 127.0.0.1:9090).
    #[arg(long, value_parser = listen_address)]
    admin_listen: Option<SocketAddr>,
    /// The configuration file; without it, the safe defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Address palisade listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_address)]
    listen: SocketAddr,
    /// Admin listener address.
    #[arg(long, default_value = "127.0.0.1:9090", value_parser = listen_address)]
    admin_listen: SocketAddr,
}

/// A listen address from the command line: an IP and a port, as in the configuration file.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        "expected an IP address and a port, such as 0.0.0.0:8080, 127.0.0.1:9090 or \
         [::]:8080 (host names and a bare :PORT are not accepted)"
            .to_owned()
    })
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The configuration file to validate.
    #[arg(long)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(&args.config),
        Command::Rules(command) => rules::run(command),
        Command::Upload { command } => upload::run(command),
        Command::Serve(args) => exit_code(run_async(serve(args))),
        Command::Demo(args) => exit_code(run_async(demo::run(args.listen, args.admin_listen))),
        Command::Sessions(args) => exit_code(run_async(sessions::run(args))),
    }
}

/// `palisade check`: the same messages a refused reload logs, for the file and the secrets
/// `serve` would read with it from the environment (`PALISADE_REDIS_URL`).
fn check(path: &std::path::Path) -> ExitCode {
    let source = ConfigSource {
        file: Some(path.to_path_buf()),
        overrides: Overrides::default(),
    };
    match source.load() {
        Ok(config) => {
            // Valid, yet probably not what was meant: what serve would warn about.
            let advice = palisade_gateway::advice::rate_limits(&config)
                .into_iter()
                .chain(palisade_gateway::advice::waf_rules(&config));
            for warning in advice {
                eprintln!("{}: warning: {warning}", path.display());
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            for diagnostic in &err.diagnostics {
                eprintln!("{diagnostic}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let source = ConfigSource {
        file: args.config,
        overrides: Overrides {
            listen: args.listen,
            upstream: args.upstream,
            admin_listen: args.admin_listen,
        },
    };
    stopped(palisade_gateway::serve::run_until_signalled(source).await)
}

/// A run that ended: an error for a start-up failure, and for a stop forced by a second
/// signal (exit status 1, so that a supervisor can tell it from a drained stop).
fn stopped(
    run: Result<palisade_gateway::serve::Stopped, palisade_gateway::gateway::StartError>,
) -> anyhow::Result<()> {
    match run.context("palisade could not start")? {
        palisade_gateway::serve::Stopped::Drained => Ok(()),
        palisade_gateway::serve::Stopped::Forced => Err(anyhow::anyhow!(
            "stopped by a second signal: requests still in flight were cut off"
        )),
    }
}

fn run_async(job: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(job);
    // Dropping the runtime would wait for every blocking task; a job that ended has awaited
    // its own, and one stopped by a second signal must not wait for the rest.
    runtime.shutdown_background();
    result
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Human-readable operational logs on stderr; `PALISADE_LOG` (or `RUST_LOG`) filters them.
fn init_logging() {
    let filter = std::env::var("PALISADE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
