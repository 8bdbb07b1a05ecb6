//! Who hears how a batch is going: a progress bar, a JSON-lines stream, a row writer.
//! The library prints nothing itself; a program plugs its own observers in.

use super::FileResult;

/// A batch about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStart {
    /// Files in the batch.
    pub files: usize,
    /// Worker threads of the executor.
    pub workers: usize,
}

/// A batch that has ended, complete or cancelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchEnd {
    /// Files that gave a value.
    pub ok: usize,
    /// Files that failed or timed out.
    pub failed: usize,
    /// Whether the batch was cancelled before every file finished.
    pub cancelled: bool,
    /// Wall time of the whole batch in seconds.
    pub wall_s: f64,
}

/// Told about a batch as it runs. Every method has an empty default.
///
/// For implementations: every call comes on the thread that runs the batch, one at a
/// time: `started` once (after the schedule is set, before any file is reported), then
/// `file_finished` once per finished file in completion order (not input order; cancelled
/// files are never reported), then `finished` once. An observer that panics brings the
/// batch down, so write errors belong in the observer's own state.
pub trait Observer<T> {
    /// The batch is starting.
    fn started(&mut self, start: &BatchStart) {
        let _ = start;
    }

    /// A file has finished: its status, value or reason, and timings.
    fn file_finished(&mut self, result: &FileResult<T>) {
        let _ = result;
    }

    /// The batch has ended.
    fn finished(&mut self, end: &BatchEnd) {
        let _ = end;
    }
}

/// Any `FnMut(&FileResult<T>)` observes each finished file.
impl<T, F: FnMut(&FileResult<T>)> Observer<T> for F {
    fn file_finished(&mut self, result: &FileResult<T>) {
        self(result);
    }
}
