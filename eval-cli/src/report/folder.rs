//! The folder a report is written to (`evaluate --out-dir`, `compare --out-dir`), claimed
//! before anything is written there. A report replaces its files by name (`results.csv`,
//! `summary.json`, `report.html`, the charts...), so a folder of the user's own must never
//! be taken for one: the folder must be new, empty, or an earlier report of this tool.
//!
//! An earlier report is recognised by [`MARKER`], a small file a report writes into its
//! folder before any other, so that a run stopped before its summary still leaves a folder
//! the next run may write again; or, for reports made before the marker existed, by a
//! `summary.json` that reads as a report's [`Summary`]. As `dataset excerpts --out` does
//! for its excerpt sets, anything else in the folder is a refusal naming the folder and
//! one of its files, and nothing in it is touched.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use analyzer_core::decode::open_regular;
use anyhow::{Context, bail};

use super::Summary;

/// The file that marks a folder as a report of `evaluate` or `compare`.
pub const MARKER: &str = ".eval-cli-report";

/// What the marker says to whoever opens it.
const MARKER_TEXT: &str = "This folder holds a report of `eval-cli evaluate` or `eval-cli \
compare`; they write here again, replacing their own files.\n";

/// Takes `dir` for a report: creates it if missing and marks it ([`MARKER`]). Refuses,
/// before writing anything, a folder that holds anything while it is not an earlier
/// report, naming the folder and the first of its entries by name.
pub fn claim(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir()
        && !is_report(dir)
        && let Some(entry) = first_entry(dir)?
    {
        bail!(
            "{} holds {}, which is not part of an earlier report: give an empty or new \
             folder, or an earlier report's (nothing in it is replaced)",
            dir.display(),
            entry.display()
        );
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let marker = dir.join(MARKER);
    if !marker.is_file() {
        fs::write(&marker, MARKER_TEXT)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(())
}

/// Whether `dir` holds an earlier report: its marker, or a `summary.json` that reads as
/// one (a report made before the marker). The summary is opened only as a regular file
/// ([`open_regular`]): a named pipe of that name, with no writer, hung `evaluate` and
/// `compare` before they wrote anything.
fn is_report(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
        || open_regular(&dir.join("summary.json")).is_ok_and(|mut file| {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).is_ok()
                && serde_json::from_slice::<Summary>(&bytes).is_ok()
        })
}

/// The entry of `dir` first by name, if it has any.
fn first_entry(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut first: Option<PathBuf> = None;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = PathBuf::from(
            entry
                .with_context(|| format!("cannot read {}", dir.display()))?
                .file_name(),
        );
        if first.as_ref().is_none_or(|f| name < *f) {
            first = Some(name);
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_named_summary_json_is_not_a_report_and_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("summary.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // No writer: reading it would block forever.
        let refused = claim(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("summary.json"), "{refused}");
        assert!(!dir.path().join(MARKER).exists());
    }

    #[test]
    fn a_new_or_empty_folder_is_claimed_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new/report");
        claim(&new).unwrap();
        assert!(new.join(MARKER).is_file());
        claim(dir.path().join("new").as_path()).unwrap_err();
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        claim(&empty).unwrap();
        assert_eq!(fs::read_dir(&empty).unwrap().count(), 1, "the marker only");
    }

    #[test]
    fn a_folder_of_the_users_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("results.csv"), "mine").unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = format!("{:#}", claim(dir.path()).unwrap_err());
        assert!(
            err.contains(&*dir.path().to_string_lossy()) && err.contains("holds notes.txt"),
            "{err}"
        );
        assert!(!dir.path().join(MARKER).exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("results.csv")).unwrap(),
            "mine"
        );
        // A summary.json of the user's, not a report's, is no earlier report either.
        fs::write(dir.path().join("summary.json"), "{\"n\": 3}").unwrap();
        claim(dir.path()).unwrap_err();
    }

    #[test]
    fn an_earlier_report_is_recognised_by_its_marker_or_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        let marked = dir.path().join("marked");
        claim(&marked).unwrap();
        fs::write(marked.join("results.csv"), "a partial run's rows").unwrap();
        claim(&marked).unwrap();

        let before_markers = dir.path().join("old");
        fs::create_dir(&before_markers).unwrap();
        let summary = super::super::summarize("synth", &[], &[]).unwrap();
        fs::write(
            before_markers.join("summary.json"),
            serde_json::to_vec(&summary).unwrap(),
        )
        .unwrap();
        fs::write(before_markers.join("report.html"), "<html>").unwrap();
        claim(&before_markers).unwrap();
        assert!(before_markers.join(MARKER).is_file());
    }
}
