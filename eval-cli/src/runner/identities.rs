//! Which file each row of a result file was read from: `OUT.identities.csv` beside it, one
//! line `path,identity` appended after each row (the file's [`FileIdentity`]: device,
//! inode, size, modification and change times, taken before the run read it). `--resume`
//! keeps a row only while its file still has that identity, so a file rewritten or
//! replaced between two runs is analysed again instead of keeping the row of the audio it
//! held before. A row with no identity logged (a kill between the two writes) is analysed
//! again too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cache::FileIdentity;
use crate::output;

/// The log's header line.
const HEADER: &[u8] = b"path,identity\n";

/// The identity log of a result file, appended to as its rows are.
#[derive(Debug)]
pub struct IdentityLog {
    file: File,
}

impl IdentityLog {
    /// Where the identities of the rows of `csv` live: `CSV.identities.csv`.
    pub fn path_of(csv: &Path) -> PathBuf {
        output::side_path(csv, ".identities.csv")
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

    /// Opens the log of `csv` to continue a run: the identity logged for each path cell
    /// (the last, where a path was logged twice). A missing log starts afresh, with none.
    pub fn resume(csv: &Path) -> anyhow::Result<(Self, HashMap<String, String>)> {
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
            if let (Some(cell), Some(identity)) = (record.get(0), record.get(1)) {
                logged.insert(cell.to_string(), identity.to_string());
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

    /// Logs the identity a row's file had before it was read; nothing when it had none
    /// (a file that could not be looked at, whose row is analysed again on resume).
    pub fn append(&mut self, path_cell: &str, identity: Option<&FileIdentity>) -> io::Result<()> {
        let Some(identity) = identity else {
            return Ok(());
        };
        let mut line = csv::Writer::from_writer(Vec::new());
        line.write_record([path_cell, &identity.to_string()])?;
        let line = line.into_inner().map_err(|e| e.into_error())?;
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_survive_a_resume_the_last_one_wins_and_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("out.csv");
        let song = dir.path().join("a, \"b\".wav");
        std::fs::write(&song, b"x").unwrap();
        let first = FileIdentity::of_path(&song).unwrap();
        let (mut log, logged) = IdentityLog::resume(&csv).unwrap();
        assert!(logged.is_empty());
        log.append("a, \"b\".wav", Some(&first)).unwrap();
        log.append("gone.wav", None).unwrap();
        drop(log);
        let (mut log, logged) = IdentityLog::resume(&csv).unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged["a, \"b\".wav"], first.to_string());
        std::fs::write(&song, b"longer").unwrap();
        let second = FileIdentity::of_path(&song).unwrap();
        assert_ne!(first, second);
        log.append("a, \"b\".wav", Some(&second)).unwrap();
        drop(log);
        let (_, logged) = IdentityLog::resume(&csv).unwrap();
        assert_eq!(logged["a, \"b\".wav"], second.to_string());
        IdentityLog::create(&csv).unwrap();
        assert!(IdentityLog::resume(&csv).unwrap().1.is_empty());
    }
}
