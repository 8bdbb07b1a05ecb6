//! `eval-cli dataset synth`: the deterministic synthetic set written into a folder of the
//! user's, one track at a time, so that Ctrl-C or SIGTERM stops it between two tracks
//! (exit 130) with every track written whole and no temporary left. `manifest.csv` comes
//! last and says the set is complete: a stopped run leaves none, and an earlier set's is
//! removed before the first track is rewritten, so a manifest never lists tracks of another
//! length or seed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use synth_music::{AudioFormat, MANIFEST_FILE};

use super::{remove_leftovers, temporary_for};
use crate::evaluation::create_out_dir;
use crate::manifest::{self, SynthParams};
use crate::{report, runner, stdout};

/// Runs `eval-cli dataset synth --out OUT`: exit 0 with the whole set, 130 when a signal
/// stopped it (the tracks written so far stay, without a manifest).
pub fn run(out: &Path, params: SynthParams) -> anyhow::Result<ExitCode> {
    let spec = manifest::synth_spec(out, params)?;
    let leftovers = check_synth_folder(out)?;
    remove_leftovers(&leftovers)?;
    create_out_dir(out)?;
    remove_manifest(out)?;
    let cancel = Arc::new(AtomicBool::new(false));
    runner::install_signal_handler(Arc::clone(&cancel));
    let items = synth_music::dataset_plan(&spec);
    for (i, item) in items.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            eprintln!(
                "eval-cli: cancelled: {i} of {} tracks written into {}, and no {MANIFEST_FILE}; \
                 run the same command again for the whole set",
                items.len(),
                out.display()
            );
            return Ok(ExitCode::from(runner::EXIT_CANCELLED));
        }
        eprintln!("synth: track {}/{}, {}", i + 1, items.len(), item.file);
        let samples = synth_music::try_render(&item.spec)
            .with_context(|| format!("cannot render {}", item.file))?;
        let path = out.join(&item.file);
        let (rate, channels) = (item.spec.sample_rate, item.spec.channels);
        match item.format {
            AudioFormat::Wav => synth_music::write_wav(&path, &samples, rate, channels),
            AudioFormat::Flac => synth_music::write_flac(&path, &samples, rate, channels),
        }
        .with_context(|| format!("cannot write the synthetic dataset to {}", out.display()))?;
    }
    let manifest = out.join(MANIFEST_FILE);
    report::write_file(&manifest, synth_music::manifest_csv(&items).as_bytes())?;
    stdout::print("cannot write the summary to stdout", |lines| {
        writeln!(
            lines,
            "wrote {} tracks and {}",
            items.len(),
            manifest.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `name` is one a synthetic set writes: its manifest or a `synth-*` track.
fn is_synth_name(name: &str) -> bool {
    name == MANIFEST_FILE || name.starts_with("synth-")
}

/// Refuses an `--out` folder that holds anything but an earlier synthetic set (its
/// `synth-*` tracks and its manifest): writing the set replaces files of those names, and
/// a folder of the user's own music with a `manifest.csv` must never lose it. Returns the
/// temporaries of those names (`.synth-000-rock-90.0.wav.4242.tmp`) that a run stopped at
/// once (a second Ctrl-C, SIGKILL) left behind: ours, to be removed, not foreign files.
fn check_synth_folder(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot use {} as the dataset folder: {e}", out.display()),
    };
    let mut leftovers = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let text = name.to_str().unwrap_or_default();
        if temporary_for(text).is_some_and(is_synth_name) && entry.file_type()?.is_file() {
            leftovers.push(entry.path());
        } else if !is_synth_name(text) {
            anyhow::bail!(
                "{} holds {:?}, which is not part of a synthetic dataset: give an empty or \
                 new folder (nothing in it is replaced)",
                out.display(),
                name
            );
        }
    }
    Ok(leftovers)
}

/// Removes an earlier set's manifest from `out`, if there is one.
fn remove_manifest(out: &Path) -> anyhow::Result<()> {
    let manifest = out.join(MANIFEST_FILE);
    match fs::remove_file(&manifest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", manifest.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synth_folder_is_new_empty_or_an_earlier_set() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_synth_folder(&dir.path().join("new")).is_ok());
        assert!(check_synth_folder(dir.path()).is_ok());
        fs::write(dir.path().join(MANIFEST_FILE), "x").unwrap();
        fs::write(dir.path().join("synth-000-rock-90.0.wav"), "x").unwrap();
        assert!(check_synth_folder(dir.path()).is_ok());
        fs::write(dir.path().join("song.mp3"), "x").unwrap();
        let refused = check_synth_folder(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("song.mp3"), "{refused}");
        assert_eq!(fs::read(dir.path().join(MANIFEST_FILE)).unwrap(), b"x");
    }

    /// A run killed while writing a track left `.synth-...wav.PID.tmp`: the next run
    /// refused the folder for it. It is ours, found to be removed; a hidden file that only
    /// looks alike is still the user's.
    #[test]
    fn temporaries_of_a_killed_run_are_ours_to_remove() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join(".synth-000-fourfloor-95.0.wav.12883.tmp");
        let manifest = dir.path().join(".manifest.csv.Ab3dE9.tmp");
        for path in [&track, &manifest] {
            fs::write(path, "half").unwrap();
        }
        fs::write(dir.path().join("synth-000-fourfloor-95.0.wav"), "x").unwrap();
        let mut found = check_synth_folder(dir.path()).unwrap();
        found.sort();
        assert_eq!(found, [manifest.clone(), track.clone()]);
        remove_leftovers(&found).unwrap();
        assert!(!track.exists() && !manifest.exists());
        for theirs in [
            ".synth-notes.tmp",
            ".song.wav.12883.tmp",
            ".synth-a.wav.1 2.tmp",
        ] {
            fs::write(dir.path().join(theirs), "mine").unwrap();
            let refused = check_synth_folder(dir.path()).unwrap_err().to_string();
            assert!(refused.contains(theirs), "{theirs}: {refused}");
            fs::remove_file(dir.path().join(theirs)).unwrap();
        }
    }
}
