//! Which file each worker thread is on while the batch's guard runs a job on it, so that a
//! program's panic hook can name the file whose panic the guard is about to turn into that
//! file's error (`panic: message`), instead of printing a crash without it.
//!
//! The library installs no hook and keeps no process-wide state: each thread keeps its own
//! file, set only inside [`Batch::run_file`](super::Batch::run_file) and the schedule's
//! cost probes. A program that wants one line per caught panic installs a hook that asks
//! [`file_in_guard`], and leaves other panics to the default hook:
//!
//! ```no_run
//! let default = std::panic::take_hook();
//! std::panic::set_hook(Box::new(move |info| match analyzer_core::batch::file_in_guard() {
//!     Some(file) => eprintln!("{}: panic: {}", file.display(), info.payload_as_str().unwrap_or("")),
//!     None => default(info),
//! }));
//! ```

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

thread_local! {
    /// The file this thread's guard is running a job on, if any.
    static FILE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// The file this thread is analysing inside the batch's guard, whose panic the guard
/// catches and reports as that file's failure; `None` outside the guard (a panic there
/// is not caught by the batch). Meant for a panic hook, which runs on the panicking
/// thread before the guard catches the panic.
pub fn file_in_guard() -> Option<PathBuf> {
    FILE.with(|file| file.try_borrow().ok().and_then(|f| f.clone()))
}

/// Runs `op` on `path` with its panic caught, [`file_in_guard`] naming `path` meanwhile
/// (and what it named before once `op` is over, panic or not).
pub(crate) fn catch_on<T>(path: &Path, op: impl FnOnce() -> T) -> std::thread::Result<T> {
    let before = FILE.with(|file| file.replace(Some(path.to_path_buf())));
    let outcome = catch_unwind(AssertUnwindSafe(op));
    FILE.with(|file| *file.borrow_mut() = before);
    outcome
}
