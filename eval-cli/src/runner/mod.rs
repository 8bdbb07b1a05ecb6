//! The command line's side of a batch run. The runner itself is [`analyzer_core::batch`]
//! (scheduling, executors, cancellation, deadlines, panic isolation, input order); what is
//! left here is what only a CLI needs: picking the executor from `--workers` ([`run`]),
//! progress on stderr as two observers (`progress.rs`: an indicatif bar or JSON lines),
//! rows on stdout in input order as they finish (`in_order.rs`),
//! result files that survive a kill for `--resume` (`rows.rs`), the settings that made
//! them (`settings.rs`) and the identity of each row's file (`identities.rs`), and the host (`system.rs`: worker-count warnings, the Ctrl-C
//! handler, peak RSS); a panic the batch catches is one line on stderr naming its file
//! (`panics.rs`, installed by the binary).

mod identities;
mod in_order;
mod panics;
mod progress;
mod rows;
mod settings;
mod system;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use analyzer_core::StopSignal;
use analyzer_core::batch::{self, Batch, BatchSummary, BatchTotals, FileResult, Job, Sequential};

pub use identities::IdentityLog;
pub use in_order::InOrder;
pub use panics::{caught_line, report_caught_panics};
use progress::Progress;
pub use progress::Shown;
pub(crate) use progress::{emit as emit_event, emit_file_event};

pub use crate::host::peak_rss_mb;
pub use rows::{ResumedRow, RowLog, read_rows, resumable_rows};
pub use settings::RunSettings;
pub use system::{EXIT_CANCELLED, finished, install_signal_handler, send_signal, shutdown_signal};

/// The `--schedule` flag: which files start first ([`batch::Schedule`] says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    /// Costliest file first (ties by input index): the length the file's headers announce,
    /// weighted by its codec, read by the workers before the batch starts. No core sits
    /// idle while one long file finishes alone.
    #[value(name = "longest")]
    CostliestFirst,
    /// The order of the input, to measure what the schedule above buys.
    #[value(name = "input")]
    InputOrder,
}

impl From<Schedule> for batch::Schedule {
    fn from(flag: Schedule) -> Self {
        match flag {
            Schedule::CostliestFirst => batch::Schedule::CostliestFirst,
            Schedule::InputOrder => batch::Schedule::InputOrder,
        }
    }
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
    /// Worker threads, at least 1, as the command decided them (`flags::resolve_workers`); 1
    /// takes the sequential reference path.
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

/// Runs `job` over `files` as `opts` say: the sequential path for one worker, else a pool
/// of that many threads (no more than there are files).
///
/// `on_result` is called on this thread, in completion order, as each file finishes, so
/// that a caller can append rows at once; `shown` gives the tempo and key `--progress
/// jsonl` shows for a finished file's value. The summary holds the results in input order, and
/// its `workers` is the count asked for, which the reports show.
pub fn run<J: Job>(
    files: &[PathBuf],
    opts: &RunOptions,
    job: &J,
    shown: impl Fn(&J::Output) -> Shown,
    mut on_result: impl FnMut(&FileResult<J::Output>),
) -> BatchSummary<J::Output> {
    let mut results = Vec::with_capacity(files.len());
    let totals = run_streamed(files, opts, job, shown, |result| {
        on_result(&result);
        results.push(result);
    });
    results.sort_by_key(|r| r.index);
    BatchSummary {
        results,
        cancelled: totals.cancelled,
        wall_s: totals.wall_s,
        workers: totals.workers,
    }
}

/// [`run`] handing each result to `take` as it finishes and keeping none
/// ([`Batch::run_streamed`]): what a run over a whole library needs, whose results would
/// otherwise all be held to its end. The totals' `workers` is the count asked for.
pub fn run_streamed<J: Job>(
    files: &[PathBuf],
    opts: &RunOptions,
    job: &J,
    shown: impl Fn(&J::Output) -> Shown,
    take: impl FnMut(FileResult<J::Output>),
) -> BatchTotals {
    let workers = opts.workers;
    // No more threads than files, and a pool of one thread even for no files.
    let threads = workers.min(files.len()).max(1);
    let executor = batch::executor_for(threads).unwrap_or_else(|err| {
        eprintln!("eval-cli: warning: no thread pool ({err}); running sequentially");
        Box::new(Sequential)
    });
    let mut progress = Progress::new(opts.progress, workers, &shown);
    let mut totals = Batch::new(job)
        .timeout(opts.timeout)
        .schedule(opts.schedule.into())
        .stop(StopSignal::never().with_cancel_flag(Arc::clone(&opts.cancel)))
        .run_streamed(files, &*executor, &mut [&mut progress], take);
    totals.workers = workers;
    totals
}
