//! The batch runner shared by `analyze`, `evaluate` and `compare`.
//!
//! Every command that touches many files goes through [`run`], so they all get the same
//! guarantees: one bad file (an error, a timeout, even a panic) is one failed row and never
//! a lost batch; results come back in input order whatever the worker count, so output is
//! byte-identical for 1 and 64 workers; Ctrl-C stops scheduling at once and lets running
//! files stop at their next packet; and progress is reported the same way everywhere.
//!
//! One worker takes the sequential reference path (a plain loop on the calling thread);
//! more take one rayon pool with exactly that many threads. Both are [`Executor`]s fed the
//! same schedule and the same per-file task, so they can only differ in timing.

mod executor;
mod files;
mod progress;
mod rows;
mod system;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use analyzer_core::{ErrorKind, StopSignal};

use executor::{Executor, Parallel, Sequential};
use progress::Progress;

pub use files::collect_audio_files;
pub use rows::{ResumedRow, RowLog};
pub use system::{default_workers, install_signal_handler, peak_rss_mb, validate_workers};

/// The order in which files are handed to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    /// Costliest file first (ties by input index): the "longest processing time first" rule
    /// of Graham (1969). The cost is the length the file's headers announce, weighted by
    /// its codec (compressed audio costs about twice PCM to decode), read by the workers
    /// before the batch starts. Starting the dear files first leaves only cheap ones for
    /// the end, so no core sits idle while one long file finishes alone; the makespan stays
    /// within 4/3 of the optimum. (File size would mislead: a FLAC is smaller than its WAV
    /// but slower to decode.)
    #[value(name = "longest")]
    LongestFirst,
    /// The order of the input, to measure what the schedule above buys.
    #[value(name = "input")]
    InputOrder,
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// Nothing.
    Off,
    /// An indicatif bar: files done of total, files/s, ETA and failures so far.
    Bar,
    /// One JSON object per line: `started`, one `file` per finished file, `finished`.
    Jsonl,
}

impl ProgressMode {
    /// Whether this mode draws a bar on this process's stderr (a human is watching).
    pub fn shows_bar(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ProgressMode::Bar => true,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Off | ProgressMode::Jsonl => false,
        }
    }
}

/// How a batch is run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads; 1 takes the sequential reference path. 0 is read as 1.
    pub workers: usize,
    /// Per-file time limit; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Which files start first.
    pub schedule: Schedule,
    /// What is shown on stderr.
    pub progress: ProgressMode,
    /// Set it (from a signal handler, say) to stop: no new file starts, running files stop
    /// at their next check and produce no result.
    pub cancel: Arc<AtomicBool>,
}

/// How one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The job returned a value.
    Ok,
    /// The job returned an error or panicked.
    Error,
    /// The per-file time limit passed.
    Timeout,
    /// The run was cancelled while this file was running. Such files are never passed to
    /// `on_result` nor kept in [`RunSummary::results`].
    Cancelled,
}

impl Status {
    /// The lowercase name used in CSV and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The outcome of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileResult<T> {
    /// Position of the file in the input.
    pub index: usize,
    /// The file, as given.
    pub path: PathBuf,
    /// How it ended.
    pub status: Status,
    /// The job's value when `status` is `Ok`.
    pub value: Option<T>,
    /// Why it failed (`STAGE: KIND: why`, or `panic: message`), without the path.
    pub error: Option<String>,
    /// Wall time of this file in seconds, for latency statistics only (never in results
    /// that must be identical across runs).
    pub elapsed_s: f64,
}

/// The outcome of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary<T> {
    /// Every file that finished, in input order (cancelled files are missing).
    pub results: Vec<FileResult<T>>,
    /// Whether the run was cancelled before every file finished.
    pub cancelled: bool,
    /// Wall time of the whole batch in seconds.
    pub wall_s: f64,
    /// Worker threads the batch ran with.
    pub workers: usize,
}

/// Runs `job` over `files` with `opts.workers` threads.
///
/// `on_result` is called (from one thread at a time, in completion order) as each file
/// finishes, so callers can append rows at once. The summary holds the same results in
/// input order.
#[allow(
    dead_code,
    reason = "the entry point for evaluate and compare; analyze uses run_reporting"
)]
pub fn run<T: Send>(
    files: &[PathBuf],
    opts: &RunOptions,
    job: impl Fn(&Path, &StopSignal) -> Result<T, analyzer_core::Error> + Sync,
    on_result: impl FnMut(&FileResult<T>) + Send,
) -> RunSummary<T> {
    run_reporting(files, opts, job, |_| None, on_result)
}

