//! Replacing an audio file by a tagged copy so that it is never half-written: the copy is
//! made in the file's own folder (so the rename stays on one filesystem and is atomic),
//! tagged, given the original's permissions and owner, flushed to disk, and renamed over
//! the original; a kill at any moment leaves the old file or the new one. What cannot be
//! replaced that way (a read-only file or folder, a file with other hard links, one owned
//! by someone this process cannot give a file to) is refused before anything is written.
//!
//! Every tagger (`tag`, `watch --write-tags`, in any process) claims the file with an
//! exclusive lock before it reads the tags and keeps it until its copy is renamed over the
//! file: without it, two taggers could both read the tags as they were, both find the path
//! unchanged just before their rename, and the second rename replace the first's values
//! (written without `--overwrite`) unseen.

use std::fs::{self, File, Metadata, TryLockError};
use std::io::{self, Seek};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::cache::FileIdentity;

/// Names a named pipe that the writer reads to its end between flushing the tagged copy
/// and renaming it: the seam where a test kills it. Unset in normal use.
pub const PAUSE_FIFO_ENV: &str = "EVAL_CLI_TAG_PAUSE_FIFO";

/// Why a file is not replaced.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Not a regular file (a folder, a pipe, a device).
    #[error("not a regular file")]
    NotRegular,
    /// Nobody may write the file.
    #[error("read-only file")]
    ReadOnlyFile,
    /// Nobody may write the folder, where the copy must be made.
    #[error("read-only folder {}", .0.display())]
    ReadOnlyFolder(PathBuf),
    /// The file has other names, which a rename would leave on the old content.
    #[error("the file has {0} hard links; replacing it would split them")]
    HardLinks(u64),
    /// The copy cannot be given the original's owner.
    #[error(
        "owned by another user (uid {uid}, gid {gid}); the tagged copy could not be given that owner: {source}"
    )]
    Owner {
        /// The owner of the file.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Why the copy could not be given them.
        source: io::Error,
    },
    /// Another process holds the file open for writing (a copy or a download still at
    /// work): its later bytes would go to the file the tagged copy replaced, lost.
    #[error(
        "another process has the file open for writing (a copy or download in progress?); left as it is"
    )]
    BeingWritten,
    /// Another tagger holds the file's lock: it is reading the tags or renaming its tagged
    /// copy over the file, and whatever this one wrote would replace that unseen.
    #[error("another eval-cli is tagging it; left as it is")]
    Claimed,
    /// The file changed while its copy was being tagged.
    #[error("the file changed while it was being tagged; left as it is")]
    Changed,
    /// The file is not the one that was analysed: written to or replaced since (the values
    /// measured belong to other audio).
    #[error("the file changed while it was being analysed; left as it is")]
    ChangedSinceAnalysis,
    /// A read, write or rename failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> ReplaceError {
    move |source| ReplaceError::Io { what, source }
}

/// A file found safe to replace, and what it was when checked.
#[derive(Debug)]
pub struct Replaceable {
    path: PathBuf,
    before: Metadata,
}

impl Replaceable {
    /// Checks that `path` (a path with no links left in it) can be replaced safely.
    pub fn check(path: &Path) -> Result<Self, ReplaceError> {
        let before = fs::metadata(path).map_err(io_error("cannot read the file"))?;
        if !before.is_file() {
            return Err(ReplaceError::NotRegular);
        }
        // The mode bits, not access(2): a process run as root may write anything, and a
        // file or folder its owner made read-only is still not to be touched.
        if before.permissions().mode() & 0o222 == 0 {
            return Err(ReplaceError::ReadOnlyFile);
        }
        if before.nlink() > 1 {
            return Err(ReplaceError::HardLinks(before.nlink()));
        }
        if crate::writers::held_for_writing(&before) {
            return Err(ReplaceError::BeingWritten);
        }
        let folder = folder_of(path);
        let folder_meta = fs::metadata(folder).map_err(io_error("cannot read the folder"))?;
        if folder_meta.permissions().mode() & 0o222 == 0 {
            return Err(ReplaceError::ReadOnlyFolder(folder.to_path_buf()));
        }
        Ok(Replaceable {
            path: path.to_path_buf(),
            before,
        })
    }

