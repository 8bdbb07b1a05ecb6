//! Many files at once: the batch runner behind `eval-cli analyze`, `evaluate` and
//! `compare`, for any program that analyses a library.
//!
//! ```text
//! folders ─collect_audio_files─▶ files ─Schedule─▶ start order ─Executor runs the Job─▶ FileResult
//!         (sorted, loop-safe)          (costliest first)  (1 thread, a pool, a mock)     │
//!                                                  Observers, as each file finishes ◀─────┤
//!                                                  BatchSummary, in input order ◀─────────┘
//! ```
//!
//! Four small seams, each a trait: a [`Job`] analyses one file (the tempo [`Analyzer`] is
//! one, and so is any `Fn(&Path, &StopSignal) -> Result<T, Error>`); an [`Executor`] decides
//! how many threads run the jobs ([`Sequential`], [`Parallel`], or [`MockExecutor`] in
//! tests); [`Observer`]s hear about progress and results; a [`StopSignal`] cancels.
//! [`Batch`] ties them together and keeps the guarantees that make a batch safe to run on
//! a whole library:
//!
//! - **One bad file is one failed result.** An error, a timeout or even a panic in the
//!   job becomes that file's [`FileResult`] with a reason; the batch goes on. While the
//!   job runs, [`file_in_guard`] names its file, so a program's panic hook can say which
//!   file a caught panic belongs to.
//! - **Memory that does not grow with the library.** [`Batch::run_streamed`] hands each
//!   result over as it finishes and keeps only counts; [`Batch::run`] keeps every result
//!   (about 3 KB a file with the analyzer's) for a caller that needs them all at the end.
//! - **Input order.** [`BatchSummary::results`] is in input order whatever the executor
//!   and whatever order files finished in, so output built from it is byte-identical for
//!   1 and 64 workers.
//! - **Cancellation.** Once the stop signal's flag is set no file starts; running files
//!   stop at their next check and produce no result. Every result already reported stays.
//! - **Deadlines.** [`Batch::timeout`] gives each file its own deadline, checked by the
//!   job at the same points as cancellation; such a file is a [`Status::Timeout`].
//! - **Running out of descriptors is not a row.** A file whose open fails for want of a
//!   file descriptor (EMFILE, ENFILE: [`Error::is_out_of_files`]) is tried once more,
//!   alone, when the files running beside it are over ([`FileGate`]), so rows do not
//!   depend on how many files were open at that instant.
//!
//! ```
//! use std::path::{Path, PathBuf};
//! use analyzer_core::batch::{Batch, Sequential, Status};
//! use analyzer_core::{Error, ErrorKind, Stage, StopSignal};
//!
//! // Any closure is a job; a real program passes an `Analyzer`.
//! let job = |path: &Path, _stop: &StopSignal| match path.to_str() {
//!     Some("bad") => Err(Error::new(ErrorKind::CorruptStream, Stage::Decode, "bad bytes")),
//!     _ => Ok(path.as_os_str().len()),
//! };
//! let files: Vec<PathBuf> = ["a", "bad", "ccc"].iter().map(PathBuf::from).collect();
//! let summary = Batch::new(&job).run(&files, &Sequential);
//! let status: Vec<Status> = summary.results.iter().map(|r| r.status).collect();
//! assert_eq!(status, [Status::Ok, Status::Error, Status::Ok]);
//! assert_eq!(summary.results[1].error.as_deref(), Some("decode: corrupt_stream: bad bytes"));
//! assert_eq!(summary.results[2].value, Some(3));
//! ```
//!
//! [`Analyzer`]: crate::Analyzer

mod current;
mod executor;
mod files;
mod gate;
mod job;
mod observer;
mod workers;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Stage, drop_payload, panic_message};
use crate::stop::StopSignal;

pub use current::file_in_guard;
pub use executor::{Executor, MockExecutor, Parallel, PoolError, Sequential, executor_for};
pub use files::{
    AUDIO_EXTENSIONS, WalkError, collect_audio_files, collect_files, collect_files_checked,
    is_apple_double, is_audio_name, levels_above, loop_reason, spelled_alike,
};
pub use gate::FileGate;
pub use job::{Job, TimedAnalyzer, audio_cost};
pub use observer::{BatchEnd, BatchStart, Observer};
pub use workers::{MEMORY_PER_WORKER, default_workers, memory_worker_cap};

