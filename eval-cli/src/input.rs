//! Reading a whole input file that a user names (a manifest, an annotation, a predictions
//! CSV, a report or thresholds file) without letting what is there hang the run or fill
//! memory: a named pipe without a writer blocked its reader forever, and `/dev/zero` (or
//! a link to it) was read until memory ran out.

use std::io::Read;
use std::path::Path;

use analyzer_core::decode::open_regular;
use anyhow::Context;

/// The most bytes read from a file that names a file per line (a manifest CSV, a `csv:`
/// predictions file): a million rows is about 100 MB.
pub const MAX_TABLE_BYTES: u64 = 1 << 30;

/// The most bytes read from a small file: one track's annotation (`.bpm`, `.key`, JAMS),
/// a report's summary or a thresholds file.
pub const MAX_SMALL_BYTES: u64 = 64 << 20;

/// The most bytes read from a result file (`analyze --out`'s rows, read again by
/// `--resume` and `merge`): a regular file's own length bounds what is read; this only
/// names a file larger than memory could hold.
pub const MAX_RESULT_BYTES: u64 = 16 << 30;

/// [`read_regular`], or `None` when nothing is at `path` (a missing side file, a first run).
pub fn read_regular_if_any(path: &Path, cap: u64, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_regular(path, cap, what).map(Some),
    }
}

/// The bytes of the file at `path`, `what` (`"manifest "`, or `""`) saying which in errors.
///
/// It is opened only as a regular file ([`open_regular`], which looks before it opens and
/// opens without blocking): a named pipe, a socket, a device or a folder, or a link to one,
/// is an error naming the path and what it is, and nothing is read from it. A file over
/// `cap` bytes is refused naming the path and the cap, whether its size says so (nothing is
/// then read) or it grows while read (at most `cap + 1` bytes are).
pub fn read_regular(path: &Path, cap: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let cannot = || format!("cannot read {what}{}", path.display());
    let file = open_regular(path).with_context(cannot)?;
    let too_big = || {
        anyhow::anyhow!(
            "{what}{} is larger than {}, more than is read from such a file",
            path.display(),
            size_text(cap)
        )
    };
    if file.metadata().with_context(cannot)?.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(cannot)?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text; text that is not UTF-8 is an error naming the path.
pub fn read_regular_text(path: &Path, cap: u64, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_regular(path, cap, what)?)
        .with_context(|| format!("cannot read {what}{}: not UTF-8 text", path.display()))
}

/// `bytes` for a message: whole GiB or MiB where it is one (`64 MiB`, `1 GiB`), else bytes.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_regular_file_is_read_whole_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        fs::write(&path, b"file,bpm\n").unwrap();
        assert_eq!(read_regular(&path, 9, "manifest ").unwrap(), b"file,bpm\n");
        let err = format!("{:#}", read_regular(&path, 8, "manifest ").unwrap_err());
        assert_eq!(
            err,
            format!(
                "manifest {} is larger than 8 bytes, more than is read from such a file",
                path.display()
            )
        );
        // Sparse: refused by its size, nothing read.
        fs::File::create(&path)
            .unwrap()
            .set_len(MAX_TABLE_BYTES + 1)
            .unwrap();
        let err = format!(
            "{:#}",
            read_regular(&path, MAX_TABLE_BYTES, "").unwrap_err()
        );
        assert!(err.contains("m.csv is larger than 1 GiB"), "{err}");
    }

    #[test]
    fn a_missing_file_or_a_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.bpm");
        let err = format!("{:#}", read_regular(&missing, 10, "").unwrap_err());
        assert!(
            err.starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_regular(dir.path(), 10, "predictions ").unwrap_err()
        );
        assert!(
            err.starts_with(&format!(
                "cannot read predictions {}: ",
                dir.path().display()
            )) && err.contains("directory"),
            "{err}"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        fs::write(&path, b"E\xFF minor").unwrap();
        let err = format!("{:#}", read_regular_text(&path, 100, "").unwrap_err());
        assert!(err.contains("x.key: not UTF-8"), "{err}");
    }

    /// A device (or a link to one) is refused before anything is read; a named pipe
    /// without a writer is refused at once instead of blocking.
    #[cfg(unix)]
    #[test]
    fn a_pipe_or_a_device_is_refused_naming_it() {
        let err = format!(
            "{:#}",
            read_regular(Path::new("/dev/zero"), MAX_SMALL_BYTES, "").unwrap_err()
        );
        assert!(err.contains("/dev/zero") && err.contains("device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("01.bpm");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = format!(
            "{:#}",
            read_regular(&link, MAX_SMALL_BYTES, "").unwrap_err()
        );
        assert!(err.contains("01.bpm") && err.contains("device"), "{err}");

        let fifo = dir.path().join("p.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // The opening would block in a reader that is not guarded: a writer waits, so that
        // such a reader sees end-of-file and fails the test instead of hanging it.
        let target = fifo.clone();
        let writer = std::thread::spawn(move || {
            drop(fs::OpenOptions::new().write(true).open(target));
        });
        let err = format!(
            "{:#}",
            read_regular(&fifo, MAX_TABLE_BYTES, "").unwrap_err()
        );
        {
            use std::os::unix::fs::OpenOptionsExt;
            let release = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap();
            writer.join().unwrap();
            drop(release);
        }
        assert!(
            err.contains("p.csv") && err.contains("named pipe (FIFO), not a regular file"),
            "{err}"
        );
    }
}
