//! What `watch` remembers of the rows it printed: a digest of each file's path and of its
//! identity then, so that an event that finds a file as its row left it prints nothing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};

use crate::cache::FileIdentity;

/// The files whose rows this watch printed, each as its row (or this run's tagging) left
/// it, so that an event or a rescan that finds a file so prints nothing: a writer that
/// closes a file unwritten, the tagged copy renamed over it, a file a rescan finds
/// unchanged. Every row's file is kept, the first pass's too (whose row came twice on such
/// an event), as 64-bit digests of its path and of its identity: 16 bytes a file, so a
/// library of 100,000 files costs a few MB where whole paths cost tens. A file deleted or
/// renamed away is forgotten, and a rescan keeps only the files it finds.
pub(super) struct Printed {
    /// The digests' keys, random per process, so that no one can name files to collide.
    digests: RandomState,
    /// The digest of a file's path to that of its identity (or of none, for a file
    /// `stat` failed on, whose error row stands until that changes).
    files: HashMap<u64, u64>,
}

impl Printed {
    pub(super) fn new() -> Self {
        Printed {
            digests: RandomState::new(),
            files: HashMap::new(),
        }
    }

    /// Notes that `path`'s row was printed (or its tagging done) when it was `identity`.
    pub(super) fn note(&mut self, path: &Path, identity: Option<&FileIdentity>) {
        let identity = self.identity_digest(identity);
        self.files.insert(self.path_digest(path), identity);
    }

    /// Whether `path`'s row was printed when it was `identity`, as it is now.
    pub(super) fn holds(&self, path: &Path, identity: Option<&FileIdentity>) -> bool {
        self.files.get(&self.path_digest(path)) == Some(&self.identity_digest(identity))
    }

    /// Forgets `path` (deleted or renamed away): a file that comes back gets its row.
    pub(super) fn forget(&mut self, path: &Path) {
        self.files.remove(&self.path_digest(path));
    }

    /// Forgets every file but `paths`, those a walk of the folders found.
    pub(super) fn keep_only(&mut self, paths: &[PathBuf]) {
        let found: HashSet<u64> = paths.iter().map(|path| self.path_digest(path)).collect();
        self.files.retain(|path, _| found.contains(path));
    }

    fn path_digest(&self, path: &Path) -> u64 {
        self.digests.hash_one(path)
    }

    fn identity_digest(&self, identity: Option<&FileIdentity>) -> u64 {
        self.digests.hash_one(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file deleted or renamed away is forgotten, and a rescan keeps only the files it
    /// finds: what [`Printed`] holds follows the library, not every name a watch met.
    #[test]
    fn printed_files_follow_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
        std::fs::write(&a, b"RIFF").unwrap();
        let identity = FileIdentity::of_path(&a).unwrap();
        let mut printed = Printed::new();
        printed.note(&a, Some(&identity));
        printed.note(&b, None);
        assert!(printed.holds(&a, Some(&identity)) && !printed.holds(&a, None));
        assert!(printed.holds(&b, None) && !printed.holds(&b, Some(&identity)));
        printed.forget(&a);
        assert!(!printed.holds(&a, Some(&identity)));
        printed.note(&a, Some(&identity));
        printed.keep_only(std::slice::from_ref(&b));
        assert_eq!(printed.files.len(), 1);
        assert!(printed.holds(&b, None));
    }
}
