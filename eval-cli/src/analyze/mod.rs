//! `eval-cli analyze`: the tempo of every file named or found in the folders named, one
//! CSV row per file.
//!
//! The flags are read in two steps: [`AnalyzeArgs`] mirrors the command line and only
//! checks each value; [`Plan`] is what the run needs (an analyzer, runner options, where
//! rows go). The rows carry results only, no timings, so a completed run gives the same
//! bytes for any worker count, and `--resume` after an interruption gives the same bytes
//! as a run that was never interrupted. With `--cache DIR` a file already analysed with
//! the same bytes and settings gets its row from the cache ([`crate::cache`]) without
//! being decoded, and one unchanged since (device, inode, size, mtime, ctime) without
//! being opened; the bytes are the same as without it.
//!
//! Which rows of an earlier run `--resume` keeps is [`resume`]'s. One file over 500 lines:
//! the command's plan and where its rows go (stdout, the row log, shards, the cache, the
//! in-order rewrite) are one decision each, read in order.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use analyzer_core::batch::{self, BatchTotals, FileResult, Job, Status};
use analyzer_core::loudness::{AlbumLoudness, GatingBlocks, Loudness};
use analyzer_core::{Analysis, Analyzer, StopSignal};
use anyhow::bail;

use crate::cache::{Analyzed, CacheArgs, CachedAnalyzer, FileIdentity, Rescan, ResultCache};
use crate::flags;
use crate::output::{self, Destination, Inputs, OutputLock};
use crate::path_cell::path_cell;
use crate::record;
use crate::report::export::{CsvLine, Exporter};
use crate::runner::{
    self, IdentityLog, InOrder, ProgressMode, RowLog, RunOptions, RunSettings, Schedule, Shown,
};
use crate::shard::{self, Shard, ShardRecord};
use crate::stdout::{self, WriteContext};

mod resume;

/// Exit status when every file was analysed.
const EXIT_OK: u8 = 0;
/// Exit status when some file failed (its row says why).
const EXIT_SOME_FAILED: u8 = 1;

/// How long one read transaction of the cache serves lookups: a rescan of an unchanged
/// library is a lookup or two per file, and each transaction takes byte-range locks.
const SNAPSHOT_AGE: Duration = Duration::from_millis(100);

/// Flags of `eval-cli analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Audio files (analysed whatever their name) and folders (walked recursively for
    /// files with audio extensions).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write the CSV to FILE instead of stdout. Rows are appended as files finish, and the
    /// file is put in input order when the run completes. FILE is never one of the inputs,
    /// a folder, a device or a pipe; a symlink to a regular file writes its target; FILE.lock
    /// keeps a second run off FILE, and FILE.settings.json says which settings made it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    settings: flags::AnalyzerArgs,
    #[command(flatten)]
    batch: flags::BatchArgs,
    /// Keep the rows already in --out and analyse only the files that have none; refused
    /// when they were made with other settings (FILE.settings.json).
    #[arg(long, requires = "out")]
    resume: bool,
    /// Analyse only the K-th of N parts of the inputs (1 <= K <= N), balanced by cost and
    /// the same on every machine; `eval-cli merge` joins the parts. Writes FILE.shard.json
    /// beside --out.
    #[arg(long, value_name = "K/N", value_parser = flags::parse_shard, requires = "out")]
    shard: Option<Shard>,
    /// Which files start first: `longest` (biggest first, which keeps every core busy to
    /// the end) or `input`, to measure what that buys.
    #[arg(long, value_enum, default_value_t = Schedule::CostliestFirst, help_heading = "Advanced")]
    schedule: Schedule,
    #[command(flatten)]
    cache: CacheArgs,
    /// Take each folder's files as one album and fill the ReplayGain album columns (gated
    /// over all blocks of all its files). Needs `loudness` among --descriptors. The rows are
    /// written when the whole run is done, so it does not combine with --resume, --shard or
    /// --cache (their rows keep no gating blocks).
    #[arg(long, conflicts_with_all = ["resume", "shard", "cache"])]
    album: bool,
    /// Internal, for tests: a file whose name starts with `panic` panics in its analysis
    /// (gate.rs).
    #[arg(long, hide = true)]
    test_panics: bool,
}

