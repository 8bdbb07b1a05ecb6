//! The store under a cache folder: redb, guarded so that a damaged file costs its rows and
//! nothing else. Every redb call runs inside `Store::with_db`, which turns redb's errors
//! into [`CacheError`]s and catches its panics (redb checks its pages' checksums only in
//! `check_integrity`, which reads the whole file; a damaged page met on the way is an
//! error in release builds and an assertion, so a panic, in debug builds). A store found
//! damaged, at open or at any later read or write, is moved aside as
//! `results.redb.damaged-N` and a fresh one takes its place.
//!
//! One file over 500 lines: the guard, the replacement of a damaged store and the shared
//! read snapshot all hold the one database handle and must agree on its generation.

use std::cell::Cell;
use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{ConcurrencyMode, Database, ReadOnlyTable, ReadableDatabase, TableDefinition};

/// The store's file inside the cache folder.
pub const CACHE_FILE: &str = "results.redb";

/// Rows by key: [`CacheKey::bytes`](super::CacheKey::bytes) to a sealed [`Stored`](super::Stored).
pub(super) const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");

/// What was last seen of each file, by [`path_key`](super::path_key): a sealed
/// [`Recorded`](super::Recorded). Versioned by the layout byte of its values, not by the rows'
/// schema: a cache written before this table existed simply has none yet.
pub(super) const IDENTITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("identities");

/// Memory for redb's page cache. Its default is 1 GiB; lookups touch a few pages each,
/// and a service's memory must not grow with the size of its cache.
const PAGE_CACHE_BYTES: usize = 16 << 20;

/// What went wrong with the result cache. Callers turn each into a miss (the file is
/// analysed as without a cache) or, at open, into a warning and a run without the cache,
/// except a [refusal](CacheError::is_refusal), which is the command's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache folder names something that is not a folder (a file of the user's, a
    /// device): never a cache, refused rather than run beside.
    #[error("the cache folder {} is not a folder: give a folder (new or a cache)", dir.display())]
    NotAFolder {
        /// The path given.
        dir: PathBuf,
    },
    /// The cache folder cannot be created (a read-only file system, no permission, a
    /// parent that is a file).
    #[error("cannot create the cache folder {}: {error}", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The store cannot be opened, and not because it is damaged (permissions, a lock).
    #[error("cannot open the result cache {}: {error}", file.display())]
    Open {
        /// The store's file.
        file: PathBuf,
        /// redb's reason.
        error: redb::Error,
    },
    /// The store is damaged; it has been moved aside (see [`ResultCache::take_warnings`](super::ResultCache::take_warnings)).
    #[error("the result cache {} is damaged: {reason}", file.display())]
    Damaged {
        /// The store's file.
        file: PathBuf,
        /// redb's error or panic.
        reason: String,
    },
    /// A read or write failed for another reason (an I/O error, say).
    #[error("the result cache {} failed: {error}", file.display())]
    Store {
        /// The store's file.
        file: PathBuf,
        /// redb's reason.
        error: redb::Error,
    },
    /// A stored row is damaged or does not fit the run's settings: a miss.
    #[error("a row of {} is not used: {reason}", file.display())]
    Row {
        /// The store's file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A row cannot be encoded.
    #[error("a row cannot be encoded for the result cache: {0}")]
    Encode(#[from] serde_json::Error),
    /// The writer thread cannot be started.
    #[error("cannot start the result cache's writer thread: {0}")]
    Writer(io::Error),
}

impl CacheError {
    /// Whether the run must stop rather than go on without the cache: the path cannot be
    /// a cache folder at all (it names a file), a mistake a run should not hide. Every
    /// other error at open (the folder or its store cannot be created or opened for
    /// writing, a store found damaged that cannot be moved aside) costs the cache only,
    /// as a write that fails later does.
    pub fn is_refusal(&self) -> bool {
        matches!(self, CacheError::NotAFolder { .. })
    }
}

/// The open database and how many times it has been replaced.
struct Current {
    generation: u64,
    db: Option<Arc<Database>>,
    /// The file the database was opened from.
    id: Option<FileId>,
}

/// The committed tables as one read transaction saw them, shared by lookups for a short
/// while ([`Store::reuse_reads_for`]): in multi-writer mode every `begin_read` takes and
/// drops byte-range locks, which was a fifth of a rescan's time when each lookup began
/// its own.
pub(super) struct Snapshot {
    taken: Instant,
    generation: u64,
    commits: u64,
    rows: Option<BytesTable>,
    identities: Option<BytesTable>,
}

/// A table of bytes by bytes, as a read transaction sees it.
type BytesTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Which table a lookup reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Table {
    Rows,
    Identities,
}

/// The database of one cache folder, replaced when found damaged.
pub(super) struct Store {
    file: PathBuf,
    current: RwLock<Current>,
    /// Commits made through this handle: a snapshot taken before the last one is not
    /// reused, so a process reads its own writes.
    commits: AtomicU64,
    /// How long (µs) a snapshot may serve lookups; 0: each lookup reads afresh.
    reuse_reads_us: AtomicU64,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// A damaged store could not be moved aside: stop trying (each operation fails and is
    /// counted as an error; rows are still analysed).
    gave_up: Mutex<bool>,
    /// What was found damaged and where it went, for the front end to print once.
    warnings: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("file", &self.file).finish()
    }
}

