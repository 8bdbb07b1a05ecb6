//! Rows written to stdout, and a reader that stops reading them.
//!
//! `eval-cli analyze DIR | head` closes the pipe after the lines it wants; the next write
//! fails with a broken pipe (Rust ignores SIGPIPE, so it is an error, not a signal). Like
//! ripgrep and the Unix tools, the run then ends at once and quietly, with exit status 0:
//! the reader has what it asked for. Every other failed write (a full disk behind
//! `> FILE`) stays an error that names stdout. Every command that writes rows or lines to
//! stdout turns its write errors into an error here, and [`crate::run`] ends the run
//! quietly when it finds [`StdoutClosed`] among an error's causes. A command whose exit
//! status says more than "done" (`check`'s failed gate, an interrupted `evaluate`) keeps
//! that status when its closing lines find stdout closed ([`keep_status`]).

use std::io::{self, Write};
use std::process::ExitCode;

/// A write to stdout found its reading end closed (a broken pipe).
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// The error of a failed write to stdout: [`StdoutClosed`] for a broken pipe, else `err`
/// with `what` ("cannot write results to stdout") as its context.
pub fn write_failed(err: io::Error, what: &str) -> anyhow::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(err).context(what.to_string())
    }
}

/// [`write_failed`] as a method of an I/O result.
pub trait WriteContext<T> {
    /// The result, with a failed write turned into [`write_failed`]'s error.
    fn stdout_context(self, what: &str) -> anyhow::Result<T>;
}

impl<T> WriteContext<T> for io::Result<T> {
    fn stdout_context(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|err| write_failed(err, what))
    }
}

/// Writes to a locked stdout with `write`, then flushes it; a failed write is
/// [`write_failed`]'s error, with `what` as its context.
pub fn print(
    what: &str,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    write(&mut out)
        .and_then(|()| out.flush())
        .stdout_context(what)
}

/// The exit status `code` of a command whose closing lines went to stdout as `printed`. A
/// reader that closed stdout silences the lines, not the status: a failed gate stays
/// failed and an interrupted run stays interrupted. Any other failed write is the error.
pub fn keep_status(printed: anyhow::Result<()>, code: ExitCode) -> anyhow::Result<ExitCode> {
    match printed {
        Err(err) if closed_by_reader(&err) => Ok(code),
        printed => printed.map(|()| code),
    }
}

/// Whether `err` is, or was caused by, stdout closed by its reader.
pub fn closed_by_reader(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<StdoutClosed>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_is_a_closed_stdout() {
        let pipe = write_failed(io::ErrorKind::BrokenPipe.into(), "cannot write rows");
        assert!(closed_by_reader(&pipe.context("an outer layer")));
        let full = io::Error::from_raw_os_error(28);
        let err = write_failed(full, "cannot write results to stdout");
        assert!(!closed_by_reader(&err));
        assert!(
            format!("{err:#}").starts_with("cannot write results to stdout: "),
            "{err:#}"
        );
    }

    #[test]
    fn a_closed_stdout_keeps_the_status_and_a_full_one_is_the_error() {
        let closed = || {
            Err(write_failed(
                io::ErrorKind::BrokenPipe.into(),
                "cannot write",
            ))
        };
        assert_eq!(
            keep_status(closed(), ExitCode::from(1)).unwrap(),
            ExitCode::from(1)
        );
        assert_eq!(
            keep_status(Ok(()), ExitCode::from(130)).unwrap(),
            ExitCode::from(130)
        );
        let full = Err(write_failed(
            io::Error::from_raw_os_error(28),
            "cannot write",
        ));
        assert!(keep_status(full, ExitCode::SUCCESS).is_err());
    }
}
