//! `eval-cli dataset`: make datasets. `synth` writes the deterministic synthetic set (WAV and
//! FLAC with a `manifest.csv`) that `--dataset synth` generates on the fly (`synth.rs`);
//! `excerpts` cuts fixed-length excerpts from any dataset ([`excerpts`]). Both stop between
//! two files on Ctrl-C or SIGTERM (exit 130), and both take back a folder a killed run of
//! theirs left, temporaries included.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::manifest::{self, SynthParams};
use excerpts::ExcerptArgs;

pub mod excerpts;
mod synth;

/// Dataset subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Write the deterministic synthetic dataset (audio plus manifest.csv).
    Synth {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of tracks.
        #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_COUNT,
              value_parser = crate::flags::parse_track_count)]
        count: usize,
        /// Seconds per track (1 to 3600).
        #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_SECONDS,
              value_parser = crate::flags::parse_audio_length)]
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
        } => synth::run(
            &out,
            SynthParams {
                count,
                seconds,
                seed,
            },
        ),
        DatasetCommand::Excerpts(args) => excerpts::run(args),
    }
}

/// The name of the file a hidden temporary of ours stands for: `NAME` of `.NAME.TAG.tmp`,
/// where `TAG` is a process id (the synthetic tracks' writer) or the random letters and
/// digits of [`crate::output`]'s temporaries. A run ended at once (a second Ctrl-C,
/// SIGKILL, a power cut) leaves one behind; each command decides whether `NAME` is its own.
fn temporary_for(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, tag) = inner.rsplit_once('.')?;
    let tagged = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric());
    (!target.is_empty() && tagged).then_some(target)
}

/// Removes the temporaries an earlier run left ([`temporary_for`]).
fn remove_leftovers(leftovers: &[PathBuf]) -> anyhow::Result<()> {
    for path in leftovers {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_named_after_their_file() {
        assert_eq!(temporary_for(".a.wav.12883.tmp"), Some("a.wav"));
        assert_eq!(
            temporary_for(".manifest.csv.x7Yq2Z.tmp"),
            Some("manifest.csv")
        );
        for not in [
            "a.wav.1.tmp",
            ".a.wav..tmp",
            "..1.tmp",
            ".a.wav.1-2.tmp",
            ".notes",
        ] {
            assert_eq!(temporary_for(not), None, "{not}");
        }
    }
}