/// What a run of `analyze` needs, built from the flags.
struct Plan {
    paths: Vec<PathBuf>,
    out: Option<PathBuf>,
    resume: bool,
    shard: Option<Shard>,
    analyzer: Analyzer,
    options: RunOptions,
    cache: Option<ResultCache>,
    rescan: Rescan,
    /// `--album`: rows wait for the run's end, when each folder's album is measured.
    album: bool,
    /// `--test-panics`: files named `panic*` panic in their analysis.
    test_panics: bool,
}

impl Plan {
    /// The settings the rows of this run are made with.
    fn settings(&self) -> RunSettings {
        RunSettings::new(self.analyzer.config(), self.options.timeout)
    }

    fn new(args: AnalyzeArgs) -> anyhow::Result<Self> {
        let analyzer = args.settings.analyzer()?;
        if args.album && !analyzer.config().loudness {
            bail!(
                "--album needs the loudness: name it among the descriptors \
                 (--descriptors tempo,key,loudness)"
            );
        }
        if let (Some(out), Some(dir)) = (&args.out, &args.cache.cache) {
            refuse_out_in_cache(out, dir)?;
        }
        let cache = args.cache.open()?;
        if let Some(cache) = &cache {
            cache.reuse_reads_for(SNAPSHOT_AGE);
        }
        Ok(Plan {
            paths: args.paths,
            out: args.out,
            resume: args.resume,
            shard: args.shard,
            analyzer,
            options: args.batch.options(args.schedule),
            cache,
            rescan: args.cache.rescan(),
            album: args.album,
            test_panics: args.test_panics,
        })
    }
}

/// Refuses an `--out` inside the `--cache` folder, before the cache is opened: the folder
/// is the store's (`--out cache/results.redb` was refused only after the store was made,
/// as "one of this run's input files").
fn refuse_out_in_cache(out: &Path, cache: &Path) -> anyhow::Result<()> {
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let (Ok(folder), Ok(cache_dir)) = (folder.canonicalize(), cache.canonicalize())
        && folder.starts_with(&cache_dir)
    {
        bail!(
            "refusing to write {}: it is inside the --cache folder {}, which holds the \
             cache's store; write the rows elsewhere",
            out.display(),
            cache.display()
        );
    }
    Ok(())
}

