//! One error type for the whole pipeline, so a caller can report every failure the
//! same way: which file, which stage, what kind of problem, and why.

use std::fmt;
use std::path::{Path, PathBuf};

/// The pipeline stage an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Validating the analyzer's settings.
    Config,
    /// Opening the file.
    Open,
    /// Recognising the container and codec.
    Probe,
    /// Decoding packets to samples.
    Decode,
    /// Converting to the analysis sample rate.
    Resample,
    /// Computing the onset envelope.
    Onset,
    /// Estimating the tempo from the envelope.
    Tempo,
    /// Gathering the pitch classes and estimating the key.
    Key,
    /// Measuring the loudness (EBU R128).
    Loudness,
}

impl Stage {
    /// A short lowercase name, stable enough for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Open => "open",
            Stage::Probe => "probe",
            Stage::Decode => "decode",
            Stage::Resample => "resample",
            Stage::Onset => "onset",
            Stage::Tempo => "tempo",
            Stage::Key => "key",
            Stage::Loudness => "loudness",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, independent of where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file cannot be read (missing, a directory, no permission, I/O failure).
    Unreadable,
    /// The bytes are not a container or codec we can decode.
    UnsupportedFormat,
    /// The stream is damaged so badly that nothing usable could be decoded.
    CorruptStream,
    /// There is too little audio to measure a tempo.
    TooShort,
    /// The audio has no periodic pulse (silence, DC, noise).
    NoPulse,
    /// The caller asked to stop (Ctrl-C).
    Cancelled,
    /// The per-file deadline passed.
    TimedOut,
    /// The analyzer settings are invalid.
    InvalidConfig,
    /// The file would cost more than its size can justify: it decodes to more audio than
    /// real music of that size holds (a decompression bomb, a header that lies).
    ResourceLimit,
    /// An external estimator (another program, a file of predictions) could not give a
    /// tempo: it could not start, it failed, it printed none, or it has no row for the file.
    External,
}

impl ErrorKind {
    /// A short snake_case name, stable enough for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreadable => "unreadable",
            ErrorKind::UnsupportedFormat => "unsupported_format",
            ErrorKind::CorruptStream => "corrupt_stream",
            ErrorKind::TooShort => "too_short",
            ErrorKind::NoPulse => "no_pulse",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::ResourceLimit => "resource_limit",
            ErrorKind::External => "external",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An analysis failure: the file (when there is one), the stage, the kind and a reason.
///
/// `Display` prints `PATH: STAGE: KIND: REASON`; [`Error::reason`] leaves the path out
/// for reports that already have a path column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Error {
    kind: ErrorKind,
    stage: Stage,
    detail: String,
    path: Option<PathBuf>,
    /// The process or the system had no descriptor left ([`Error::is_out_of_files`]).
    out_of_files: bool,
}

impl Error {
    /// Makes an error without a file attached.
    pub fn new(kind: ErrorKind, stage: Stage, detail: impl Into<String>) -> Self {
        Error {
            kind,
            stage,
            detail: detail.into(),
            path: None,
            out_of_files: false,
        }
    }

    /// An error of `kind` at `stage` for a failed system call, its reason the OS's words.
    /// One that ran out of descriptors is marked so ([`Error::is_out_of_files`]).
    pub fn io(kind: ErrorKind, stage: Stage, err: &std::io::Error) -> Self {
        Error {
            out_of_files: is_out_of_files(err),
            ..Error::new(kind, stage, err.to_string())
        }
    }

    /// Whether the process (EMFILE) or the system (ENFILE) had no file descriptor left:
    /// a state of the run, not of the file, which may well read once other files are
    /// closed. The batch runner tries such a file again alone
    /// ([`Batch::run_file`](crate::batch::Batch::run_file)) instead of keeping the error.
    pub fn is_out_of_files(&self) -> bool {
        self.out_of_files
    }

    /// Attaches the file the error is about.
    pub fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where it went wrong.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The file, if the error is about one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `STAGE: KIND: REASON`, without the path.
    pub fn reason(&self) -> String {
        format!("{}: {}: {}", self.stage, self.kind, self.detail)
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("{}: {}", path.display(), self.reason()),
            None => self.reason(),
        }
    }
}

/// Whether a failed system call ran out of file descriptors (EMFILE, ENFILE).
pub(crate) fn is_out_of_files(err: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Drops a caught panic's payload where a panic in its destructor cannot escape: a value
/// given to `panic_any` may panic again when dropped, which would end the batch that
/// caught the first. Such a second payload is leaked, not dropped.
pub(crate) fn drop_payload(panic: Box<dyn std::any::Any + Send>) {
    if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(panic))) {
        std::mem::forget(again);
    }
}

/// The message a panic was raised with, when it is text (as `panic!` makes it).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<&str> {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
}

/// `v` as a message shows a number a user gave: as written for ordinary values, in
/// exponent form past a billion or under a thousandth (`1e300` was printed as 301 digits,
/// `1e-300` as 300 zeros).
pub fn shown_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e9).contains(&v.abs()) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod shown_tests {
    use super::shown_number;

    #[test]
    fn numbers_far_from_one_are_shown_in_exponent_form() {
        assert_eq!(shown_number(120.0), "120");
        assert_eq!(shown_number(97.5), "97.5");
        assert_eq!(shown_number(0.0), "0");
        assert_eq!(shown_number(1e300), "1e300");
        assert_eq!(shown_number(1e-300), "1e-300");
        assert_eq!(shown_number(-5e10), "-5e10");
    }
}
