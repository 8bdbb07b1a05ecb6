//! `eval-cli tag`: analyse files as `analyze` does (the same analyzer, batch runner,
//! worker count, time limit and per-file isolation), then write the tempo and key into each
//! file's own tags ([`crate::tags`]). One CSV row per file on stdout, in input order and as
//! soon as every row before it is out, says what was written, kept or skipped and why.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use analyzer_core::batch::{self, FileResult, Job};
use analyzer_core::loudness::REPLAYGAIN_REFERENCE_LUFS;
use analyzer_core::{Analyzer, Error, ErrorKind, Stage, StopSignal};
use serde::Serialize;

use crate::cache::FileIdentity;
use crate::file_id::FileId;
use crate::flags;
use crate::path_cell::path_cell;
use crate::report::export::{self, CsvLine, Exporter};
use crate::runner::{self, InOrder, RunOptions, Schedule, Shown};
use crate::stdout::{self, WriteContext};
use crate::tags::{KeyNotation, TagOptions, TagReport, TagValues, tag_analysed_file};

/// Exit status when every file was tagged, or had nothing to change.
const EXIT_OK: u8 = 0;
/// Exit status when some file was skipped (its row says why).
const EXIT_SOME_SKIPPED: u8 = 1;
/// Exit status after Ctrl-C or SIGTERM.
const EXIT_CANCELLED: u8 = 130;
/// What a failed write of the rows says (a full disk behind `> FILE`; a closed pipe ends the
/// run quietly instead, [`stdout`]).
const STDOUT_FAILED: &str = "cannot write the rows to stdout";

/// Flags of `eval-cli tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// Audio files and folders (walked recursively for files with audio extensions).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print what would change (old -> new per field) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace tempo and key values the tags already hold [default: keep them].
    #[arg(long)]
    overwrite: bool,
    /// How the key is written: `standard` (`Am`, `F#`, `C#m`), `camelot` (`8A`) or
    /// `openkey` (`1m`).
    #[arg(long, value_enum, default_value_t = KeyNotation::Standard)]
    key_notation: KeyNotation,
    #[command(flatten)]
    settings: flags::AnalyzerArgs,
    #[command(flatten)]
    batch: flags::BatchArgs,
    /// Internal, for tests: a file whose name starts with `gate` waits until `NAME.open`
    /// appears beside it (gate.rs).
    #[arg(long, hide = true)]
    test_gates: bool,
}

/// What a run of `tag` needs, built from the flags.
struct Plan {
    paths: Vec<PathBuf>,
    analyzer: Analyzer,
    tagging: TagOptions,
    options: RunOptions,
    test_gates: bool,
}

impl Plan {
    fn new(args: TagArgs) -> anyhow::Result<Self> {
        Ok(Plan {
            analyzer: args.settings.analyzer()?,
            paths: args.paths,
            tagging: TagOptions {
                overwrite: args.overwrite,
                dry_run: args.dry_run,
                notation: args.key_notation,
            },
            options: args.batch.options(Schedule::CostliestFirst),
            test_gates: args.test_gates,
        })
    }
}

/// A file analysed, and what tagging it did.
struct Tagged {
    values: TagValues,
    /// Why the file has no tempo to write (no pulse): its other fields are written.
    no_tempo: Option<String>,
    /// Why the file has no key to write, where one was asked for (`no key: ...`): the row
    /// listed no key field and said nothing.
    no_key: Option<String>,
    outcome: Result<TagReport, String>,
}

/// The analysis, then the tags, in one worker: a file is tagged as soon as it is analysed.
struct TagJob<'a> {
    analyzer: &'a Analyzer,
    tagging: TagOptions,
    test_gates: bool,
}

