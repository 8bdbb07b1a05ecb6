//! `analyze --out FILE --resume`: which rows an earlier run left in FILE are kept, so that
//! their files are not analysed again. FILE must have been made with this run's settings
//! and hold rows of the CSV's shape; a row is then kept when it says something of its
//! file's content and that file is as it was when the row was made. FILE may not hold rows
//! of files this run does not list that still exist (finishing would drop them). A resumed
//! run gives the bytes of one that was never interrupted.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;

use analyzer_core::ErrorKind;
use analyzer_core::batch::Status;

use crate::cache::FileIdentity;
use crate::output::Destination;
use crate::path_cell::parse_path_cell;
use crate::record::{self, AnalyzeRecord};
use crate::report::export;
use crate::runner::{self, IdentityLog, ResumedRow, RowLog, RunSettings};

/// The rows an earlier run left that this one keeps, by their file's exact path: each as
/// read and its line, to be written back unchanged (its cells as strings a second time
/// cost about 1 KB a row, held to the end of the run).
pub(super) type KeptRows = HashMap<PathBuf, (AnalyzeRecord, Vec<u8>)>;

/// An earlier run's rows file, opened to go on from the rows it keeps.
pub(super) struct Resumed {
    /// The rows file, appended to from here.
    pub log: RowLog,
    /// The rows kept: their files are not analysed again.
    pub done: KeptRows,
    /// The identity of each row's file, logged beside the rows.
    pub identities: IdentityLog,
}

impl Resumed {
    /// Opens `dest` keeping the rows already there, by exact path, when they were made
    /// with `settings` (refused otherwise), for a run over `files`.
    pub(super) fn open(
        dest: &Destination,
        settings: &RunSettings,
        files: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let path = dest.target();
        let header = record::header();
        // Every check reads the file as it is: a refusal leaves it as it was (a cut last
        // row was trimmed off before a malformed row refused the resume).
        let rows = runner::resumable_rows(path, &header)?;
        settings.check_resume(path, dest.shown(), !rows.is_empty())?;
        let shown = dest.shown().display();
        let mut done = kept_rows(rows, &shown.to_string())?;
        check_resumed_files(&done, files, &shown.to_string())?;
        settings.write(path)?;
        let (log, _) = RowLog::resume(path, &header)?;
        // A resumed row of a file that is not known to be as it was when the row was made
        // (written to or replaced since, never logged, or written within a timestamp tick
        // of the moment its identity was taken) is dropped: the file is analysed again.
        let (identities, logged) = IdentityLog::resume(path)?;
        // Folders that could not be walked are rows too, with no identity: kept.
        let inputs: HashSet<&PathBuf> = files.iter().collect();
        let before = done.len();
        done.retain(|file, (record, _)| {
            !inputs.contains(file)
                || logged.get(&record.path).is_some_and(|was| {
                    FileIdentity::of_path(file).is_ok_and(|now| was.trusts(&now))
                })
        });
        let changed = before - done.len();
        if changed > 0 {
            eprintln!(
                "eval-cli: {changed} file{} changed since {} row was written (or written too \
                 close to it to tell): analysed again",
                if changed == 1 { "" } else { "s" },
                if changed == 1 { "its" } else { "their" }
            );
        }
        Ok(Resumed {
            log,
            done,
            identities,
        })
    }
}

