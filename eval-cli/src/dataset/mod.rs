//! `eval-cli dataset`: make datasets. `synth` writes the deterministic synthetic set (WAV and
//! FLAC with a `manifest.csv`) that `--dataset synth` generates on the fly; `excerpts` cuts
//! fixed-length excerpts from any dataset ([`excerpts`]).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::manifest::{self, SynthParams};
use excerpts::ExcerptArgs;

pub mod excerpts;

/// Dataset subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Write the deterministic synthetic dataset (audio plus manifest.csv).
    Synth {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of tracks.
        #[arg(long, default_value_t = 24)]
        count: usize,
        /// Seconds per track.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Seed of the plan: the same seed gives the same files, bit for bit.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Cut fixed-length WAV excerpts from every track of a dataset, with a manifest.csv
    /// whose `seconds` column gives `evaluate` its accuracy by length.
    Excerpts(ExcerptArgs),
}

/// Runs a dataset subcommand.
pub fn run(cmd: DatasetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DatasetCommand::Synth {
            out,
            count,
            seconds,
            seed,
        } => {
            let written = manifest::write_synth(
                &out,
                SynthParams {
                    count,
                    seconds,
                    seed,
                },
            )?;
            println!(
                "wrote {written} tracks and {}",
                out.join(synth_music::MANIFEST_FILE).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Excerpts(args) => excerpts::run(args),
    }
}
