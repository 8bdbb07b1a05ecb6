//! Cooperative stopping. Analysis never gets killed from outside; instead the decode and
//! analysis loops ask a [`StopSignal`] between packets and between stages whether to go on,
//! and every read of the file asks it too (a demuxer scanning gigabytes of bytes that are
//! not audio for a sync does so inside one call), so a cancelled or timed-out file stops
//! within one packet or one read and leaves nothing half done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result, Stage};

/// A cancel flag shared with the caller, and an optional per-file deadline.
///
/// The default never stops.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    cancel: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
}

impl StopSignal {
    /// A signal that never stops.
    pub fn never() -> Self {
        Self::default()
    }

    /// Stops once `flag` becomes true (set it from a Ctrl-C handler, say).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Stops once `deadline` has passed (or an earlier deadline already set).
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    /// Whether the cancel flag is set: the work was stopped on request, whatever the
    /// deadline says.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// `Err(Cancelled)` or `Err(TimedOut)` when the work at `stage` should stop.
    pub fn check(&self, stage: Stage) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::new(
                ErrorKind::Cancelled,
                stage,
                "stopped on request",
            ));
        }
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(Error::new(
                ErrorKind::TimedOut,
                stage,
                "the per-file time limit passed",
            ));
        }
        Ok(())
    }
}
