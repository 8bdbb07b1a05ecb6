//! Every file the product writes at a path a user gave goes through here: `analyze --out`
//! and its side files, `merge --out` and the shard parts, the reports, logs and charts
//! under `--out-dir` (`evaluate`, `compare`), `dataset excerpts`, `dist merge --out`. A
//! typo in a flag must never cost a user a file that was not the product's to replace.
//!
//! # The rules
//! - **Never overwritten:** a file the run reads (the same device and inode, however it
//!   is reached: through a symlink, a hard link, or a folder given as input; `analyze` and
//!   `merge` give their inputs, and commands that read a dataset [`protect`] its manifest
//!   and tracks for every file they write); a directory, a device (`/dev/null` included),
//!   a FIFO or a socket. A refusal is an error naming the path and the reason
//!   ([`OutputError::Refused`]), and `analyze` and `merge` check before any work starts:
//!   the destination and every side file they write or remove beside it, the lock
//!   included, before they write any of them ([`Destination::claim`]). They also refuse
//!   one that exists and cannot be opened for writing (read-only, a running program),
//!   naming it ([`OutputError::Io`]), as [`write_file`] does for every file it replaces.
//! - **Symlinks:** a symlink to a regular file is followed: its target is what is written
//!   (replaced in the target's folder), its side files and lock sit beside the target, and
//!   the link stays a link. A symlink to anything else (a device, a pipe such as
//!   `/proc/self/fd/1`, a folder) or to nothing is refused, and so is a path that names
//!   or leads through a link to an open file of a process (`/dev/stdout`, `/dev/fd/N`,
//!   `/proc/...`: with stdout sent to a file, the run replaced that file) and `-`.
//! - **Atomic replacement:** a file is written to a temporary file in its destination's
//!   folder, synced, then renamed over the destination ([`replace`]); on any error (a
//!   failed write, a full disk) the temporary is removed and the destination keeps its old
//!   bytes; a second Ctrl-C, which ends the process at once, removes it too
//!   ([`remove_unfinished`]). A new file gets the permissions `File::create` would give
//!   it; a replaced one keeps its own. The one exception is `analyze --out` (and
//!   `evaluate`'s `results.csv`) while a run is going: that file is the run's journal,
//!   appended in place as files finish so that a killed run keeps them for `--resume`,
//!   then replaced atomically by the rows in input order.
//! - **One writer:** `analyze --out` and `merge --out` hold an advisory lock on `FILE.lock`
//!   beside their file for the whole run ([`Destination::lock`]); a second run on the
//!   same file is refused at once ([`OutputError::Locked`]) instead of mixing its rows in.
//!   The lock file is removed when the run ends; one left by a killed run is empty and
//!   harmless (the lock dies with its process).
//!
//! Over 500 lines, a third of it tests: the rules are one unit, checked together.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::file_id::FileId;

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// It is a file this run reads.
    Input,
    /// It is not a regular file (a directory, device, FIFO, socket).
    NotRegular(FileKind),
    /// It is a symlink to something that is not a regular file.
    LinkToNotRegular(FileKind),
    /// It is a symlink to nothing.
    DanglingLink,
    /// It names one of this process's open files (`/dev/stdout`, `/proc/self/fd/1`), or
    /// leads there through a link: replacing it would replace whatever file the shell
    /// opened there (`>> log.txt` lost the log).
    Descriptor,
    /// It is a file of the kernel's (`/proc`, `/sys`): a setting or a report, not a place
    /// for rows (`/proc/sys/kernel/hostname` was refused as an open file of the process).
    KernelFile,
    /// It is `-`, which many tools read as stdout; here it would be a file named `-`.
    Dash,
    /// It is inside a report folder of `evaluate` or `compare` (one holding
    /// [`REPORT_MARKER`]), whose files those commands replace and remove: `analyze --out
    /// REPORT/results.csv` was overwritten by a run writing the report, both exiting 0.
    InReport,
}

/// The file that marks a folder as a report of `evaluate` or `compare`
/// (`report::folder`), named here so that the rows' writers keep out of such folders.
pub const REPORT_MARKER: &str = ".eval-cli-report";

