//! The one pool of `--workers` std threads that analyses every file of every job and every
//! upload. CPU work never runs on the async runtime's threads: handlers queue work here and
//! await its result on a channel.
//!
//! Workers take their next item from the [`Scheduler`] under one lock and run it outside
//! the lock; a file of a cancelled job is dropped when it is taken, and a running one stops
//! at its next check through the job's cancel flag.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use analyzer_core::batch::FileGate;
use analyzer_core::{Analyzer, StopSignal};
use tokio::sync::oneshot;

use super::jobs::{Job, JobId};
use super::scheduler::Scheduler;
use super::telemetry::Telemetry;
use crate::analysis::{FileAnalysis, FileOutcome, FileTask};

/// One uploaded file waiting for a worker.
pub struct Upload {
    /// The temporary file holding the body.
    pub path: PathBuf,
    /// The analyzer to use.
    pub analyzer: Arc<Analyzer>,
    /// Where the row goes; `None` when the service shut down first.
    pub reply: oneshot::Sender<Option<FileOutcome>>,
}

/// What a worker takes.
enum Task {
    /// The file at `index` of a job.
    File { job: Arc<Job>, index: usize },
    /// An upload.
    Upload(Upload),
}

struct Queue {
    scheduler: Scheduler<JobId, Task>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    analysis: Arc<dyn FileAnalysis>,
    timeout: Option<Duration>,
    /// Set at shutdown: stops running uploads (jobs have their own flags).
    shutdown: Arc<AtomicBool>,
    telemetry: Arc<Telemetry>,
    running: AtomicUsize,
    /// Every worker's files go through it: a file short of a descriptor runs again once
    /// the others' files are over, whatever job or upload they belong to.
    gate: Arc<FileGate>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it (the analysis runs outside the lock).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared worker pool.
pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Disconnects when every worker has returned (each holds a sender).
    exited: Mutex<mpsc::Receiver<()>>,
}