impl Job for TagJob<'_> {
    type Output = Tagged;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Tagged, Error> {
        // Which file is read, taken before it is: the tags go only into that same file,
        // unchanged (a file renamed over or rewritten meanwhile is another recording).
        let analysed = FileIdentity::of_path(path);
        if self.test_gates && !crate::gate::hold(path, stop) {
            return Err(Error::new(
                ErrorKind::Cancelled,
                Stage::Open,
                "stopped at a gate",
            ));
        }
        let analysis = self.analyzer.run(path, stop)?;
        let values = TagValues::of(&analysis);
        let no_tempo = analysis.tempo.as_ref().err().map(Error::reason);
        let no_key = match &analysis.key {
            Some(Err(no_key)) => Some(no_key.to_string()),
            _ => None,
        };
        let outcome = match analysed {
            Ok(analysed) => tag_analysed_file(path, &analysed, &values, &self.tagging)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot open: {e}")),
        };
        Ok(Tagged {
            values,
            no_tempo,
            no_key,
            outcome,
        })
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        self.analyzer.cost_hint(path)
    }
}

/// One row of `tag`'s CSV.
#[derive(Debug, Default, Serialize)]
struct TagRow {
    /// The file, as found or named ([`path_cell`]).
    path: String,
    /// `tagged`, `unchanged` (the tags already held every value), `dry_run` (something
    /// would be written) or `skipped`.
    status: &'static str,
    /// The tempo measured, BPM, three decimals.
    bpm: String,
    /// The key measured, in the chosen notation.
    key: String,
    /// Each field: `NAME: OLD -> NEW`, `NAME: OLD kept (new NEW)` or `NAME: NEW unchanged`.
    fields: String,
    /// Why the file was skipped, or why its BPM was not written (`no BPM: tempo:
    /// no_pulse: ...`: its key and ReplayGain are).
    reason: String,
}

impl TagRow {
    fn of(result: &FileResult<Tagged>, notation: KeyNotation) -> Self {
        let path = path_cell(&result.path);
        let Some(tagged) = &result.value else {
            let why = result.error.as_deref().unwrap_or("no analysis");
            return TagRow::skipped(path, format!("analysis failed: {why}"));
        };
        let mut row = TagRow {
            path,
            bpm: tagged
                .values
                .bpm
                .map_or(String::new(), |b| format!("{b:.3}")),
            key: tagged
                .values
                .key
                .map_or(String::new(), |k| notation.write(k)),
            ..TagRow::default()
        };
        match &tagged.outcome {
            Ok(report) => {
                row.status = if report.written {
                    "tagged"
                } else if report.changes_something() {
                    "dry_run"
                } else {
                    "unchanged"
                };
                row.fields = report.summary();
                let mut notes = Vec::new();
                if let Some(why) = &tagged.no_tempo {
                    notes.push(format!("no BPM: {why}"));
                }
                notes.extend(tagged.no_key.clone());
                notes.extend(report.elsewhere_note());
                row.reason = notes.join("; ");
            }
            Err(why) => {
                row.status = "skipped";
                row.reason = why.clone();
            }
        }
        row
    }

    /// The row of `path`, a later name of `first` ([`Distinct`]): `unchanged` under this
    /// name, since the file is tagged (or skipped) once, under its first; not a failure.
    fn same_file(path: &Path, first: &Path) -> Self {
        TagRow {
            path: path_cell(path),
            status: "unchanged",
            reason: format!("the same file as {}", path_cell(first)),
            ..TagRow::default()
        }
    }

    fn skipped(path: String, reason: String) -> Self {
        TagRow {
            path,
            status: "skipped",
            reason,
            ..TagRow::default()
        }
    }
}

/// The files of a run, each once: a later name of a file already named (another spelling
/// of its path, a symbolic link to it, a hard link) is not analysed or tagged a second
/// time, which would race the first name's rewrite (one worker's rename is "the file
/// changed" to the other) and make the rows depend on the worker count.
struct Distinct {
    /// The first name of each file, in input order: what the batch analyses and tags.
    first: Vec<PathBuf>,
    /// Where each of `first` sits in the input.
    positions: Vec<usize>,
    /// The later names of each of `first`, with their places in the input.
    again: Vec<Vec<(usize, PathBuf)>>,
}