/// What a path holds, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A folder.
    Directory,
    /// A character device (`/dev/null`, a terminal).
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A named pipe, or a pipe reached through `/proc/self/fd`.
    Fifo,
    /// A Unix socket.
    Socket,
    /// Something else that is not a regular file.
    Other,
}

impl FileKind {
    fn of(meta: &Metadata) -> Option<Self> {
        let kind = meta.file_type();
        if kind.is_file() {
            return None;
        }
        if kind.is_dir() {
            return Some(FileKind::Directory);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_char_device() {
                return Some(FileKind::CharDevice);
            }
            if kind.is_block_device() {
                return Some(FileKind::BlockDevice);
            }
            if kind.is_fifo() {
                return Some(FileKind::Fifo);
            }
            if kind.is_socket() {
                return Some(FileKind::Socket);
            }
        }
        Some(FileKind::Other)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::Other => "not a regular file",
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Input => f.write_str("it is one of this run's input files"),
            Refusal::NotRegular(kind) => write!(f, "it is {kind}"),
            Refusal::LinkToNotRegular(kind) => write!(f, "it is a symlink to {kind}"),
            Refusal::DanglingLink => f.write_str("it is a symlink to a file that does not exist"),
            Refusal::Descriptor => f.write_str(
                "it names an open file of this process (/dev/stdout, /dev/fd/N, /proc/*/fd/N), \
                 which would be replaced, not appended to; leave the output flag out to \
                 write to stdout",
            ),
            Refusal::KernelFile => f.write_str(
                "it is a file of the kernel (under /proc or /sys), a setting or a report, not \
                 a place for rows",
            ),
            Refusal::InReport => write!(
                f,
                "its folder is a report of evaluate or compare (it holds {REPORT_MARKER}), \
                 whose files those commands replace; write the rows elsewhere"
            ),
            Refusal::Dash => f.write_str(
                "`-` would be a file named `-`; leave the output flag out to write to stdout",
            ),
        }
    }
}

