//! A file's identity as the file system gives it (device, inode, size, mtime and ctime in
//! nanoseconds), and what the cache records of it per path: that identity, the content
//! hash it had, and when it was taken. A file whose identity is unchanged since then is
//! trusted to hold the same bytes and is not read at all; that is what makes a rescan of
//! an unchanged library cost a `stat` per file rather than a read of every byte.
//!
//! **Racy clean**, as git guards its index: a write that lands within the file system's
//! timestamp granularity of the moment the identity was taken can change the bytes and
//! leave mtime, ctime and size as they were. So a recorded identity is trusted only if the
//! file's mtime and ctime are strictly older than the moment it was recorded minus that
//! granularity ([`FileIdentity::is_clean_at`]); otherwise the file is hashed next time,
//! and recorded again then. `analyze --resume` keeps a row by the same rule
//! (`runner/identities.rs`). The moment is read from the clock before the `stat`, and the
//! kernel stamps files from a clock that may lag it by a tick, so the margin is 100 ms on
//! file systems with sub-second times and 2 s where the times are whole seconds (FAT's
//! mtime is 2 s).

use std::fs::Metadata;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The margin for file systems that stamp nanoseconds: the kernel's coarse clock (one
/// tick, at most 10 ms), with room to spare.
const FINE_GRANULARITY: Duration = Duration::from_millis(100);

/// The margin where a time carries no sub-second part: whole seconds, or FAT's 2 s.
const COARSE_GRANULARITY: Duration = Duration::from_secs(2);

/// A point in time as nanoseconds since the Unix epoch (negative before it).
pub type Nanos = i128;

/// What a file was when it was looked at: device, inode, size, modification and change
/// times (nanoseconds). Two equal identities of one path say the file was not written to
/// or replaced in between, unless both writes fell within one timestamp tick (see
/// [`Recorded::is_clean`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Nanos,
    ctime: Nanos,
}

impl FileIdentity {
    /// The identity `meta` describes.
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let nanos = |secs: i64, nsec: i64| Nanos::from(secs) * 1_000_000_000 + Nanos::from(nsec);
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The identity `meta` describes: size and mtime only, so never trusted without
    /// reading ([`Recorded::is_clean`]).
    #[cfg(not(unix))]
    pub fn of(meta: &Metadata) -> Self {
        FileIdentity {
            dev: 0,
            ino: 0,
            len: meta.len(),
            mtime: meta.modified().map_or(0, nanos_of),
            ctime: 0,
        }
    }

    /// Whether `now` is this file with its bytes as they were: the same device, inode, size
    /// and mtime. A change of its metadata alone (mode, owner, a link made or removed, a
    /// rename) moves only ctime; a write moves mtime (a writer that sets it back still
    /// closes the file, which `watch` sees as an event of its own).
    pub fn same_content_as(&self, now: &FileIdentity) -> bool {
        (self.dev, self.ino, self.len, self.mtime) == (now.dev, now.ino, now.len, now.mtime)
    }

    /// The identity of the file `path` names now (symlinks followed, as the decoder does).
    pub fn of_path(path: &Path) -> io::Result<Self> {
        std::fs::metadata(path).map(|meta| Self::of(&meta))
    }

    /// Whether the times carry no sub-second part, as on file systems that keep whole
    /// seconds (or two).
    fn whole_seconds(&self) -> bool {
        self.mtime % 1_000_000_000 == 0 || self.ctime % 1_000_000_000 == 0
    }

    /// Whether this identity, taken at `at` (by the clock, read before the `stat`), may be
    /// trusted later without reading the file: its mtime and ctime are strictly older than
    /// `at` minus the granularity of its file system's times. A file written within that
    /// window may change again without its identity changing (git's "racy clean"). The
    /// one rule for the cache's records ([`Recorded::is_clean`]) and `--resume`'s log.
    pub fn is_clean_at(&self, at: SystemTime) -> bool {
        if cfg!(not(unix)) {
            return false;
        }
        let margin = if self.whole_seconds() {
            COARSE_GRANULARITY
        } else {
            FINE_GRANULARITY
        };
        let trusted_before = nanos_of(at) - margin.as_nanos() as Nanos;
        self.mtime < trusted_before && self.ctime < trusted_before
    }

    /// Whether a file whose identity is `now` still holds what it held when this identity
    /// was taken at `at`: the same identity, and clean then ([`FileIdentity::is_clean_at`]).
    pub fn still_holds(&self, at: SystemTime, now: &FileIdentity) -> bool {
        self == now && self.is_clean_at(at)
    }
}

/// A [`FileIdentity`] that does not parse from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a file identity (DEV:INO:SIZE:MTIME_NS:CTIME_NS): {0:?}")]
pub struct BadIdentity(String);

impl std::str::FromStr for FileIdentity {
    type Err = BadIdentity;

