//! `palisade upload check FILE...`: the gateway's upload checks (type, structure, pixels,
//! polyglots, decoding, and clamd when `[scanner]` is configured) on local files, one
//! verdict per line, exit status 1 when any file is refused.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use palisade_gateway::config::Config;
use palisade_gateway::upload::{
    FileCheck, ScanOutcome, SpoolBudget, SpoolSettings, UploadError, UploadShared, check_files,
};

/// What `palisade upload` can do.
#[derive(Debug, Subcommand)]
pub enum UploadCommand {
    /// Check local files as uploads; print a verdict per file, exit 1 if any is refused.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The configuration whose first [[upload]] rule and [scanner] apply (the default rule,
    /// without scanning, otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `palisade upload ...`.
pub fn run(command: UploadCommand) -> ExitCode {
    match command {
        UploadCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::from_file(path) {
            Ok(config) => config,
            Err(err) => {
                for diagnostic in &err.diagnostics {
                    eprintln!("{diagnostic}");
                }
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    // The files are read from where they are; only what passes the memory buffer is
    // spooled, into the system temporary directory (the gateway's own spool directory may
    // belong to another user). The files are checked one at a time, so the disk budget
    // that bounds concurrent uploads at the gateway does not apply.
    let spool = SpoolSettings {
        budget: SpoolBudget::new(u64::MAX),
        ..SpoolSettings::default()
    };
    let service = UploadShared::unprepared(spool).service(config.uploads);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(check_files(&service, &args.files));
    for check in &checks {
        println!("{}", verdict_line(check));
    }
    if checks.iter().all(FileCheck::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `PATH: passed (image/png, 640x480, 12345 bytes, scan clean)` or
/// `PATH: refused (polyglot): detail`. The operator sees the detail (signature names
/// included), unlike a client.
fn verdict_line(check: &FileCheck) -> String {
    let path = check.path.display();
    match &check.outcome {
        Ok(report) => {
            let file = &report.file;
            let dimensions = file
                .dimensions
                .map(|(w, h)| format!(", {w}x{h}"))
                .unwrap_or_default();
            let scan = match &report.scan {
                ScanOutcome::Clean => "scan clean".to_owned(),
                ScanOutcome::NotScanned => "not scanned".to_owned(),
                ScanOutcome::Unavailable(why) => format!("NOT SCANNED, scanner failed: {why}"),
            };
            let mime = file.file_type.mime();
            format!(
                "{path}: passed ({mime}{dimensions}, {} bytes, {scan})",
                file.size
            )
        }
        Err(UploadError::Refused(refused)) => {
            let reason = refused.refusal.reason;
            format!("{path}: refused ({reason}): {}", refused.refusal.detail)
        }
        // Reading the file (or spooling it) failed: no verdict, which also fails the run.
        Err(UploadError::Spool(io)) => format!("{path}: error: {io}"),
        Err(UploadError::SpoolFull(full)) => format!("{path}: error: {full}"),
    }
}