/// An output that cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The destination is one the rules never overwrite.
    #[error("refusing to write {}: {reason}", path.display())]
    Refused {
        /// The destination, as given.
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },
    /// Another run holds the destination's lock.
    #[error(
        "{} is being written by another run (it holds {}); wait for it or choose another output",
        path.display(),
        lock.display()
    )]
    Locked {
        /// The destination, as given.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// Reading or writing failed (the cause follows in the error's chain).
    #[error("cannot write {}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why `path`, or a link on the way from it (up to 40, the kernel's own limit), is no
/// file to write: it names an open file of a process (`/dev/stdin`, `/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/...`, `/proc/PID/fd/...`), or another file of the kernel's
/// (under `/proc` or `/sys`). Following `/dev/stdout` leads to the file the shell opened
/// (`>> log.txt`), which is regular, so the other rules let it through. Each step's folder
/// is resolved first (`..`, a linked folder: `/dev/../proc/self/fd/1`, `myfd/1` with
/// `myfd -> /dev/fd`), its last name kept, so no spelling reaches `/proc` unseen.
fn kernel_refusal(path: &Path) -> Option<Refusal> {
    let names_one = |p: &Path| {
        let descriptor = p.starts_with("/dev/fd")
            || ["/dev/stdin", "/dev/stdout", "/dev/stderr"]
                .iter()
                .any(|d| p == Path::new(d))
            || (p.starts_with("/proc") && p.components().any(|c| c.as_os_str() == "fd"));
        if descriptor {
            Some(Refusal::Descriptor)
        } else if p.starts_with("/proc") || p.starts_with("/sys") {
            Some(Refusal::KernelFile)
        } else {
            None
        }
    };
    let mut hop = path.to_path_buf();
    for _ in 0..40 {
        let resolved = match (hop.parent(), hop.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                match fs::canonicalize(parent) {
                    Ok(folder) => folder.join(name),
                    Err(_) => return None,
                }
            }
            _ => match std::path::absolute(&hop) {
                Ok(absolute) => absolute,
                Err(_) => return None,
            },
        };
        if let Some(refusal) = names_one(&resolved) {
            return Some(refusal);
        }
        match fs::read_link(&resolved) {
            Ok(target) => {
                hop = match resolved.parent() {
                    Some(folder) => folder.join(target),
                    None => target,
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// The files a run reads, by identity, so that no output replaces one of them.
#[derive(Debug, Clone, Default)]
pub struct Inputs(HashSet<FileId>);

impl Inputs {
    /// No inputs to protect (the destination rules still apply).
    pub fn none() -> Self {
        Inputs::default()
    }

    /// The files at `paths` (symlinks followed); a path that cannot be read is left out.
    pub fn of<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Self {
        let mut inputs = Inputs::default();
        for path in paths {
            inputs.add(path.as_ref());
        }
        inputs
    }

    /// Adds the file at `path`, if it can be read.
    pub fn add(&mut self, path: &Path) {
        if let Some(id) = fs::metadata(path).ok().as_ref().and_then(FileId::of) {
            self.0.insert(id);
        }
    }

    fn holds(&self, meta: &Metadata) -> bool {
        FileId::of(meta).is_some_and(|id| self.0.contains(&id))
    }
}

/// The files this process reads that no [`write_file`] may replace ([`protect`]).
static PROTECTED: LazyLock<Mutex<Inputs>> = LazyLock::new(Mutex::default);

/// Adds `inputs` to the files that no [`write_file`] of this process may replace: a
/// command that reads a dataset says so once, and every report file it then writes, at
/// whatever depth of the code, is checked against them.
pub fn protect(inputs: &Inputs) {
    let mut protected = PROTECTED.lock().unwrap_or_else(PoisonError::into_inner);
    protected.0.extend(&inputs.0);
}

/// A destination that passed the rules: where to write, and the name to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    shown: PathBuf,
    target: PathBuf,
}

impl Destination {
    /// Checks `path` against the rules (module doc) and `inputs`, following a symlink to a
    /// regular file to its target.
    pub fn check(path: &Path, inputs: &Inputs) -> Result<Self, OutputError> {
        let refuse = |reason| OutputError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        if path.as_os_str() == "-" {
            return Err(refuse(Refusal::Dash));
        }
        if let Some(refusal) = kernel_refusal(path) {
            return Err(refuse(refusal));
        }
        let own = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Destination {
                    shown: path.to_path_buf(),
                    target: path.to_path_buf(),
                });
            }
            Err(err) => return Err(io_error(path)(err)),
        };
        let (meta, target) = if own.file_type().is_symlink() {
            let meta = match fs::metadata(path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(refuse(Refusal::DanglingLink));
                }
                Err(err) => return Err(io_error(path)(err)),
            };
            if let Some(kind) = FileKind::of(&meta) {
                return Err(refuse(Refusal::LinkToNotRegular(kind)));
            }
            (meta, fs::canonicalize(path).map_err(io_error(path))?)
        } else {
            if let Some(kind) = FileKind::of(&own) {
                return Err(refuse(Refusal::NotRegular(kind)));
            }
            (own, path.to_path_buf())
        };
        if inputs.holds(&meta) {
            return Err(refuse(Refusal::Input));
        }
        Ok(Destination {
            shown: path.to_path_buf(),
            target,
        })
    }

    /// [`Destination::check`] against the files [`protect`]ed.
    pub fn check_protected(path: &Path) -> Result<Self, OutputError> {
        let protected = PROTECTED.lock().unwrap_or_else(PoisonError::into_inner);
        Destination::check(path, &protected)
    }

    /// The path as the user gave it, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The file that is written (a symlink's target).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// A file beside the target: its name plus `suffix` (`OUT.lock`, `OUT.shard.json`).
    pub fn side(&self, suffix: &str) -> PathBuf {
        side_path(&self.target, suffix)
    }

    /// Takes the advisory lock `TARGET.lock` for as long as the returned guard lives;
    /// refused at once when another run holds it.
    pub fn lock(&self) -> Result<OutputLock, OutputError> {
        OutputLock::acquire(self.side(LOCK), &self.shown)
    }

    /// Checks `path` ([`Destination::check`]) and every file a run writes or removes
    /// beside its target: the lock and `TARGET{suffix}` for each of `sides`, each by the
    /// same rules and against the same `inputs` (an input named `OUT.lock` or
    /// `OUT.settings.json` is refused as `OUT` itself would be), and each, where it
    /// exists, for taking writes; then takes the lock.
    /// The lock is the first thing written, after every check has passed, so a refusal
    /// leaves every file (an earlier `OUT` included) as it was.
    pub fn claim(
        path: &Path,
        sides: &[&str],
        inputs: &Inputs,
    ) -> Result<(Self, OutputLock), OutputError> {
        let dest = Destination::check(path, inputs)?;
        dest.check_writable()?;
        names_fit(&dest.target)?;
        let folder = match dest.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if folder.join(REPORT_MARKER).exists() {
            return Err(OutputError::Refused {
                path: path.to_path_buf(),
                reason: Refusal::InReport,
            });
        }
        for suffix in std::iter::once(&LOCK).chain(sides) {
            let side = dest.side(suffix);
            names_fit(&side)?;
            Destination::check(&side, inputs)?.check_writable()?;
        }
        let lock = dest.lock()?;
        Ok((dest, lock))
    }

    /// Refuses a target that exists and cannot be opened for writing (read-only, another
    /// owner's, a running program), without changing it; one that does not exist yet is
    /// left to its first write. Without it a run found out only when it came to that
    /// file: `analyze --out` had replaced its settings by then, and a replacement by
    /// rename, which asks only the folder, replaced the file whatever its mode.
    pub fn check_writable(&self) -> Result<(), OutputError> {
        match OpenOptions::new().write(true).open(&self.target) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(&self.shown)(err)),
            _ => Ok(()),
        }
    }

    /// Replaces the target with what `write` writes ([`replace`]).
    pub fn replace(
        &self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), OutputError> {
        replace(&self.target, write)
    }
}