impl Pool {
    /// Starts `workers` threads that run `analysis` with a per-file `timeout`.
    pub fn start(
        workers: usize,
        analysis: Arc<dyn FileAnalysis>,
        timeout: Option<Duration>,
        telemetry: Arc<Telemetry>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                scheduler: Scheduler::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            analysis,
            timeout,
            shutdown: Arc::new(AtomicBool::new(false)),
            telemetry,
            running: AtomicUsize::new(0),
            gate: Arc::default(),
        });
        let mut threads = Vec::with_capacity(workers);
        let (alive, exited) = mpsc::channel();
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            let alive: mpsc::Sender<()> = alive.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("serve-worker-{i}"))
                    .spawn(move || {
                        work(&shared);
                        drop(alive);
                    })?,
            );
        }
        Ok(Pool {
            shared,
            workers,
            threads: Mutex::new(threads),
            exited: Mutex::new(exited),
        })
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Files waiting, all lanes.
    pub fn queued(&self) -> usize {
        self.shared.queue().scheduler.len()
    }

    /// Files being analysed.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Queues every file of `job` in its lane, unless `admit` (called under the queue's
    /// lock with the number of files queued now) refuses; returns whether it was queued.
    pub fn submit_job(&self, job: &Arc<Job>, admit: impl FnOnce(usize) -> bool) -> bool {
        let mut queue = self.shared.queue();
        if queue.closed || !admit(queue.scheduler.len()) {
            return false;
        }
        let tasks = job
            .take_start_order()
            .into_iter()
            .map(|index| Task::File {
                job: Arc::clone(job),
                index,
            })
            .collect();
        queue.scheduler.push_job(job.id, job.lane, tasks);
        drop(queue);
        self.shared.ready.notify_all();
        true
    }

    /// Drops the queued files of job `id`; returns how many.
    pub fn remove_job(&self, id: JobId) -> usize {
        self.shared.queue().scheduler.remove_job(&id)
    }

    /// Queues an upload ahead of every job's files; gives it back if the pool is closed.
    pub fn upload(&self, upload: Upload) -> Result<(), Upload> {
        let mut queue = self.shared.queue();
        if queue.closed {
            return Err(upload);
        }
        queue.scheduler.push_upload(Task::Upload(upload));
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Shutdown: nothing more is taken, every queued item is dropped (its job told, its
    /// upload answered with `None`), running uploads are stopped; running job files stop
    /// through their jobs' flags, which the caller sets.
    pub fn close(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let dropped: Vec<Task> = {
            let mut queue = self.shared.queue();
            queue.closed = true;
            std::iter::from_fn(|| queue.scheduler.pop()).collect()
        };
        self.shared.ready.notify_all();
        for task in dropped {
            match task {
                Task::File { job, .. } => job.drop_queued(1),
                Task::Upload(upload) => {
                    let _ = upload.reply.send(None);
                }
            }
        }
    }

    /// Waits up to `patience` for the workers to finish their current file, after
    /// [`Pool::close`]; returns whether they all did. A file stuck in a system call (a
    /// hung network mount) cannot be stopped, and must not keep the process alive.
    pub fn join(&self, patience: Duration) -> bool {
        let exited = self.exited.lock().unwrap_or_else(PoisonError::into_inner);
        // Patience too long for an `Instant` to hold its end waits for as long as it takes.
        let deadline = std::time::Instant::now().checked_add(patience);
        loop {
            let left = deadline.map_or(Duration::MAX, |deadline| {
                deadline.saturating_duration_since(std::time::Instant::now())
            });
            match exited.recv_timeout(left) {
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Ok(()) => {}
            }
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            // A worker never panics outside the analysis, which is isolated.
            let _ = thread.join();
        }
        true
    }
}

/// A worker's loop: take the next item, run it, until the pool closes.
fn work(shared: &Shared) {
    loop {
        let task = {
            let mut queue = shared.queue();
            loop {
                if queue.closed {
                    return;
                }
                if let Some(task) = queue.scheduler.pop() {
                    break task;
                }
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let running = Running::start(&shared.running);
        match task {
            Task::File { job, index } => run_file(shared, &job, index, running),
            // A client that went away before its upload's turn took the upload with it
            // (its temporary file is removed): nothing to read and nobody to answer, so
            // the upload is cancelled, not a file that failed.
            Task::Upload(upload) if upload.reply.is_closed() => {
                shared.telemetry.file_cancelled();
                drop(running);
            }
            Task::Upload(upload) => {
                let stop = StopSignal::never().with_cancel_flag(Arc::clone(&shared.shutdown));
                let analysed = shared.analysis.analyze(&FileTask {
                    analyzer: &upload.analyzer,
                    path: &upload.path,
                    stop: &stop,
                    timeout: shared.timeout,
                    gate: Some(&shared.gate),
                });
                match &analysed {
                    // Gone while it was read: its file may have been removed under it.
                    Some(_) if upload.reply.is_closed() => shared.telemetry.file_cancelled(),
                    Some(a) => shared.telemetry.file_finished(a, true),
                    None => shared.telemetry.file_cancelled(),
                }
                drop(running);
                // The client may have gone: nobody to tell.
                let _ = upload.reply.send(analysed);
            }
        }
    }
}

/// One file counted in [`Pool::running`] while it lives. It ends before the file's
/// result is published, so that whoever hears of the result (an event stream, the reply
/// to an upload) and then asks `/v1/health` never sees the file still running.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run_file(shared: &Shared, job: &Job, index: usize, running: Running<'_>) {
    if job.is_cancelled() {
        drop(running);
        job.drop_queued(1);
        return;
    }
    job.start_file();
    let path = job.path(index);
    let stop = StopSignal::never().with_cancel_flag(Arc::clone(&job.cancel));
    let analysed = shared.analysis.analyze(&FileTask {
        analyzer: &job.analyzer,
        path: &path,
        stop: &stop,
        timeout: shared.timeout,
        gate: Some(&shared.gate),
    });
    match &analysed {
        Some(a) => shared.telemetry.file_finished(a, false),
        None => shared.telemetry.file_cancelled(),
    }
    drop(running);
    job.finish_file(index, analysed);
}
