//! `serve --test-gates` (hidden, for tests): the service's analysis behind
//! [`crate::gate::hold`]; a held file whose job is cancelled ends without a row, as a
//! cancelled file does.

use std::sync::Arc;

use super::analysis::{FileAnalysis, FileOutcome, FileTask};

/// [`FileAnalysis`] `inner`, with gates held.
pub struct GatedAnalysis {
    /// The analysis a released file goes through.
    pub inner: Arc<dyn FileAnalysis>,
}

impl FileAnalysis for GatedAnalysis {
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome> {
        if !crate::gate::hold(task.path, task.stop) {
            return None;
        }
        self.inner.analyze(task)
    }
}
