//! `eval-cli dataset`: the synthetic generator and manifest tools (not yet implemented).

use std::process::ExitCode;

/// Dataset subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Write the deterministic synthetic dataset.
    Synth {},
}

/// Runs a dataset subcommand.
pub fn run(_cmd: DatasetCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("dataset is not implemented yet")
}