    /// Refuses the file unless it is still `analysed`: the file whose audio gave the values
    /// about to be written.
    pub fn is_as_analysed(&self, analysed: &FileIdentity) -> Result<(), ReplaceError> {
        if FileIdentity::of(&self.before) == *analysed {
            Ok(())
        } else {
            Err(ReplaceError::ChangedSinceAnalysis)
        }
    }

    /// Claims `file` (the file at the path, opened since [`Replaceable::check`]) for this
    /// process, until `file` is closed: an exclusive, non-blocking lock, which another
    /// tagger holding it refuses ([`ReplaceError::Claimed`]) rather than waits on. Then the
    /// open file and the one the path names must both still be the one checked: a tagger
    /// that held the lock before may have renamed its copy over the path, and the lock
    /// taken is then on the old file, no longer named (its tags read now would be stale).
    /// Once claimed, no other tagger can replace the file, so the tags read from `file`
    /// from here on are the file's own until this one's rename.
    pub fn claim(&self, file: &File) -> Result<(), ReplaceError> {
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(ReplaceError::Claimed),
            // A file system that cannot lock a file open for reading (NFS emulates the lock
            // with a write lock, `EBADF`; opened for writing, the file would look to every
            // tagger like a copy at work): tagged unlocked, as before the lock, the checks
            // here and before the rename still made.
            Err(TryLockError::Error(_)) => {}
        }
        let open = file.metadata().map_err(io_error("cannot read the file"))?;
        let named = fs::metadata(&self.path).map_err(io_error("cannot read the file"))?;
        let checked = FileIdentity::of(&self.before);
        if FileIdentity::of(&open) == checked && FileIdentity::of(&named) == checked {
            Ok(())
        } else {
            Err(ReplaceError::Changed)
        }
    }

    /// Copies `original` (the open file) to a temporary file beside it, lets `edit` change
    /// the copy, then renames the copy over the file. `edit`'s error leaves the file as it
    /// was (the copy is deleted).
    pub fn replace<E: From<ReplaceError>>(
        self,
        original: &mut File,
        edit: impl FnOnce(&mut File) -> Result<(), E>,
    ) -> Result<(), E> {
        let folder = folder_of(&self.path);
        // The name's start only, so that the copy's name stays within the 255 bytes a
        // name may have whatever the file's own.
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let end = name
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&end| end <= 100)
            .last()
            .unwrap_or(0);
        let start = &name[..end];
        let mut copy = tempfile::Builder::new()
            .prefix(&format!(".{start}."))
            .suffix(".tagging")
            .tempfile_in(folder)
            .map_err(io_error("cannot make a temporary file in the folder"))?;
        original
            .rewind()
            .map_err(io_error("cannot read the file"))?;
        io::copy(original, copy.as_file_mut()).map_err(io_error("cannot copy the file"))?;
        edit(copy.as_file_mut())?;

        fs::set_permissions(copy.path(), self.before.permissions())
            .map_err(io_error("cannot set the copy's permissions"))?;
        let made = copy
            .as_file()
            .metadata()
            .map_err(io_error("cannot read the copy"))?;
        let (uid, gid) = (self.before.uid(), self.before.gid());
        if (made.uid(), made.gid()) != (uid, gid) {
            std::os::unix::fs::chown(copy.path(), Some(uid), Some(gid))
                .map_err(|source| ReplaceError::Owner { uid, gid, source })?;
            // chown clears the set-user-ID and set-group-ID bits: set the mode again.
            fs::set_permissions(copy.path(), self.before.permissions())
                .map_err(io_error("cannot set the copy's permissions"))?;
        }
        copy.as_file()
            .sync_all()
            .map_err(io_error("cannot flush the copy"))?;

        pause_before_rename();
        let now = fs::metadata(&self.path).map_err(io_error("cannot read the file"))?;
        // Not written to or replaced since it was checked, and no writer came meanwhile.
        if FileIdentity::of(&self.before) != FileIdentity::of(&now) {
            return Err(ReplaceError::Changed.into());
        }
        if crate::writers::held_for_writing(&now) {
            return Err(ReplaceError::BeingWritten.into());
        }
        copy.persist(&self.path).map_err(|e| ReplaceError::Io {
            what: "cannot rename the copy over the file",
            source: e.error,
        })?;
        // The rename itself reaches the disk with the folder's entry.
        if let Ok(dir) = File::open(folder) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// The folder holding `path` (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Blocks on the pipe [`PAUSE_FIFO_ENV`] names, when it names one, until its writer
