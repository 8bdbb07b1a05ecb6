//! How a batch's tasks are run: on the calling thread, on a rayon pool, or scripted for
//! tests. All three take the same start order and the same per-file task, so they can only
//! differ in timing; the sequential path is the reference the others are checked against.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

/// Runs a batch's per-file tasks and says, on the calling thread, when each one is done.
///
/// A task is type-erased (`Fn(usize)`, the input index): it runs the job, isolates its
/// errors and panics and keeps the result where the batch finds it, so an executor only
/// decides which thread runs what, and when.
///
/// For implementations:
/// - call `task(i)` exactly once for every `i` in `order`, and start them in that order
///   (a worker that is free takes the next one), so that the costliest-first schedule holds;
/// - call `done(i)` only after `task(i)` has returned, only on the thread that called
///   `execute`, and never twice at once: observers rely on it;
/// - return only when every task has returned and every `done` has been called;
/// - do not skip tasks on cancellation: a task started after cancellation returns at once
///   without running the job, so the batch's guarantees hold whatever the executor does.
///
/// Tasks do not panic (the batch catches the job's panics); a panic in `done` (an
/// observer's) may propagate once running tasks have returned.
pub trait Executor {
    /// How many tasks run at once: 1 for the sequential path. Several workers turn on the
    /// costliest-first schedule.
    fn workers(&self) -> usize;

    /// Runs `task` for every input index in `order`, calling `done` as each one returns.
    fn execute(&self, order: &[usize], task: &(dyn Fn(usize) + Sync), done: &mut dyn FnMut(usize));
}

/// The reference path: a plain loop on the calling thread, in start order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Executor for Sequential {
    fn workers(&self) -> usize {
        1
    }

    fn execute(&self, order: &[usize], task: &(dyn Fn(usize) + Sync), done: &mut dyn FnMut(usize)) {
        for &index in order {
            task(index);
            done(index);
        }
    }
}

/// One rayon pool with an explicit thread count. Each thread takes the next file of the
/// order from a shared counter when it is free (dynamic scheduling: one slow file never
/// leaves other threads idle) and tells the calling thread, which runs `done` while the
/// pool works.
///
/// A batch started from inside another's job runs on the calling thread instead, as
/// [`Sequential`] runs it, and says so ([`Executor::workers`] is 1): from a worker of any
/// pool, or from any thread while a batch runs on this pool (a job's helper thread). It
/// would wait there for tasks queued behind the jobs waiting for it.
#[derive(Debug)]
pub struct Parallel {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Batches running on the pool now.
    running: AtomicUsize,
}

/// A thread pool that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The system would not start the threads.
    #[error("{0}")]
    Build(#[from] rayon::ThreadPoolBuildError),
    /// More threads than a pool may have ([`Parallel::MAX_THREADS`]).
    #[error("{0} threads: a pool has at most {max}", max = Parallel::MAX_THREADS)]
    TooMany(usize),
}

impl Parallel {
    /// The most threads a pool may have: far past any machine's cores, and a request for
    /// 10,000 had not started after two minutes, without an error.
    pub const MAX_THREADS: usize = 1024;

    /// A pool of exactly `threads` threads (at least one, at most [`Self::MAX_THREADS`]),
    /// named `batch-worker-N`.
    pub fn new(threads: usize) -> Result<Self, PoolError> {
        if threads > Self::MAX_THREADS {
            return Err(PoolError::TooMany(threads));
        }
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("batch-worker-{i}"))
            .build()?;
        Ok(Parallel {
            pool,
            threads,
            running: AtomicUsize::new(0),
        })
    }

    /// Whether a batch started now runs on the calling thread: from a worker of any pool
    /// (a job that runs a batch: waiting there for tasks queued behind it deadlocked every
    /// thread, on this pool or, through another pool's jobs, across two, A -> B -> A), or
    /// while a batch runs on this pool (a job's own helper thread running one deadlocked
    /// the same way once the pool's threads all waited for their helpers).
    fn runs_on_caller(&self) -> bool {
        rayon::current_thread_index().is_some() || self.running.load(Ordering::SeqCst) > 0
    }
}

/// Counts a batch as running on a pool until it is dropped, panic or not.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for Parallel {
    fn workers(&self) -> usize {
        if self.runs_on_caller() {
            1
        } else {
            self.threads
        }
    }

    fn execute(&self, order: &[usize], task: &(dyn Fn(usize) + Sync), done: &mut dyn FnMut(usize)) {
        if self.runs_on_caller() {
            return Sequential.execute(order, task, done);
        }
        let _running = Running::new(&self.running);
        let next = AtomicUsize::new(0);
        let next = &next;
        let (tx, rx) = mpsc::channel::<usize>();
        self.pool.in_place_scope(|scope| {
            for _ in 0..self.threads.min(order.len()) {
                let tx = tx.clone();
                scope.spawn(move |_| {
                    while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        task(index);
                        if tx.send(index).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for index in rx {
                done(index);
            }
        });
    }
}

/// The executor for `workers`: the sequential reference path for 1 (or 0), a [`Parallel`]
/// pool of exactly that many threads otherwise.
pub fn executor_for(workers: usize) -> Result<Box<dyn Executor>, PoolError> {
    Ok(if workers <= 1 {
        Box::new(Sequential)
    } else {
        Box::new(Parallel::new(workers)?)
    })
}

/// An executor for tests, with a scripted completion order and a record of what started
/// (hyperfine's `MockExecutor` is the model): it claims `workers` workers, so the
/// costliest-first schedule applies, yet runs every task on the calling thread, so a test
/// needs no threads, no sleeps and no clock to check what the batch does with the order
/// in which files finish.
#[derive(Debug)]
pub struct MockExecutor {
    workers: usize,
    finish_order: Option<Vec<usize>>,
    started: Mutex<Vec<Vec<usize>>>,
}

impl MockExecutor {
    /// A mock that claims `workers` workers; each task is done as soon as it returns.
    pub fn new(workers: usize) -> Self {
        MockExecutor {
            workers: workers.max(1),
            finish_order: None,
            started: Mutex::new(Vec::new()),
        }
    }

    /// Runs every task first, then reports them done in this order of input indices, the
    /// others afterwards in start order: files finishing out of order, scripted.
    pub fn finishing_in(mut self, order: impl IntoIterator<Item = usize>) -> Self {
        self.finish_order = Some(order.into_iter().collect());
        self
    }

    /// The input indices each call of `execute` started, in order: for a batch with
    /// several workers and the costliest-first schedule, the cost probe and then the run.
    pub fn started(&self) -> Vec<Vec<usize>> {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Executor for MockExecutor {
    fn workers(&self) -> usize {
        self.workers
    }

    fn execute(&self, order: &[usize], task: &(dyn Fn(usize) + Sync), done: &mut dyn FnMut(usize)) {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(order.to_vec());
        let Some(scripted) = &self.finish_order else {
            return Sequential.execute(order, task, done);
        };
        for &index in order {
            task(index);
        }
        let rest = order.iter().filter(|i| !scripted.contains(i));
        for &index in scripted.iter().filter(|i| order.contains(i)).chain(rest) {
            done(index);
        }
    }
}
