//! `eval-cli dataset`: make datasets. `synth` writes the deterministic synthetic set (WAV and
//! FLAC with a `manifest.csv`) that `--dataset synth` generates on the fly; `excerpts` cuts
//! fixed-length excerpts from any dataset ([`excerpts`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::manifest::{self, SynthParams};
use crate::stdout;
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
        #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_COUNT)]
        count: usize,
        /// Seconds per track.
        #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_SECONDS)]
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
            check_synth_folder(&out)?;
            let written = manifest::write_synth(
                &out,
                SynthParams {
                    count,
                    seconds,
                    seed,
                },
            )?;
            stdout::print("cannot write the summary to stdout", |lines| {
                writeln!(
                    lines,
                    "wrote {written} tracks and {}",
                    out.join(synth_music::MANIFEST_FILE).display()
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Excerpts(args) => excerpts::run(args),
    }
}

/// Refuses an `--out` folder that holds anything but an earlier synthetic set (its
/// `synth-*` tracks and its manifest): writing the set replaces files of those names, and
/// a folder of the user's own music with a `manifest.csv` must never lose it.
fn check_synth_folder(out: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("cannot use {} as the dataset folder: {e}", out.display()),
    };
    for entry in entries {
        let name = entry?.file_name();
        let ours = name == synth_music::MANIFEST_FILE
            || name.to_str().is_some_and(|n| n.starts_with("synth-"));
        if !ours {
            anyhow::bail!(
                "{} holds {:?}, which is not part of a synthetic dataset: give an empty or \
                 new folder (nothing in it is replaced)",
                out.display(),
                name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synth_folder_is_new_empty_or_an_earlier_set() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_synth_folder(&dir.path().join("new")).is_ok());
        assert!(check_synth_folder(dir.path()).is_ok());
        std::fs::write(dir.path().join(synth_music::MANIFEST_FILE), "x").unwrap();
        std::fs::write(dir.path().join("synth-000-rock-90.0.wav"), "x").unwrap();
        assert!(check_synth_folder(dir.path()).is_ok());
        std::fs::write(dir.path().join("song.mp3"), "x").unwrap();
        let refused = check_synth_folder(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("song.mp3"), "{refused}");
        assert_eq!(
            std::fs::read(dir.path().join(synth_music::MANIFEST_FILE)).unwrap(),
            b"x"
        );
    }
}