/// Runs `eval-cli analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    let (files, walk_errors) = batch::collect_audio_files(&plan.paths);
    if files.is_empty() && walk_errors.is_empty() {
        eprintln!("eval-cli: warning: no audio files found");
    }
    // Checked and locked before any file is analysed; held to the end of the run.
    let (dest, _lock) = match &plan.out {
        Some(out) => {
            let (dest, lock) = claim_output(out, &plan, &files)?;
            (Some(dest), Some(lock))
        }
        None => (None, None),
    };
    let (files, walk_errors, mut part) = match (plan.shard, &dest) {
        (Some(shard), Some(dest)) => {
            let part = shard::select(
                shard,
                files,
                walk_errors,
                plan.analyzer.config(),
                plan.options.timeout,
                plan.options.workers,
            );
            start_part(&part.record, dest, plan.resume, &plan.settings())?;
            (part.files, part.walk_errors, Some(part.record))
        }
        _ => (files, walk_errors, None),
    };
    let mut output = Output::open(&plan, dest.as_ref(), &files)?;
    // Folders that could not be walked are rows too, after the files'.
    let walk_rows: Vec<Vec<u8>> = walk_errors
        .iter()
        .map(|e| record::line(&e.path, Status::Error, None, Some(&e.reason)))
        .collect();
    if let Output::File { log, done, .. } = &mut output {
        for (e, line) in walk_errors.iter().zip(&walk_rows) {
            if !done.contains_key(&e.path) {
                log.append(line)?;
            }
        }
    }

    // The files still to analyse, and where each sits in the input.
    let (pending, positions): (Vec<PathBuf>, Vec<usize>) = files
        .iter()
        .enumerate()
        .filter(|(_, path)| !output.is_done(path))
        .map(|(i, path)| (path.clone(), i))
        .unzip();
    // Each file's identity before it is read, logged with its row for `--resume`, and the
    // moment before the first of them was taken (`--resume` trusts only identities whose
    // file was not written within a timestamp tick of it).
    let taken_at = SystemTime::now();
    let identities: Vec<Option<FileIdentity>> = match &output {
        Output::File { .. } => pending
            .iter()
            .map(|p| FileIdentity::of_path(p).ok())
            .collect(),
        Output::Stdout(_) => Vec::new(),
    };
    runner::install_signal_handler(Arc::clone(&plan.options.cancel));
    let identities = (identities.as_slice(), taken_at);
    let analysed = analyze_files(&plan, &pending, &positions, identities, &mut output)?;
    let totals = analysed.totals;
    let albums = if plan.album {
        albums(&analysed.held)
    } else {
        HashMap::new()
    };
    if let Some(cache) = &plan.cache {
        report_cache(cache, plan.options.progress);
    }

    if totals.cancelled {
        if let Output::Stdout(in_order) = &mut output {
            in_order.flush_rest().stdout_context(STDOUT_FAILED)?;
            write_all_stdout(&walk_rows).stdout_context(STDOUT_FAILED)?;
        }
        eprintln!(
            "eval-cli: cancelled: {} of {} files finished and {}{}",
            totals.finished,
            pending.len(),
            if plan.album {
                "none written (--album writes rows when the run completes)"
            } else {
                "written"
            },
            if plan.out.is_some() && !plan.album {
                "; run again with --resume to finish"
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(runner::EXIT_CANCELLED));
    }
    let failed = walk_rows.len()
        + analysed.failed
        + output.finish(
            &files,
            &positions,
            analysed.rows,
            &analysed.held,
            &albums,
            walk_rows,
        )?;
    if let (Some(record), Some(dest)) = (&mut part, &dest) {
        record.complete = true;
        record.write(dest.target())?;
    }
    if plan.options.progress.shows_bar() {
        let memory =
            runner::peak_rss_mb().map_or(String::new(), |m| format!("; peak memory {m:.0} MiB"));
        eprintln!(
            "eval-cli: {} files in {:.1} s with {} workers: {} failed{memory}",
            totals.finished, totals.wall_s, totals.workers, failed
        );
    }
    Ok(ExitCode::from(if failed == 0 {
        EXIT_OK
    } else {
        EXIT_SOME_FAILED
    }))
}

/// Says on stderr how many rows came from the cache (a JSON line under `--progress
/// jsonl`, so that stderr stays JSON lines).
fn report_cache(cache: &ResultCache, progress: ProgressMode) {
    cache.flush();
    let stats = cache.stats();
    let mut warnings = cache.take_warnings();
    if !cache.in_place() {
        warnings.push(format!(
            "{} was removed or replaced while the run went on: the {} rows stored in it went \
             with it (the next run analyses those files again)",
            cache.file().display(),
            stats.stored
        ));
    }
    let mismatches = cache.take_mismatches();
    if progress == ProgressMode::Jsonl {
        let mut lines = String::new();
        for warning in &warnings {
            let event = serde_json::json!({ "event": "cache_damaged", "warning": warning });
            lines.push_str(&format!("{event}\n"));
        }
        for path in &mismatches {
            let event = serde_json::json!({
                "event": "cache_mismatch",
                "path": crate::path_cell::path_cell(path),
            });
            lines.push_str(&format!("{event}\n"));
        }
        let event = stats.event(cache.file());
        lines.push_str(&format!("{event}\n"));
        let _ = io::stderr().lock().write_all(lines.as_bytes());
        return;
    }
    for warning in &warnings {
        eprintln!("eval-cli: warning: {warning}");
    }
    for line in stats.summary_lines(cache.file()) {
        eprintln!("{line}");
    }
    if !mismatches.is_empty() {
        eprintln!(
            "eval-cli: warning: --verify: {} files changed while their size, times and inode \
             did not (a run without --verify would have given them their old rows); \
             analysed anew:",
            mismatches.len()
        );
        for path in &mismatches {
            eprintln!("eval-cli:   {}", path.display());
        }
    }
    if stats.rejected > 0 {
        eprintln!(
            "eval-cli: warning: {} cached rows were damaged or did not fit the settings; \
             those files were analysed again and their rows rewritten",
            stats.rejected
        );
    }
    if let Some(first) = cache.first_error() {
        eprintln!(
            "eval-cli: warning: {} cache lookups or writes failed (those files were analysed \
             as without a cache); the first: {first}",
            stats.errors
        );
    }
}