impl Distinct {
    /// `files` by (device, inode), symbolic links followed. A path that names no regular
    /// file is kept as it is: its own row says why it is skipped.
    fn of(files: &[PathBuf]) -> Self {
        let mut seen: HashMap<FileId, usize> = HashMap::new();
        let mut distinct = Distinct {
            first: Vec::new(),
            positions: Vec::new(),
            again: Vec::new(),
        };
        for (position, path) in files.iter().enumerate() {
            let id = FileId::of_file(path);
            if let Some(&i) = id.and_then(|id| seen.get(&id)) {
                distinct.again[i].push((position, path.clone()));
                continue;
            }
            if let Some(id) = id {
                seen.insert(id, distinct.first.len());
            }
            distinct.first.push(path.clone());
            distinct.positions.push(position);
            distinct.again.push(Vec::new());
        }
        distinct
    }
}

/// Runs `eval-cli tag`.
pub fn run(args: TagArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    let (files, walk_errors) = batch::collect_audio_files(&plan.paths);
    if files.is_empty() && walk_errors.is_empty() {
        eprintln!("eval-cli: warning: no audio files found");
    }
    let distinct = Distinct::of(&files);
    runner::install_signal_handler(Arc::clone(&plan.options.cancel));
    let job = TagJob {
        analyzer: &plan.analyzer,
        tagging: plan.tagging,
        test_gates: plan.test_gates,
    };
    // Before any file is tagged: rows that cannot be shown (a full disk behind `> FILE`)
    // stop the run here, naming stdout, not with the bare OS error.
    io::stdout()
        .write_all(&export::csv_header::<TagRow>()?)
        .stdout_context(STDOUT_FAILED)?;
    let mut rows = InOrder::stdout(files.len());
    let mut write_error: Option<io::Error> = None;
    let mut skipped = 0;
    let mut finished = 0;
    let summary = runner::run(
        &distinct.first,
        &plan.options,
        &job,
        |t: &Tagged| Shown {
            bpm: t.values.bpm,
            key: t.values.key.map(|k| k.to_string()),
            loudness_lufs: t
                .values
                .replaygain
                .map(|rg| REPLAYGAIN_REFERENCE_LUFS - rg.track_gain_db),
        },
        |result| {
            let row = TagRow::of(result, plan.tagging.notation);
            skipped += usize::from(row.status == "skipped");
            // The file's other names: done with it, whatever its own row says.
            let again = &distinct.again[result.index];
            finished += 1 + again.len();
            if write_error.is_some() {
                return;
            }
            let mut lines = vec![(distinct.positions[result.index], row)];
            lines.extend(
                again
                    .iter()
                    .map(|(at, path)| (*at, TagRow::same_file(path, &result.path))),
            );
            let written = lines.into_iter().try_for_each(|(at, row)| {
                let line = CsvLine.serialize(&row).map_err(io::Error::other)?;
                rows.push(at, line)
            });
            if let Err(err) = written {
                // stdout is gone (a closed pipe): stop tagging files nobody will hear of.
                write_error = Some(err);
                plan.options.cancel.store(true, Ordering::SeqCst);
            }
        },
    );
    if let Some(err) = write_error {
        return Err(stdout::write_failed(err, STDOUT_FAILED));
    }
    rows.flush_rest().stdout_context(STDOUT_FAILED)?;
    let mut out = io::stdout().lock();
    for error in walk_errors {
        skipped += 1;
        out.write_all(&CsvLine.serialize(&TagRow::skipped(path_cell(&error.path), error.reason))?)
            .stdout_context(STDOUT_FAILED)?;
    }
    out.flush().stdout_context(STDOUT_FAILED)?;
    if summary.cancelled {
        eprintln!(
            "eval-cli: cancelled: {finished} of {} files finished",
            files.len()
        );
        return Ok(ExitCode::from(EXIT_CANCELLED));
    }
    Ok(ExitCode::from(if skipped == 0 {
        EXIT_OK
    } else {
        EXIT_SOME_SKIPPED
    }))
}