/// Refuses a file whose name, or that of the temporary copy a replacement writes beside
/// it ([`temporary_beside`]: `.NAME.XXXXXX.tmp`), the file system cannot hold, as `stat`
/// says (`File name too long`) before anything is written: found when the settings were
/// written, `analyze --out` left the CSV and its identity log behind.
fn names_fit(path: &Path) -> Result<(), OutputError> {
    let Some(name) = path.file_name() else {
        return Ok(());
    };
    let mut temporary = temporary_prefix(name);
    temporary.push("XXXXXX.tmp");
    for probe in [path.to_path_buf(), path.with_file_name(temporary)] {
        // `InvalidFilename` is ENAMETOOLONG.
        if let Err(err) = fs::symlink_metadata(&probe)
            && err.kind() == io::ErrorKind::InvalidFilename
        {
            return Err(io_error(path)(io::Error::new(
                err.kind(),
                format!(
                    "its name, or that of the temporary copy written beside it ({} bytes), is \
                     longer than the file system takes",
                    probe.file_name().map_or(0, |n| n.len())
                ),
            )));
        }
    }
    Ok(())
}

/// Creates an output folder (and its parents), naming it on failure; a file in its place
/// is named as one (`File exists` read as if the folder did).
pub fn create_out_dir(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "cannot create output folder {}: it is a file, not a folder",
            dir.display()
        );
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))
}

/// The start of the name of the temporary copy written beside a file named `name`
/// (`.NAME.`, then tempfile's random letters and the suffix).
fn temporary_prefix(name: &std::ffi::OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    prefix
}

/// The suffix of the lock file beside a destination ([`Destination::lock`]).
const LOCK: &str = ".lock";

/// `path` with `suffix` added to its file name.
pub fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Temporary and lock files of this process that exist now: what [`remove_unfinished`]
/// removes when the process ends without unwinding (no destructor runs then).
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary and lock file this process has open, for a signal handler
/// about to end the process at once: no half-written file is left behind.
pub fn remove_unfinished() {
    remove_unfinished_where(|_| true);
}

fn remove_unfinished_where(mut which: impl FnMut(&Path) -> bool) {
    let mut files = UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner);
    files.retain(|path| {
        if which(path) {
            let _ = fs::remove_file(path);
            return false;
        }
        true
    });
}

/// A file listed in [`UNFINISHED`] for as long as this lives.
#[derive(Debug)]
struct Unfinished(PathBuf);

impl Unfinished {
    fn new(path: &Path) -> Self {
        let mut files = UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner);
        files.push(path.to_path_buf());
        Unfinished(path.to_path_buf())
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let mut files = UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = files.iter().position(|p| *p == self.0) {
            files.swap_remove(i);
        }
    }
}