/// [`run`], with `bpm_of` giving the tempo that `--progress jsonl` shows for a finished
/// file's value.
pub fn run_reporting<T: Send>(
    files: &[PathBuf],
    opts: &RunOptions,
    job: impl Fn(&Path, &StopSignal) -> Result<T, analyzer_core::Error> + Sync,
    bpm_of: impl Fn(&T) -> Option<f64>,
    mut on_result: impl FnMut(&FileResult<T>) + Send,
) -> RunSummary<T> {
    let started = Instant::now();
    let workers = opts.workers.max(1);
    let threads = workers.min(files.len()).max(1);
    let parallel = if threads > 1 {
        Parallel::new(threads)
            .map_err(|err| {
                eprintln!("eval-cli: warning: no thread pool ({err}); running sequentially");
            })
            .ok()
    } else {
        None
    };
    // One worker runs in input order: the schedule only matters when several share the work.
    let costs = match (&parallel, opts.schedule) {
        (Some(pool), Schedule::LongestFirst) => Some(pool.map(files, |p| estimated_cost(p))),
        _ => None,
    };
    let order = schedule_order(costs.as_deref(), files.len());
    let mut progress = Progress::start(opts.progress, files.len(), workers);
    let mut results: Vec<FileResult<T>> = Vec::with_capacity(files.len());
    let mut any_cancelled = false;

    let task = |index: usize| run_one(index, &files[index], opts, &job);
    let mut sink = |result: FileResult<T>| {
        if result.status == Status::Cancelled {
            any_cancelled = true;
            return;
        }
        progress.file(&result, result.value.as_ref().and_then(&bpm_of));
        on_result(&result);
        results.push(result);
    };
    match &parallel {
        Some(pool) => pool.execute(&order, &task, &mut sink),
        None => Sequential.execute(&order, &task, &mut sink),
    }

    results.sort_by_key(|r| r.index);
    let cancelled = any_cancelled || results.len() < files.len();
    let wall_s = started.elapsed().as_secs_f64();
    progress.finish(cancelled, wall_s);
    RunSummary {
        results,
        cancelled,
        wall_s,
        workers,
    }
}

/// CPU cost of a second of compressed audio (MP3, FLAC, Vorbis, AAC) relative to a second
/// of PCM, decode and analysis together. `bash ci/cpu-vs-aubio.sh` on one 4-minute 44.1 kHz
/// stereo track in each format: WAV 0.163 s, every compressed format 0.31-0.32 s.
const COMPRESSED_COST: f64 = 1.9;
/// Bytes per second assumed when the headers give no length: 128 kbit/s for a compressed
/// stream (an MP3 without a Xing header, say), CD audio for anything else.
const FALLBACK_COMPRESSED_BYTES_PER_S: f64 = 16_000.0;
const FALLBACK_PCM_BYTES_PER_S: f64 = 176_400.0;

/// The estimated cost of analysing `path`, in PCM-audio-seconds: the length its headers
/// announce, weighted by how dear its codec is to decode. A file that cannot be probed is
/// about to fail fast and costs nothing.
pub(crate) fn estimated_cost(path: &Path) -> f64 {
    let Ok(info) = analyzer_core::decode::probe(path) else {
        return 0.0;
    };
    let pcm = info.codec.starts_with("pcm");
    let duration_s = info.duration_s.unwrap_or_else(|| {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64;
        bytes
            / if pcm {
                FALLBACK_PCM_BYTES_PER_S
            } else {
                FALLBACK_COMPRESSED_BYTES_PER_S
            }
    });
    duration_s * if pcm { 1.0 } else { COMPRESSED_COST }
}

/// The order in which the files of a batch start: input order, or the costliest first
/// (ties by input index). `costs` gives each file's estimated cost.
pub(crate) fn schedule_order(costs: Option<&[f64]>, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if let Some(costs) = costs {
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    }
    order
}

/// Runs the job on one file, isolated: errors, timeouts and panics all become a result.
/// `None` when the run was cancelled before the file started.
fn run_one<T>(
    index: usize,
    path: &Path,
    opts: &RunOptions,
    job: &(impl Fn(&Path, &StopSignal) -> Result<T, analyzer_core::Error> + Sync),
) -> Option<FileResult<T>> {
    if opts.cancel.load(Ordering::SeqCst) {
        return None;
    }
    let begun = Instant::now();
    let mut stop = StopSignal::never().with_cancel_flag(Arc::clone(&opts.cancel));
    if let Some(timeout) = opts.timeout {
        stop = stop.with_deadline(begun + timeout);
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| job(path, &stop)));
    let (status, value, error) = match outcome {
        Ok(Ok(value)) => (Status::Ok, Some(value), None),
        Ok(Err(err)) => {
            let status = match err.kind() {
                ErrorKind::TimedOut => Status::Timeout,
                ErrorKind::Cancelled => Status::Cancelled,
                _ => Status::Error,
            };
            (status, None, Some(err.reason()))
        }
        Err(panic) => (
            Status::Error,
            None,
            Some(format!("panic: {}", panic_message(&*panic))),
        ),
    };
    Some(FileResult {
        index,
        path: path.to_path_buf(),
        status,
        value,
        error,
        elapsed_s: begun.elapsed().as_secs_f64(),
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
