//! `eval-cli compare` (not yet implemented).

use std::process::ExitCode;

/// Flags of `eval-cli compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {}

/// Runs `eval-cli compare`.
pub fn run(_args: CompareArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("compare is not implemented yet")
}
