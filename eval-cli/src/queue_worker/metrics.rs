//! What a broker worker counts as its slots take and settle items, for `--metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::analysis::FileOutcome;

/// The counters of one worker process, shared by its slots.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    taken: AtomicU64,
    in_flight: AtomicU64,
    reconnects: AtomicU64,
    requeued: AtomicU64,
}

impl QueueMetrics {
    /// An item was claimed.
    pub fn taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// The item in hand was settled, or went back with a lost connection.
    pub fn in_flight_done(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A new connection replaced a lost one.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A row was stored and its item acknowledged.
    pub fn stored(&self, _outcome: &FileOutcome) {}

    /// A poison item was refused with `reason`.
    pub fn dead_lettered(&self, _reason: &str) {}

    /// An item went back to the queue.
    pub fn requeued(&self) {
        self.requeued.fetch_add(1, Ordering::Relaxed);
    }
}
