//! The order in which the one shared pool takes files: a pure data structure, so that
//! fairness and priority are tested without threads.
//!
//! Three lanes, always served in this order: interactive uploads (one user waiting on one
//! file must not sit behind another's 40,000-file job), then jobs submitted with
//! `priority: high`, then normal jobs. Inside a job lane the running jobs take turns, one
//! file each (round-robin), so a small job submitted after a big one finishes in about
//! the time of its own files, not after the big one. A queued file is only its item (a
//! path and an index), never decoded audio, so memory grows slowly with the queue.

use std::collections::VecDeque;

/// How urgent a queued item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// A single uploaded file a client is waiting for: first.
    Upload,
    /// Files of a job submitted with `priority: high`.
    High,
    /// Files of any other job.
    Normal,
}

/// One lane of jobs taking turns: each job's files in input order, one file per turn.
#[derive(Debug)]
struct RoundRobin<K, T> {
    /// Jobs with files left, the next to be served in front.
    turns: VecDeque<(K, VecDeque<T>)>,
}

impl<K: PartialEq, T> RoundRobin<K, T> {
    fn new() -> Self {
        RoundRobin {
            turns: VecDeque::new(),
        }
    }

    fn push(&mut self, key: K, items: impl IntoIterator<Item = T>) {
        let items: VecDeque<T> = items.into_iter().collect();
        if items.is_empty() {
            return;
        }
        match self.turns.iter_mut().find(|(k, _)| *k == key) {
            Some((_, queue)) => queue.extend(items),
            None => self.turns.push_back((key, items)),
        }
    }

    /// The next job's next file; that job goes to the back of the line.
    fn pop(&mut self) -> Option<T> {
        let (key, mut queue) = self.turns.pop_front()?;
        let item = queue.pop_front();
        if !queue.is_empty() {
            self.turns.push_back((key, queue));
        }
        item
    }

    /// Removes every file of `key`; returns how many there were.
    fn remove(&mut self, key: &K) -> usize {
        let mut removed = 0;
        self.turns.retain(|(k, queue)| {
            if k == key {
                removed += queue.len();
                false
            } else {
                true
            }
        });
        removed
    }
}

/// The queue of the shared pool. `K` names a job, `T` is what a worker takes.
#[derive(Debug)]
pub struct Scheduler<K, T> {
    uploads: VecDeque<T>,
    high: RoundRobin<K, T>,
    normal: RoundRobin<K, T>,
    len: usize,
}

impl<K: PartialEq, T> Default for Scheduler<K, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: PartialEq, T> Scheduler<K, T> {
    /// An empty queue.
    pub fn new() -> Self {
        Scheduler {
            uploads: VecDeque::new(),
            high: RoundRobin::new(),
            normal: RoundRobin::new(),
            len: 0,
        }
    }

    /// Queues an upload, behind earlier uploads and ahead of every job's files.
    pub fn push_upload(&mut self, item: T) {
        self.uploads.push_back(item);
        self.len += 1;
    }

    /// Queues the files of job `key` in `lane` (`High` or `Normal`; `Upload` is taken as
    /// `High`, since a job is never interactive), in the order given.
    pub fn push_job(&mut self, key: K, lane: Lane, items: Vec<T>) {
        self.len += items.len();
        match lane {
            Lane::Upload | Lane::High => self.high.push(key, items),
            Lane::Normal => self.normal.push(key, items),
        }
    }

    /// The item a free worker takes next.
    pub fn pop(&mut self) -> Option<T> {
        let item = self
            .uploads
            .pop_front()
            .or_else(|| self.high.pop())
            .or_else(|| self.normal.pop())?;
        self.len -= 1;
        Some(item)
    }

    /// Drops every queued file of job `key` (a cancel); returns how many.
    pub fn remove_job(&mut self, key: &K) -> usize {
        let removed = self.high.remove(key) + self.normal.remove(key);
        self.len -= removed;
        removed
    }

    /// Items queued, all lanes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<K: PartialEq, T>(s: &mut Scheduler<K, T>) -> Vec<T> {
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn jobs_at_one_priority_take_turns_one_file_each() {
        let mut s = Scheduler::new();
        s.push_job(1, Lane::Normal, vec!["a1", "a2", "a3", "a4"]);
        s.push_job(2, Lane::Normal, vec!["b1", "b2"]);
        s.push_job(3, Lane::Normal, vec!["c1"]);
        assert_eq!(s.len(), 7);
        assert_eq!(drain(&mut s), ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_job_arriving_later_joins_the_rotation_at_once() {
        let mut s = Scheduler::new();
        s.push_job(1, Lane::Normal, vec!["a1", "a2", "a3", "a4"]);
        assert_eq!(s.pop(), Some("a1"));
        assert_eq!(s.pop(), Some("a2"));
        s.push_job(2, Lane::Normal, vec!["b1", "b2"]);
        assert_eq!(drain(&mut s), ["a3", "b1", "a4", "b2"]);
    }

    #[test]
    fn uploads_go_first_then_high_jobs_then_normal_ones() {
        let mut s = Scheduler::new();
        s.push_job(1, Lane::Normal, vec!["n1", "n2"]);
        s.push_job(2, Lane::High, vec!["h1", "h2"]);
        s.push_upload("u1");
        assert_eq!(s.pop(), Some("u1"));
        assert_eq!(s.pop(), Some("h1"));
        // An upload arriving mid-job overtakes every queued file.
        s.push_upload("u2");
        assert_eq!(drain(&mut s), ["u2", "h2", "n1", "n2"]);
    }

    #[test]
    fn high_jobs_share_their_lane_fairly_too() {
        let mut s = Scheduler::new();
        s.push_job(1, Lane::High, vec!["a1", "a2"]);
        s.push_job(2, Lane::High, vec!["b1", "b2"]);
        s.push_job(3, Lane::Normal, vec!["n1"]);
        assert_eq!(drain(&mut s), ["a1", "b1", "a2", "b2", "n1"]);
    }

    #[test]
    fn removing_a_job_drops_only_its_files_and_keeps_the_count() {
        let mut s = Scheduler::new();
        s.push_job(1, Lane::Normal, vec!["a1", "a2", "a3"]);
        s.push_job(2, Lane::Normal, vec!["b1", "b2"]);
        s.push_upload("u1");
        assert_eq!(s.pop(), Some("u1"));
        assert_eq!(s.pop(), Some("a1"));
        assert_eq!(s.remove_job(&1), 2);
        assert_eq!(s.remove_job(&1), 0);
        assert_eq!(s.len(), 2);
        assert_eq!(drain(&mut s), ["b1", "b2"]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn an_empty_job_takes_no_turn() {
        let mut s: Scheduler<u32, &str> = Scheduler::new();
        s.push_job(1, Lane::Normal, vec![]);
        s.push_job(2, Lane::Normal, vec!["b1"]);
        assert_eq!(drain(&mut s), ["b1"]);
        assert_eq!(s.pop(), None);
    }
}
