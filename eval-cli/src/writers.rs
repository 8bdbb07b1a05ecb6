//! Whether another process holds a file open for writing: a copy, a download or an
//! encoder still at work. A file's size and times say nothing of a writer that paused, and
//! a file replaced while one writes to it (a tagged copy renamed over it) loses the rest of
//! what that writer writes: its bytes go to the old file, which no name holds any more.
//!
//! Linux shows every process's open files under `/proc/PID/fd`, and each one's open mode
//! under `/proc/PID/fdinfo`; a process sees those of the processes it may trace (its own
//! user's, or every one as root), so a writer of another user goes unseen. Elsewhere
//! nothing is known, and no file is held.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The files (device, inode) some process holds open for writing, as one look at `/proc`
/// found them.
#[derive(Debug, Default)]
pub struct Writers {
    held: HashSet<(u64, u64)>,
}

impl Writers {
    /// Looks once at every process's open files.
    pub fn scan() -> Self {
        let mut held = HashSet::new();
        each_open_file(|file, writing| {
            if writing() {
                held.insert(file);
            }
        });
        Writers { held }
    }

    /// Whether the file `meta` describes was held open for writing when [`Writers::scan`]
    /// looked.
    pub fn hold(&self, meta: &Metadata) -> bool {
        self.held.contains(&(meta.dev(), meta.ino()))
    }
}

/// Whether some process holds the file `meta` describes open for writing now: one look at
/// `/proc`, reading the open mode of that file's descriptors alone.
pub fn held_for_writing(meta: &Metadata) -> bool {
    let target = (meta.dev(), meta.ino());
    let mut held = false;
    each_open_file(|file, writing| {
        if !held && file == target && writing() {
            held = true;
        }
    });
    held
}

/// Calls `visit` with every regular file some process has open (device, inode) and a way
/// to ask whether that descriptor was opened for writing. Processes and descriptors that
/// come and go meanwhile, or that may not be read, are passed over.
fn each_open_file(mut visit: impl FnMut((u64, u64), &dyn Fn() -> bool)) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(processes) = fs::read_dir("/proc") else {
        return;
    };
    for process in processes.flatten() {
        let pid = process.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for descriptor in descriptors.flatten() {
            // The file the descriptor is open on (the link followed), not the link.
            let Ok(meta) = fs::metadata(descriptor.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let info = process.path().join("fdinfo").join(descriptor.file_name());
            visit((meta.dev(), meta.ino()), &|| opened_for_writing(&info));
        }
    }
}

/// Whether the descriptor whose `/proc/PID/fdinfo/FD` is `info` was opened write-only or
/// read-write (`flags:` in octal; its two low bits are the access mode).
fn opened_for_writing(info: &Path) -> bool {
    let Ok(text) = fs::read_to_string(info) else {
        return false;
    };
    text.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs::File;

    /// A file this process has open for writing is held; one open for reading only, or
    /// closed again, is not.
    #[test]
    fn a_file_open_for_writing_is_held_and_one_open_for_reading_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        fs::write(&path, b"RIFF").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let reader = File::open(&path).unwrap();
        assert!(!held_for_writing(&meta));
        assert!(!Writers::scan().hold(&meta));
        let writer = File::options().append(true).open(&path).unwrap();
        assert!(held_for_writing(&meta));
        assert!(Writers::scan().hold(&meta));
        drop(writer);
        assert!(!held_for_writing(&meta));
        assert!(!Writers::scan().hold(&meta));
        drop(reader);
    }

    #[test]
    fn the_access_mode_is_read_from_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("fdinfo");
        for (flags, writing) in [("02100000", false), ("0100001", true), ("02", true)] {
            fs::write(&info, format!("pos:\t0\nflags:\t{flags}\nmnt_id:\t30\n")).unwrap();
            assert_eq!(opened_for_writing(&info), writing, "{flags}");
        }
        assert!(!opened_for_writing(&dir.path().join("gone")));
    }
}
