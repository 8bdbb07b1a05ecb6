//! `eval-cli analyze`: the tempo of every file named or found in the folders named, one
//! CSV row per file.
//!
//! The flags are read in two steps: [`AnalyzeArgs`] mirrors the command line and only
//! checks each value; [`Plan`] is what the run needs (an analyzer, runner options, where
//! rows go). The rows carry results only, no timings, so a completed run gives the same
//! bytes for any worker count, and `--resume` after an interruption gives the same bytes
//! as a run that was never interrupted.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use analyzer_core::batch::{self, FileResult, Status};
use analyzer_core::{Analysis, Analyzer, AnalyzerConfig};
use anyhow::{Context, bail};

use crate::runner::{self, ProgressMode, RowLog, RunOptions, Schedule};

/// The CSV header; every row has these columns.
pub const HEADER: &str =
    "path,bpm,confidence,alt_bpm,alt_share,duration_s,sample_rate,channels,codec,status,error\n";
const COLUMNS: usize = 11;
const STATUS_COLUMN: usize = 9;

/// Exit status when every file was analysed.
const EXIT_OK: u8 = 0;
/// Exit status when some file failed (its row says why).
const EXIT_SOME_FAILED: u8 = 1;
/// Exit status after Ctrl-C or SIGTERM, as shells report death by SIGINT.
const EXIT_CANCELLED: u8 = 130;

/// Flags of `eval-cli analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Audio files (analysed whatever their name) and folders (walked recursively for
    /// files with audio extensions).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write the CSV to FILE instead of stdout. Rows are appended as files finish, and the
    /// file is put in input order when the run completes.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Slowest tempo to report.
    #[arg(long, value_name = "BPM", default_value_t = AnalyzerConfig::default().min_bpm)]
    min_bpm: f64,
    /// Fastest tempo to report.
    #[arg(long, value_name = "BPM", default_value_t = AnalyzerConfig::default().max_bpm)]
    max_bpm: f64,
    /// Files analysed at once [default: one per core, fewer if memory is short]. 1 runs
    /// the sequential reference path.
    #[arg(long, value_name = "N", value_parser = parse_workers)]
    workers: Option<usize>,
    /// Give up on a file after SECS seconds; its row says `timeout`.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Progress on stderr: `auto` draws a bar only on a terminal; `jsonl` writes one JSON
    /// object per line.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Keep the rows already in --out and analyse only the files that have none.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Which files start first: `longest` (biggest first, which keeps every core busy to
    /// the end) or `input`, to measure what that buys.
    #[arg(long, value_enum, default_value_t = Schedule::LongestFirst, help_heading = "Advanced")]
    schedule: Schedule,
}

fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 workers would never finish)".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if secs.is_nan() || secs <= 0.0 || secs.is_infinite() {
        return Err("must be a positive number of seconds".to_string());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// What a run of `analyze` needs, built from the flags.
struct Plan {
    paths: Vec<PathBuf>,
    out: Option<PathBuf>,
    resume: bool,
    analyzer: Analyzer,
    options: RunOptions,
}

impl Plan {
    fn new(args: AnalyzeArgs) -> anyhow::Result<Self> {
        let analyzer =
            Analyzer::new(AnalyzerConfig::default().with_bpm_range(args.min_bpm, args.max_bpm))
                .map_err(|e| anyhow::anyhow!("invalid tempo range: {}", e.reason()))?;
        let workers = match args.workers {
            Some(requested) => {
                let (workers, warning) = runner::validate_workers(requested);
                if let Some(warning) = warning {
                    eprintln!("eval-cli: warning: {warning}");
                }
                workers
            }
            None => batch::default_workers(),
        };
        Ok(Plan {
            paths: args.paths,
            out: args.out,
            resume: args.resume,
            analyzer,
            options: RunOptions {
                workers,
                timeout: args.timeout,
                schedule: args.schedule,
                progress: args.progress,
                cancel: Arc::new(AtomicBool::new(false)),
            },
        })
    }
}