/// closes it.
fn pause_before_rename() {
    if let Some(fifo) = std::env::var_os(PAUSE_FIFO_ENV)
        && let Ok(mut pipe) = File::open(fifo)
    {
        let _ = io::copy(&mut pipe, &mut io::sink());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join("a.bin");
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_copy_replaces_the_file_with_its_mode_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o640);
        let mut original = File::open(&path).unwrap();
        Replaceable::check(&path)
            .unwrap()
            .replace::<ReplaceError>(&mut original, |copy| {
                io::Write::write_all(copy, b"+tags").unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"audio+tags");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no copy left");
    }

    #[test]
    fn a_file_whose_name_has_the_most_bytes_a_name_may_have_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // 62 four-byte characters and `.mp3`: 252 bytes.
        let path = dir.path().join(format!("{}.mp3", "🎵".repeat(62)));
        fs::write(&path, b"audio").unwrap();
        let mut original = File::open(&path).unwrap();
        Replaceable::check(&path)
            .unwrap()
            .replace::<ReplaceError>(&mut original, |_| Ok(()))
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"audio");
    }

    #[test]
    fn a_failed_edit_leaves_the_file_and_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o644);
        let mut original = File::open(&path).unwrap();
        let result = Replaceable::check(&path)
            .unwrap()
            .replace(&mut original, |_| Err(ReplaceError::Changed));
        assert!(matches!(result, Err(ReplaceError::Changed)));
        assert_eq!(fs::read(&path).unwrap(), b"audio");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Refused by the mode bits even for root, who could write them anyway.
    #[test]
    fn read_only_files_and_folders_and_hard_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o444);
        assert!(matches!(
            Replaceable::check(&path),
            Err(ReplaceError::ReadOnlyFile)
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::hard_link(&path, dir.path().join("b.bin")).unwrap();
        assert!(matches!(
            Replaceable::check(&path),
            Err(ReplaceError::HardLinks(2))
        ));
        fs::remove_file(dir.path().join("b.bin")).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        let refused = Replaceable::check(&path);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(refused, Err(ReplaceError::ReadOnlyFolder(_))));
        assert!(Replaceable::check(dir.path()).is_err(), "a folder");
    }

    /// Another open file description holding the lock (another process's, as `flock(2)`
    /// sees it) refuses the claim; once it lets go, the file is claimed.
    #[test]
    fn a_file_another_tagger_holds_is_refused_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o644);
        let other = File::open(&path).unwrap();
        other.lock().unwrap();
        let checked = Replaceable::check(&path).unwrap();
        let file = File::open(&path).unwrap();
        let refused = checked.claim(&file);
        assert!(matches!(refused, Err(ReplaceError::Claimed)), "{refused:?}");
        drop(other);
        checked.claim(&file).unwrap();
        let again = Replaceable::check(&path).unwrap();
        let second = File::open(&path).unwrap();
        assert!(matches!(again.claim(&second), Err(ReplaceError::Claimed)));
    }

    /// The other tagger renamed its copy over the path and let go: the lock is taken, but
    /// on the old file, which the path no longer names. Opened before the rename or after
    /// it, the claim is refused (the tags read would not be the file's).
    #[test]
    fn a_file_renamed_over_before_the_claim_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o644);
        let copy = dir.path().join("copy");
        let checked = Replaceable::check(&path).unwrap();
        let old = File::open(&path).unwrap();
        fs::write(&copy, b"audio+tags").unwrap();
        fs::rename(&copy, &path).unwrap();
        let refused = checked.claim(&old);
        assert!(matches!(refused, Err(ReplaceError::Changed)), "{refused:?}");
        let new = File::open(&path).unwrap();
        let refused = checked.claim(&new);
        assert!(matches!(refused, Err(ReplaceError::Changed)), "{refused:?}");
        // Checked again, the new file is claimed.
        Replaceable::check(&path).unwrap().claim(&new).unwrap();
    }

    #[test]
    fn a_file_written_to_meanwhile_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), b"audio", 0o644);
        let mut original = File::open(&path).unwrap();
        let result =
            Replaceable::check(&path)
                .unwrap()
                .replace::<ReplaceError>(&mut original, |_| {
                    fs::write(&path, b"someone else's audio").unwrap();
                    Ok(())
                });
        assert!(matches!(result, Err(ReplaceError::Changed)), "{result:?}");
        assert_eq!(fs::read(&path).unwrap(), b"someone else's audio");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
