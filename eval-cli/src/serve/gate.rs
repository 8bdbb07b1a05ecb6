//! `serve --test-gates` (hidden, for tests): the service's analysis behind
//! [`crate::gate::hold`]; a held file whose job is cancelled ends without a row, as a
//! cancelled file does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use analyzer_core::{Analyzer, StopSignal};

use super::analysis::{FileAnalysis, FileOutcome};

/// [`FileAnalysis`] `inner`, with gates held.
pub struct GatedAnalysis {
    /// The analysis a released file goes through.
    pub inner: Arc<dyn FileAnalysis>,
}

impl FileAnalysis for GatedAnalysis {
    fn analyze(
        &self,
        analyzer: &Analyzer,
        path: &Path,
        stop: &StopSignal,
        timeout: Option<Duration>,
    ) -> Option<FileOutcome> {
        if !crate::gate::hold(path, stop) {
            return None;
        }
        self.inner.analyze(analyzer, path, stop, timeout)
    }
}
