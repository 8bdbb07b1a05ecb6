//! A file that could not be opened because the process ran out of descriptors (EMFILE,
//! ENFILE) failed because of the run, not of its bytes: the same batch with one worker
//! would have read it. Keeping that error would make a row depend on timing, so the
//! per-file guard tries such a file once more, alone: it waits until the files other
//! workers have started are over (new ones wait behind it), runs it while none holds a
//! descriptor, and lets the others go on. The wait is bounded by the files already running
//! (each by its own deadline and the stop signal), there is one retry per file and no
//! sleep; a file that still cannot be opened alone keeps its error, since the limit then
//! leaves no room for even one worker.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Who is running files: any number of workers together, or one file alone. Every
/// worker of one pool shares one gate (a [`Batch`](super::Batch) makes its own; a pool
/// that guards files through several batches passes one to each with
/// [`Batch::gate`](super::Batch::gate)).
///
/// A file waiting to run alone goes before files not started yet, so that a busy pool
/// cannot keep it waiting for ever.
#[derive(Debug, Default)]
pub struct FileGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Files running beside others.
    together: usize,
    /// Files waiting to run alone.
    waiting_alone: usize,
    /// Whether a file is running alone.
    alone: bool,
}

impl FileGate {
    /// A gate with nothing running.
    pub fn new() -> Self {
        FileGate::default()
    }

    /// Runs beside the other workers, once no file runs or waits to run alone.
    pub(crate) fn together(&self) -> Pass<'_> {
        let mut state = self.lock();
        while state.alone || state.waiting_alone > 0 {
            state = self.wait(state);
        }
        state.together += 1;
        Pass(self, false)
    }

    /// Runs alone, once the files running beside others are over.
    pub(crate) fn alone(&self) -> Pass<'_> {
        let mut state = self.lock();
        state.waiting_alone += 1;
        while state.alone || state.together > 0 {
            state = self.wait(state);
        }
        state.waiting_alone -= 1;
        state.alone = true;
        Pass(self, true)
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Nothing panics while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, GateState>) -> MutexGuard<'a, GateState> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file's leave to run, given back when dropped (after a caught panic too).
pub(crate) struct Pass<'g>(&'g FileGate, bool);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if self.1 {
            state.alone = false;
        } else {
            state.together -= 1;
        }
        drop(state);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// A file waiting to run alone waits for the one running beside it, and a file that
    /// comes after it waits for it: the order is forced by channels, not by time.
    #[test]
    fn alone_waits_for_running_files_and_goes_before_new_ones() {
        let gate = FileGate::new();
        let alone_ran = AtomicBool::new(false);
        std::thread::scope(|s| {
            let first = gate.together();
            let (waiting, is_waiting) = mpsc::channel();
            s.spawn(|| {
                let waiting = waiting;
                // Told before it blocks; the gate's own count says it is queued.
                waiting.send(()).unwrap();
                let _alone = gate.alone();
                alone_ran.store(true, Ordering::SeqCst);
            });
            is_waiting.recv().unwrap();
            while gate.lock().waiting_alone == 0 {
                std::thread::yield_now();
            }
            // Still running beside nobody alone: the alone file has not started.
            assert!(!alone_ran.load(Ordering::SeqCst));
            drop(first);
            // A later file passes only once the alone file is over.
            let _later = gate.together();
            assert!(alone_ran.load(Ordering::SeqCst));
        });
    }
}
