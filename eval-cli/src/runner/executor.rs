//! The two ways a batch is executed. Both take the same schedule and the same per-file
//! task and differ only in how many threads run it, so the sequential path is the
//! reference the parallel one is checked against.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::FileResult;

/// The per-file task: the result of the file at an input index, `None` when it did not
/// start (the run was cancelled).
pub(crate) type Task<'a, T> = dyn Fn(usize) -> Option<FileResult<T>> + Sync + 'a;

/// Runs a task over a schedule and hands each result, as it finishes, to a sink that is
/// always called on the calling thread.
pub(crate) trait Executor {
    /// Runs `task` for every input index in `order`, calling `sink` with each result.
    fn execute<T: Send>(
        &self,
        order: &[usize],
        task: &Task<'_, T>,
        sink: &mut dyn FnMut(FileResult<T>),
    );
}

/// The reference path: a plain loop on the calling thread.
pub(crate) struct Sequential;

impl Executor for Sequential {
    fn execute<T: Send>(
        &self,
        order: &[usize],
        task: &Task<'_, T>,
        sink: &mut dyn FnMut(FileResult<T>),
    ) {
        for &index in order {
            if let Some(result) = task(index) {
                sink(result);
            }
        }
    }
}

/// One rayon pool with an explicit thread count. Each thread takes the next file of the
/// schedule from a shared counter when it is free (dynamic scheduling: one slow file never
/// leaves other threads idle) and sends its result to the calling thread, which runs the
/// sink while the pool works.
pub(crate) struct Parallel {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl Parallel {
    /// A pool of exactly `threads` threads.
    pub(crate) fn new(threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("eval-worker-{i}"))
            .build()?;
        Ok(Parallel { pool, threads })
    }

    /// `f` of every item, in item order, computed on the pool's threads.
    pub(crate) fn map<I: Sync, O: Send>(
        &self,
        items: &[I],
        f: impl Fn(&I) -> O + Sync + Send,
    ) -> Vec<O> {
        use rayon::prelude::*;
        self.pool.install(|| items.par_iter().map(f).collect())
    }
}

impl Executor for Parallel {
    fn execute<T: Send>(
        &self,
        order: &[usize],
        task: &Task<'_, T>,
        sink: &mut dyn FnMut(FileResult<T>),
    ) {
        let next = AtomicUsize::new(0);
        let next = &next;
        let (tx, rx) = mpsc::channel::<FileResult<T>>();
        self.pool.in_place_scope(|scope| {
            for _ in 0..self.threads {
                let tx = tx.clone();
                scope.spawn(move |_| {
                    while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Some(result) = task(index)
                            && tx.send(result).is_err()
                        {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for result in rx {
                sink(result);
            }
        });
    }
}
