//! `--test-gates` (hidden, for end-to-end tests of `serve`, `dist work` and `watch`): a file
//! that takes as long as a test wants.
//!
//! A test must hold a worker on a file (to cancel it, to fill a queue, to watch a
//! heartbeat, to stop the process mid-file) without depending on how fast the machine is.
//! A file whose name starts with `gate` writes a file of the same name plus `.held` beside
//! it and waits until one named plus `.open` appears, then is analysed as usual; if its stop signal fires first (the job
//! is cancelled, the process stops), the wait ends there and the file ends as cancelled.
//! [`GatedAnalysis`] puts the gates in front of any [`FileAnalysis`] (`serve`, `consume`).
//!
//! `--test-panics` (hidden, `analyze`): a file whose name starts with `panic` panics in its
//! analysis ([`panic_if_asked`]), as a bug would, for the tests of how a caught panic is
//! reported.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use analyzer_core::StopSignal;

use crate::analysis::{FileAnalysis, FileOutcome, FileTask};

/// How often a held file looks at its stop signal and for its `.open` file.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Panics when `path`'s name starts with `panic` (`--test-panics`), with a message that
/// names no file: the report of the panic must.
pub fn panic_if_asked(path: &Path) {
    let asked = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("panic"));
    if asked {
        panic!("asked for by --test-panics");
    }
}

/// Holds the caller while `path` is a gate that is not open yet: `true` once it may go on
/// (at once for a file that is no gate), `false` when `stop` fired first.
pub fn hold(path: &Path, stop: &StopSignal) -> bool {
    let is_gate = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("gate"));
    if !is_gate {
        return true;
    }
    // `NAME.held` tells a test that a worker has reached the gate (and done what comes
    // before it: `tag` takes the file's identity there). Where the test made it a named
    // pipe, this write waits for the test to open it, so the test learns of the arrival
    // by a blocking read, not by looking again and again.
    let mut held = path.as_os_str().to_owned();
    held.push(".held");
    let _ = std::fs::write(&held, "");
    let mut open = path.as_os_str().to_owned();
    open.push(".open");
    while !Path::new(&open).exists() {
        if stop.is_cancelled() {
            return false;
        }
        std::thread::sleep(LOOK_EVERY);
    }
    true
}

/// [`FileAnalysis`] `inner`, with gates held; a held file whose stop signal fires ends
/// without a row, as a cancelled file does.
pub struct GatedAnalysis {
    /// The analysis a released file goes through.
    pub inner: Arc<dyn FileAnalysis>,
}

impl FileAnalysis for GatedAnalysis {
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome> {
        if !hold(task.path, task.stop) {
            return None;
        }
        self.inner.analyze(task)
    }
}