/// Checks `out` and every side file the run writes or removes beside it (the lock, the
/// settings, the identity log, a shard's record) by the output rules, never one of
/// `files`, the cache or the paths named, each able to take writes where it exists, and
/// takes its lock: a refusal comes before anything is written. The inputs stay protected
/// for every later write of the run.
fn claim_output(
    out: &Path,
    plan: &Plan,
    files: &[PathBuf],
) -> anyhow::Result<(Destination, OutputLock)> {
    let mut inputs = Inputs::of(files.iter().chain(&plan.paths));
    if let Some(cache) = &plan.cache {
        inputs.add(cache.file());
    }
    let mut sides = vec![RunSettings::SUFFIX, IdentityLog::SUFFIX];
    if plan.shard.is_some() {
        sides.push(ShardRecord::SUFFIX);
    }
    let claimed = Destination::claim(out, &sides, &inputs)?;
    output::protect(&inputs);
    Ok(claimed)
}

/// Writes the side file of a part that starts; with `--resume`, first checks that `out`
/// holds this shard of this input list and settings, if it holds a shard at all.
fn start_part(
    record: &ShardRecord,
    dest: &Destination,
    resume: bool,
    settings: &RunSettings,
) -> anyhow::Result<()> {
    let out = dest.shown();
    let old = if resume {
        ShardRecord::read(dest.target())?
    } else {
        None
    };
    if let Some(old) = old {
        if old.fingerprint != record.fingerprint {
            // Which of the two differs, where the settings file says: a part resumed with
            // a longer --timeout heard only "another input list or other settings".
            let why = match RunSettings::read(dest.target())? {
                Some(made) if made != *settings => {
                    let timeout_only =
                        made.program == settings.program && made.analyzer == settings.analyzer;
                    format!(
                        "its rows were made with other settings\n  its settings: {made}\n  \
                         this run's settings: {settings}{}",
                        if timeout_only {
                            "\n  (a part's --timeout is in the fingerprint its parts share: \
                             resume it with the limit its rows were made with)"
                        } else {
                            ""
                        }
                    )
                }
                _ => "it holds a shard of another input list".to_string(),
            };
            bail!("cannot resume {}: {why}", out.display());
        }
        if old.shard != record.shard {
            bail!(
                "cannot resume {} as shard {}: it holds shard {}",
                out.display(),
                record.shard,
                old.shard
            );
        }
    }
    record.write(dest.target())
}

/// What a run over the pending files leaves once its rows are written: the batch's totals,
/// the failures among them, the rows written to `--out` by input position (for its rewrite
/// in input order; stdout's went out as they came), and under `--album` every result (an
/// album's rows wait for its folder's other files). Nothing else of a result is kept: held
/// to the end, the results cost about 3 KB a file (112 MB for 30,000 files).
struct Analysed {
    totals: BatchTotals,
    failed: usize,
    rows: HashMap<usize, Vec<u8>>,
    held: Vec<FileResult<Analyzed>>,
}

