//! A CSV file that survives being killed: rows are appended as files finish, each in one
//! write of a whole line, so an interrupted run keeps every finished row and never a cut
//! one; when the batch completes, the file is rewritten in input order (to a temporary
//! file, synced, then renamed over), so a complete file has the same bytes for any worker
//! count. A later run can pick up the rows already there ([`RowLog::resume`]).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A row found in a file being resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedRow {
    /// The row's cells, decoded lossily as UTF-8.
    pub fields: Vec<String>,
    /// The row's bytes as written, line end included, to be written back unchanged.
    pub line: Vec<u8>,
}

/// A result file being appended to.
#[derive(Debug)]
pub struct RowLog {
    path: PathBuf,
    file: File,
}

impl RowLog {
    /// Starts `path` afresh: truncated, holding only `header` (a whole line).
    pub fn create(path: &Path, header: &[u8]) -> anyhow::Result<Self> {
        let mut file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(header)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RowLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens `path` to continue a run: returns the whole rows already there (after the
    /// header) and cuts off a partial last line, if a kill left one. A missing or empty
    /// file starts afresh; a file with another header is refused.
    pub fn resume(path: &Path, header: &[u8]) -> anyhow::Result<(Self, Vec<ResumedRow>)> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let (keep, rows) = whole_rows(&bytes, header)
            .with_context(|| format!("cannot resume {}", path.display()))?;
        if keep == 0 {
            return Ok((Self::create(path, header)?, Vec::new()));
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(keep as u64)
            .with_context(|| format!("cannot trim {}", path.display()))?;
        Ok((
            RowLog {
                path: path.to_path_buf(),
                file,
            },
            rows,
        ))
    }

    /// Appends one whole line (or several) in a single write.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        self.file.write_all(line)?;
        self.file.flush()
    }

    /// Replaces the file with `header` and `rows`, atomically: written to `FILE.tmp`,
    /// synced, renamed over `FILE`.
    pub fn finish<'a>(
        self,
        header: &[u8],
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> anyhow::Result<()> {
        drop(self.file);
        let mut tmp_name: OsString = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let write = || -> io::Result<()> {
            let mut out = io::BufWriter::new(File::create(&tmp)?);
            out.write_all(header)?;
            for row in rows {
                out.write_all(row)?;
            }
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Best effort: makes the rename itself durable where directories can be synced.
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(())
        };
        write().with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// The rows of a finished result file `path` (after `header`, which must be its first
/// line), refused when it ends in a cut row.
pub fn read_rows(path: &Path, header: &[u8]) -> anyhow::Result<Vec<ResumedRow>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (keep, rows) =
        whole_rows(&bytes, header).with_context(|| format!("cannot read {}", path.display()))?;
    if keep == 0 || keep != bytes.len() {
        bail!(
            "{} is not a whole result file (no header, or a cut last row)",
            path.display()
        );
    }
    Ok(rows)
}

/// The length of the whole records of `bytes` (header included, 0 when there is no whole
/// header) and the rows after the header.
fn whole_rows(bytes: &[u8], header: &[u8]) -> anyhow::Result<(usize, Vec<ResumedRow>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut keep = 0;
    let mut rows = Vec::new();
    loop {
        let start = usize::try_from(reader.position().byte())?;
        if !reader.read_byte_record(&mut record)? {
            break;
        }
        let end = usize::try_from(reader.position().byte())?;
        let line = &bytes[start..end];
        if !line.ends_with(b"\n") {
            break; // cut short by a kill: dropped, and trimmed from the file
        }
        if keep == 0 {
            if line != header {
                bail!(
                    "its first line is not the header {:?}",
                    String::from_utf8_lossy(header).trim_end()
                );
            }
        } else {
            rows.push(ResumedRow {
                fields: record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
                line: line.to_vec(),
            });
        }
        keep = end;
    }
    Ok((keep, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"path,n\n";

    #[test]
    fn partial_last_line_is_dropped_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, b"path,n\na,1\n\"b\nc\",2\nd,").unwrap();
        let (mut log, rows) = RowLog::resume(&path, HEADER).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].fields, ["b\nc", "2"]);
        assert_eq!(rows[1].line, b"\"b\nc\",2\n");
        log.append(b"d,4\n").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"path,n\na,1\n\"b\nc\",2\nd,4\n"
        );
        log.finish(HEADER, [&b"d,4\n"[..], &b"a,1\n"[..]]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"path,n\nd,4\na,1\n");
        assert!(!dir.path().join("out.csv.tmp").exists());
    }

    #[test]
    fn missing_empty_or_cut_header_starts_afresh_and_other_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let (_, rows) = RowLog::resume(&path, HEADER).unwrap();
        assert!(rows.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), HEADER);
        std::fs::write(&path, b"pa").unwrap();
        let (_, rows) = RowLog::resume(&path, HEADER).unwrap();
        assert!(rows.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), HEADER);
        std::fs::write(&path, b"other,header\n").unwrap();
        assert!(RowLog::resume(&path, HEADER).is_err());
    }
}
