//! Panics the batch catches, on stderr: one line naming the file and the message, the way
//! the file's row names them (`panic: MESSAGE` in its error cell), instead of Rust's
//! default report (thread name, source location, a backtrace under `RUST_BACKTRACE`) that
//! does not say which file it was. The batch's guard says which file a thread is on
//! ([`batch::file_in_guard`]); a panic anywhere else is a bug of the program, not of a
//! file, and keeps the default report. The binary installs this once, first thing.

use std::io::Write;
use std::path::Path;
use std::sync::Once;

use analyzer_core::batch;

use crate::path_cell::path_cell;

/// Installs the panic hook (once, however often called): a panic inside the batch's
/// guard prints [`caught_line`], every other panic goes to the hook that was there.
pub fn report_caught_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match batch::file_in_guard() {
            Some(file) => {
                let line = caught_line(&file, info.payload_as_str());
                // One write, so that the line never interleaves with another thread's.
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            None => previous(info),
        }));
    });
}

/// The stderr line of a panic the batch caught on `file`: `eval-cli: error: FILE: panic:
/// MESSAGE`, FILE as the row's path cell, MESSAGE as its error cell has it.
pub fn caught_line(file: &Path, message: Option<&str>) -> String {
    format!(
        "eval-cli: error: {}: panic: {}\n",
        path_cell(file),
        message.unwrap_or("(no message)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_file_and_the_message_as_the_row_does() {
        assert_eq!(
            caught_line(Path::new("lib/a b.wav"), Some("index out of bounds")),
            "eval-cli: error: lib/a b.wav: panic: index out of bounds\n"
        );
        assert_eq!(
            caught_line(Path::new("x.wav"), None),
            "eval-cli: error: x.wav: panic: (no message)\n"
        );
    }
}