/// Analyses `pending` (at input positions `positions`), writing each row to `output` as
/// its file finishes, with its file's identity from `identities` (taken at the moment it
/// gives); a failed write stops the batch and is the error.
fn analyze_files(
    plan: &Plan,
    pending: &[PathBuf],
    positions: &[usize],
    (identities, taken_at): (&[Option<FileIdentity>], SystemTime),
    output: &mut Output,
) -> anyhow::Result<Analysed> {
    let mut write_error: Option<io::Error> = None;
    let cancel = &plan.options.cancel;
    let measure = Measure {
        analyzer: &plan.analyzer,
        keep_blocks: plan.album,
        test_panics: plan.test_panics,
    };
    let job = CachedAnalyzer::new(&measure, plan.cache.as_ref(), plan.analyzer.config())
        .rescan(plan.rescan);
    let (mut failed, mut rows, mut held) = (0, HashMap::new(), Vec::new());
    let totals = runner::run_streamed(
        pending,
        &plan.options,
        &job,
        |a: &Analyzed| Shown {
            bpm: a.bpm(),
            key: a.key(),
            loudness_lufs: a.record.loudness_lufs.parse().ok(),
        },
        |result| {
            failed += usize::from(result.status != Status::Ok);
            // Album rows wait for the folder's other files: `Output::finish` writes them.
            if plan.album {
                held.push(result);
                return;
            }
            if write_error.is_some() {
                return;
            }
            let line = result_row(&result, None);
            let position = positions[result.index];
            let written = match output {
                Output::File {
                    log,
                    identities: ids,
                    ..
                } => log
                    .append(&line)
                    .and_then(|()| {
                        let before = identities.get(result.index).and_then(Option::as_ref);
                        ids.append(&path_cell(&result.path), before, taken_at)
                    })
                    .map(|()| {
                        rows.insert(position, line);
                    }),
                Output::Stdout(in_order) => in_order.push(position, line),
            };
            if let Err(err) = written {
                write_error = Some(err);
                cancel.store(true, Ordering::SeqCst);
            }
        },
    );
    held.sort_by_key(|r| r.index);
    match write_error {
        Some(err) => Err(match output {
            Output::File { log, .. } => anyhow::Error::new(err)
                .context(format!("cannot write results to {}", log.path().display())),
            Output::Stdout(_) => stdout::write_failed(err, STDOUT_FAILED),
        }),
        None => Ok(Analysed {
            totals,
            failed,
            rows,
            held,
        }),
    }
}

/// The analyzer as `analyze` runs it. Under `--album` every result is held until the run
/// ends; without it a file's loudness gating blocks (8 bytes per 100 ms of audio, needed
/// only for an album) are dropped as soon as it is measured.
struct Measure<'a> {
    analyzer: &'a Analyzer,
    keep_blocks: bool,
    /// `--test-panics` ([`crate::gate::panic_if_asked`]).
    test_panics: bool,
}

impl Job for Measure<'_> {
    type Output = Analysis;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analysis, analyzer_core::Error> {
        if self.test_panics {
            crate::gate::panic_if_asked(path);
        }
        let mut analysis = self.analyzer.run(path, stop)?;
        if let Some(loudness) = analysis.loudness.as_mut().filter(|_| !self.keep_blocks) {
            loudness.blocks = GatingBlocks::default();
        }
        Ok(analysis)
    }

    fn failure(&self, output: &Analysis) -> Option<analyzer_core::Error> {
        self.analyzer.failure(output)
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        self.analyzer.cost_hint(path)
    }
}

/// Where rows go.
enum Output {
    /// Appended to a file as they finish, rewritten in input order at the end; `done`
    /// holds the rows a resumed run kept there ([`resume`]), by path.
    File {
        log: RowLog,
        done: resume::KeptRows,
        /// The identity of each row's file, logged beside the rows.
        identities: IdentityLog,
    },
    /// Written to stdout in input order, each as soon as all before it are.
    Stdout(InOrder<io::Stdout>),
}

