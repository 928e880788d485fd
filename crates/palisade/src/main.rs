//! The `palisade` command line: thin wiring over the gateway crate, one subcommand per job.

fn main() -> anyhow::Result<()> {
    println!("palisade {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