    /// The identity its [`Display`](std::fmt::Display) form wrote.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadIdentity(text.to_string());
        let mut fields = text.split(':');
        let mut next = || fields.next().ok_or_else(bad);
        let (dev, ino, len) = (next()?, next()?, next()?);
        let (mtime, ctime) = (next()?, next()?);
        if fields.next().is_some() {
            return Err(bad());
        }
        Ok(FileIdentity {
            dev: dev.parse().map_err(|_| bad())?,
            ino: ino.parse().map_err(|_| bad())?,
            len: len.parse().map_err(|_| bad())?,
            mtime: mtime.parse().map_err(|_| bad())?,
            ctime: ctime.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for FileIdentity {
    /// `DEV:INO:SIZE:MTIME_NS:CTIME_NS`: the form a result file's identity log keeps.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let FileIdentity {
            dev,
            ino,
            len,
            mtime,
            ctime,
        } = self;
        write!(f, "{dev}:{ino}:{len}:{mtime}:{ctime}")
    }
}

/// What the cache holds for a path: the file's identity, the BLAKE3 hash its bytes had,
/// and the moment (from the clock, taken before the identity) it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The file's identity before it was hashed.
    pub identity: FileIdentity,
    /// The BLAKE3 hash of its bytes.
    pub content: [u8; 32],
    /// When the identity was taken, by the clock (before the `stat`).
    pub at: SystemTime,
}

/// The layout of a stored [`Recorded`]: its first byte. A value of another layout is read
/// as no record (the file is hashed and recorded again), so a change of layout needs no
/// change of the rows' [`SCHEMA`](super::SCHEMA).
const LAYOUT: u8 = 1;

/// Bytes of a stored [`Recorded`]: layout, content, device, inode, size, three times.
const BODY_LEN: usize = 1 + 32 + 3 * 8 + 3 * 16;

/// Bytes of the checksum that seals it.
const CHECKSUM_LEN: usize = 16;

impl Recorded {
    /// Whether the identity may be trusted without reading the file: the file's mtime and
    /// ctime are strictly older than the moment of recording minus the granularity of its
    /// file system's times. A file written within that window may have changed without
    /// its identity changing (git's "racy clean"): it is hashed.
    pub fn is_clean(&self) -> bool {
        self.identity.is_clean_at(self.at)
    }

    /// Whether a file whose identity is `now` may be served from this record unread.
    pub fn trusts(&self, now: &FileIdentity) -> bool {
        self.identity.still_holds(self.at, now)
    }

    /// The stored bytes for the path whose key is `path_key`, sealed with a checksum of
    /// both.
    pub(super) fn seal(&self, path_key: &[u8]) -> Vec<u8> {
        let id = &self.identity;
        let mut bytes = Vec::with_capacity(BODY_LEN + CHECKSUM_LEN);
        bytes.push(LAYOUT);
        bytes.extend_from_slice(&self.content);
        for field in [id.dev, id.ino, id.len] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        for time in [id.mtime, id.ctime, nanos_of(self.at)] {
            bytes.extend_from_slice(&time.to_le_bytes());
        }
        let sum = checksum(path_key, &bytes);
        bytes.extend_from_slice(&sum);
        bytes
    }

    /// The record `bytes` hold for `path_key`, or `None` when they are of another layout
    /// or fail their checksum (the file is then hashed, as if never recorded).
    pub(super) fn unseal(path_key: &[u8], bytes: &[u8]) -> Option<Self> {
        let (body, sum) = bytes.split_at_checked(BODY_LEN)?;
        if body[0] != LAYOUT || sum != checksum(path_key, body) {
            return None;
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default());
        let time_at =
            |at: usize| Nanos::from_le_bytes(body[at..at + 16].try_into().unwrap_or_default());
        const TIMES: usize = 33 + 3 * 8;
        Some(Recorded {
            identity: FileIdentity {
                dev: u64_at(33),
                ino: u64_at(41),
                len: u64_at(49),
                mtime: time_at(TIMES),
                ctime: time_at(TIMES + 16),
            },
            content: body[1..33].try_into().ok()?,
            at: time_of(time_at(TIMES + 32)),
        })
    }
}

fn checksum(path_key: &[u8], body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(path_key);
    hasher.update(body);
    let mut sum = [0u8; CHECKSUM_LEN];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
    sum
}

/// Where the record of `path` is kept: its absolute form (no file system access, links
/// not resolved), so a run from another folder finds it. `None` if there is no current
/// folder to resolve a relative path against.
pub fn path_key(path: &Path) -> Option<Vec<u8>> {
    std::path::absolute(path)
        .ok()
        .map(|abs| abs.into_os_string().into_encoded_bytes())
}

/// `time` as nanoseconds since the Unix epoch (negative before it), the unit of a
/// [`FileIdentity`]'s times.
pub fn nanos_of(time: SystemTime) -> Nanos {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as Nanos,
        Err(before) => -(before.duration().as_nanos() as Nanos),
    }
}

