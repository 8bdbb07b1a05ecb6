//! `serve --test-gates` (hidden, for tests): a file that takes as long as a test wants.
//!
//! The end-to-end tests must hold a worker on a file (to cancel it, to fill the queue, to
//! stop the service mid-job) without depending on how fast the machine is. A job's file
//! whose name starts with `gate` waits until a file of the same name plus `.open`
//! appears beside it, then is analysed as usual; or, if its stop signal fires first (the
//! job is cancelled or the service stops), ends without a row, as a cancelled file does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use analyzer_core::{Analyzer, StopSignal};

use super::analysis::{Analysed, FileAnalysis};

/// How often a held file looks at its stop signal and for its `.open` file.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// [`FileAnalysis`] `inner`, with gates held.
pub struct GatedAnalysis {
    /// The analysis a released file goes through.
    pub inner: Arc<dyn FileAnalysis>,
}

impl FileAnalysis for GatedAnalysis {
    fn analyse(
        &self,
        analyzer: &Analyzer,
        path: &Path,
        stop: &StopSignal,
        timeout: Option<Duration>,
    ) -> Option<Analysed> {
        let is_gate = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("gate"));
        if is_gate {
            let mut open = path.as_os_str().to_owned();
            open.push(".open");
            while !Path::new(&open).exists() {
                if stop.is_cancelled() {
                    return None;
                }
                std::thread::sleep(LOOK_EVERY);
            }
        }
        self.inner.analyse(analyzer, path, stop, timeout)
    }
}
