//! `eval-cli analyze` (not yet implemented).

use std::process::ExitCode;

/// Flags of `eval-cli analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {}

/// Runs `eval-cli analyze`.
pub fn run(_args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("analyze is not implemented yet")
}