impl Output {
    /// Where the rows of `plan` go: `dest` (afresh, or with `--resume` keeping the rows
    /// already there, by exact path, when they were made with these settings), or stdout,
    /// header first.
    fn open(plan: &Plan, dest: Option<&Destination>, files: &[PathBuf]) -> anyhow::Result<Self> {
        let Some(dest) = dest else {
            io::stdout()
                .write_all(&record::header())
                .stdout_context(STDOUT_FAILED)?;
            return Ok(Output::Stdout(InOrder::stdout(files.len())));
        };
        let (path, settings) = (dest.target(), plan.settings());
        if !plan.resume {
            // Every file started afresh was found to take writes when it was claimed
            // ([`claim_output`]), and the settings, which tell `--resume` what the rows
            // are, go last: a CSV or log that could not be written (read-only) left the
            // earlier rows under the new settings, and `--resume` then kept rows made
            // with other settings.
            let identities = IdentityLog::create(path)?;
            let log = RowLog::create(path, &record::header())?;
            settings.write(path)?;
            return Ok(Output::File {
                log,
                done: HashMap::new(),
                identities,
            });
        }
        let resume::Resumed {
            log,
            done,
            identities,
        } = resume::Resumed::open(dest, &settings, files)?;
        Ok(Output::File {
            log,
            done,
            identities,
        })
    }

    /// Completes a batch that was not cancelled: a file is rewritten in input order (the
    /// rows written by this run, `rows` by input position, and resumed ones, then
    /// `walk_rows`); stdout gets the rows still waiting. Under `--album` the results
    /// `held` give their rows here, their album cells filled in from `albums`.
    /// Returns how many resumed rows are failures.
    fn finish(
        self,
        files: &[PathBuf],
        positions: &[usize],
        mut rows: HashMap<usize, Vec<u8>>,
        held: &[FileResult<Analyzed>],
        albums: &HashMap<usize, AlbumLoudness>,
        walk_rows: Vec<Vec<u8>>,
    ) -> anyhow::Result<usize> {
        let mut failed = 0;
        let held_rows = held
            .iter()
            .map(|r| (positions[r.index], result_row(r, albums.get(&r.index))));
        match self {
            Output::File { log, done, .. } => {
                rows.extend(held_rows);
                log.finish_with(|out| {
                    out.write_all(&record::header())?;
                    for (i, path) in files.iter().enumerate() {
                        if let Some(line) = rows.remove(&i) {
                            out.write_all(&line)?;
                        } else if let Some((record, old)) = done.get(path) {
                            if record.status != Status::Ok.as_str() {
                                failed += 1;
                            }
                            out.write_all(old)?;
                        }
                    }
                    walk_rows.iter().try_for_each(|line| out.write_all(line))
                })?;
            }
            Output::Stdout(mut in_order) => {
                for (position, line) in held_rows {
                    in_order
                        .push(position, line)
                        .stdout_context(STDOUT_FAILED)?;
                }
                in_order.flush_rest().stdout_context(STDOUT_FAILED)?;
                write_all_stdout(&walk_rows).stdout_context(STDOUT_FAILED)?;
            }
        }
        Ok(failed)
    }

    fn is_done(&self, path: &Path) -> bool {
        match self {
            Output::File { done, .. } => done.contains_key(path),
            Output::Stdout(_) => false,
        }
    }
}

/// What a failed write to stdout says (a full disk behind `> FILE`): the bare OS error ("No
/// space left on device") did not say what was being written. A closed pipe (`| head`)
/// ends the run quietly instead ([`stdout`]).
const STDOUT_FAILED: &str = "cannot write results to stdout";

fn write_all_stdout(rows: &[Vec<u8>]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for line in rows {
        out.write_all(line)?;
    }
    out.flush()
}

