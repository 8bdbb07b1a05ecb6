//! What the slots of one `dist work` process share: the analyzer, the run, the flags, and
//! the means to wake a slot that waits for new entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use analyzer_core::Analyzer;

use crate::queue_worker::Events;

use super::args::PathMap;
use super::broker::Broker;
use super::error::DistError;
use super::keys::{self, Keys};

/// What the slots of one `dist work` share.
pub(super) struct Worker {
    pub(super) analyzer: Analyzer,
    /// The keys of the run the worker was started for: it stores rows of no other.
    pub(super) keys: Keys,
    /// Files of the job: their entries carry the indices below it.
    pub(super) files: usize,
    /// Rows of the complete job: the files' and those of inputs that could not be walked.
    pub(super) total: usize,
    pub(super) reclaim_after: Duration,
    /// The folder `submit` ran in, which relative paths are in (the manifest's).
    pub(super) submitted_from: Option<PathBuf>,
    pub(super) path_maps: Vec<PathMap>,
    pub(super) follow: bool,
    /// `--events` (the heartbeats are written here; the rest by the loop).
    pub(super) events: Events,
    pub(super) read_block_ms: u64,
    pub(super) cancel: Arc<AtomicBool>,
    /// One per slot, by slot number.
    pub(super) idle: Vec<IdleSlot>,
    /// Whether the slots said that rows are lost (once for the worker, not once a wait).
    pub(super) lost_told: AtomicBool,
}

/// How to wake a slot that waits for new entries.
pub(super) struct IdleSlot {
    /// The broker's client id of the slot's connection, for `CLIENT UNBLOCK` (renewed when
    /// the slot reconnects).
    pub(super) client: AtomicU64,
    /// Set from just before the slot's last look at the job until its wait ends.
    pub(super) waiting: AtomicBool,
}

impl Worker {
    /// Wakes the slots waiting for new entries (`CLIENT UNBLOCK`: the read returns empty
    /// and the slot looks at the job again), so that a worker exits when its job is
    /// complete, not when its slots' waits run out. A slot that was about to wait when the
    /// first wake-up came is caught by the next one. Without a connection, or where the
    /// broker refuses the command, the slots find out at the end of their wait instead.
    pub(super) fn wake_idle_slots(&self, waker: &mut Result<Broker, DistError>) {
        let Ok(waker) = waker else { return };
        // After one wait, every slot has looked at the job again by itself.
        // A wait too long for an `Instant` to hold its end has none.
        let deadline = Instant::now().checked_add(Duration::from_millis(self.read_block_ms));
        loop {
            let waiting: Vec<u64> = self
                .idle
                .iter()
                .filter(|slot| slot.waiting.load(Ordering::SeqCst))
                .map(|slot| slot.client.load(Ordering::SeqCst))
                .collect();
            if waiting.is_empty() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return;
            }
            for id in waiting {
                let woken: redis::RedisResult<usize> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query(&mut waker.con);
                if woken.is_err() {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where this machine reads a submitted path: a relative one first joined to the
    /// folder `submit` ran in (so never read from this worker's own working folder), then
    /// the first `--path-map` whose FROM is a prefix of that (component-wise), else that
    /// path itself.
    pub(super) fn local_path(&self, submitted: &Path) -> PathBuf {
        let on_submitter = keys::on_submitter(self.submitted_from.as_deref(), submitted);
        self.path_maps
            .iter()
            .find_map(|m| {
                on_submitter
                    .strip_prefix(&m.from)
                    .ok()
                    .map(|rest| m.to.join(rest))
            })
            .unwrap_or(on_submitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::args::{READ_BLOCK_MS, parse_path_map};

    #[test]
    fn path_maps_rewrite_the_prefix_only() {
        let map = parse_path_map("/srv/music=/mnt/music").unwrap();
        assert!(parse_path_map("/srv/music").is_err());
        assert!(parse_path_map("=/mnt").is_err());
        let worker = Worker {
            analyzer: Analyzer::new(analyzer_core::AnalyzerConfig::default()).unwrap(),
            keys: Keys::new("j", "0"),
            files: 0,
            total: 0,
            reclaim_after: Duration::from_secs(1),
            submitted_from: Some(PathBuf::from("/srv/music/box")),
            path_maps: vec![map],
            follow: false,
            events: Events { enabled: false },
            read_block_ms: READ_BLOCK_MS,
            cancel: Arc::new(AtomicBool::new(false)),
            idle: Vec::new(),
            lost_told: AtomicBool::new(false),
        };
        assert_eq!(
            worker.local_path(Path::new("/srv/music/a/b.mp3")),
            PathBuf::from("/mnt/music/a/b.mp3")
        );
        // A component-wise prefix: /srv/musical is not under /srv/music.
        assert_eq!(
            worker.local_path(Path::new("/srv/musical/b.mp3")),
            PathBuf::from("/srv/musical/b.mp3")
        );
        // A relative path is in the submitter's folder, which the map then rewrites.
        assert_eq!(
            worker.local_path(Path::new("m/c.mp3")),
            PathBuf::from("/mnt/music/box/m/c.mp3")
        );
    }
}
