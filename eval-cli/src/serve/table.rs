//! Every job the service holds, by number. Finished jobs keep their rows until `--keep-jobs`
//! others have finished after them; then they expire, so that a service that runs for
//! months does not grow with every job it ever ran. The order is the order of finishing,
//! not of numbers: a long job that ends last is kept, for the client that watched it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::jobs::{Job, JobId};

/// The job table.
pub struct JobTable {
    /// The last number given.
    pub next: JobId,
    jobs: BTreeMap<JobId, Arc<Job>>,
    /// Finished jobs kept.
    keep: usize,
}

/// What the table knows of a job number.
pub enum Lookup {
    /// The job.
    Found(Arc<Job>),
    /// Finished and dropped: `keep` jobs finished after it.
    Expired { keep: usize },
    /// Never given.
    Unknown,
}

impl JobTable {
    /// An empty table keeping `keep` finished jobs.
    pub fn new(keep: usize) -> Self {
        JobTable {
            next: 0,
            jobs: BTreeMap::new(),
            keep,
        }
    }

    /// Drops the finished jobs that `keep` others finished after.
    pub fn expire(&mut self) {
        let mut finished: Vec<(Instant, JobId)> = self
            .jobs
            .iter()
            .filter_map(|(&id, job)| Some((job.ended()?, id)))
            .collect();
        let excess = finished.len().saturating_sub(self.keep);
        if excess == 0 {
            return;
        }
        finished.sort_unstable();
        for (_, id) in &finished[..excess] {
            self.jobs.remove(id);
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
        let mut table = JobTable::new(2);
        let long = job(1, 1);
        table.insert(Arc::clone(&long)); // running: never expires
        for id in 2..=5 {
            table.insert(job(id, 0)); // done at once, in this order
        }
        table.expire();
        assert_eq!(held(&table), [1, 4, 5]);
        assert!(matches!(table.lookup(2), Lookup::Expired { keep: 2 }));
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
}
