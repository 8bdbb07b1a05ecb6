//! A CSV file that survives being killed: rows are appended as files finish, each in one
//! write of a whole line, so an interrupted run keeps every finished row and never a cut
//! one; when the batch completes, the file is rewritten in input order (through
//! [`crate::output::replace`]: a temporary file, synced, then renamed over), so a complete
//! file has the same bytes for any worker count. A later run can pick up the rows already
//! there ([`RowLog::resume`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::input;
use crate::output;

/// A row found in a file being resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedRow {
    /// The row's cells, decoded lossily as UTF-8.
    pub fields: Vec<String>,
    /// The row's bytes as written, line end included, to be written back unchanged.
    pub line: Vec<u8>,
}

impl ResumedRow {
    /// Refuses a row without `columns` cells: one cut short or padded by hand. The reader
    /// takes rows of any width (so that a row cut by a kill is found and trimmed, not a
    /// parse error), so whatever passes rows on (`--resume`, `merge`) checks this first.
    /// `number` counts rows from 1 after the header.
    pub fn check_width(&self, number: usize, columns: usize) -> anyhow::Result<()> {
        if self.fields.len() != columns {
            bail!(
                "row {number} ({:?}) has {} cells, not {columns}",
                self.fields.first().map_or("", String::as_str),
                self.fields.len()
            );
        }
        Ok(())
    }
}

/// A result file being appended to.
#[derive(Debug)]
pub struct RowLog {
    path: PathBuf,
    file: File,
}

impl RowLog {
    /// Starts `path` afresh: truncated, holding only `header` (a whole line). `path` is
    /// checked by the output rules first (against the files [`output::protect`]ed; a
    /// symlink's target is what is written).
    pub fn create(path: &Path, header: &[u8]) -> anyhow::Result<Self> {
        let dest = output::Destination::check_protected(path)?;
        let path = dest.target();
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
        let (keep, rows) = read_whole_rows(path, header)?;
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

    /// The file being written (a symlink's target).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one whole line (or several) in a single write.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        self.file.write_all(line)?;
        self.file.flush()
    }

    /// Replaces the file with `header` and `rows`, atomically ([`output::replace`]).
    pub fn finish<'a>(
        self,
        header: &[u8],
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> anyhow::Result<()> {
        self.finish_with(|out| {
            out.write_all(header)?;
            for row in rows {
                out.write_all(row)?;
            }
            Ok(())
        })
    }

    /// Replaces the file with what `write` writes (header included), atomically
    /// ([`output::replace`]): for rows written as they are rendered.
    pub fn finish_with(
        self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        drop(self.file);
        output::replace(&self.path, write)?;
        Ok(())
    }
}

/// The whole rows of the result file `path` (after `header`) that [`RowLog::resume`] would
/// keep, read without changing the file; none when it is missing.
pub fn resumable_rows(path: &Path, header: &[u8]) -> anyhow::Result<Vec<ResumedRow>> {
    Ok(read_whole_rows(path, header)?.1)
}

/// [`whole_rows`] of the file at `path`, which may be missing (no rows).
fn read_whole_rows(path: &Path, header: &[u8]) -> anyhow::Result<(usize, Vec<ResumedRow>)> {
    let bytes = input::read_regular_if_any(path, input::MAX_RESULT_BYTES, "")?.unwrap_or_default();
    whole_rows(&bytes, header).with_context(|| format!("cannot resume {}", path.display()))
}

/// The rows of a finished result file `path` (after `header`, which must be its first
/// line), refused when it ends in a cut row.
pub fn read_rows(path: &Path, header: &[u8]) -> anyhow::Result<Vec<ResumedRow>> {
    // Only a regular file: a pipe named as a part hung merge, `/dev/zero` filled memory.
    let bytes = input::read_regular(path, input::MAX_RESULT_BYTES, "")?;
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
        // The reader ends a record at the `\r` of `\r\n`, so a file whose lines end in CRLF
        // (saved by a Windows editor) read as one cut row and was silently started afresh.
        if line.ends_with(b"\r") && bytes.get(end) == Some(&b'\n') {
            bail!(
                "its lines end in CRLF (\\r\\n), as some editors save them; this tool reads \
                 the LF lines it writes: convert the file back (sed -i 's/\\r$//' FILE)"
            );
        }
        if !line.ends_with(b"\n") || !closes_its_quotes(line) {
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

/// Whether a record's bytes close every quote they open. A quoted field toggles the
/// quoting at each `"` (a doubled `""` toggles twice), so a whole record holds an even
/// number of them; a record cut inside a quoted field (just after a newline in a name,
/// say) holds an odd number, though its last byte may be a newline.
fn closes_its_quotes(line: &[u8]) -> bool {
    line.iter().filter(|&&b| b == b'"').count() % 2 == 0
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
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_row_cut_inside_a_quoted_field_after_a_newline_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        for cut in [&b"\"b\n"[..], b"\"b\nc\"\"\n", b"\"b\"\"\n"] {
            let mut bytes = b"path,n\na,1\n".to_vec();
            bytes.extend(cut);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(resumable_rows(&path, HEADER).unwrap().len(), 1);
            let (_, rows) = RowLog::resume(&path, HEADER).unwrap();
            assert_eq!(rows.len(), 1, "{:?}", String::from_utf8_lossy(cut));
            assert_eq!(rows[0].fields, ["a", "1"]);
            assert_eq!(std::fs::read(&path).unwrap(), b"path,n\na,1\n");
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_rows(&path, HEADER).is_err(), "a cut file is not whole");
        }
    }

    /// CRLF lines (the header's, or only the rows') are refused, naming the cause, and the
    /// file keeps its bytes; they were read as a cut row and the file started afresh.
    #[test]
    fn crlf_lines_are_refused_and_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        for bytes in [&b"path,n\r\na,1\r\n"[..], b"path,n\na,1\r\nb,2\r\n"] {
            std::fs::write(&path, bytes).unwrap();
            let err = format!("{:#}", RowLog::resume(&path, HEADER).unwrap_err());
            assert!(err.contains("CRLF"), "{err}");
            assert!(format!("{:#}", read_rows(&path, HEADER).unwrap_err()).contains("CRLF"));
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        // A name holding CR LF inside quotes is a name, not a line end.
        std::fs::write(&path, b"path,n\n\"a\r\nb\",1\n").unwrap();
        assert_eq!(read_rows(&path, HEADER).unwrap()[0].fields, ["a\r\nb", "1"]);
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