/// The CSV line of a finished file: its row (fresh or from the cache, with its folder's
/// `album` cells under `--album`), or its failure.
fn result_row(result: &FileResult<Analyzed>, album: Option<&AlbumLoudness>) -> Vec<u8> {
    match &result.value {
        Some(analyzed) => {
            let record = analyzed.record_for(&result.path);
            let record = match album {
                Some(album) => record.with_album(album),
                None => record,
            };
            CsvLine
                .serialize(&record)
                .expect("writing CSV to memory cannot fail")
        }
        None => record::line(&result.path, result.status, None, result.error.as_deref()),
    }
}

/// Each measured file's album under `--album`, by result index: the loudness of all the
/// measured files of its folder, gated together.
fn albums(results: &[FileResult<Analyzed>]) -> HashMap<usize, AlbumLoudness> {
    // A folder is one album however its files were named (`a/x.wav`, `./a/x.wav`, through
    // a link to the folder), and a file named twice counts once in its album's gating.
    let resolved = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut folders: BTreeMap<PathBuf, Album<'_>> = BTreeMap::new();
    for result in results {
        let loudness = result
            .value
            .as_ref()
            .and_then(|analyzed| analyzed.analysis.as_ref())
            .and_then(|analysis| analysis.loudness.as_ref());
        if let Some(loudness) = loudness {
            let folder = resolved(result.path.parent().unwrap_or(Path::new(".")));
            let album = folders.entry(folder).or_default();
            album.rows.push(result.index);
            if album.files.insert(resolved(&result.path)) {
                album.tracks.push(loudness);
            }
        }
    }
    folders
        .values()
        .flat_map(|album| {
            let loudness = AlbumLoudness::of_tracks(album.tracks.iter().copied());
            album
                .rows
                .iter()
                .map(move |&index| (index, loudness.clone()))
        })
        .collect()
}

/// One folder's files under `--album`: the rows that get its values, and each distinct
/// file's loudness once.
#[derive(Default)]
struct Album<'a> {
    rows: Vec<usize>,
    files: std::collections::HashSet<PathBuf>,
    tracks: Vec<&'a Loudness>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gating_blocks_are_kept_only_for_an_album() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clicks.wav");
        let clicks = synth_music::presets::clicks(120.0, 4.0, 22_050);
        synth_music::write_wav(&path, &clicks, 22_050, 1).unwrap();
        let analyzer =
            Analyzer::new(analyzer_core::AnalyzerConfig::default().with_loudness(true)).unwrap();
        let blocks = |keep_blocks| {
            let measure = Measure {
                analyzer: &analyzer,
                keep_blocks,
                test_panics: false,
            };
            let loudness = measure
                .run(&path, &StopSignal::never())
                .unwrap()
                .loudness
                .unwrap();
            (loudness.blocks.len(), loudness.block_count)
        };
        assert_eq!(blocks(true), (37, 37), "one per 100 ms from 400 ms on");
        // The count stays: it tells a silent file from one too short for a block.
        assert_eq!(blocks(false), (0, 37));
    }

    #[test]
    fn failed_rows_have_empty_cells_and_a_reason() {
        let line = record::line(
            Path::new("a, b.wav"),
            Status::Timeout,
            None,
            Some("decode: timed_out: the per-file time limit passed"),
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "\"a, b.wav\",,,,,,,,,timeout,decode: timed_out: the per-file time limit passed,,,,,,,,,,,\n"
        );
    }

    /// The columns of before stay first and in order, so scripts that read them by position
    /// or by name keep working; the key's columns follow, then the loudness's.
    #[test]
    fn header_snapshot() {
        assert_eq!(
            String::from_utf8(record::header()).unwrap(),
            "path,bpm,confidence,alt_bpm,alt_share,duration_s,sample_rate,channels,codec,status,error,\
             key,key_confidence,key_alt,camelot,loudness_lufs,loudness_range_lu,true_peak_dbtp,\
             replaygain_track_gain_db,replaygain_track_peak,replaygain_album_gain_db,\
             replaygain_album_peak\n"
        );
    }
}
