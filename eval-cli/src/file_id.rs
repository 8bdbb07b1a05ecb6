//! What identifies a file whatever its name: its device and inode. Two spellings of one
//! path, a symbolic link and a hard link all name the same file; the commands that must
//! not read one file twice (a manifest, `tag`) or replace one they read (an output) compare
//! these.

use std::fs::Metadata;
use std::path::Path;

/// A file's device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(u64, u64);

impl FileId {
    /// The identity of the file `meta` describes.
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(FileId(meta.dev(), meta.ino()))
    }

    /// Without inodes there is no identity to compare; files are then told apart by name.
    #[cfg(not(unix))]
    pub fn of(_: &Metadata) -> Option<Self> {
        None
    }

    /// The identity of the regular file at `path`, symbolic links followed; `None` for
    /// anything else or a path that cannot be read.
    pub fn of_file(path: &Path) -> Option<Self> {
        std::fs::metadata(path)
            .ok()
            .filter(Metadata::is_file)
            .as_ref()
            .and_then(FileId::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn every_name_of_a_file_has_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.wav");
        std::fs::write(&a, b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&a, dir.path().join("link.wav")).unwrap();
        std::fs::hard_link(&a, dir.path().join("hard.wav")).unwrap();
        let id = FileId::of_file(&a).unwrap();
        for name in ["sub/../a.wav", "./a.wav", "link.wav", "hard.wav"] {
            assert_eq!(FileId::of_file(&dir.path().join(name)), Some(id), "{name}");
        }
        std::fs::write(dir.path().join("b.wav"), b"x").unwrap();
        assert_ne!(FileId::of_file(&dir.path().join("b.wav")), Some(id));
        assert_eq!(FileId::of_file(dir.path()), None, "a folder");
        assert_eq!(FileId::of_file(&dir.path().join("none.wav")), None);
    }
}