/// The lock of one output, held until dropped; dropping removes the lock file.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _listed: Unfinished,
    // Held open: closing it releases the lock.
    _file: File,
}

impl OutputLock {
    fn acquire(path: PathBuf, shown: &Path) -> Result<Self, OutputError> {
        loop {
            // A lock file is only ever a regular file; refuse anything else at that name.
            if let Ok(meta) = fs::symlink_metadata(&path)
                && !meta.file_type().is_file()
            {
                let kind = FileKind::of(&meta).unwrap_or(FileKind::Other);
                return Err(OutputError::Refused {
                    path,
                    reason: Refusal::NotRegular(kind),
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|source| {
                    // The output is what the user named: a folder that does not exist is
                    // the output's problem, not its lock's.
                    if source.kind() == io::ErrorKind::NotFound
                        && shown
                            .parent()
                            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
                    {
                        io_error(shown)(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!(
                                "its folder {} does not exist",
                                shown.parent().unwrap_or(shown).display()
                            ),
                        ))
                    } else {
                        io_error(&path)(source)
                    }
                })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(OutputError::Locked {
                        path: shown.to_path_buf(),
                        lock: path,
                    });
                }
                Err(TryLockError::Error(err)) => return Err(io_error(&path)(err)),
            }
            // The previous holder removes the file as it lets go: the lock only counts if
            // the file locked is still the one at the path.
            let held = file.metadata().map_err(io_error(&path))?;
            let current = fs::metadata(&path).ok();
            let same = current.is_some_and(|m| FileId::of(&m) == FileId::of(&held));
            if same {
                return Ok(OutputLock {
                    _listed: Unfinished::new(&path),
                    path,
                    _file: file,
                });
            }
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still held, so that no other run can lock the name in between.
        let _ = fs::remove_file(&self.path);
    }
}

/// Checks `path` (against the files [`protect`]ed, and that an existing one takes
/// writes: [`Destination::check_writable`]) and replaces it with `bytes` ([`replace`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let dest = Destination::check_protected(path)?;
    dest.check_writable()?;
    dest.replace(|out| out.write_all(bytes))
}

/// Replaces the file `path` (not a symlink: give [`Destination::target`]) with what
/// `write` writes: into a temporary file in the same folder, synced, renamed over `path`.
/// On any error the temporary is removed and `path` is left as it was.
pub fn replace(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), OutputError> {
    let (tmp, _listed) = temporary_beside(path, ".tmp")?;
    let mut out = io::BufWriter::new(tmp);
    write(&mut out).map_err(io_error(path))?;
    let tmp = out
        .into_inner()
        .map_err(|err| io_error(path)(err.into_error()))?;
    commit(tmp, path)
}

/// [`replace`] for a writer that only takes a path (a chart library that picks its format
/// by the extension): `write` writes the temporary at the path it is given, whose name
/// ends with `path`'s extension.
pub fn replace_at_path(
    path: &Path,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), OutputError> {
    let mut suffix = OsString::from(".tmp");
    if let Some(extension) = path.extension() {
        suffix.push(".");
        suffix.push(extension);
    }
    let (tmp, _listed) = temporary_beside(path, &suffix)?;
    write(tmp.path()).map_err(io_error(path))?;
    commit(tmp, path)
}