/// The order in which files are handed to workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Costliest file first (ties by input index), by each file's [`Job::cost_hint`]: the
    /// "longest processing time first" rule of Graham (1969). Starting the dear files first
    /// leaves only cheap ones for the end, so no worker idles while one long file finishes
    /// alone; the makespan stays within 4/3 of the optimum. The default. With one worker
    /// it changes nothing, so the hints are not even asked for.
    #[default]
    CostliestFirst,
    /// The order of the input, to measure what the schedule above buys.
    InputOrder,
}

/// How one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The job returned a value.
    Ok,
    /// The job returned an error or panicked.
    Error,
    /// The file's deadline passed.
    Timeout,
    /// The batch was cancelled while this file was running. Such files never reach an
    /// observer nor [`BatchSummary::results`].
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

    /// The status a job's error stands for: its deadline, a cancellation, or a failure.
    pub fn of_error(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::TimedOut => Status::Timeout,
            ErrorKind::Cancelled => Status::Cancelled,
            _ => Status::Error,
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
    /// The job's value: always when `status` is `Ok`, and beside the error of a file whose
    /// run gave a value that stands for a failure ([`Job::failure`]: a file without a
    /// pulse keeps its key and loudness).
    pub value: Option<T>,
    /// Why it failed (`STAGE: KIND: why`, or `panic: message`), without the path.
    pub error: Option<String>,
    /// Wall time of this file in seconds, for latency statistics only (never in results
    /// that must be identical across runs).
    pub elapsed_s: f64,
    /// Time per stage, when the job reports it ([`Job::stage_timings`]); empty otherwise.
    pub stages: Vec<(Stage, Duration)>,
}

/// The outcome of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSummary<T> {
    /// Every file that finished, in input order (cancelled files are missing).
    pub results: Vec<FileResult<T>>,
    /// Whether the batch was cancelled before every file finished.
    pub cancelled: bool,
    /// Wall time of the whole batch in seconds.
    pub wall_s: f64,
    /// Worker threads of the executor that ran it.
    pub workers: usize,
}

/// The outcome of a batch whose results went to the caller as they came
/// ([`Batch::run_streamed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchTotals {
    /// Files that finished (cancelled files are not counted).
    pub finished: usize,
    /// Of those, the files whose status is [`Status::Ok`].
    pub ok: usize,
    /// Whether the batch was cancelled before every file finished.
    pub cancelled: bool,
    /// Wall time of the whole batch in seconds.
    pub wall_s: f64,
    /// Worker threads of the executor that ran it.
    pub workers: usize,
}

/// A batch run of one job: its settings (a builder; each setting's doc gives its default)
/// and [`Batch::run`].
#[derive(Debug, Clone)]
pub struct Batch<'j, J> {
    job: &'j J,
    timeout: Option<Duration>,
    schedule: Schedule,
    stop: StopSignal,
    gate: Arc<FileGate>,
}

impl<'j, J: Job> Batch<'j, J> {
    /// A batch of `job` with no deadline, the costliest-first schedule and no way to stop.
    pub fn new(job: &'j J) -> Self {
        Batch {
            job,
            timeout: None,
            schedule: Schedule::default(),
            stop: StopSignal::never(),
            gate: Arc::default(),
        }
    }

    /// Each file's time limit, from when it starts. Default: none.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Which files start first. Default: [`Schedule::CostliestFirst`].
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// What cancels the batch (its flag) and bounds every file (its deadline, if any,
    /// besides [`Batch::timeout`]). Default: [`StopSignal::never`].
    pub fn stop(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }

    /// The gate its files run through ([`FileGate`]), shared with every other batch that
    /// guards files on the same pool of workers, so that a file tried again alone waits
    /// for all of them. Default: a gate of this batch's own, which is right for
    /// [`Batch::run`]; a pool that calls [`Batch::run_file`] on a new batch per file
    /// passes its one gate to each.
    pub fn gate(mut self, gate: Arc<FileGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Runs the job over `files` on `executor`.
    pub fn run(&self, files: &[PathBuf], executor: &dyn Executor) -> BatchSummary<J::Output> {
        self.run_observed(files, executor, &mut [])
    }

    /// [`Batch::run`], telling each of `observers` (on the calling thread, in completion
    /// order) as each file finishes, so that a caller can write a row at once.
    pub fn run_observed(
        &self,
        files: &[PathBuf],
        executor: &dyn Executor,
        observers: &mut [&mut dyn Observer<J::Output>],
    ) -> BatchSummary<J::Output> {
        let mut results = Vec::with_capacity(files.len());
        let totals = self.run_streamed(files, executor, observers, |result| results.push(result));
        results.sort_by_key(|r: &FileResult<J::Output>| r.index);
        BatchSummary {
            results,
            cancelled: totals.cancelled,
            wall_s: totals.wall_s,
            workers: totals.workers,
        }
    }

    /// [`Batch::run_observed`] without holding the results: each finished file's result is
    /// handed to `take` (on the calling thread, in completion order, after the observers)
    /// and the batch keeps only its counts, so that a library of a million files costs the
    /// memory of the files in flight, not of every result (about 3 KB a file, held to the
    /// end of the run).
    pub fn run_streamed(
        &self,
        files: &[PathBuf],
        executor: &dyn Executor,
        observers: &mut [&mut dyn Observer<J::Output>],
        mut take: impl FnMut(FileResult<J::Output>),
    ) -> BatchTotals {
        let started = Instant::now();
        let workers = executor.workers().max(1);
        let order = self.start_order(files, executor);
        for observer in observers.iter_mut() {
            observer.started(&BatchStart {
                files: files.len(),
                workers,
            });
        }

        // Each task leaves its result in its file's slot; `done` takes it out on this thread.
        // Boxed, so that a slot waiting for its file costs a pointer, not a result's size
        // (about 1 KB for `eval-cli`'s: a slot for every file of a library).
        type Slot<T> = Mutex<Option<Box<FileResult<T>>>>;
        let slots: Vec<Slot<J::Output>> = files.iter().map(|_| Mutex::new(None)).collect();
        let task = |index: usize| {
            let result = self.run_file(index, &files[index]);
            *lock(&slots[index]) = result.map(Box::new);
        };
        let (mut finished, mut ok) = (0, 0);
        let mut any_cancelled = false;
        executor.execute(&order, &task, &mut |index| {
            let Some(result) = lock(&slots[index]).take().map(|boxed| *boxed) else {
                return; // not started: the batch was cancelled
            };
            if result.status == Status::Cancelled {
                any_cancelled = true;
                return;
            }
            for observer in observers.iter_mut() {
                observer.file_finished(&result);
            }
            finished += 1;
            ok += usize::from(result.status == Status::Ok);
            take(result);
        });

        let cancelled = any_cancelled || finished < files.len();
        let wall_s = started.elapsed().as_secs_f64();
        let end = BatchEnd {
            ok,
            failed: finished - ok,
            cancelled,
            wall_s,
        };
        for observer in observers.iter_mut() {
            observer.finished(&end);
        }
        BatchTotals {
            finished,
            ok,
            cancelled,
            wall_s,
            workers,
        }
    }

    /// Input indices in the order they start. The cost hints are read on the executor's
    /// workers (reading headers is I/O), and only when several workers share the work.
    fn start_order(&self, files: &[PathBuf], executor: &dyn Executor) -> Vec<usize> {
        let mut order: Vec<usize> = (0..files.len()).collect();
        if self.schedule == Schedule::InputOrder || executor.workers() <= 1 {
            return order;
        }
        let costs: Vec<Mutex<f64>> = files.iter().map(|_| Mutex::new(0.0)).collect();
        let probe = |index: usize| {
            // Reading every header of a large library takes a while: once stopped, the
            // rest are not read (no file starts anyway).
            if self.stop.is_cancelled() {
                return;
            }
            let hint = match current::catch_on(&files[index], || self.job.cost_hint(&files[index]))
            {
                Ok(hint) => hint,
                // Dropped through the guard: a value that panics again when dropped
                // escaped the batch here.
                Err(panic) => {
                    drop_payload(panic);
                    None
                }
            };
            *lock(&costs[index]) = hint.unwrap_or(0.0);
        };
        executor.execute(&order, &probe, &mut |_| {});
        let costs: Vec<f64> = costs
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(PoisonError::into_inner))
            .collect();
        costliest_first(&mut order, &costs);
        order
    }

