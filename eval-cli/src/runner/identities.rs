//! Which file each row of a result file was read from: `OUT.identities.csv` beside it, one
//! line `path,identity,taken_at` appended after each row (the file's [`FileIdentity`]:
//! device, inode, size, modification and change times, taken before the run read it; and
//! the moment, in nanoseconds since the epoch, read from the clock before it was taken).
//! `--resume` keeps a row only while its file still has that identity and the identity was
//! clean when taken ([`FileIdentity::still_holds`], the cache's rule): a file rewritten or
//! replaced between two runs is analysed again instead of keeping the row of the audio it
//! held before, and so is one written within a timestamp tick of the moment its identity
//! was taken, which a second write in that tick could change unseen (git's "racy clean").
//! A row with no identity logged (a kill between the two writes, or a log of an older
//! layout) is analysed again too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use crate::cache::{self, FileIdentity};
use crate::output;

/// The log's header line. A log with another header (the older `path,identity`, which
/// had no moments) is started afresh: every row it covered is analysed again.
const HEADER: &[u8] = b"path,identity,taken_at\n";

/// What the log holds for a row's file: its identity before the run read it, and when
/// that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    /// The file's identity before the row was made.
    pub identity: FileIdentity,
    /// When it was taken, by the clock (before the `stat`).
    pub taken_at: SystemTime,
}

impl Logged {
    /// Whether a file whose identity is `now` may keep its row unread: the same identity,
    /// and not racy when taken ([`FileIdentity::still_holds`]).
    pub fn trusts(&self, now: &FileIdentity) -> bool {
        self.identity.still_holds(self.taken_at, now)
    }
}

/// The identity log of a result file, appended to as its rows are.
#[derive(Debug)]
pub struct IdentityLog {
    file: File,
}

impl IdentityLog {
    /// The suffix of the identity log beside a result file.
    pub const SUFFIX: &str = ".identities.csv";

    /// Where the identities of the rows of `csv` live: `CSV.identities.csv`.
    pub fn path_of(csv: &Path) -> PathBuf {
        output::side_path(csv, Self::SUFFIX)
    }

    /// Starts the log of `csv` afresh (checked by the output rules, as the CSV is).
    pub fn create(csv: &Path) -> anyhow::Result<Self> {
        let dest = output::Destination::check_protected(&Self::path_of(csv))?;
        let path = dest.target();
        let mut file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(HEADER)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(IdentityLog { file })
    }

    /// Opens the log of `csv` to continue a run: what was logged for each path cell (the
    /// last, where a path was logged twice). A missing log starts afresh, with none.
    pub fn resume(csv: &Path) -> anyhow::Result<(Self, HashMap<String, Logged>)> {
        let path = Self::path_of(csv);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) if bytes.starts_with(HEADER) => bytes,
            Ok(_) => return Ok((Self::create(csv)?, HashMap::new())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Self::create(csv)?, HashMap::new()));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut logged = HashMap::new();
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        // A line cut by a kill is the last: whatever of it parses is an identity no file
        // has, and only costs that file a second analysis.
        for record in reader.records().map_while(Result::ok) {
            let identity = record.get(1).and_then(|id| id.parse().ok());
            let taken_at = record.get(2).and_then(|at| at.parse().ok());
            if let (Some(cell), Some(identity), Some(at)) = (record.get(0), identity, taken_at) {
                let taken_at = cache::time_of(at);
                logged.insert(cell.to_string(), Logged { identity, taken_at });
            }
        }
        let dest = output::Destination::check_protected(&path)?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(dest.target())
            .with_context(|| format!("cannot open {}", path.display()))?;
        // A cut last line is ended, so the next one starts on a line of its own.
        if !bytes.ends_with(b"\n") {
            file.write_all(b"\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok((IdentityLog { file }, logged))
    }

    /// Logs the identity a row's file had before it was read, taken at `taken_at` (a
    /// moment read from the clock before the `stat`); nothing when it had none (a file
    /// that could not be looked at, whose row is analysed again on resume).
    pub fn append(
        &mut self,
        path_cell: &str,
        identity: Option<&FileIdentity>,
        taken_at: SystemTime,
    ) -> io::Result<()> {
        let Some(identity) = identity else {
            return Ok(());
        };
        let mut line = csv::Writer::from_writer(Vec::new());
        let at = cache::nanos_of(taken_at).to_string();
        line.write_record([path_cell, &identity.to_string(), &at])?;
        let line = line.into_inner().map_err(|e| e.into_error())?;
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A moment well after any file of the test was written: identities taken then are
    /// clean.
    fn an_hour_on() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    #[test]
    fn identities_survive_a_resume_the_last_one_wins_and_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("out.csv");
        let song = dir.path().join("a, \"b\".wav");
        std::fs::write(&song, b"x").unwrap();
        let first = FileIdentity::of_path(&song).unwrap();
        let at = an_hour_on();
        let (mut log, logged) = IdentityLog::resume(&csv).unwrap();
        assert!(logged.is_empty());
        log.append("a, \"b\".wav", Some(&first), at).unwrap();
        log.append("gone.wav", None, at).unwrap();
        drop(log);
        let (mut log, logged) = IdentityLog::resume(&csv).unwrap();
        assert_eq!(logged.len(), 1);
        let expected = Logged {
            identity: first,
            taken_at: at,
        };
        assert_eq!(logged["a, \"b\".wav"], expected);
        assert!(logged["a, \"b\".wav"].trusts(&first) || cfg!(not(unix)));
        std::fs::write(&song, b"longer").unwrap();
        let second = FileIdentity::of_path(&song).unwrap();
        assert_ne!(first, second);
        assert!(!logged["a, \"b\".wav"].trusts(&second));
        log.append("a, \"b\".wav", Some(&second), at).unwrap();
        drop(log);
        let (_, logged) = IdentityLog::resume(&csv).unwrap();
        assert_eq!(logged["a, \"b\".wav"].identity, second);
        IdentityLog::create(&csv).unwrap();
        assert!(IdentityLog::resume(&csv).unwrap().1.is_empty());
    }

    /// An identity taken within a timestamp tick of the file's last write is not trusted
    /// on resume, though the file still has it: a second write in that tick would have
    /// left it unchanged. The moments are given, not waited for.
    #[cfg(unix)]
    #[test]
    fn an_identity_taken_as_its_file_was_written_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("out.csv");
        let song = dir.path().join("a.wav");
        std::fs::write(&song, b"x").unwrap();
        let identity = FileIdentity::of_path(&song).unwrap();
        let (mut log, _) = IdentityLog::resume(&csv).unwrap();
        // Taken the moment the file was written (its ctime): racy.
        let written = std::fs::metadata(&song).unwrap().modified().unwrap();
        log.append("racy.wav", Some(&identity), written).unwrap();
        log.append("clean.wav", Some(&identity), an_hour_on())
            .unwrap();
        drop(log);
        let (_, logged) = IdentityLog::resume(&csv).unwrap();
        assert!(
            !logged["racy.wav"].trusts(&identity),
            "same identity, racy when taken"
        );
        assert!(logged["clean.wav"].trusts(&identity));
    }

    /// A log of the older layout (no moments) trusts nothing: its rows are analysed again.
    #[test]
    fn a_log_without_moments_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("out.csv");
        std::fs::write(
            IdentityLog::path_of(&csv),
            "path,identity\na.wav,1:2:3:4:5\n",
        )
        .unwrap();
        assert!(IdentityLog::resume(&csv).unwrap().1.is_empty());
    }
}