/// A new temporary file in `path`'s folder, named after it, listed in [`UNFINISHED`] for
/// as long as the second value lives; it has the permissions `path` has, or those
/// `File::create` would give.
fn temporary_beside(
    path: &Path,
    suffix: impl AsRef<std::ffi::OsStr>,
) -> Result<(tempfile::NamedTempFile, Unfinished), OutputError> {
    let prefix = temporary_prefix(path.file_name().unwrap_or(path.as_os_str()));
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(&suffix);
    #[cfg(unix)]
    {
        // What `File::create` asks for; the umask then applies as it does there.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let tmp = builder
        .tempfile_in(folder_of(path))
        .map_err(io_error(path))?;
    let listed = Unfinished::new(tmp.path());
    if let Ok(old) = fs::metadata(path) {
        // A replaced file keeps its own permissions.
        fs::set_permissions(tmp.path(), old.permissions()).map_err(io_error(path))?;
    }
    Ok((tmp, listed))
}

/// Syncs `tmp` and renames it over `path`.
fn commit(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), OutputError> {
    tmp.as_file().sync_all().map_err(io_error(path))?;
    tmp.persist(path).map_err(|err| io_error(path)(err.error))?;
    // Best effort: makes the rename itself durable where directories can be synced.
    let _ = File::open(folder_of(path)).and_then(|d| d.sync_all());
    Ok(())
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};

    use super::*;

    /// A name the file system cannot hold, the output's, a side file's or a temporary
    /// copy's, is refused by `claim` before anything is written (a 231-byte name left its
    /// CSV and identity log behind when the settings could not be written).
    #[test]
    fn a_name_too_long_for_a_side_or_temporary_file_is_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        for length in [231, 244, 250] {
            let out = dir.path().join(format!("{}.csv", "o".repeat(length)));
            let err = Destination::claim(&out, &[".settings.json"], &Inputs::none()).unwrap_err();
            assert!(err.to_string().starts_with("cannot write"), "{err}");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{length}");
        }
        let fits = dir.path().join(format!("{}.csv", "o".repeat(200)));
        let (_dest, lock) =
            Destination::claim(&fits, &[".settings.json"], &Inputs::none()).unwrap();
        drop(lock);
    }

    /// Every spelling of an open file of the process is seen, through `..` and linked
    /// folders too (`/dev/../proc/self/fd/1` and `myfd/1` replaced the shell's log);
    /// files under `/dev/shm` and links to ordinary files are not concerned.
    #[test]
    fn every_spelling_of_a_descriptor_or_kernel_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/proc/self", dir.path().join("ps")).unwrap();
        symlink("/dev/fd", dir.path().join("myfd")).unwrap();
        symlink("/dev/stdout", dir.path().join("out.csv")).unwrap();
        fs::write(dir.path().join("real.csv"), "").unwrap();
        symlink(dir.path().join("real.csv"), dir.path().join("to-real.csv")).unwrap();
        for seen in [
            Path::new("/dev/stdout"),
            Path::new("/dev/../proc/self/fd/1"),
            Path::new("/dev/fd/../fd/1"),
            &dir.path().join("ps/fd/1"),
            &dir.path().join("myfd/1"),
            &dir.path().join("out.csv"),
        ] {
            assert_eq!(
                kernel_refusal(seen),
                Some(Refusal::Descriptor),
                "{}",
                seen.display()
            );
        }
        for unseen in [
            Path::new("/dev/shm/x.csv"),
            &dir.path().join("real.csv"),
            &dir.path().join("to-real.csv"),
            &dir.path().join("new.csv"),
        ] {
            assert_eq!(kernel_refusal(unseen), None, "{}", unseen.display());
        }
        for kernel in [
            Path::new("/proc/sys/kernel/hostname"),
            Path::new("/proc/self/status"),
            Path::new("/sys/kernel/mm/transparent_hugepage/enabled"),
            &dir.path().join("ps/status"),
        ] {
            assert_eq!(
                kernel_refusal(kernel),
                Some(Refusal::KernelFile),
                "{}",
                kernel.display()
            );
        }
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let entries = fs::read_dir(dir).unwrap().map(Result::unwrap);
        let names = entries.map(|e| e.file_name().into_string().unwrap());
        names
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn refusal(result: Result<Destination, OutputError>) -> Refusal {
        match result {
            Err(OutputError::Refused { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn inputs_are_refused_by_identity_whatever_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let song = dir.path().join("song.wav");
        fs::write(&song, b"RIFF").unwrap();
        let hard = dir.path().join("hard.wav");
        fs::hard_link(&song, &hard).unwrap();
        let soft = dir.path().join("soft.csv");
        symlink(&song, &soft).unwrap();
        let inputs = Inputs::of([&song]);
        for path in [&song, &hard, &soft] {
            assert_eq!(refusal(Destination::check(path, &inputs)), Refusal::Input);
        }
        let err = Destination::check(&soft, &inputs).unwrap_err().to_string();
        assert!(err.contains("soft.csv") && err.contains("input"), "{err}");
        assert_eq!(fs::read(&song).unwrap(), b"RIFF");
        // Not an input: allowed.
        assert!(Destination::check(&song, &Inputs::none()).is_ok());
    }

    #[test]
    fn directories_devices_fifos_and_links_to_them_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let none = Inputs::none();
        assert_eq!(
            refusal(Destination::check(dir.path(), &none)),
            Refusal::NotRegular(FileKind::Directory)
        );
        assert_eq!(
            refusal(Destination::check(&fifo, &none)),
            Refusal::NotRegular(FileKind::Fifo)
        );
        assert_eq!(
            refusal(Destination::check(Path::new("/dev/null"), &none)),
            Refusal::NotRegular(FileKind::CharDevice)
        );
        let to_null = dir.path().join("null.csv");
        symlink("/dev/null", &to_null).unwrap();
        assert_eq!(
            refusal(Destination::check(&to_null, &none)),
            Refusal::LinkToNotRegular(FileKind::CharDevice)
        );
        let dangling = dir.path().join("dangling.csv");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(
            refusal(Destination::check(&dangling, &none)),
            Refusal::DanglingLink
        );
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }

    #[test]
    fn a_link_to_a_regular_file_replaces_its_target_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.csv");
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.csv");
        symlink(&target, &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "a replaced file keeps its mode");
        assert_eq!(names(dir.path()), ["link.csv", "real.csv"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        fs::write(&out, b"old").unwrap();
        let result = replace(&out, |w| {
            w.write_all(&[b'x'; 100_000])?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        });
        // The message names the file; the cause follows in the chain, printed once.
        let err = anyhow::Error::from(result.unwrap_err());
        let err = format!("{err:#}");
        assert!(
            err.contains("out.csv") && err.matches("disk full").count() == 1,
            "{err}"
        );
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.csv"]);
        // A new file that fails is not created at all.
        let fresh = dir.path().join("fresh.csv");
        assert!(replace(&fresh, |_| Err(io::Error::other("injected"))).is_err());
        assert_eq!(names(dir.path()), ["out.csv"]);
    }

    #[test]
    fn an_abrupt_exit_removes_the_temporary_and_the_lock_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = Destination::check(&dir.path().join("out.csv"), &Inputs::none()).unwrap();
        let _lock = out.lock().unwrap();
        let result = out.replace(|w| {
            w.write_all(b"half")?;
            assert_eq!(names(dir.path()).len(), 2, "the temporary and the lock");
            // What the signal handler does before it ends the process.
            remove_unfinished_where(|path| path.starts_with(dir.path()));
            assert!(names(dir.path()).is_empty());
            Err(io::Error::other("interrupted"))
        });
        assert!(result.is_err());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_writer_given_a_path_writes_a_temporary_with_the_extension_then_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("chart.png");
        fs::write(&png, b"old").unwrap();
        replace_at_path(&png, |tmp| {
            assert_eq!(tmp.extension().unwrap(), "png");
            assert_eq!(tmp.parent(), Some(dir.path()));
            fs::write(tmp, b"new")
        })
        .unwrap();
        assert_eq!(fs::read(&png).unwrap(), b"new");
        let failed = replace_at_path(&png, |tmp| {
            fs::write(tmp, b"half")?;
            Err(io::Error::other("cannot encode"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&png).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["chart.png"]);
    }

    #[test]
    fn a_second_lock_is_refused_and_the_lock_file_goes_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let out = Destination::check(&dir.path().join("out.csv"), &Inputs::none()).unwrap();
        let lock = out.lock().unwrap();
        match out.lock() {
            Err(OutputError::Locked { path, lock }) => {
                assert_eq!(path, dir.path().join("out.csv"));
                assert_eq!(lock, dir.path().join("out.csv.lock"));
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(lock);
        assert!(names(dir.path()).is_empty());
        let again = out.lock().unwrap();
        assert_eq!(names(dir.path()), ["out.csv.lock"]);
        drop(again);
    }

    /// An output in a folder that does not exist is named with the reason; the error named
    /// the lock file beside it (`cannot write x/out.csv.lock`).
    #[test]
    fn an_output_in_a_missing_folder_is_named_not_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/out.csv");
        let out = Destination::check(&path, &Inputs::none()).unwrap();
        let err = out.lock().unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        let err = format!("{err}: {}", cause.unwrap_or_default());
        assert_eq!(
            err,
            format!(
                "cannot write {}: its folder {} does not exist",
                path.display(),
                dir.path().join("missing").display()
            )
        );
    }
}
