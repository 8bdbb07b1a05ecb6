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
//!
//! A report folder holds no file of an earlier report: claiming an earlier report removes
//! the files and folders a report writes ([`is_report_entry`]: `summary.json` first, the
//! other files, the charts, `runs/`, `estimators/`) before anything is written, so that no
//! file of an earlier run (a `compare.json` beside a newer `evaluate`'s `summary.json`, an
//! `estimators/` folder, a chart) is read as part of the new one, by `check` or by a
//! reader, even when the new run stops midway. Only those names: anything else in the
//! folder (a user's notes beside a copied report, an estimator's script) is left alone. A
//! file this run reads among them, or a mount of another file system under them, is
//! refused before anything is removed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use analyzer_core::decode::open_regular;
use anyhow::{Context, bail};

use super::Summary;
use crate::output::{Destination, OutputError, Refusal};

/// The file that marks a folder as a report of `evaluate` or `compare`.
pub const MARKER: &str = crate::output::REPORT_MARKER;

/// What the marker says to whoever opens it.
const MARKER_TEXT: &str = "This folder holds a report of `eval-cli evaluate` or `eval-cli \
compare`; they write here again, replacing their own files.\n";

/// A report folder held by this run: the marker, open and locked (`flock`), so that a
/// second `evaluate` or `compare` on the same folder is refused at once (two runs each
/// removed the other's files and both said they wrote the report). The lock goes with the
/// guard.
#[derive(Debug)]
pub struct ReportLock {
    _marker: fs::File,
}

/// Takes `dir` for a report: creates it if missing, locks its marker ([`MARKER`],
/// [`ReportLock`]: refused while another run holds it), empties an earlier report
/// ([`clear`]) and marks it. Refuses, before writing or removing anything, a folder that
/// holds anything while it is not an earlier report, naming the folder and the first of
/// its entries by name, and an earlier report that holds a file this run reads (the files
/// [`crate::output::protect`]ed).
pub fn claim(dir: &Path) -> anyhow::Result<ReportLock> {
    claim_reading(dir, &read_by_this_run)
}