/// Runs `eval-cli analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    let (files, walk_errors) = batch::collect_audio_files(&plan.paths);
    if files.is_empty() && walk_errors.is_empty() {
        eprintln!("eval-cli: warning: no audio files found");
    }

    // Rows already in --out (with --resume), by path.
    let mut output = match &plan.out {
        Some(path) if plan.resume => {
            let (log, resumed) = RowLog::resume(path, HEADER.as_bytes())?;
            let mut done = HashMap::new();
            for row in resumed {
                if row.fields.len() != COLUMNS {
                    bail!(
                        "cannot resume {}: a row has {} cells, not {COLUMNS}",
                        path.display(),
                        row.fields.len()
                    );
                }
                done.insert(row.fields[0].clone(), row);
            }
            Output::File { log, done }
        }
        Some(path) => Output::File {
            log: RowLog::create(path, HEADER.as_bytes())?,
            done: HashMap::new(),
        },
        None => {
            io::stdout().write_all(HEADER.as_bytes())?;
            Output::Stdout(InOrder::new(files.len()))
        }
    };

    // Folders that could not be walked are rows too, after the files'.
    let walk_rows: Vec<Vec<u8>> = walk_errors
        .iter()
        .map(|e| row(&e.path, Status::Error, None, Some(&e.reason)))
        .collect();
    if let Output::File { log, done } = &mut output {
        for (e, line) in walk_errors.iter().zip(&walk_rows) {
            if !done.contains_key(&*e.path.to_string_lossy()) {
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

    runner::install_signal_handler(Arc::clone(&plan.options.cancel));
    let mut write_error: Option<io::Error> = None;
    let cancel = &plan.options.cancel;
    let summary = runner::run(
        &pending,
        &plan.options,
        &plan.analyzer,
        |analysis| Some(analysis.tempo.bpm),
        |result| {
            if write_error.is_some() {
                return;
            }
            let line = result_row(result);
            let written = match &mut output {
                Output::File { log, .. } => log.append(&line),
                Output::Stdout(in_order) => in_order.push(positions[result.index], line),
            };
            if let Err(err) = written {
                write_error = Some(err);
                cancel.store(true, Ordering::SeqCst);
            }
        },
    );
    if let Some(err) = write_error {
        return Err(err).context("cannot write results");
    }

    let mut failed = walk_rows.len();
    if summary.cancelled {
        if let Output::Stdout(in_order) = &mut output {
            in_order.flush_rest()?;
            write_all_stdout(&walk_rows)?;
        }
        eprintln!(
            "eval-cli: cancelled: {} of {} files finished and written{}",
            summary.results.len(),
            pending.len(),
            if plan.out.is_some() {
                "; run again with --resume to finish"
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(EXIT_CANCELLED));
    }

    failed += summary
        .results
        .iter()
        .filter(|r| r.status != Status::Ok)
        .count();
    match output {
        Output::File { log, done } => {
            let mut new_rows: HashMap<usize, Vec<u8>> = summary
                .results
                .iter()
                .map(|r| (positions[r.index], result_row(r)))
                .collect();
            let mut rows: Vec<Vec<u8>> = Vec::with_capacity(files.len() + walk_rows.len());
            for (i, path) in files.iter().enumerate() {
                if let Some(line) = new_rows.remove(&i) {
                    rows.push(line);
                } else if let Some(old) = done.get(&*path.to_string_lossy()) {
                    if old.fields[STATUS_COLUMN] != Status::Ok.as_str() {
                        failed += 1;
                    }
                    rows.push(old.line.clone());
                }
            }
            rows.extend(walk_rows);
            log.finish(HEADER.as_bytes(), rows.iter().map(Vec::as_slice))?;
        }
        Output::Stdout(mut in_order) => {
            in_order.flush_rest()?;
            write_all_stdout(&walk_rows)?;
        }
    }

    if plan.options.progress.shows_bar() {
        let memory =
            runner::peak_rss_mb().map_or(String::new(), |m| format!("; peak memory {m:.0} MiB"));
        eprintln!(
            "eval-cli: {} files in {:.1} s with {} workers: {} failed{memory}",
            summary.results.len(),
            summary.wall_s,
            summary.workers,
            failed
        );
    }
    Ok(ExitCode::from(if failed == 0 {
        EXIT_OK
    } else {
        EXIT_SOME_FAILED
    }))
}

/// Where rows go.
enum Output {
    /// Appended to a file as they finish, rewritten in input order at the end; `done`
    /// holds the rows a resumed run found there, by path.
    File {
        log: RowLog,
        done: HashMap<String, runner::ResumedRow>,
    },
    /// Written to stdout in input order, each as soon as all before it are.
    Stdout(InOrder),
}

impl Output {
    fn is_done(&self, path: &Path) -> bool {
        match self {
            Output::File { done, .. } => done.contains_key(&*path.to_string_lossy()),
            Output::Stdout(_) => false,
        }
    }
}

/// Puts rows that finish in any order on stdout in input order.
struct InOrder {
    next: usize,
    waiting: Vec<Option<Vec<u8>>>,
}

impl InOrder {
    fn new(len: usize) -> Self {
        InOrder {
            next: 0,
            waiting: vec![None; len],
        }
    }

    /// Takes the row at input position `i` and writes every row now in sequence.
    fn push(&mut self, i: usize, line: Vec<u8>) -> io::Result<()> {
        self.waiting[i] = Some(line);
        let mut out = io::stdout().lock();
        while let Some(line) = self.waiting.get_mut(self.next).and_then(Option::take) {
            out.write_all(&line)?;
            self.next += 1;
        }
        out.flush()
    }

    /// Writes every row still waiting (after a cancel, the rows behind a gap).
    fn flush_rest(&mut self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        for line in self.waiting.iter_mut().filter_map(Option::take) {
            out.write_all(&line)?;
        }
        out.flush()
    }
}

fn write_all_stdout(rows: &[Vec<u8>]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for line in rows {
        out.write_all(line)?;
    }
    out.flush()
}

fn result_row(result: &FileResult<Analysis>) -> Vec<u8> {
    row(
        &result.path,
        result.status,
        result.value.as_ref(),
        result.error.as_deref(),
    )
}

/// One CSV line. Numbers have fixed decimals so the bytes never depend on the run;
/// failed rows leave the measurement cells empty. Warnings of a stream that was damaged
/// but analysed go in the `error` cell of an `ok` row.
fn row(path: &Path, status: Status, analysis: Option<&Analysis>, error: Option<&str>) -> Vec<u8> {
    let path = path.to_string_lossy();
    let cells: [String; COLUMNS] = match analysis {
        Some(a) => [
            path.into_owned(),
            format!("{:.3}", a.tempo.bpm),
            format!("{:.3}", a.tempo.confidence),
            a.tempo
                .alternative
                .map_or(String::new(), |c| format!("{:.3}", c.bpm)),
            a.tempo
                .alternative
                .map_or(String::new(), |c| format!("{:.3}", c.strength)),
            format!("{:.3}", a.audio.duration_s),
            a.audio.sample_rate.to_string(),
            a.audio.channels.to_string(),
            a.audio.codec.clone(),
            status.as_str().to_string(),
            a.warnings.join("; "),
        ],
        None => [
            path.into_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            status.as_str().to_string(),
            error.unwrap_or_default().to_string(),
        ],
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(&cells)
        .expect("writing CSV to memory cannot fail");
    writer
        .into_inner()
        .expect("flushing CSV to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_rows_have_empty_cells_and_a_reason() {
        let line = row(
            Path::new("a, b.wav"),
            Status::Timeout,
            None,
            Some("decode: timed_out: the per-file time limit passed"),
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "\"a, b.wav\",,,,,,,,,timeout,decode: timed_out: the per-file time limit passed\n"
        );
    }

    #[test]
    fn flag_values_are_checked() {
        assert!(parse_workers("0").is_err());
        assert_eq!(parse_workers("3"), Ok(3));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn header_has_one_name_per_column() {
        assert_eq!(HEADER.trim_end().split(',').count(), COLUMNS);
        assert_eq!(HEADER.split(',').nth(STATUS_COLUMN), Some("status"));
    }
}