impl Store {
    /// Opens (creating the folder and file if missing) the store in `dir`; a file that is
    /// not a readable store is moved aside and a fresh one created.
    pub(super) fn open(dir: &Path) -> Result<Self, CacheError> {
        fs::create_dir_all(dir).map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists && !dir.is_dir() {
                CacheError::NotAFolder {
                    dir: dir.to_path_buf(),
                }
            } else {
                CacheError::Folder {
                    dir: dir.to_path_buf(),
                    error,
                }
            }
        })?;
        let file = dir.join(CACHE_FILE);
        let mut warnings = Vec::new();
        let found = file_id(&file);
        let db = match guarded(|| open_db(&file)) {
            Ok(db) => db,
            Err(Failure::Damage(reason)) => {
                let moved =
                    move_aside(&file, found, &reason).map_err(|why| CacheError::Damaged {
                        file: file.clone(),
                        reason: format!("{reason}; {why}"),
                    })?;
                warnings.push(moved);
                guarded(|| open_db(&file)).map_err(|failure| failure.into_open(&file))?
            }
            Err(failure) => return Err(failure.into_open(&file)),
        };
        Ok(Store {
            current: RwLock::new(Current {
                generation: 0,
                db: Some(Arc::new(db)),
                id: file_id(&file),
            }),
            file,
            commits: AtomicU64::new(0),
            reuse_reads_us: AtomicU64::new(0),
            snapshot: Mutex::new(None),
            gave_up: Mutex::new(false),
            warnings: Mutex::new(warnings),
        })
    }

    pub(super) fn file(&self) -> &Path {
        &self.file
    }

    /// Whether the file this handle reads and writes is still the one at its path: a store
    /// deleted (its folder removed) or replaced by another file while a run went on keeps
    /// none of the rows the run stored.
    pub(super) fn in_place(&self) -> bool {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.id == file_id(&self.file)
    }

    /// Lets one read transaction serve the lookups of up to `age` (and none after a commit
    /// of this handle): lookups may miss what other processes committed within that time,
    /// which costs them a hash, never a wrong row. Only for a batch: a snapshot kept by an
    /// idle process would keep other processes' writers from reusing pages.
    pub(super) fn reuse_reads_for(&self, age: Duration) {
        let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
        self.reuse_reads_us.store(micros, Ordering::Relaxed);
        if micros == 0 {
            self.drop_snapshot();
        }
    }

    /// Notes a commit through this handle (the snapshot is stale from now on).
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// The committed value under `key` in `table`.
    pub(super) fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        let definition = match table {
            Table::Rows => ROWS,
            Table::Identities => IDENTITIES,
        };
        let age = Duration::from_micros(self.reuse_reads_us.load(Ordering::Relaxed));
        if age.is_zero() {
            return self.with_db(|db| {
                let read = db.begin_read()?;
                let table = open_or_none(&read, definition)?;
                Ok(get_from(table.as_ref(), key)?)
            });
        }
        let snapshot = self.snapshot(age)?;
        self.with_db(|_| {
            let table = match table {
                Table::Rows => snapshot.rows.as_ref(),
                Table::Identities => snapshot.identities.as_ref(),
            };
            Ok(get_from(table, key)?)
        })
    }

    /// The shared snapshot, taken afresh if older than `age`, older than this handle's
    /// last commit, or of a store since replaced.
    fn snapshot(&self, age: Duration) -> Result<Arc<Snapshot>, CacheError> {
        let commits = self.commits.load(Ordering::SeqCst);
        let generation = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation;
        let mut held = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(snapshot) = &*held
            && snapshot.commits == commits
            && snapshot.generation == generation
            && snapshot.taken.elapsed() < age
        {
            return Ok(Arc::clone(snapshot));
        }
        *held = None;
        let fresh = Arc::new(self.with_db(|db| {
            let taken = Instant::now();
            let read = db.begin_read()?;
            Ok(Snapshot {
                taken,
                generation,
                commits,
                rows: open_or_none(&read, ROWS)?,
                identities: open_or_none(&read, IDENTITIES)?,
            })
        })?);
        *held = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Drops the shared snapshot (before the database it reads is closed or replaced).
    fn drop_snapshot(&self) {
        let snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _ = guarded(move || {
            drop(snapshot);
            Ok(())
        });
    }

    /// Runs `op` on the database, its panics caught. A damaged store is moved aside
    /// (once, whichever thread finds it) and the error is [`CacheError::Damaged`].
    pub(super) fn with_db<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, CacheError> {
        let (generation, db) = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            (current.generation, current.db.clone())
        };
        let Some(db) = db else {
            return Err(CacheError::Store {
                file: self.file.clone(),
                error: redb::Error::DatabaseClosed,
            });
        };
        // The clone is dropped inside the guard too: the last handle of a damaged
        // database may run redb's close, which reads it.
        match guarded(move || op(&db)) {
            Ok(value) => Ok(value),
            Err(Failure::Damage(reason)) => {
                self.replace(generation, &reason);
                Err(CacheError::Damaged {
                    file: self.file.clone(),
                    reason,
                })
            }
            Err(Failure::Error(error)) => Err(CacheError::Store {
                file: self.file.clone(),
                error,
            }),
        }
    }

    /// Moves the damaged store aside and opens a fresh one, unless another thread already
    /// did (the generation moved on).
    fn replace(&self, generation: u64, reason: &str) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut gave_up = self.gave_up.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation != generation || *gave_up {
            return;
        }
        // Close the damaged handle first: redb's close may write to it.
        self.drop_snapshot();
        close_quietly(current.db.take());
        let fresh = move_aside(&self.file, current.id, reason).and_then(|warning| {
            self.warn(warning);
            guarded(|| open_db(&self.file)).map_err(|f| f.into_open(&self.file).to_string())
        });
        match fresh {
            Ok(db) => {
                current.db = Some(Arc::new(db));
                current.id = file_id(&self.file);
                current.generation += 1;
            }
            Err(why) => {
                *gave_up = true;
                self.warn(format!(
                    "the result cache {} is damaged ({reason}) and cannot be replaced: {why}; \
                     files are analysed as without a cache",
                    self.file.display()
                ));
            }
        }
    }

    fn warn(&self, warning: String) {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warning);
    }

    pub(super) fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Closes the database, a panic in redb's close caught.
    pub(super) fn close(&self) {
        self.drop_snapshot();
        close_quietly(
            self.current
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .db
                .take(),
        );
    }
}

