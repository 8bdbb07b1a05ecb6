//! `eval-cli evaluate` (not yet implemented).

use std::process::ExitCode;

/// Flags of `eval-cli evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {}

/// Runs `eval-cli evaluate`.
pub fn run(_args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("evaluate is not implemented yet")
}