/// The rows of an earlier run that a resume keeps, by exact path: all but those that say
/// nothing of their file and those whose bytes are not what this program writes for their
/// cells (a byte flipped on disk that is not UTF-8: the row was kept, and a resumed run
/// then differed from a fresh one), whose files are analysed again. A row of another shape refuses the resume.
fn kept_rows(rows: Vec<ResumedRow>, shown: &str) -> anyhow::Result<KeptRows> {
    let columns = export::csv_columns::<AnalyzeRecord>()?;
    let mut done = HashMap::new();
    // A row edited out of shape cannot be resumed: the way on is to start afresh.
    let unresumable = |why: String| {
        anyhow::anyhow!("cannot resume {shown}: {why}; run without --resume to start afresh")
    };
    let (mut again, mut altered) = (0, 0);
    for (number, row) in (1..).zip(rows) {
        row.check_width(number, columns)
            .map_err(|e| unresumable(format!("{e:#}")))?;
        let read = record::read_back(&row.fields, &row.line)
            .map_err(|e| unresumable(format!("row {number}: {e}")))?;
        let Some(record) = read else {
            // Its path may be damaged too: no file's row is taken from it.
            altered += 1;
            continue;
        };
        let path = parse_path_cell(&record.path);
        if says_nothing_of_the_file(&record) {
            again += 1;
            done.remove(&path);
            continue;
        }
        done.insert(path, (record, row.line));
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if again > 0 {
        eprintln!(
            "eval-cli: {again} row{} of files that could not be read or ran out of time: \
             tried again",
            plural(again)
        );
    }
    if altered > 0 {
        eprintln!(
            "eval-cli: {shown}: {altered} row{} not as this program writes them (changed \
             since): their files are analysed again",
            plural(altered)
        );
    }
    Ok(done)
}

/// Whether a resumed row tells nothing of its file's content, so `--resume` tries the file
/// again: it could not be read (the kind [`ErrorKind::Unreadable`] in its `error` cell,
/// which [`analyzer_core::Error::reason`] writes as `STAGE: KIND: why`: a share that
/// dropped, a folder moved away for a moment, no descriptor left) or it ran out of time
/// (load). Such rows were kept, and a resumed run then differed from a fresh one; the
/// cache never stores them either.
/// A file that decoded to an error is kept: the same build gives it the same row.
fn says_nothing_of_the_file(record: &AnalyzeRecord) -> bool {
    record.status == Status::Timeout.as_str()
        || (record.status == Status::Error.as_str()
            && record.error.split(": ").nth(1) == Some(ErrorKind::Unreadable.as_str()))
}

/// Whether `record` is the row of a folder or link the walk could not go into (its
/// `error` cell `walk: KIND: why`), not of a file.
fn is_walk_row(record: &AnalyzeRecord) -> bool {
    record.status == Status::Error.as_str() && record.error.starts_with("walk: ")
}

/// Refuses to resume a file holding rows of files this run does not list but that still
/// exist: the rewrite in input order would drop them (a resume meant to add a folder, or
/// the same folder spelled `$PWD/lib` instead of `lib`, lost every earlier row). Rows of
/// files that no longer exist are dropped, said on stderr; a folder's row (one that could
/// not be walked, or a link back to an ancestor: a symlink, not a folder, which refused
/// every resume of a library holding one) is made again by this run's walk.
fn check_resumed_files(done: &KeptRows, files: &[PathBuf], shown: &str) -> anyhow::Result<()> {
    let listed: HashSet<&PathBuf> = files.iter().collect();
    let (mut gone, mut unlisted) = (Vec::new(), Vec::new());
    for (file, (record, _)) in done {
        if listed.contains(file) || is_walk_row(record) {
            continue;
        }
        match std::fs::symlink_metadata(file) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => gone.push(&record.path),
            Ok(meta) if meta.is_dir() => {}
            _ => unlisted.push(&record.path),
        }
    }
    unlisted.sort();
    if let Some(first) = unlisted.first() {
        anyhow::bail!(
            "cannot resume {shown}: it holds rows of {} file{} this run does not list (the \
             first: {first}), which finishing would drop; give the same files and folders, \
             spelled as before (paths are matched as written), or write to another --out",
            unlisted.len(),
            if unlisted.len() == 1 { "" } else { "s" },
        );
    }
    gone.sort();
    if let Some(first) = gone.first() {
        eprintln!(
            "eval-cli: {shown}: dropping the rows of {} that no longer exist{} (the first: \
             {first})",
            if gone.len() == 1 {
                "1 file".to_string()
            } else {
                format!("{} files", gone.len())
            },
            if gone.len() == 1 { "s" } else { "" },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The rows `--resume` tries again are told by the kind the analyzer writes into the
    /// `error` cell; a reason that only mentions the word further on is not one of them.
    #[test]
    fn rows_of_unreadable_or_timed_out_files_say_nothing_of_the_file() {
        let row = |kind, detail| {
            let err = analyzer_core::Error::new(kind, analyzer_core::Stage::Open, detail);
            let status = Status::of_error(err.kind());
            AnalyzeRecord::new(Path::new("a.wav"), status, None, Some(&err.reason()))
        };
        assert!(says_nothing_of_the_file(&row(
            ErrorKind::Unreadable,
            "gone"
        )));
        assert!(says_nothing_of_the_file(&row(ErrorKind::TimedOut, "late")));
        for kind in [ErrorKind::CorruptStream, ErrorKind::UnsupportedFormat] {
            assert!(!says_nothing_of_the_file(&row(kind, "unreadable: header")));
        }
    }
}