/// Drops a handle of the database (the last one runs redb's close, which may read a
/// damaged file), a panic caught and dropped with it.
fn close_quietly(db: Option<Arc<Database>>) {
    let _ = guarded(move || {
        drop(db);
        Ok(())
    });
}

/// `definition` as `read` sees it; `None` if no commit has created it yet.
fn open_or_none(
    read: &redb::ReadTransaction,
    definition: TableDefinition<'static, &'static [u8], &'static [u8]>,
) -> Result<Option<BytesTable>, redb::Error> {
    match read.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The value under `key` in `table` (none in a table that does not exist yet).
fn get_from(table: Option<&BytesTable>, key: &[u8]) -> Result<Option<Vec<u8>>, redb::StorageError> {
    let Some(table) = table else {
        return Ok(None);
    };
    Ok(redb::ReadableTable::get(table, key)?.map(|v| v.value().to_vec()))
}

fn open_db(file: &Path) -> Result<Database, redb::Error> {
    Ok(Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(PAGE_CACHE_BYTES)
        .create(file)?)
}

/// How a guarded redb call failed.
enum Failure {
    /// The file is damaged (redb said so, or panicked).
    Damage(String),
    /// Another error.
    Error(redb::Error),
}

impl Failure {
    fn into_open(self, file: &Path) -> CacheError {
        match self {
            Failure::Damage(reason) => CacheError::Damaged {
                file: file.to_path_buf(),
                reason,
            },
            Failure::Error(error) => CacheError::Open {
                file: file.to_path_buf(),
                error,
            },
        }
    }
}

/// Runs `op`, its panics caught and its errors sorted into damage and the rest. A panic
/// is reported as the damage it stands for, not printed by the panic hook as a crash.
fn guarded<T>(op: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, Failure> {
    install_quiet_hook();
    let was_quiet = QUIET.with(|quiet| quiet.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(op));
    QUIET.with(|quiet| quiet.set(was_quiet));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if is_damage(&error) => Err(Failure::Damage(error.to_string())),
        Ok(Err(error)) => Err(Failure::Error(error)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let at = PANIC_AT.with(|at| at.take()).unwrap_or_default();
            Err(Failure::Damage(format!("redb panicked{at}: {message}")))
        }
    }
}

thread_local! {
    /// This thread is inside [`guarded`]: its panics are caught and reported there.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic of this thread was raised (` at FILE:LINE`).
    static PANIC_AT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Wraps the process's panic hook once: panics inside [`guarded`] are not printed (their
/// place is kept for the warning), every other panic goes to the hook as before.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()));
                PANIC_AT.with(|slot| slot.set(at));
            } else {
                previous(info);
            }
        }));
    });
}