/// [`claim`], with `reads` saying whether the run reads a file.
fn claim_reading(dir: &Path, reads: &dyn Fn(&Path) -> bool) -> anyhow::Result<ReportLock> {
    let earlier = dir.is_dir() && is_report(dir);
    if dir.is_dir()
        && !earlier
        && let Some(entry) = first_entry(dir)?
    {
        bail!(
            "{} holds {}, which is not part of an earlier report: give an empty or new \
             folder, or an earlier report's (nothing in it is replaced)",
            dir.display(),
            entry.display()
        );
    }
    crate::output::create_out_dir(dir)?;
    let marker = dir.join(MARKER);
    let lock = lock_marker(&marker)?;
    if earlier {
        clear(dir, reads)?;
    }
    if fs::metadata(&marker).is_ok_and(|m| m.len() == 0) {
        fs::write(&marker, MARKER_TEXT)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(lock)
}

/// Opens the marker (made empty where missing: [`claim_reading`] writes its text) and
/// locks it, or says which run's folder it is.
fn lock_marker(marker: &Path) -> anyhow::Result<ReportLock> {
    if fs::symlink_metadata(marker).is_ok_and(|m| !m.is_file()) {
        bail!("{} is not a regular file", marker.display());
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(marker)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(ReportLock { _marker: file }),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "{} is being written by another run (it holds {}); wait for it or choose \
             another --out-dir",
            marker.parent().unwrap_or(marker).display(),
            marker.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", marker.display()))
        }
    }
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

/// Whether this process reads the file at `path` (symlinks followed): a file
/// [`crate::output::protect`]ed, which no output may replace or remove.
pub(crate) fn read_by_this_run(path: &Path) -> bool {
    matches!(
        Destination::check_protected(path),
        Err(OutputError::Refused {
            reason: Refusal::Input,
            ..
        })
    )
}

/// What a report writes at the top of its folder besides the charts.
const REPORT_FILES: [&str; 6] = [
    "summary.json",
    "results.csv",
    "report.html",
    "compare.json",
    "timings.json",
    "estimators.csv",
];

/// The folders a report writes: `compare`'s runs, the other estimators' own reports.
const REPORT_FOLDERS: [&str; 2] = ["runs", "estimators"];

/// Whether `name`, at the top of a report folder, is one a report writes.
fn is_report_entry(name: &str) -> bool {
    let chart = name
        .strip_suffix(".svg")
        .or_else(|| name.strip_suffix(".png"))
        .is_some_and(|stem| super::charts::NAMES.contains(&stem));
    chart || REPORT_FILES.contains(&name) || REPORT_FOLDERS.contains(&name)
}

/// The folder of the warm-up runs of `compare`, under `runs/`.
pub const WARMUP_DIR: &str = "warmup";

/// Whether `name` is the folder of a run of `compare` under `runs/`: [`WARMUP_DIR`] or
/// `wW-rR`.
pub fn is_run_dir(name: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name == WARMUP_DIR
        || name
            .strip_prefix('w')
            .and_then(|rest| rest.split_once("-r"))
            .is_some_and(|(w, r)| number(w) && number(r))
}

/// Whether `name` is the folder of an estimator's own report under `estimators/`: `K-NAME`
/// as `evaluation::estimator_slug` makes it (a number, then lowercase letters, digits and
/// dashes).
pub fn is_estimator_dir(name: &str) -> bool {
    name.split_once('-').is_some_and(|(k, slug)| {
        !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_digit())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// What a report wrote inside its folder `folder` (one of [`REPORT_FOLDERS`]).
fn is_written_inside(folder: &Path, name: &str) -> bool {
    match folder.to_str() {
        Some("runs") => is_run_dir(name),
        Some("estimators") => is_estimator_dir(name),
        _ => false,
    }
}

/// Removes what the earlier report `dir` wrote ([`is_report_entry`]), `summary.json` first,
/// so that a removal that fails midway leaves no summary for `check` to read beside what is
/// left. In `runs/` and `estimators/` only the folders a report names there go (a run's, an
/// estimator's), and the folder itself once that leaves it empty: a file of one's own put
/// there stays. Links are removed, never followed. Refuses, before removing anything, when
/// among those entries is a file `reads` says this run reads, or a mount of another file
/// system.
fn clear(dir: &Path, reads: &dyn Fn(&Path) -> bool) -> anyhow::Result<()> {
    let cannot_read = || format!("cannot read {}", dir.display());
    let mut names: Vec<PathBuf> = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).with_context(cannot_read)? {
        let entry = entry.with_context(cannot_read)?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_report_entry) {
            continue;
        }
        let folder = PathBuf::from(&name);
        let real_folder = entry.file_type().is_ok_and(|t| t.is_dir());
        if REPORT_FOLDERS.contains(&name.to_str().unwrap_or_default()) && real_folder {
            for inner in fs::read_dir(entry.path()).with_context(cannot_read)? {
                let inner = inner.with_context(cannot_read)?.file_name();
                if inner
                    .to_str()
                    .is_some_and(|n| is_written_inside(&folder, n))
                {
                    names.push(folder.join(inner));
                }
            }
            folders.push(folder);
        } else {
            names.push(folder);
        }
    }
    let device = device_of(dir);
    for name in &names {
        for entry in walkdir::WalkDir::new(dir.join(name)) {
            let entry = entry.with_context(cannot_read)?;
            let refuse = |why: &str| {
                anyhow::anyhow!(
                    "refusing to clear the earlier report in {}: {}: {why} (give another \
                     --out-dir; nothing was removed)",
                    dir.display(),
                    entry.path().display()
                )
            };
            if !entry.file_type().is_dir() && reads(entry.path()) {
                return Err(refuse("it is one of this run's input files"));
            }
            if device.is_some() && device_of(entry.path()) != device {
                return Err(refuse("another file system is mounted there"));
            }
        }
    }
    names.sort_by_key(|name| (name != Path::new("summary.json"), name.clone()));
    for name in names {
        let path = dir.join(name);
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed
            .with_context(|| format!("cannot remove {} of an earlier report", path.display()))?;
    }
    for folder in folders {
        // Left where something of one's own is in it.
        let _ = fs::remove_dir(dir.join(folder));
    }
    Ok(())
}

/// The device of the entry at `path` itself (a link not followed); `None` where there are
/// no devices to compare.
fn device_of(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path).ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
        // A file in the folder's place is named as one (`File exists` read as if the
        // folder did).
        let file = dir.path().join("afile");
        fs::write(&file, "mine").unwrap();
        let err = claim(&file).unwrap_err().to_string();
        assert!(err.contains("it is a file, not a folder"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"mine");
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

    /// A reused report holds no file of the earlier one: what a report writes goes, links
    /// removed and never followed; anything else stays.
    #[test]
    fn claiming_an_earlier_report_removes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report");
        claim(&report).unwrap();
        fs::write(report.join("summary.json"), "{}").unwrap();
        fs::write(report.join("compare.json"), "{}").unwrap();
        fs::create_dir_all(report.join("estimators/2-dbl")).unwrap();
        fs::write(report.join("estimators/2-dbl/results.csv"), "rows").unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep.txt"), "mine").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, report.join("runs")).unwrap();
        fs::write(report.join("speedup.png"), "chart").unwrap();
        // Not a report's: a user's notes, an estimator's script, a picture of their own.
        for mine in ["notes.txt", "est.sh", "logo.png"] {
            fs::write(report.join(mine), "mine").unwrap();
        }
        claim(&report).unwrap();
        let mut left: Vec<_> = fs::read_dir(&report)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [MARKER, "est.sh", "logo.png", "notes.txt"]);
        assert_eq!(
            fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "mine"
        );
    }

    /// In `runs/` and `estimators/` only a run's and an estimator's folders go: a file of
    /// one's own put there stays, and so does its folder. Both folders went whole, with a
    /// user's files in them, when a summary copied beside them made the folder a report.
    #[test]
    fn only_the_reports_own_folders_go_from_runs_and_estimators() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report");
        claim(&report).unwrap();
        for made in ["runs/w1-r0", "runs/warmup", "estimators/2-dbl"] {
            fs::create_dir_all(report.join(made)).unwrap();
            fs::write(report.join(made).join("results.csv"), "rows").unwrap();
        }
        fs::write(report.join("runs/important.txt"), "mine").unwrap();
        fs::create_dir_all(report.join("estimators/My Tool")).unwrap();
        claim(&report).unwrap();
        let held = |folder: &str| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(report.join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(held("runs"), ["important.txt"]);
        assert_eq!(held("estimators"), ["My Tool"]);
        // Emptied, a folder goes too.
        fs::remove_file(report.join("runs/important.txt")).unwrap();
        fs::create_dir_all(report.join("runs/w2-r1")).unwrap();
        claim(&report).unwrap();
        assert!(!report.join("runs").exists());
    }

    #[test]
    fn estimator_folders_are_known_by_their_names() {
        for ours in ["2-dbl", "3-", "12-ours-compound-beat-dotted-quarter"] {
            assert!(is_estimator_dir(ours), "{ours}");
        }
        for theirs in ["dbl", "-dbl", "2-Dbl", "2-my tool", "x-dbl"] {
            assert!(!is_estimator_dir(theirs), "{theirs}");
        }
    }

    /// A file the run reads among what an earlier report wrote is refused before anything
    /// in the folder is removed; one elsewhere in the folder is no concern of the claim.
    #[test]
    fn an_earlier_report_holding_an_input_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report");
        claim(&report).unwrap();
        fs::write(report.join("summary.json"), "{}").unwrap();
        // The run's dataset under a name a report writes, and one under another name.
        fs::create_dir_all(report.join("runs/w1-r0")).unwrap();
        let input = report.join("runs/w1-r0/manifest.csv");
        fs::write(&input, "file,bpm\n").unwrap();
        fs::create_dir(report.join("ds")).unwrap();
        let kept = report.join("ds/manifest.csv");
        fs::write(&kept, "file,bpm\n").unwrap();
        let inputs = crate::output::Inputs::of([&input, &kept]);
        let reads = |path: &Path| {
            matches!(
                Destination::check(path, &inputs),
                Err(OutputError::Refused {
                    reason: Refusal::Input,
                    ..
                })
            )
        };
        let err = format!("{:#}", claim_reading(&report, &reads).unwrap_err());
        assert!(err.contains("runs/w1-r0/manifest.csv"), "{err}");
        assert!(input.is_file() && report.join("summary.json").is_file());
        // Not under a report's name: left where it is, and the folder is taken.
        fs::remove_dir_all(report.join("runs")).unwrap();
        claim_reading(&report, &reads).unwrap();
        assert!(kept.is_file() && !report.join("summary.json").exists());
    }
}
