//! `eval-cli check` (not yet implemented).

use std::process::ExitCode;

/// Flags of `eval-cli check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `eval-cli check`.
pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check is not implemented yet")
}
