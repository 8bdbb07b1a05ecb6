//! Every job the service holds, by number. Finished jobs keep their rows until `--keep-jobs`
//! others have finished after them, or until the finished jobs after them hold
//! `--keep-rows` rows together; then they expire, so that a service that runs for months
//! grows neither with every job it ever ran nor with their sizes (a job may have 100,000
//! rows). The order is the order of finishing, not of numbers: a long job that ends last
//! is kept, for the client that watched it. The last job to finish is kept whatever its
//! size, so that its client can read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::jobs::{Job, JobId};

/// The job table.
pub struct JobTable {
    /// The last number given.
    pub next: JobId,
    jobs: BTreeMap<JobId, Arc<Job>>,
    keep: Keep,
}

/// How much of the finished jobs is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Finished jobs (`--keep-jobs`).
    pub jobs: usize,
    /// Their rows together (`--keep-rows`).
    pub rows: usize,
}

/// What the table knows of a job number.
pub enum Lookup {
    /// The job.
    Found(Arc<Job>),
    /// Finished and dropped: the jobs finished after it filled `keep`.
    Expired { keep: Keep },
    /// Never given.
    Unknown,
}

impl JobTable {
    /// An empty table keeping `keep` of the finished jobs.
    pub fn new(keep: Keep) -> Self {
        JobTable {
            next: 0,
            jobs: BTreeMap::new(),
            keep,
        }
    }

    /// Drops the finished jobs that others finished after: `keep.jobs` of them, or
    /// `keep.rows` rows with them (the job itself counted).
    pub fn expire(&mut self) {
        let mut finished: Vec<(Instant, JobId, usize)> = self
            .jobs
            .iter()
            .filter_map(|(&id, job)| Some((job.ended()?, id, job.rows_held())))
            .collect();
        // Newest first: each is kept while it fits beside the newer ones kept.
        finished.sort_unstable_by(|a, b| b.cmp(a));
        let mut rows = 0;
        for (kept, &(_, id, held)) in finished.iter().enumerate() {
            rows += held;
            if kept >= self.keep.jobs || (kept > 0 && rows > self.keep.rows) {
                self.jobs.remove(&id);
            }
        }
    }

    /// Adds a job under its number.
    pub fn insert(&mut self, job: Arc<Job>) {
        self.next = self.next.max(job.id);
        self.jobs.insert(job.id, job);
    }

    /// The job numbered `id`, or why there is none.
    pub fn lookup(&self, id: JobId) -> Lookup {
        match self.jobs.get(&id) {
            Some(job) => Lookup::Found(Arc::clone(job)),
            None if id >= 1 && id <= self.next => Lookup::Expired { keep: self.keep },
            None => Lookup::Unknown,
        }
    }

    /// Every job held, by number.
    pub fn all(&self) -> Vec<Arc<Job>> {
        self.jobs.values().cloned().collect()
    }

    /// Jobs held.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Jobs not final yet.
    pub fn active(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| !j.status().is_final())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::scheduler::Lane;
    use analyzer_core::{Analyzer, AnalyzerConfig};
    use std::path::PathBuf;

    const KEEP_TWO: Keep = Keep {
        jobs: 2,
        rows: usize::MAX,
    };

    fn job(id: JobId, files: usize) -> Arc<Job> {
        let analyzer = Arc::new(Analyzer::new(AnalyzerConfig::default()).unwrap());
        Arc::new(Job::new(
            id,
            Lane::Normal,
            analyzer,
            vec![PathBuf::from("a.wav"); files],
            Vec::new(),
            (0..files).collect(),
        ))
    }

    fn held(table: &JobTable) -> Vec<JobId> {
        table.all().iter().map(|j| j.id).collect()
    }

    #[test]
    fn the_first_finished_jobs_expire_and_running_ones_stay() {
        let mut table = JobTable::new(KEEP_TWO);
        let long = job(1, 1);
        table.insert(Arc::clone(&long)); // running: never expires
        for id in 2..=5 {
            table.insert(job(id, 0)); // done at once, in this order
        }
        table.expire();
        assert_eq!(held(&table), [1, 4, 5]);
        assert!(matches!(
            table.lookup(2),
            Lookup::Expired { keep: KEEP_TWO }
        ));
        assert!(matches!(table.lookup(1), Lookup::Found(_)));
        assert!(matches!(table.lookup(6), Lookup::Unknown));
        assert!(matches!(table.lookup(0), Lookup::Unknown));
        assert_eq!((table.len(), table.active()), (3, 1));

        // The long job ends last: it is kept, and job 4 goes.
        long.start_file();
        long.finish_file(0, None);
        table.expire();
        assert_eq!(held(&table), [1, 5]);
        assert_eq!(table.active(), 0);
    }

    /// A finished job of `rows` rows (inputs that could not be walked: final at once).
    fn done_job(id: JobId, rows: usize) -> Arc<Job> {
        let analyzer = Arc::new(Analyzer::new(AnalyzerConfig::default()).unwrap());
        let walk_rows = vec![crate::record::AnalyzeRecord::default(); rows];
        Arc::new(Job::new(
            id,
            Lane::Normal,
            analyzer,
            Vec::new(),
            walk_rows,
            Vec::new(),
        ))
    }

    #[test]
    fn finished_jobs_expire_oldest_first_once_the_newer_ones_fill_the_rows_kept() {
        let keep = Keep {
            jobs: 100,
            rows: 10,
        };
        let mut table = JobTable::new(keep);
        let running = job(1, 50);
        table.insert(Arc::clone(&running)); // its rows count for nothing until it ends
        for (id, rows) in [(2, 4), (3, 3), (4, 3)] {
            table.insert(done_job(id, rows));
        }
        table.expire();
        assert_eq!(held(&table), [1, 2, 3, 4], "10 rows fit");
        table.insert(done_job(5, 1));
        table.expire();
        assert_eq!(held(&table), [1, 3, 4, 5], "the oldest goes first");
        assert!(matches!(table.lookup(2), Lookup::Expired { keep: k } if k == keep));
        table.insert(done_job(6, 0));
        table.expire();
        assert_eq!(held(&table), [1, 3, 4, 5, 6], "a job of no rows costs none");

        // The last job to finish stays whatever its size, alone.
        table.insert(done_job(7, 11));
        table.expire();
        assert_eq!(held(&table), [1, 7]);
        table.insert(done_job(8, 10));
        table.expire();
        assert_eq!(held(&table), [1, 8]);
        assert_eq!(table.active(), 1);
    }
}