/// The moment `nanos` (since the Unix epoch) stands for: the inverse of [`nanos_of`].
pub fn time_of(nanos: Nanos) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs().min(u64::MAX.into()) as u64);
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs::{File, FileTimes};

    /// A link made to a file and a chmod move only its ctime: the same content. A write
    /// of the same size does not keep it, nor does a file replaced under the name.
    #[test]
    fn metadata_changes_keep_the_content_identity_and_writes_do_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"abc").unwrap();
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(past))
            .unwrap();
        let before = FileIdentity::of_path(&path).unwrap();
        std::fs::hard_link(&path, dir.path().join("b.bin")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let linked = FileIdentity::of_path(&path).unwrap();
        assert_ne!(linked, before, "ctime moves");
        assert!(before.same_content_as(&linked));
        std::fs::write(&path, b"xyz").unwrap();
        assert!(!before.same_content_as(&FileIdentity::of_path(&path).unwrap()));
        std::fs::write(dir.path().join("c.bin"), b"abc").unwrap();
        std::fs::rename(dir.path().join("c.bin"), &path).unwrap();
        assert!(!before.same_content_as(&FileIdentity::of_path(&path).unwrap()));
    }

    fn file_with_mtime(dir: &Path, mtime: SystemTime) -> (std::path::PathBuf, FileIdentity) {
        let path = dir.join("a.bin");
        std::fs::write(&path, b"abc").unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_times(FileTimes::new().set_modified(mtime))
            .unwrap();
        (path.clone(), FileIdentity::of_path(&path).unwrap())
    }

    fn recorded(identity: FileIdentity, at: SystemTime) -> Recorded {
        Recorded {
            identity,
            content: [7; 32],
            at,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_and_only_for_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (_, identity) = file_with_mtime(dir.path(), UNIX_EPOCH + Duration::new(1_000, 5));
        let record = recorded(identity, UNIX_EPOCH + Duration::new(2_000_000_000, 123));
        let sealed = record.seal(b"/lib/a.mp3");
        assert_eq!(Recorded::unseal(b"/lib/a.mp3", &sealed), Some(record));
        assert_eq!(Recorded::unseal(b"/lib/b.mp3", &sealed), None, "other path");
        let mut flipped = sealed.clone();
        flipped[40] ^= 1;
        assert_eq!(Recorded::unseal(b"/lib/a.mp3", &flipped), None, "damaged");
        let mut other_layout = sealed.clone();
        other_layout[0] = LAYOUT + 1;
        assert_eq!(Recorded::unseal(b"/lib/a.mp3", &other_layout), None);
        assert_eq!(Recorded::unseal(b"/lib/a.mp3", &sealed[..20]), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_stamped_within_the_granularity_of_its_recording_is_racy() {
        // The mtime is set, not waited for. Setting it makes the ctime "now", so the
        // moment of recording is placed relative to both, as a later run would see it.
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (_, identity) = file_with_mtime(dir.path(), now);
        let ctime = time_of(identity.ctime);
        assert!(
            !recorded(identity, now).is_clean(),
            "mtime at the moment of recording"
        );
        let latest = ctime.max(now);
        assert!(!recorded(identity, latest + FINE_GRANULARITY).is_clean());
        let after = latest + FINE_GRANULARITY + Duration::from_millis(1);
        assert!(recorded(identity, after).is_clean(), "one margin later");

        // An mtime in the past with the ctime of now: still racy, by the ctime.
        let (_, old) = file_with_mtime(dir.path(), now - Duration::from_secs(3600));
        assert!(!recorded(old, time_of(old.ctime)).is_clean());
        assert!(recorded(old, time_of(old.ctime) + Duration::from_secs(1)).is_clean());

        // Whole-second times (a FAT volume, a file set with second precision) need 2 s.
        let (_, whole) = file_with_mtime(dir.path(), UNIX_EPOCH + Duration::from_secs(1_000));
        let at = time_of(whole.ctime) + Duration::from_millis(500);
        assert!(whole.whole_seconds());
        assert!(!recorded(whole, at).is_clean());
        assert!(recorded(whole, at + COARSE_GRANULARITY).is_clean());
    }

    #[test]
    fn an_identity_reads_back_from_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let (_, identity) = file_with_mtime(dir.path(), UNIX_EPOCH + Duration::new(1_000, 5));
        assert_eq!(identity.to_string().parse(), Ok(identity));
        for bad in ["", "1:2:3:4", "1:2:3:4:5:6", "1:2:x:4:5", "1:2:3:4:5 "] {
            assert!(bad.parse::<FileIdentity>().is_err(), "{bad:?}");
        }
        assert_eq!(
            time_of(nanos_of(UNIX_EPOCH - Duration::new(3, 7))),
            UNIX_EPOCH - Duration::new(3, 7)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_record_trusts_only_the_identity_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (path, identity) = file_with_mtime(dir.path(), UNIX_EPOCH + Duration::new(1, 1));
        let record = recorded(identity, time_of(identity.ctime) + Duration::from_secs(10));
        assert!(record.trusts(&identity));
        std::fs::write(&path, b"abd").unwrap();
        assert!(
            !record.trusts(&FileIdentity::of_path(&path).unwrap()),
            "same size, new bytes: new mtime and ctime"
        );
        let moved = dir.path().join("b.bin");
        std::fs::write(&moved, b"abc").unwrap();
        std::fs::rename(&moved, &path).unwrap();
        assert!(!record.trusts(&FileIdentity::of_path(&path).unwrap()));
    }
}