    /// The per-file guard every pool runs files under (this runner's executors, the
    /// service's workers, a distributed worker's slots): the job on one file, isolated, so
    /// that an error, the deadline ([`Batch::timeout`] from now, and the stop signal's) or
    /// a panic all become that file's result. `index` is what the result carries as
    /// [`FileResult::index`]. `None` when the stop signal was already cancelled.
    ///
    /// A run that fails for want of a file descriptor ([`Error::is_out_of_files`]) is run
    /// again alone through the batch's [`FileGate`], with a deadline of its own from when
    /// it starts again: its result is what any worker count gives, unless the limit is too
    /// low for even one file.
    pub fn run_file(&self, index: usize, path: &Path) -> Option<FileResult<J::Output>> {
        if self.stop.is_cancelled() {
            return None;
        }
        let begun = Instant::now();
        let mut outcome = {
            let _pass = self.gate.together();
            self.attempt(path)
        };
        if matches!(&outcome, Ok(Err(err)) if err.is_out_of_files()) {
            let _pass = self.gate.alone();
            if self.stop.is_cancelled() {
                return None;
            }
            outcome = self.attempt(path);
        }
        // The job's other methods run under the same guard as `run`: a panic in
        // `failure` or `stage_timings` escaped the batch and lost every finished result.
        let outcome = outcome.and_then(|result| match result {
            Ok(value) => {
                current::catch_on(path, || self.job.failure(&value)).map(|err| match err {
                    None => Ok((value, None)),
                    Some(err) => Ok((value, Some(err))),
                })
            }
            Err(err) => Ok(Err(err)),
        });
        let (status, value, error) = match outcome {
            Ok(Ok((value, None))) => (Status::Ok, Some(value), None),
            Ok(Ok((value, Some(err)))) => (self.status_of(&err), Some(value), Some(err.reason())),
            Ok(Err(err)) => (self.status_of(&err), None, Some(err.reason())),
            Err(panic) => {
                let message = format!(
                    "panic: {}",
                    panic_message(&*panic).unwrap_or("(no message)")
                );
                drop_payload(panic);
                (Status::Error, None, Some(message))
            }
        };
        let elapsed_s = begun.elapsed().as_secs_f64();
        let stages = value.as_ref().map_or_else(Vec::new, |v| {
            current::catch_on(path, || self.job.stage_timings(v)).unwrap_or_else(|panic| {
                drop_payload(panic);
                Vec::new()
            })
        });
        Some(FileResult {
            index,
            path: path.to_path_buf(),
            status,
            value,
            error,
            elapsed_s,
            stages,
        })
    }
}

impl<J: Job> Batch<'_, J> {
    /// The status of a file whose job gave `err`. `Cancelled` only while the batch is
    /// stopped: a job that says so of its own accord would have its file dropped from the
    /// results, a row lost without a word, so it is an error of that file.
    fn status_of(&self, err: &Error) -> Status {
        match err.kind() {
            ErrorKind::Cancelled if !self.stop.is_cancelled() => Status::Error,
            kind => Status::of_error(kind),
        }
    }

    /// One run of the job on `path`, its deadline [`Batch::timeout`] from now, its panic
    /// caught.
    fn attempt(&self, path: &Path) -> std::thread::Result<Result<J::Output, Error>> {
        // A timeout too long for an `Instant` to hold its deadline is no limit.
        let stop = match self
            .timeout
            .and_then(|timeout| Instant::now().checked_add(timeout))
        {
            Some(deadline) => self.stop.clone().with_deadline(deadline),
            None => self.stop.clone(),
        };
        current::catch_on(path, || self.job.run(path, &stop))
    }
}

/// Sorts `order` (indices into `costs`) costliest first, ties by index, so the schedule
/// is deterministic: the one ordering rule of [`Schedule::CostliestFirst`], for every
/// front end that orders files itself (shards, the service).
pub fn costliest_first(order: &mut [usize], costs: &[f64]) {
    // An index past `costs` costs nothing (it panicked out of bounds).
    let cost = |i: usize| costs.get(i).copied().unwrap_or(0.0);
    order.sort_by(|&a, &b| cost(b).total_cmp(&cost(a)).then(a.cmp(&b)));
}

/// A slot's lock; a task never panics while holding one, so poison carries no meaning.
fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