/// Errors that say the file's bytes are not a sound store (rather than that the disk or a
/// lock failed): the store is replaced.
fn is_damage(error: &redb::Error) -> bool {
    match error {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TransactionPoisoned
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. } => true,
        redb::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Renames the damaged `file` to the first free `results.redb.damaged-N` beside it and
/// says so (the warning names both and the reason). If the file is gone or not the one
/// `opened` (another process that found the damage moved it already), it is left alone.
fn move_aside(file: &Path, opened: Option<FileId>, reason: &str) -> Result<String, String> {
    let replaced = || {
        format!(
            "the result cache {} was damaged ({reason}); another process moved it aside",
            file.display()
        )
    };
    if opened.is_some() && file_id(file) != opened {
        return Ok(replaced());
    }
    for n in 1..=1000 {
        let aside = file.with_file_name(format!("{}.damaged-{n}", CACHE_FILE));
        // A hard link is made only if the name is free, atomically: two processes that
        // find the same damage cannot take the same name. Without hard links on the file
        // system, a rename to a name seen free.
        let moved = match fs::hard_link(file, &aside) {
            Ok(()) => fs::remove_file(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(replaced()),
            Err(_) if !aside.exists() => fs::rename(file, &aside),
            Err(_) => continue,
        };
        moved.map_err(|e| format!("cannot move it to {}: {e}", aside.display()))?;
        return Ok(format!(
            "the result cache {} is damaged ({reason}); moved it to {} and started a fresh one",
            file.display(),
            aside.display()
        ));
    }
    Err("no free name to move it to".into())
}

/// A file's device and inode: which file a path named when it was opened.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &Path) -> Option<FileId> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache folder removed while a run went on took the run's rows with it: the run
    /// must not say it kept them.
    #[cfg(unix)]
    #[test]
    fn a_store_removed_or_replaced_is_no_longer_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let store = Store::open(&cache).unwrap();
        assert!(store.in_place());
        fs::remove_dir_all(&cache).unwrap();
        assert!(!store.in_place());
        fs::create_dir(&cache).unwrap();
        fs::write(cache.join(CACHE_FILE), b"another file").unwrap();
        assert!(!store.in_place());
    }

    #[test]
    fn a_store_another_process_replaced_already_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CACHE_FILE);
        fs::write(&file, b"damaged").unwrap();
        let damaged = file_id(&file);
        // The other process moved it aside and made a fresh one: another inode.
        fs::rename(&file, dir.path().join("elsewhere")).unwrap();
        fs::write(&file, b"fresh").unwrap();
        if damaged.is_some() {
            let said = move_aside(&file, damaged, "x").unwrap();
            assert!(said.contains("another process"), "{said}");
            assert_eq!(fs::read(&file).unwrap(), b"fresh");
        }
        fs::remove_file(&file).unwrap();
        let said = move_aside(&file, None, "x").unwrap();
        assert!(said.contains("another process"), "gone already: {said}");
        let aside = dir.path().join(format!("{}.damaged-1", CACHE_FILE));
        assert!(!aside.exists());
    }

    #[test]
    fn damaged_stores_take_the_next_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CACHE_FILE);
        for n in 1..=2 {
            fs::write(&file, format!("damaged {n}")).unwrap();
            let said = move_aside(&file, file_id(&file), "why").unwrap();
            let aside = dir.path().join(format!("{}.damaged-{n}", CACHE_FILE));
            assert!(said.contains(&*aside.to_string_lossy()) && said.contains("(why)"));
            assert_eq!(fs::read_to_string(&aside).unwrap(), format!("damaged {n}"));
            assert!(!file.exists());
        }
    }
}
